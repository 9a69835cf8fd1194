"""Speaker labels: prefixes in subtitle lines, and mapping diarization labels to names at read time."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from ..datatypes import Turn
from ..errors import TranscriptError

SPEAKERS_FILE = "speakers.json"
PAUSE_SECONDS = 2.0
# Auto captions have no punctuation; cap unlabeled turns so a silence-free hour is not one turn.
MAX_UNLABELED_WORDS = 80
EXAMPLE = '{"SPEAKER_00": "Alex Wang"}'

_BRACKET = re.compile(r"^[ \t]*(?:-[ \t]*)?\[(?P<label>[^\[\]\n]{1,60})\][ \t]*:?[ \t]*")
# Zoom adds a parenthesised tag to some names: "Ashlee Kupor (SL): Let's do that".
_NAME = re.compile(
    r"^[ \t]*(?:-[ \t]*)?(?P<label>[^\W\d_][\w.'’-]*(?:[ \t]+[^\W\d_][\w.'’-]*){0,3}(?:[ \t]+\([^()\n]{1,24}\))?)[ \t]*:(?:[ \t]+|$)"
)
_SENTENCE_END = re.compile(r"[.!?…。][\"'”’)\]]*$")
_DIARIZED = re.compile(r"(?i)^(?:speaker|spk|spkr)[ _-]?\d+$")
# Bracketed sound annotations are not speakers: "[Music] la la", "[LAUGHTER]".
_SOUNDS = frozenset(
    "music applause laughter laughs laughing inaudible crosstalk silence noise cheering cheers sighs coughs "
    "coughing foreign blank_audio indistinct unintelligible chuckles chuckling static singing beep".split()
)


def prefix_label(line: str) -> tuple[str, int] | None:
    """A `[LABEL]`, `[LABEL]:` or `Name:` prefix of a subtitle line: (label, offset where the text starts)."""
    match = _BRACKET.match(line)
    if match:
        return " ".join(match["label"].split()), match.end()
    match = _NAME.match(line)
    if match and all(word[0].isupper() for word in match["label"].split("(")[0].split()):
        return " ".join(match["label"].split()), match.end()
    return None


def accepted_labels(labels: Sequence[str], cues: int) -> set[str]:
    """Labels (one per labeled line) that name speakers in a file of `cues` cues.

    Diarization labels always count. Other labels count when labeled lines are the norm in the
    file (at least half as many as cues), or else when they recur: a lone `Note: ...` line must
    not become a speaker. Sound annotations such as `[Music]` never count.
    """
    names = [label for label in labels if not _SOUNDS.intersection(label.casefold().replace("_", " ").split())]
    counts = Counter(names)
    common = len(names) >= max(2, cues / 2)
    return {label for label, n in counts.items() if common or n >= 2} | {label for label in labels if _DIARIZED.match(label)}


@dataclass(frozen=True, slots=True)
class Piece:
    """One spoken line: content span in the source, clean text, times, speaker and 1-based line."""

    char_start: int
    char_end: int
    clean: str
    start: float | None
    end: float | None
    speaker: str | None
    line: int


# ---------------------------------------------------------------- turns from pieces


def group_turns(text: str, pieces: Sequence[Piece]) -> list[Turn]:
    """Consecutive pieces of one speaker become one turn; unlabeled ones break at pauses and sentence ends."""
    turns: list[Turn] = []
    run: list[Piece] = []
    for piece in pieces:
        if run and _breaks(run, piece):
            turns.append(_turn(text, run))
            run = []
        run.append(piece)
    if run:
        turns.append(_turn(text, run))
    return turns


def _breaks(run: list[Piece], piece: Piece) -> bool:
    last = run[-1]
    if piece.speaker != last.speaker:
        return True
    if piece.speaker is not None:
        return False
    if piece.start is not None and last.end is not None and piece.start - last.end >= PAUSE_SECONDS:
        return True
    words = sum(len(p.clean.split()) for p in (*run, piece))
    return bool(_SENTENCE_END.search(last.clean)) or words > MAX_UNLABELED_WORDS


def _turn(text: str, run: list[Piece]) -> Turn:
    s, e = min(p.char_start for p in run), max(p.char_end for p in run)
    parts = tuple((p.char_start, p.char_end) for p in run)
    times = tuple((p.start, p.end) for p in run)
    end = next((p.end for p in reversed(run) if p.end is not None), None)  # a punctuation item has no time
    return Turn(run[0].speaker, text[s:e], run[0].start, None, s, e, run[0].line, end, parts, times)


# ---------------------------------------------------------------- name mapping


def corpus_speakers(path: str | Path, source: str | None = None) -> dict[str, str]:
    """The nearest `speakers.json` from the file's folder up to the corpus root that `source` is relative to."""
    folder = Path(path).parent
    for _ in range(len(PurePosixPath(source).parts) if source else 1):
        candidate = folder / SPEAKERS_FILE
        if candidate.is_file():
            return _as_mapping(_load(candidate), candidate)
        folder = folder.parent
    return {}


def source_speakers(path: str | Path) -> dict[str, str]:
    """The `speakers` object of the sidecar `<stem>.meta.json` or `<stem>.json` beside a transcript."""
    path = Path(path)
    for candidate in (path.with_name(path.stem + ".meta.json"), path.with_suffix(".json")):
        if candidate == path or not candidate.is_file():
            continue
        data = _load(candidate)
        if isinstance(data, dict) and "speakers" in data and not {"segments", "meeting_transcripts"} & set(data):
            return _as_mapping(data["speakers"], candidate)
    return {}


def resolve_speakers(path: str | Path, corpus: Mapping[str, str] | None = None) -> dict[str, str]:
    """Corpus-wide entries (default: `speakers.json` beside the file) overridden by the source's sidecar."""
    base = corpus_speakers(path) if corpus is None else corpus
    return {**base, **source_speakers(path)}


def apply_speakers(turns: Sequence[Turn], mapping: Mapping[str, str]) -> tuple[list[Turn], dict[str, str]]:
    """Turns with labels replaced by names, and the entries that were used (label -> name)."""
    if not mapping:
        return list(turns), {}
    folded = {label.casefold(): name for label, name in mapping.items()}
    used: dict[str, str] = {}
    out = []
    for turn in turns:
        name = (mapping.get(turn.speaker) or folded.get(turn.speaker.casefold())) if turn.speaker else None
        if name:
            used[turn.speaker] = name  # type: ignore[index]
            turn = replace(turn, speaker=name)
        out.append(turn)
    return out, used


def _load(path: Path) -> object:
    try:
        return json.loads(path.read_bytes().decode("utf-8-sig"))
    except OSError as exc:
        raise TranscriptError(f"{path}: cannot read ({exc.strerror}); check the path and permissions") from exc
    except UnicodeDecodeError as exc:
        raise TranscriptError(f"{path}: not UTF-8 (byte {exc.start}); re-save it as UTF-8") from exc
    except RecursionError:
        raise TranscriptError(f"{path}: JSON nested too deeply to be a speakers file") from None
    except json.JSONDecodeError as exc:
        raise TranscriptError(f"{path} line {exc.lineno}: invalid JSON ({exc.msg}); expected e.g. {EXAMPLE}") from exc


def _as_mapping(value: object, where: Path) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise TranscriptError(f"{where}: speakers must map diarization labels to names as strings, e.g. {EXAMPLE}")
    return {k.strip(): " ".join(v.split()) for k, v in value.items() if k.strip() and v.strip()}
