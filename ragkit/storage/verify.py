"""A full check of an index version: every byte against the manifest's sha256, each database's own integrity check,
and every record parsed and checked against its source (what opening an index skips to stay fast)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .diskio import read_verified
from .manifest import REBUILD, corrupt
from .segment import CHUNK_PART, SOURCE_PART, Segment


@dataclass(frozen=True, slots=True)
class Verified:
    """What a verification read: files and bytes hash-checked, records parsed."""

    files: int
    bytes: int
    sources: int
    chunks: int


def verify_version(folder: Path, manifest: dict[str, Any], only: Iterable[str] | None = None, records: bool = True) -> Verified:
    """Check the segments of a version (all, or the names in `only`); raises the usual `index is corrupt` error.

    Without `records` (the check after every build, of what it just wrote from checked objects): bytes against
    checksums and SQLite's quick_check only."""
    import numpy as np

    names = list(manifest["segments"]) if only is None else list(only)
    dim = int(manifest["embedder"]["dim"])
    files = size = sources = chunks = 0
    for name in names:
        meta = manifest["segments"][name]
        for fname, entry in meta["files"].items():
            _hash(folder / fname, entry)
            files, size = files + 1, size + entry["bytes"]
        seg = Segment(folder, name, int(meta["rows"]), dim)
        try:
            result = seg.query("PRAGMA integrity_check" if records else "PRAGMA quick_check")
            if result != [("ok",)]:
                raise corrupt(f"{seg.db_path} fails SQLite's integrity check ({str(result[0][0])[:80]})")
            if not records:
                continue
            found = _records(seg, meta, manifest, name, every_row=True)
            if not np.isfinite(np.asarray(seg.vectors)).all():
                raise corrupt(f"{folder / (name + '.f32')} holds vectors that are not finite numbers")
            sources, chunks = sources + found[0], chunks + found[1]
        finally:
            seg.close()
    return Verified(files, size, sources, chunks)


def verify_records(store: Any) -> Verified:
    """Every record of a store whose bytes its own server guards (PostgreSQL): parsed and checked against its source."""
    sources = chunks = 0
    for name, seg in store.segments.items():
        found = _records(seg, store.manifest["segments"][name], store.manifest, name)
        sources, chunks = sources + found[0], chunks + found[1]
    return Verified(0, 0, sources, chunks)


def _records(seg: Any, meta: dict[str, Any], manifest: dict[str, Any], name: str, every_row: bool = False) -> tuple[int, int]:
    """Parse and check one segment's records, term counts and postings (every chunk row, or those live sources own:
    PostgreSQL deletes the others); (sources, chunks) read."""
    import numpy as np

    docs = [seg.document(row) for row in range(int(meta["sources"]))]
    if sorted(seg.entries()) != list(range(len(docs))):
        raise corrupt(f"{seg.db_path} lacks the entry of a source")
    live = sorted((e["first_chunk"], e["chunks"]) for e in manifest["sources"] if e["segment"] == name)
    if every_row:
        rows = seg.chunks(0, int(meta["rows"])) if meta["rows"] else []
        stored = {e: rows[e[0] : e[0] + e[1]] for e in live}
    else:
        stored = {e: seg.chunks(e[0], e[0] + e[1]) for e in live}
    _check_chunks(seg, docs, stored, manifest, name)
    for part, rows in ((CHUNK_PART, int(meta["rows"])), (SOURCE_PART, int(meta["lex_rows"]))):
        if len(seg.lengths(part)) != rows:
            raise corrupt(f"{seg.db_path} has term counts for {len(seg.lengths(part))} rows, not {rows}")
        for term, blob, tfs in seg.all_postings(part):
            found = np.frombuffer(blob, "<i4")
            if len(blob) != len(tfs) or (len(found) and (found.min() < 0 or found.max() >= rows)):
                raise corrupt(f"{seg.db_path} has postings of {term!r} past its rows")
    return len(docs), int(meta["rows"]) if every_row else sum(n for _, n in live)


def _hash(path: Path, entry: dict[str, Any]) -> None:
    import hashlib
    import os

    if not path.is_file() or os.path.getsize(path) != entry["bytes"]:
        read_verified(path, entry, REBUILD)  # raises, naming the problem: missing, not a file, size
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    if h.hexdigest() != entry["sha256"]:
        raise corrupt(f"{path} does not match its sha256 in the manifest")


def _check_chunks(seg: Any, docs: list, records: dict, manifest: dict[str, Any], name: str) -> None:  # noqa: ANN001
    by_row = {e["row"]: e for e in manifest["sources"] if e["segment"] == name}
    for row, entry in by_row.items():
        doc = docs[row]
        if doc.source != entry["path"]:
            raise corrupt(f"{seg.db_path}: source row {row} is {doc.source!r}, the manifest says {entry['path']!r}")
        for chunk in records[(entry["first_chunk"], entry["chunks"])]:
            if chunk.source != doc.source:
                raise corrupt(f"{seg.db_path}: chunk {chunk.id!r} is listed under {doc.source!r}")
            if chunk.last_turn >= len(doc.turns) or chunk.char_end > len(doc.text):
                raise corrupt(f"{seg.db_path}: chunk {chunk.id!r} reaches past its source's turns or text")
