"""Writing an index version into a staging folder: new sources go to new segments, kept segments are hard-linked."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..datatypes import Chunk, Document
from .diskio import write_error
from .local import LocalStore
from .manifest import source_entry
from .segment import SEGMENT_ROWS, SegmentWriter

# What the manifest holds of each source: its name and where its rows are (the rest is in its segment's entry).
LOCATION = ("path", "segment", "row", "first_chunk", "chunks", "lex_row")

if TYPE_CHECKING:
    import numpy as np


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link (an unchanged segment costs no bytes and no write), or a copy where links are not possible."""
    try:
        os.link(source, target)
        return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise write_error(target, exc) from exc
    try:
        shutil.copyfile(source, target)
        with open(target, "rb") as fh:
            os.fsync(fh.fileno())
    except OSError as exc:
        raise write_error(target, exc) from exc


class VersionWriter:
    """Collects the sources of a new version in corpus order: kept ones (from the previous version's segments) and
    new ones (written to new segments of at most SEGMENT_ROWS chunks)."""

    def __init__(self, folder: Path, dim: int, previous: LocalStore | None = None, segment_rows: int = SEGMENT_ROWS) -> None:
        self.folder, self.dim, self.previous, self.segment_rows = folder, dim, previous, segment_rows
        taken = [int(name[1:]) for name in previous.segments] if previous else []
        self.next = max(taken, default=0) + 1
        self.sources: list[dict[str, Any]] = []
        self.segments: dict[str, dict[str, Any]] = {}
        self.kept: set[str] = set()
        self.writer: SegmentWriter | None = None

    def keep(self, entry: dict[str, Any]) -> None:
        """Keep a source of the previous version where it is (its segment is linked into the new version)."""
        self.kept.add(entry["segment"])
        self.sources.append({k: entry[k] for k in LOCATION})

    def add(self, doc: Document, chunks: Sequence[Chunk], vectors: np.ndarray, extra: dict[str, Any]) -> None:
        """Write a source, its chunks and vectors; `extra` (fingerprint, ...) joins its entry in the segment."""
        if self.writer is not None and self.writer.rows and self.writer.rows + len(chunks) > self.segment_rows:
            self._close()
        if self.writer is None:
            self.writer = SegmentWriter(self.folder, f"s{self.next:06d}", self.dim)
            self.next += 1
        placed = self.writer.add(doc, chunks, vectors, {**source_entry(doc, len(chunks)), **extra})
        self.sources.append({"path": doc.source, "segment": placed.segment, "row": placed.row, "first_chunk": placed.first_chunk,
                             "chunks": len(chunks), "lex_row": placed.lex_row})

    def _close(self) -> None:
        assert self.writer is not None
        w = self.writer
        files = w.close()
        self.segments[w.name] = {"rows": w.rows, "sources": w.sources, "lex_rows": w.lex_rows, "files": files}
        self.writer = None

    def finish(self) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        """Close the open segment and link the kept ones: (source entries in order, segment entries)."""
        if self.writer is not None:
            self._close()
        if self.previous is not None:
            for name in sorted(self.kept):
                meta = self.previous.manifest["segments"][name]
                if self.previous.kind == "local":  # a database keeps its segments where they are
                    for fname in meta["files"]:
                        link_or_copy(self.previous.folder / fname, self.folder / fname)
                self.segments[name] = meta
        return self.sources, dict(sorted(self.segments.items()))

    def abort(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.abort()
