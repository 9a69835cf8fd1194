"""Plain-text transcript readers: podcast, chat and prose, with front matter and the line helpers they share."""

from __future__ import annotations

import bisect
import re

from ..datatypes import Turn
from .line_styles import PODCAST, LineStyle, parse_timestamp

_TS = r"(\d{1,2}:[0-5]\d(?::[0-5]\d)?)"
# Names start and end with a non-space, so a long run of spaces is scanned once, not once per name length.
_HEADER = re.compile(r"^[ \t]*(?P<name>[^\s():](?:[^\n():]{0,298}[^\s():])?)[ \t]*\(" + _TS + r"\):[ \t]*")
_CONTINUE = re.compile(r"^[ \t]*\(" + _TS + r"\):[ \t]*")
_CHAT = re.compile(r"^[ \t]*(?P<name>[^\s:#*>\-\d][^:\n]{0,79}?):[ \t]+(?=\S)")
# Greedy `.*` and stripping in code: a lazy `.*?` before `[ \t#]*$` is quadratic on long runs of spaces or #.
_FRONT = re.compile(r"^[ \t]*(?P<key>[A-Za-z_][\w-]{0,40}):[ \t]*(?P<value>.*)$")
_FOOTER = re.compile(r"\s*\(?\s*(?:transcribed by|transcription by|automatically transcribed by)\s+(?:https?://)?(?:otter|sonix|temi|rev|descript)\b", re.I)
_HEADING_MD = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(?P<title>.*)$")


# ---------------------------------------------------------------- line helpers


class _Lines:
    """Line spans of a text with offset-to-line lookup."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def spans(self, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
        """(start, end) of each line overlapping [start, end), newline excluded."""
        first = max(0, bisect.bisect_right(self.starts, start) - 1)
        last = len(self.starts) if end is None else bisect.bisect_left(self.starts, end)
        starts = self.starts[first:last]
        ends = [s - 1 for s in self.starts[first + 1 : last + 1]]
        return list(zip(starts, ends + [len(self.text)] * (len(starts) - len(ends))))

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset)


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _heading_title(raw: str) -> str:
    """A markdown heading's text without a closing run of # (which must follow a space)."""
    title = raw.strip()
    bare = title.rstrip("#")
    return bare.strip() if bare != title and (not bare or bare[-1] in " \t") else title


def _has_prose(para: str) -> bool:
    """Whether a paragraph after a heading is body text (so the heading is its section)."""
    first = para.lstrip().split("\n", 1)[0]
    return not _is_heading_para(para) and not _HEADING_MD.match(first)


def _is_heading_para(para: str) -> bool:
    return "\n" not in para.strip() and _is_heading_like(para)


def _is_heading_like(line: str) -> bool:
    s = line.strip()
    return 0 < len(s) <= 90 and len(s.split()) <= 14 and s[-1] not in ".?!:;,\"'”’)…" and not s.startswith(("*", "•", "-"))


# ---------------------------------------------------------------- front matter


_META_KEYS = {
    "title", "date", "author", "authors", "tags", "categories", "category", "url", "link", "source", "description",
    "summary", "published", "updated", "lang", "language", "slug", "layout", "draft", "episode", "season",
    "duration", "keywords", "subtitle", "image", "speakers",
}


def _front_matter(text: str, lines: _Lines) -> tuple[dict[str, str], int]:
    """Leading `key: value` lines (optionally fenced by ---); returns values and the offset after them."""
    meta: dict[str, str] = {}
    spans = lines.spans()
    i = 0
    while i < len(spans) and not text[slice(*spans[i])].strip():
        i += 1
    fenced = i < len(spans) and text[slice(*spans[i])].strip() == "---"
    if fenced:
        i += 1
    end = 0
    while i < len(spans):
        line = text[slice(*spans[i])]
        if fenced and line.strip() == "---":
            return meta, spans[i][1]
        match = _FRONT.match(line)
        if fenced and not match and (not line.strip() or line[:1] in " \t" or line.startswith("- ")):
            i += 1  # YAML lists and continued values inside the fence
            continue
        # Without a fence only metadata keys count, so `Alice: hi` chat lines are not eaten as metadata.
        if not match or (not fenced and (match["key"].lower() not in _META_KEYS or _HEADER.match(line))):
            break
        meta[match["key"].lower()] = match["value"].strip().strip("\"'")
        end = spans[i][1]
        i += 1
    if fenced or len(meta) < 1 or not ({"title", "date"} & set(meta)):
        return {}, 0
    return meta, end


# ---------------------------------------------------------------- readers


def read_prose(text: str, start: int = 0, end: int | None = None, section: str | None = None,
               lines: _Lines | None = None) -> list[Turn]:
    """Paragraphs between blank lines are units; markdown headings set the section."""
    lines = lines or _Lines(text)  # callers reading many regions pass theirs: building it is O(text)
    end = len(text) if end is None else end
    turns: list[Turn] = []
    para: list[tuple[int, int]] = []

    def flush() -> None:
        if para:
            s, e = _strip_span(text, para[0][0], para[-1][1])
            if s < e:
                turns.append(Turn(None, text[s:e], None, section, s, e, lines.line_of(s)))
            para.clear()

    for s, e in lines.spans(start, end):
        if e <= start or s >= end:
            continue
        s, e = max(s, start), min(e, end)
        line = text[s:e]
        heading = _HEADING_MD.match(line)
        if not line.strip():
            flush()
        elif heading:
            flush()
            section = _heading_title(heading["title"]) or section
        else:
            para.append((s, e))
    flush()
    return turns


def read_podcast(text: str, start: int = 0, style: LineStyle = PODCAST) -> list[Turn]:
    """Turn headers of a line style (default `Name (mm:ss):`), continuation lines and paragraphs, heading lines as sections."""
    lines = _Lines(text)
    blocks = _podcast_blocks(text, lines, start, style)
    turns: list[Turn] = []
    first = next((i for i, b in enumerate(blocks) if b[0] == "header"), len(blocks))
    if first:
        turns.extend(read_prose(text, start, blocks[first][1] if first < len(blocks) else len(text), None, lines))
    section: str | None = None
    speaker: str | None = None
    current: list = []  # [speaker, start_time, text_start, text_end, section, header_offset]

    def flush() -> None:
        if current and current[2] is not None:
            s, e = _strip_span(text, current[2], current[3])
            if s < e:
                turns.append(Turn(current[0], text[s:e], current[1], current[4], s, e, lines.line_of(current[5])))
        current.clear()

    prose_mode = False
    for n, (kind, s, e, name, ts, body) in enumerate(blocks[first:], start=first):
        if kind in ("header", "continue"):
            flush()
            prose_mode = False
            speaker = name if kind == "header" else speaker
            current[:] = [speaker, ts, body if body < e else None, e, section, s]
            continue
        para = text[s:e]
        if _FOOTER.match(para):  # "Transcribed by https://otter.ai": the service's, not the last speaker's words
            flush()
            turns.extend(read_prose(text, s, e, section, lines))
            continue
        nxt = blocks[n + 1] if n + 1 < len(blocks) else None
        has_text = bool(current) and current[2] is not None
        if _is_heading_para(para) and (has_text or not current):
            flush()
            prose_mode = True
            if nxt is not None and (nxt[0] != "para" or _has_prose(text[nxt[1] : nxt[2]])):
                section = _section_title(para)
                prose_mode = nxt[0] == "para"
                continue
            # A short line before another short line or the end is text (a footer, a list), not a heading.
        if prose_mode or not current:
            turns.extend(read_prose(text, s, e, section, lines))
        else:
            current[2] = s if current[2] is None else current[2]
            current[3] = e
    flush()
    return turns


def _section_title(para: str) -> str:
    """A heading's text without markdown `#`s or a leading `[00:04:28]` (Descript chapter headings)."""
    title = para.strip()
    heading = _HEADING_MD.match(title)
    if not heading:
        return title
    title = _heading_title(heading["title"]) or title
    return re.sub(r"^\[\d{1,2}:[0-5]\d(?::[0-5]\d)?\][ \t]*", "", title) or title


def _podcast_blocks(text: str, lines: _Lines, start: int, style: LineStyle = PODCAST) -> list[tuple]:
    """Headers, continuations and paragraphs: (kind, start, end, speaker, seconds, body_offset)."""
    blocks: list[tuple] = []
    para: tuple[int, int] | None = None
    blank = False
    for s, e in lines.spans():
        if e < start:
            continue
        s = max(s, start)
        line = text[s:e]
        header = style.header(line)
        cont = None if header else style.continuation(line)
        if header or cont:
            if para:
                blocks.append(("para", *para, None, None, None))
                para = None
            name, stamp, offset = header if header else (None, *cont)  # type: ignore[misc]
            kind = "header" if header else "continue"
            body = s + offset
            blocks.append((kind, s, e, name, parse_timestamp(stamp) if stamp else None, body))
        elif not line.strip():
            if para:
                blocks.append(("para", *para, None, None, None))
                para = None
        elif not blank and blocks and blocks[-1][0] in ("header", "continue") and para is None and blocks[-1][5] < blocks[-1][2]:
            # A line right under an inline-text header extends that header's body.
            kind, hs, _, name, ts, body = blocks[-1]
            blocks[-1] = (kind, hs, e, name, ts, body)
        else:
            para = (para[0], e) if para else (s, e)
        blank = not line.strip()
    if para:
        blocks.append(("para", *para, None, None, None))
    return blocks


def read_chat(text: str, start: int = 0) -> list[Turn]:
    """`Name: text` lines; lines without a name continue the previous turn."""
    lines = _Lines(text)
    turns: list[Turn] = []
    cur: list = []

    def flush() -> None:
        if cur:
            s, e = _strip_span(text, cur[1], cur[2])
            if s < e:
                turns.append(Turn(cur[0], text[s:e], None, None, s, e, lines.line_of(cur[3])))
            cur.clear()

    before: int | None = None  # start of the lines without a name before the first turn
    for s, e in lines.spans(start):
        if e <= start:
            continue
        s = max(s, start)
        line = text[s:e]
        match = _CHAT.match(line)
        if match:
            if before is not None:
                turns.extend(read_prose(text, before, s, None, lines))
                before = None
            flush()
            cur[:] = [" ".join(match["name"].split()), s + match.end(), e, s]
        elif line.strip():
            if cur:
                cur[2] = e
            elif before is None:
                before = s
    if before is not None:
        turns.extend(read_prose(text, before, len(text), None, lines))
    flush()
    return turns
