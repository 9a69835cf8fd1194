"""Subtitle formats (WebVTT, SRT) and the clean-text helpers shared by every format read in pieces.

Every such format (cues here, speech-to-text JSON in sttjson.py) is first cut into *pieces*: one spoken line
(a cue text line or a JSON text value) with its exact source span, cleaned text, times and speaker. Pieces then
group into turns: consecutive pieces of one speaker form one turn; unlabeled pieces break at pauses, sentence
ends or a size cap. A turn's `text` is the verbatim source from its first to its last piece, so it can hold cue
timing lines or JSON syntax; `Turn.parts` lists the piece spans and `turn_content` gives the clean text.
"""

from __future__ import annotations

import bisect
import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..datatypes import Turn
from ..errors import TranscriptError
from .notes import note
from .speakers import Piece, accepted_labels, group_turns, prefix_label

_VTT_TS = r"(?:(\d+):)?([0-5]\d):([0-5]\d)\.(\d{3})"
_SRT_TS = r"(\d+):([0-5]\d):([0-5]\d)[,.](\d{1,3})"
_TIMING = {
    "vtt": (re.compile(rf"[ \t]*{_VTT_TS}[ \t]+-->[ \t]+{_VTT_TS}(?:[ \t]+[^\n]*)?"), "HH:MM:SS.mmm --> HH:MM:SS.mmm"),
    "srt": (re.compile(rf"[ \t]*{_SRT_TS}[ \t]*-->[ \t]*{_SRT_TS}(?:[ \t]+[^\n]*)?[ \t]*"), "HH:MM:SS,mmm --> HH:MM:SS,mmm"),
}
_VTT_SKIP = re.compile(r"(?:NOTE|STYLE|REGION)(?:[ \t]|$)")
_VOICE = re.compile(r"[ \t]*<v(?:\.[^ \t>]*)?[ \t]+(?P<name>[^>]*?)[ \t]*>")
_VOICE_END = re.compile(r"</v>[ \t]*$")
_TAG = re.compile(r"</?(?:c|i|b|u|v|lang|ruby|rt|font|span)(?:[.\s][^<>\n]*)?>|<\d+(?::\d\d){1,2}\.\d{3}>|\{\\an?\d+\}", re.I)
_ENTITY = re.compile(r"&(?:amp|lt|gt|nbsp|quot|apos|lrm|rlm|#\d{1,7}|#x[0-9a-fA-F]{1,6});")


@dataclass(frozen=True, slots=True)
class Cue:
    """A subtitle cue: times, the line of its timing line, and its payload line spans."""

    start: float
    end: float
    line: int
    payload: tuple[tuple[int, int], ...]


# ---------------------------------------------------------------- clean text


def clean_text(raw: str) -> str:
    """Spoken text of one part: JSON escapes decoded, cue tags dropped, entities unescaped, spaces folded."""
    if len(raw) >= 2 and raw[0] == '"' == raw[-1] and "\\" in raw:
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        raw = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace") if isinstance(value, str) else raw
    raw = _ENTITY.sub(lambda m: html.unescape(m.group()), _TAG.sub("", raw))
    return " ".join(raw.split())


def turn_parts(turn: Turn) -> list[tuple[int, int]]:
    """Absolute source spans of a turn's spoken text (the whole turn when it has no parts)."""
    return list(turn.parts) or [(turn.char_start, turn.char_end)]


def turn_content(turn: Turn, start: int | None = None, end: int | None = None) -> str:
    """Clean text of a turn, or of its parts inside the absolute range [start, end); for embedding and display."""
    lo = turn.char_start if start is None else start
    hi = turn.char_end if end is None else end
    if not turn.parts:
        return " ".join(turn.text[max(lo, turn.char_start) - turn.char_start : hi - turn.char_start].split())
    pieces = []
    for s, e in turn.parts:
        a, b = max(s, lo), min(e, hi)
        if a < b:
            pieces.append(clean_text(turn.text[a - turn.char_start : b - turn.char_start]))
    out = ""
    for piece in pieces:
        if piece:
            # Word-level JSON (AWS Transcribe) gives punctuation its own item: "hour" "." reads "hour.", not "hour ."
            out += piece if not out or _PUNCT_ONLY.fullmatch(piece) else " " + piece
    return out


_PUNCT_ONLY = re.compile(r"[.,!?;:…]+")


def span_times(turn: Turn, start: int, end: int) -> tuple[float | None, float | None]:
    """When the parts inside the absolute range [start, end) were spoken; the turn's times without part times."""
    inside = [t for (s, e), t in zip(turn.parts, turn.part_times) if s < end and e > start]
    return (inside[0][0], inside[-1][1]) if inside else (turn.start, turn.end)


# ---------------------------------------------------------------- readers


def read_vtt(text: str, name: str) -> list[Turn]:
    """WebVTT: voice tags and `Name:`/`[LABEL]` prefixes give speakers; rolling repeats are read once."""
    if not text.strip():
        return []
    return group_turns(text, cue_pieces(text, vtt_cues(text, name)))


def read_srt(text: str, name: str) -> list[Turn]:
    """SRT: numbered cues; `Name:` or `[SPEAKER_00]` prefixes give speakers."""
    return group_turns(text, cue_pieces(text, srt_cues(text, name)))



# ---------------------------------------------------------------- cues


def _line_spans(text: str) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for line in text.split("\n"):
        spans.append((pos, pos + len(line)))
        pos += len(line) + 1
    return spans


def _timing(line: str, name: str, number: int, kind: str) -> tuple[float, float]:
    pattern, expected = _TIMING[kind]
    match = pattern.fullmatch(line)
    if not match:
        shown = line.strip() if len(line.strip()) <= 60 else line.strip()[:57] + "..."
        raise TranscriptError(f"{name} line {number}: bad timestamp {shown!r}; expected {expected}")
    groups = match.groups()
    start, end = _seconds(groups[:4]), _seconds(groups[4:8])
    if end < start:  # a typing slip in one cue: keep its start, which orders it among the others
        note(f"line {number}: cue ends ({end:.3f} s) before it starts ({start:.3f} s); end set to its start")
        end = start
    return start, end


def _seconds(groups: Sequence[str | None]) -> float:
    hours, minutes, seconds, fraction = groups
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + int(seconds or 0) + int((fraction or "0").ljust(3, "0")) / 1000


def vtt_cues(text: str, name: str) -> list[Cue]:
    """Cues of a WebVTT file; header, NOTE, STYLE and REGION blocks are skipped."""
    lines = _line_spans(text)
    if re.match(r"WEBVTT(?:[ \t]|$)", text[slice(*lines[0])]):
        i = _block_end(text, lines, 0)
    elif "-->" in text[: sum(e - s + 1 for s, e in lines[:3])]:
        note("line 1: no 'WEBVTT' header; read as WebVTT cues anyway")
        i = 0
    else:
        raise TranscriptError(f"{name} line 1: missing 'WEBVTT' header; a WebVTT file starts with WEBVTT (SRT files end in .srt)")
    cues: list[Cue] = []
    while i < len(lines):
        line = text[slice(*lines[i])]
        if not line:
            i += 1
        elif _VTT_SKIP.match(line):
            i = _block_end(text, lines, i)
        else:
            if "-->" not in line:  # a cue identifier, which the timing line must follow
                if i + 1 >= len(lines) or "-->" not in text[slice(*lines[i + 1])]:
                    raise TranscriptError(f"{name} line {i + 1}: text outside a cue; expected a timing line 'HH:MM:SS.mmm --> HH:MM:SS.mmm' (a cue's text may not contain blank lines)")
                i += 1
            start, end = _timing(text[slice(*lines[i])], name, i + 1, "vtt")
            j = i + 1
            while j < len(lines) and text[slice(*lines[j])] and "-->" not in text[slice(*lines[j])]:
                j += 1
            cues.append(Cue(start, end, i + 1, tuple(lines[i + 1 : j])))
            i = j
    return cues


def _block_end(text: str, lines: list[tuple[int, int]], i: int) -> int:
    while i < len(lines) and text[slice(*lines[i])]:
        i += 1
    return i


def srt_cues(text: str, name: str) -> list[Cue]:
    """Cues of an SRT file: blocks of number, timing line and text lines, separated by blank lines."""
    lines = _line_spans(text)
    cues: list[Cue] = []
    i = 0
    while i < len(lines):
        if not text[slice(*lines[i])].strip():
            i += 1
            continue
        j = i
        while j < len(lines) and text[slice(*lines[j])].strip():
            j += 1
        first = text[slice(*lines[i])].strip()
        timing = i if "-->" in first else i + 1
        if timing == i + 1 and not first.isdigit():
            raise TranscriptError(f"{name} line {i + 1}: expected a cue number or a timing line, found {first[:60]!r} (a cue's text may not contain blank lines)")
        if timing >= j or "-->" not in text[slice(*lines[timing])]:
            raise TranscriptError(f"{name} line {i + 1}: cue {first} has no timing line; expected HH:MM:SS,mmm --> HH:MM:SS,mmm on the next line")
        start, end = _timing(text[slice(*lines[timing])], name, timing + 1, "srt")
        cues.append(Cue(start, end, timing + 1, tuple(lines[timing + 1 : j])))
        i = j
    return cues


def cue_pieces(text: str, cues: Sequence[Cue]) -> list[Piece]:
    """Spoken lines of cues, each read once: a cue's leading lines that repeat the previous cue's last lines are dropped."""
    found = [label for cue in cues for s, e in cue.payload if (label := (prefix_label(text[s:e]) or ("",))[0])]
    labels = accepted_labels(found, len(cues))
    starts = _line_starts(text)
    pieces: list[Piece] = []
    previous: list[tuple[str, str | None, int]] = []  # (clean, speaker, piece index) of the last cue's lines
    speaker: str | None = None
    for cue in cues:
        lines = []
        for s, e in cue.payload:
            speaker, s, e = _line_speaker(text, s, e, speaker, labels)
            clean = clean_text(text[s:e])
            if clean:
                lines.append((s, e, clean, speaker))
        if lines:
            previous = _add_cue(text, pieces, previous, lines, cue, starts)
    return pieces


def _line_speaker(text: str, s: int, e: int, speaker: str | None, labels: set[str]) -> tuple[str | None, int, int]:
    """The speaker a payload line sets (else the current one carries on) and the span of its text."""
    line = text[s:e]
    if closing := _VOICE_END.search(line):
        e = s + closing.start()
    if voice := _VOICE.match(line):
        speaker, s = " ".join(voice["name"].split()) or speaker, s + voice.end()
    elif (found := prefix_label(line)) and found[0] in labels:
        speaker, s = found[0], s + found[1]
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    return speaker, s, e


def _add_cue(text: str, pieces: list[Piece], previous: list, lines: list, cue: Cue, starts: list[int]) -> list:
    repeated = _overlap(previous, lines)
    current = []
    for j, (s, e, clean, speaker) in enumerate(lines):
        if j < repeated:
            index = previous[len(previous) - repeated + j][2]
            _prefer_plain(text, pieces, index, s, e, _line_of(starts, s))
        else:
            index = len(pieces)
            pieces.append(Piece(s, e, clean, cue.start, cue.end, speaker, _line_of(starts, s)))
        current.append((clean, speaker, index))
    return current


def _overlap(previous: list, lines: list) -> int:
    """How many leading lines of this cue repeat (same text and speaker) the previous cue's last lines."""
    for k in range(min(len(previous), len(lines)), 0, -1):
        if all(previous[len(previous) - k + j][:2] == (lines[j][2], lines[j][3]) for j in range(k)):
            return k
    return 0


def _prefer_plain(text: str, pieces: list[Piece], index: int, s: int, e: int, line: int) -> None:
    # YouTube captions show each line first with word-timing tags, then repeat it plain: cite the plain
    # copy, unless that would put this piece after a later one in the file.
    piece = pieces[index]
    has_markup = text[piece.char_start : piece.char_end] != piece.clean
    if has_markup and text[s:e] == piece.clean and all(p.char_start >= e for p in pieces[index + 1 :]):
        pieces[index] = replace(piece, char_start=s, char_end=e, line=line)



def _line_starts(text: str) -> list[int]:
    return [0] + [m.end() for m in re.finditer("\n", text)]


def _line_of(starts: list[int], offset: int) -> int:
    return bisect.bisect_right(starts, offset)
