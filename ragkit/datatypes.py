"""Records passed between stages; all frozen so they can be shared and hashed safely."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class Turn:
    """One unit of a source: a speaker turn, a paragraph of prose, a cue."""

    speaker: str | None
    text: str
    start: float | None
    section: str | None
    char_start: int
    char_end: int
    line: int
    end: float | None = None
    # Absolute source spans of the spoken text when `text` also holds markup (cue timings, repeated
    # caption lines, JSON syntax); empty means all of `text` is content. See subtitles.turn_content.
    parts: tuple[tuple[int, int], ...] = ()
    # (start, end) seconds of each part when parts come from timed cues or segments, else empty.
    part_times: tuple[tuple[float | None, float | None], ...] = ()


@dataclass(frozen=True, slots=True)
class Document:
    """A decoded source file and its turns."""

    source: str
    title: str
    text: str
    turns: tuple[Turn, ...]
    date: str | None = None
    format: str = "prose"
    sha256: str = ""
    url: str | None = None
    path: str = ""
    # Diarization label -> name entries applied at read time (for the manifest).
    speaker_map: dict[str, str] = field(default_factory=dict)
    # Repairs made while reading ("line 12: cue ends before it starts; end set to its start").
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Chunk:
    """Whole consecutive turns of one source, packed to a token budget; vector i is chunk i."""

    id: str
    source: str
    title: str
    text: str
    speakers: tuple[str, ...]
    first_turn: int
    last_turn: int
    start: float | None
    end: float | None
    section: str | None
    char_start: int
    char_end: int

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chunk:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["speakers"] = tuple(values.get("speakers", ()))
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Hit:
    """A retrieved chunk with its score and 1-based rank."""

    chunk: Chunk
    score: float
    rank: int
    # Filled on request by ragkit.links: a deep link to the passage, and the turns around it (--context N).
    link: str | None = None
    before: tuple[Turn, ...] = ()
    after: tuple[Turn, ...] = ()
    # The turn (or cue) inside the chunk that best matches the query: who says it and when, so a link
    # plays the right moment rather than the chunk's start.
    speaker: str | None = None
    start: float | None = None


def speaker_matches(wanted: str | None, speaker: str | None) -> bool:
    """The `--speaker` rule everywhere: a case-insensitive part of the name ("marketing" matches "Marketing Lead")."""
    return not wanted or (speaker is not None and wanted.casefold().strip() in speaker.casefold())


@dataclass(frozen=True, slots=True)
class Citation:
    """A verbatim quote from a source, located by character offsets."""

    chunk_id: str
    source: str
    title: str
    speaker: str | None
    start: float | None
    quote: str
    char_start: int
    char_end: int
    end: float | None = None
    marker: int = 0
    # As on Hit: a deep link to the quote's time, and the turns before and after the quoted turn(s).
    link: str | None = None
    before: tuple[Turn, ...] = ()
    after: tuple[Turn, ...] = ()


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer with the citations that support it and the hits it was drawn from."""

    question: str
    text: str
    citations: tuple[Citation, ...]
    hits: tuple[Hit, ...]
    answerer: str
    supported: bool = True
    warnings: tuple[str, ...] = ()


def to_dict(record: Any) -> dict[str, Any]:
    """The JSON form of any record above."""
    return asdict(record)


def format_time(seconds: float | None) -> str:
    """`h:mm:ss`, e.g. `0:01:54` or `1:02:03`; empty when the time is unknown."""
    if seconds is None:
        return ""
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"
