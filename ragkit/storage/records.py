"""Chunk and source records to and from the index's JSON lines, checked as they are read."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..datatypes import Chunk, Document, Turn
from .manifest import corrupt


def chunk_record(chunk: Chunk) -> dict[str, Any]:
    return {f.name: getattr(chunk, f.name) for f in fields(chunk)}


def document_record(doc: Document) -> dict[str, Any]:
    # Field by field, not dataclasses.asdict: that deep-copies every turn, the slowest step of a large build.
    record: dict[str, Any] = {f.name: getattr(doc, f.name) for f in fields(doc) if f.name != "turns"}
    record["speaker_map"], record["notes"] = dict(doc.speaker_map), list(doc.notes)
    record["turns"] = [
        [t.speaker, t.start, t.end, t.section, t.char_start, t.char_end, t.line, [list(p) for p in t.parts], [list(p) for p in t.part_times]]
        for t in doc.turns
    ]
    return record


# Record fields are checked for type and range as they are read: a manifest's checksums can be recomputed by
# anyone, so a crafted file must end as "index is corrupt", never as a traceback or a wrong value in the output.
_MAX = 2**53  # the largest integer JSON numbers keep exactly


def _count(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _MAX


def _time(v: object) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and abs(v) <= _MAX)


def _text(v: object, optional: bool = False) -> bool:
    return isinstance(v, str) or (optional and v is None)


_CHUNK_FIELDS: dict[str, Callable[[object], bool]] = {
    "id": _text, "source": _text, "title": _text, "text": _text,
    "speakers": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "first_turn": _count, "last_turn": _count, "start": _time, "end": _time,
    "section": lambda v: _text(v, True), "char_start": _count, "char_end": _count,
}
_SOURCE_FIELDS: dict[str, Callable[[object], bool]] = {
    "source": _text, "title": _text, "text": _text, "date": lambda v: _text(v, True), "format": _text, "sha256": _text,
    "url": lambda v: _text(v, True), "path": _text, "turns": lambda v: isinstance(v, list),
    "speaker_map": lambda v: isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items()),
}


def _bad_field(data: dict[str, Any], checks: dict[str, Callable[[object], bool]]) -> str | None:
    for name, ok in checks.items():
        if name not in data:
            return f"no {name!r}"
        if not ok(data[name]):
            return f"{name!r} is {str(data[name])[:40]!r}"
    return None


def _pairs(v: object, ok: Callable[[object], bool]) -> bool:
    return isinstance(v, list) and all(isinstance(p, list) and len(p) == 2 and ok(p[0]) and ok(p[1]) for p in v)


def _bad_turn(row: object, size: int) -> str | None:
    if not isinstance(row, list) or len(row) not in (7, 8, 9):
        return "a turn is not a list of 7 to 9 fields"
    sp, st, end, sec, s, e, line, *rest = row
    if not (_text(sp, True) and _time(st) and _time(end) and _text(sec, True) and _count(s) and _count(e) and _count(line)):
        return f"a turn has a field of the wrong type ({str(row)[:60]})"
    if not s <= e <= size:
        return f"a turn spans {s}-{e} in a text of {size} characters"
    if rest and not _pairs(rest[0], lambda v: _count(v) and int(v) <= size) or len(rest) > 1 and not _pairs(rest[1], _time):  # type: ignore[call-overload]
        return "a turn has malformed parts"
    return None


def _turn(text: str, row: list[Any]) -> Turn:
    # Subtitle turns carry the spans of their spoken lines (parts) so quotes and times stay exact after loading.
    sp, st, end, sec, s, e, line, *rest = row
    parts = tuple(tuple(p) for p in rest[0]) if rest else ()
    times = tuple(tuple(p) for p in rest[1]) if len(rest) > 1 else ()
    return Turn(sp, text[s:e], st, sec, s, e, line, end, parts, times)


def document_from_record(data: dict[str, Any], path: Path) -> Document:
    problem = _bad_field(data, _SOURCE_FIELDS) or next((p for row in data["turns"] if (p := _bad_turn(row, len(data["text"])))), None)
    if problem:
        raise corrupt(f"{path} holds a malformed source record ({problem})")
    try:
        text = data["text"]
        turns = tuple(_turn(text, row) for row in data["turns"])
        notes = data.get("notes", [])
        if not (isinstance(notes, list) and all(isinstance(n, str) for n in notes)):
            raise corrupt(f"{path} holds a malformed source record ('notes' is {str(notes)[:40]!r})")
        return Document(**{**{k: v for k, v in data.items() if k not in ("turns", "notes")}, "turns": turns, "notes": tuple(notes)})
    except (KeyError, TypeError, ValueError) as exc:
        raise corrupt(f"{path} holds a malformed source record ({exc})") from exc


def chunk_from_record(data: dict[str, Any], path: Path) -> Chunk:
    problem = _bad_field(data, _CHUNK_FIELDS)
    if not problem and not (data["first_turn"] <= data["last_turn"] and data["char_start"] <= data["char_end"]):
        problem = "its turns or characters run backwards"
    if problem:
        raise corrupt(f"{path} holds a malformed chunk ({problem})")
    try:
        return Chunk.from_dict(data)
    except (TypeError, AttributeError) as exc:
        raise corrupt(f"{path} holds a malformed chunk ({exc})") from exc
