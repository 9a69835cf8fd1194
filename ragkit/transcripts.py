"""Readers: decode a source file and turn it into a Document of Turns with exact offsets."""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .datatypes import Document, Turn
from .errors import CorpusError, TranscriptError
from .speakers import SPEAKERS_FILE, apply_speakers, corpus_speakers, resolve_speakers

log = logging.getLogger(__name__)

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".text", ".transcript", ""}
JSON_SUFFIXES = {".json"}

_TS = r"(\d{1,2}:[0-5]\d(?::[0-5]\d)?)"
# Names start and end with a non-space, so a long run of spaces is scanned once, not once per name length.
_HEADER = re.compile(r"^[ \t]*(?P<name>[^\s():](?:[^\n():]{0,298}[^\s():])?)[ \t]*\(" + _TS + r"\):[ \t]*")
_CONTINUE = re.compile(r"^[ \t]*\(" + _TS + r"\):[ \t]*")
_CHAT = re.compile(r"^[ \t]*(?P<name>[^\s:#*>\-\d][^:\n]{0,79}?):[ \t]+(?=\S)")
# Greedy `.*` and stripping in code: a lazy `.*?` before `[ \t#]*$` is quadratic on long runs of spaces or #.
_FRONT = re.compile(r"^[ \t]*(?P<key>[A-Za-z_][\w-]{0,40}):[ \t]*(?P<value>.*)$")
_HEADING_MD = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(?P<title>.*)$")


@dataclass(frozen=True, slots=True)
class Decoded:
    """Decoded text (newlines normalized to \\n) and how it was decoded."""

    text: str
    encoding: str
    replaced: int = 0


# Longest first: the UTF-32 LE BOM starts with the UTF-16 LE one.
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
_NON_ASCII = re.compile("[^\x00-\x7f\ufffd]")


def decode_bytes(data: bytes, name: str = "<bytes>") -> Decoded:
    """Decode by BOM, else as UTF-8, UTF-16 without BOM, or cp1252; bad bytes become U+FFFD with a warning."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return _decode_as(data, codec, len(bom), name)
    if (utf16 := _bomless_utf16(data)) is not None:
        log.warning("%s: no byte order mark but NUL bytes every other byte; decoded as %s", name, utf16)
        return _decode_as(data, utf16, 0, name)
    try:
        return Decoded(_newlines(data.decode("utf-8")), "utf-8")
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    if _NON_ASCII.search(data.decode("utf-8", errors="replace")):
        # Valid multi-byte sequences elsewhere: a damaged UTF-8 file; cp1252 would garble every accent.
        return _decode_as(data, "utf-8", 0, name)
    log.warning("%s: not valid UTF-8 (first bad byte at offset %d); decoded as cp1252", name, first_bad)
    return _decode_as(data, "cp1252", 0, name)


def _decode_as(data: bytes, codec: str, skip: int, name: str) -> Decoded:
    body = data[skip:] if skip else data
    try:
        return Decoded(_newlines(body.decode(codec)), codec)
    except UnicodeDecodeError as exc:
        first_bad = skip + exc.start
    text = body.decode(codec, errors="replace")
    replaced = text.count("\ufffd") - body.decode(codec, errors="ignore").count("\ufffd")
    log.warning(
        "%s: %d invalid byte sequence(s) for %s replaced with U+FFFD, first at byte offset %d",
        name, replaced, codec, first_bad,
    )
    return Decoded(_newlines(text), f"{codec}-replace", replaced)


def _bomless_utf16(data: bytes) -> str | None:
    """UTF-16 without a BOM: text in Latin scripts has a NUL in every other byte, which UTF-8 text never has."""
    sample = data[:4096]
    if len(sample) < 4 or b"\x00" not in sample:
        return None
    even, odd = sample[0::2].count(0) / len(sample[0::2]), sample[1::2].count(0) / len(sample[1::2])
    if odd >= 0.3 and even <= 0.05:
        return "utf-16-le"
    if even >= 0.3 and odd <= 0.05:
        return "utf-16-be"
    return None


def _newlines(text: str) -> str:
    # Offsets are into this normalized text, so CRLF and lone CR files cite the same spans.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_source_text(path: str | Path) -> str:
    """The decoded, newline-normalized text that char offsets refer to."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TranscriptError(f"{path}: cannot read ({exc.strerror}); check the path and permissions") from exc
    return decode_bytes(data, str(path)).text


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


def read_podcast(text: str, start: int = 0) -> list[Turn]:
    """`Name (mm:ss):` headers, `(mm:ss):` continuation paragraphs and heading lines as sections."""
    lines = _Lines(text)
    blocks = _podcast_blocks(text, lines, start)
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
        nxt = blocks[n + 1] if n + 1 < len(blocks) else None
        has_text = bool(current) and current[2] is not None
        if _is_heading_para(para) and (has_text or not current):
            flush()
            prose_mode = True
            if nxt is not None and (nxt[0] != "para" or _has_prose(text[nxt[1] : nxt[2]])):
                section = para.strip()
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


def _podcast_blocks(text: str, lines: _Lines, start: int) -> list[tuple]:
    """Headers, continuations and paragraphs: (kind, start, end, speaker, seconds, body_offset)."""
    blocks: list[tuple] = []
    para: tuple[int, int] | None = None
    blank = False
    for s, e in lines.spans():
        if e < start:
            continue
        s = max(s, start)
        line = text[s:e]
        header = _HEADER.match(line)
        cont = None if header else _CONTINUE.match(line)
        if header or cont:
            if para:
                blocks.append(("para", *para, None, None, None))
                para = None
            match = header or cont
            assert match is not None
            name = " ".join(header["name"].split()) if header else None
            kind = "header" if header else "continue"
            body = s + match.end()
            blocks.append((kind, s, e, name, parse_timestamp(match.group(2 if header else 1)), body))
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


def read_qmsum(text: str, name: str) -> tuple[list[Turn], dict]:
    """QMSum meeting JSON: turn i is `meeting_transcripts[i]`; offsets point into the JSON text."""
    data = _load_json(text, name)
    items = data.get("meeting_transcripts") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(items, list):
        raise TranscriptError(f"{name}: no 'meeting_transcripts' list; expected a QMSum meeting file")
    turns: list[Turn] = []
    lines = _Lines(text)
    key = _TRANSCRIPTS_KEY.search(text)
    pos = key.end() if key else 0
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("content"), str):
            raise TranscriptError(f"{name}: meeting_transcripts[{i}] has no 'content' string")
        s, e, pos = _locate_json_string(text, item["content"], pos, name, i)
        # An escaped value is cited as its quoted literal; `parts` lets the chunker embed the decoded text.
        parts = ((s, e),) if text[s:e] != item["content"].strip() else ()
        speaker = str(item.get("speaker") or "") or None
        turns.append(Turn(speaker, text[s:e], None, None, s, e, lines.line_of(s), None, parts))
    return turns, data


_TRANSCRIPTS_KEY = re.compile(r'"meeting_transcripts"\s*:')
_CONTENT_KEY = re.compile(r'"content"\s*:\s*"')


def _locate_json_string(text: str, value: str, pos: int, name: str, i: int) -> tuple[int, int, int]:
    """Span of item i's content value after `pos`: the text inside the quotes, or the quoted literal if escaped."""
    # A key match cannot start inside another string: an embedded `"content"` would be written `\"content\"`.
    match = _CONTENT_KEY.search(text, pos)
    try:
        decoded, after = json.JSONDecoder().raw_decode(text, match.end() - 1) if match else (None, 0)
    except json.JSONDecodeError:
        decoded = None
    if decoded != value or match is None:
        raise TranscriptError(f"{name}: cannot locate meeting_transcripts[{i}] content in the file text; "
                              "is the file a QMSum meeting written by a JSON tool?")
    q = match.end() - 1
    s, e = _strip_span(text, q + 1, after - 1)
    if text[s:e] == value.strip():
        return s, e, after
    return q, after, after


def _load_json(text: str, name: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TranscriptError(f"{name}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc


# ---------------------------------------------------------------- dispatch


def detect_format(path: Path, text: str) -> str:
    """Pick a reader by suffix, then by content."""
    suffix = path.suffix.lower()
    if suffix in FILE_READERS:
        return suffix
    if suffix in JSON_SUFFIXES:
        return "json"
    if suffix in (".md", ".markdown"):
        return "prose"
    body = text[:200_000]
    lines = [ln for ln in body.split("\n") if ln.strip()]
    if sum(1 for ln in lines if _HEADER.match(ln)) >= 2:
        return "podcast"
    chat = sum(1 for ln in lines if _CHAT.match(ln))
    if lines and chat >= 2 and chat >= 0.6 * len(lines):
        return "chat"
    return "prose"


def parse_timestamp(value: str) -> float:
    """`mm:ss` or `h:mm:ss` to seconds."""
    parts = [int(p) for p in value.split(":")]
    seconds = 0
    for p in parts:
        seconds = seconds * 60 + p
    return float(seconds)


def read_document(path: str | Path, source: str | None = None, speakers: dict[str, str] | None = None) -> Document:
    """Read one transcript or prose file into a Document; `speakers` maps labels to names corpus-wide."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TranscriptError(f"{path}: cannot read ({exc.strerror}); check the path and permissions") from exc
    decoded = decode_bytes(data, str(path))
    text = decoded.text
    source = source or path.name
    _load_format_modules()
    fmt = detect_format(path, text)
    lines = _Lines(text)
    meta, body = _front_matter(text, lines) if fmt not in ("json", *FILE_READERS) else ({}, 0)
    meta = {**meta, **_sidecar(path)}
    if fmt in FILE_READERS:
        turns = FILE_READERS[fmt](text, str(path))
    elif fmt == "json":
        turns, fmt = read_json_transcript(text, str(path))
    elif fmt == "podcast":
        turns = read_podcast(text, body)
    elif fmt == "chat":
        turns = read_chat(text, body)
    else:
        turns = read_prose(text, body)
    turns, speaker_map = apply_speakers(turns, resolve_speakers(path, speakers))
    title = meta.get("title") or _default_title(path)
    return Document(
        source=source,
        title=title,
        text=text,
        turns=tuple(turns),
        date=meta.get("date") or None,
        format=fmt,
        sha256=hashlib.sha256(data).hexdigest(),
        url=meta.get("url") or None,
        path=str(path.resolve()),
        speaker_map=speaker_map,
    )


def read_json_transcript(text: str, name: str) -> tuple[list[Turn], str]:
    """JSON transcripts: QMSum meetings, and the JSON formats registered in JSON_READERS."""
    data = _load_json(text, name)
    if isinstance(data, dict) and "meeting_transcripts" in data:
        return read_qmsum(text, name)[0], "qmsum"
    for fmt, (accepts, reader) in JSON_READERS.items():
        if accepts(data):
            return reader(text, data, name), fmt
    raise TranscriptError(
        f"{name}: unrecognized JSON transcript; expected QMSum 'meeting_transcripts' or a supported JSON format"
    )


# Format modules register here: JSON formats as name -> (accepts(data), reader(text, data, name)),
# other files by suffix as ".vtt" -> reader(text, name). Offsets must point into `text`.
JSON_READERS: dict[str, tuple[Callable[[object], bool], Callable[[str, object, str], list[Turn]]]] = {}
FILE_READERS: dict[str, Callable[[str, str], list[Turn]]] = {}
FORMAT_MODULES = ("subtitles",)


def _load_format_modules() -> None:
    import importlib

    for name in FORMAT_MODULES:
        try:
            importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{name}":
                raise


def _sidecar(path: Path) -> dict[str, str]:
    """Metadata from `<stem>.meta.json` or `<stem>.json` beside a non-JSON source."""
    for candidate in (path.with_name(path.stem + ".meta.json"), path.with_suffix(".json")):
        if candidate == path or not candidate.is_file():
            continue
        try:
            data = json.loads(read_source_text(candidate))
        except json.JSONDecodeError as exc:
            raise TranscriptError(f"{candidate}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
        if isinstance(data, dict) and not _looks_like_transcript(data):
            return {k: str(v) for k, v in data.items() if isinstance(v, (str, int, float))}
    return {}


def _looks_like_transcript(data: dict) -> bool:
    return any(k in data for k in ("meeting_transcripts", "segments", "turns"))


def _default_title(path: Path) -> str:
    return re.sub(r"[-_]+", " ", path.stem).strip() or path.name


def _is_sidecar(path: Path) -> bool:
    if path.suffix.lower() != ".json":
        return False
    if path.name.endswith(".meta.json"):
        return True
    siblings = [p for p in path.parent.glob(glob_escape(path.stem) + ".*") if p != path and p.is_file()]
    return any(p.suffix.lower() != ".json" and _is_source_file(p) for p in siblings)


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _is_source_file(path: Path) -> bool:
    _load_format_modules()
    return path.suffix.lower() in TEXT_SUFFIXES | JSON_SUFFIXES | set(FILE_READERS)


def iter_source_files(paths: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """Files under the given paths with their source names (relative to the folder given)."""
    found: list[tuple[Path, str]] = []
    for raw in paths:
        root = Path(raw)
        if not root.exists():
            raise CorpusError(f"{root}: no such file or folder; pass an existing transcript file or folder")
        if root.is_file():
            found.append((root, root.name))
            continue
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root)
            if any(part.startswith(".") for part in rel.parts):
                continue
            if _is_source_file(path) and not _is_sidecar(path) and path.name != SPEAKERS_FILE:
                found.append((path, rel.as_posix()))
    return found


def read_corpus(*paths: str | Path, on_skip: Callable[[str], None] | None = None) -> list[Document]:
    """Read every transcript under the given files or folders; empty files are skipped with a warning."""
    paths = paths or ("seeds",)
    files = iter_source_files(paths)
    if not files:
        raise CorpusError(f"{', '.join(map(str, paths))}: no transcript files found (.txt, .md, .json, ...)")
    docs = []
    for path, source in files:
        doc = read_document(path, source, corpus_speakers(path, source))
        if not any(t.text.strip() for t in doc.turns):
            _skip(f"{path}: empty, whitespace-only or only front matter; no text to index; skipped", on_skip)
            continue
        docs.append(doc)
    if not docs:
        raise CorpusError(f"{', '.join(map(str, paths))}: every file is empty; nothing to index")
    return _dedupe(docs, on_skip)


def _skip(message: str, on_skip: Callable[[str], None] | None) -> None:
    log.warning(message)
    if on_skip:
        on_skip(message)


def _dedupe(docs: Iterable[Document], on_skip: Callable[[str], None] | None = None) -> list[Document]:
    """Files with the same text under two names are indexed once; the duplicate is reported."""
    seen: dict[str, str] = {}
    out = []
    for doc in docs:
        # The decoded text, so a copy that differs only in BOM, encoding or line ends is caught too.
        key = hashlib.sha256(doc.text.encode("utf-8", "surrogatepass")).hexdigest()
        if key in seen:
            _skip(f"{doc.source}: same text as {seen[key]}; indexed once", on_skip)
            continue
        seen[key] = doc.source
        out.append(doc)
    return out
