"""Chunk and source records to and from the index's JSON lines, checked as they are read."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..datatypes import Chunk, Document, Turn
from .manifest import corrupt


def jsonl(records) -> bytes:  # noqa: ANN001
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def document_record(doc: Document) -> dict[str, Any]:
    record = {k: v for k, v in asdict(doc).items() if k != "turns"}
    record["turns"] = [
        [t.speaker, t.start, t.end, t.section, t.char_start, t.char_end, t.line, [list(p) for p in t.parts], [list(p) for p in t.part_times]]
        for t in doc.turns
    ]
    return record


def _turn(text: str, row: list[Any]) -> Turn:
    # Subtitle turns carry the spans of their spoken lines (parts) so quotes and times stay exact after loading.
    sp, st, end, sec, s, e, line, *rest = row
    parts = tuple(tuple(p) for p in rest[0]) if rest else ()
    times = tuple(tuple(p) for p in rest[1]) if len(rest) > 1 else ()
    return Turn(sp, text[s:e], st, sec, s, e, line, end, parts, times)


def document_from_record(data: dict[str, Any], path: Path) -> Document:
    try:
        text = data["text"]
        turns = tuple(_turn(text, row) for row in data["turns"])
        return Document(**{**{k: v for k, v in data.items() if k != "turns"}, "turns": turns})
    except (KeyError, TypeError, ValueError) as exc:
        raise corrupt(f"{path} holds a malformed source record ({exc})") from exc


def chunk_from_record(data: dict[str, Any], path: Path) -> Chunk:
    try:
        return Chunk.from_dict(data)
    except (TypeError, AttributeError) as exc:
        raise corrupt(f"{path} holds a malformed chunk ({exc})") from exc
