"""Repairs a reader made to a file (a cue ending before it starts, a missing WEBVTT line), collected per file.

Readers call note(); read_document collects them into Document.notes. A context variable keeps every reader's
signature as it is and is safe with threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_current: ContextVar[list[str] | None] = ContextVar("ragkit_reader_notes", default=None)


def note(message: str) -> None:
    """Record a repair (`line 12: cue ends before it starts; end set to its start`) for the file being read."""
    notes = _current.get()
    if notes is not None:
        notes.append(message)


@contextmanager
def collecting() -> Iterator[list[str]]:
    notes: list[str] = []
    token = _current.set(notes)
    try:
        yield notes
    finally:
        _current.reset(token)
