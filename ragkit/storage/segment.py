"""Segments: immutable pieces of an index, one SQLite file of records and postings plus one raw float32 vector file.

A segment is written once, in a staging folder, and never changed after; a new index version hard-links the
segments it keeps from the previous version and adds new ones, so an update writes only what changed. Readers
open a segment's database with `immutable=1`: no locks, no journal, nothing written beside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..datatypes import Chunk, Document
from .diskio import write_error
from .lexical import terms, tokenize
from .manifest import corrupt
from .records import chunk_from_record, chunk_record, document_from_record, document_record

if TYPE_CHECKING:
    import numpy as np

DB_SUFFIX = ".db"
VEC_SUFFIX = ".f32"
CHUNK_PART, SOURCE_PART = 0, 1
# Rows per segment a build writes before it starts the next one: bounds the postings a writer holds in memory.
SEGMENT_ROWS = 32768

_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
-- entry before record: reading the small entries must not walk the large records' overflow pages
CREATE TABLE sources(row INTEGER PRIMARY KEY, source TEXT NOT NULL, entry TEXT NOT NULL, record TEXT NOT NULL);
CREATE TABLE chunks(row INTEGER PRIMARY KEY, record TEXT NOT NULL, text_key INTEGER NOT NULL);
CREATE INDEX chunks_by_text ON chunks(text_key);
CREATE TABLE postings(part INTEGER NOT NULL, term TEXT NOT NULL, rows BLOB NOT NULL, tfs BLOB NOT NULL, PRIMARY KEY(part, term)) WITHOUT ROWID;
CREATE TABLE lengths(part INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE speakers(label TEXT PRIMARY KEY, listed BLOB NOT NULL, rows BLOB NOT NULL, shares BLOB NOT NULL, sources BLOB NOT NULL);
"""


def text_key(text: str) -> int:
    """A 63-bit hash of a chunk text: the update finds a known text's vector by it (then compares the text)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little") >> 1


@dataclass(frozen=True, slots=True)
class Placed:
    """Where a source's records sit in a segment: its row, its chunks' first row and count, its row in source BM25."""

    segment: str
    row: int
    first_chunk: int
    chunks: int
    lex_row: int  # -1: the source has no chunks, so no row in the source-level BM25


def chunk_shares(doc: Document, chunk: Chunk) -> list[tuple[str, float]]:
    """Each speaker's share of the chunk's characters (the speaker boost's weight)."""
    turns = doc.turns[chunk.first_turn : chunk.last_turn + 1]
    sizes = [(t.speaker, max(0, min(t.char_end, chunk.char_end) - max(t.char_start, chunk.char_start))) for t in turns]
    total = sum(n for _, n in sizes) or 1
    return [(label, n / total) for label, n in sizes if label]


class SegmentWriter:
    """Writes one segment: add documents with their chunks and vectors, then close() for the file entries."""

    def __init__(self, folder: Path, name: str, dim: int) -> None:
        self.folder, self.name, self.dim = folder, name, dim
        self.db_path, self.vec_path = folder / (name + DB_SUFFIX), folder / (name + VEC_SUFFIX)
        try:
            self.conn = sqlite3.connect(self.db_path, isolation_level=None)
            self.conn.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA page_size=8192;" + _SCHEMA + "BEGIN;")
            self.vec = os.open(self.vec_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
        except (OSError, sqlite3.Error) as exc:
            raise write_error(self.db_path, exc) from exc
        self.vec_sha = hashlib.sha256()
        self.rows = self.sources = self.lex_rows = 0
        # Postings as flat (term id, row, tf) arrays, grouped by term at close: far less memory than lists per term.
        self.term_ids: dict[int, dict[str, int]] = {CHUNK_PART: {}, SOURCE_PART: {}}
        self.flat = {part: (array("i"), array("i"), array("i")) for part in (CHUNK_PART, SOURCE_PART)}
        self.lengths: dict[int, list[int]] = {CHUNK_PART: [], SOURCE_PART: []}
        self.speakers: dict[str, tuple[list[int], list[int], list[float], set[int]]] = {}

    def add(self, doc: Document, chunks: Sequence[Chunk], vectors: np.ndarray, entry: dict[str, Any]) -> Placed:
        """Store one source, its chunks and their vectors (row i of vectors is chunk i); `entry` is what `ragkit info`
        shows of it and what an update compares (fingerprint)."""
        import numpy as np

        first = self.rows
        lex_row = self.lex_rows if chunks else -1
        try:
            record = document_record(doc)
            self.conn.execute("INSERT INTO sources VALUES (?, ?, ?, ?)",
                              (self.sources, doc.source, json.dumps(entry, ensure_ascii=False), json.dumps(record, ensure_ascii=False)))
            self.conn.executemany(
                "INSERT INTO chunks VALUES (?, ?, ?)",
                [(first + n, json.dumps(chunk_record(c), ensure_ascii=False), text_key(c.text)) for n, c in enumerate(chunks)],
            )
        except sqlite3.Error as exc:
            raise write_error(self.db_path, exc) from exc
        data = np.ascontiguousarray(vectors, dtype="<f4").tobytes()
        try:
            view = memoryview(data)
            while view:  # os.write may write less than asked
                view = view[os.write(self.vec, view) :]
        except OSError as exc:
            raise write_error(self.vec_path, exc) from exc
        self.vec_sha.update(data)
        whole: Counter[str] = Counter()
        for n, chunk in enumerate(chunks):
            row = first + n
            words = terms(tokenize(chunk.text))
            self._post(CHUNK_PART, row, Counter(words))
            self.lengths[CHUNK_PART].append(len(words))
            whole.update(words)
            for label in chunk.speakers:
                self._speaker(label)[0].append(row)
            for label, share in chunk_shares(doc, chunk):
                spoken = self._speaker(label)
                spoken[1].append(row)
                spoken[2].append(share)
        for label in {t.speaker for t in doc.turns if t.speaker}:
            self._speaker(label)[3].add(self.sources)
        if chunks:
            self._post(SOURCE_PART, lex_row, whole)
            self.lengths[SOURCE_PART].append(sum(whole.values()))
            self.lex_rows += 1
        placed = Placed(self.name, self.sources, first, len(chunks), lex_row)
        self.rows += len(chunks)
        self.sources += 1
        return placed

    def _post(self, part: int, row: int, counts: Counter[str]) -> None:
        ids = self.term_ids[part]
        terms_, rows, tfs = self.flat[part]
        for term, tf in counts.items():
            tid = ids.get(term)
            if tid is None:
                tid = ids[term] = len(ids)
            terms_.append(tid)
            rows.append(row)
            tfs.append(tf)

    def _grouped(self, part: int) -> Iterable[tuple[int, str, bytes, bytes]]:
        import numpy as np

        terms_, rows, tfs = (np.frombuffer(a, dtype=np.int32) if len(a) else np.zeros(0, np.int32) for a in self.flat[part])
        order = np.argsort(terms_, kind="stable")  # stable: each term's rows stay ascending
        rows, tfs = rows[order].astype("<i4"), tfs[order].astype("<i4")
        bounds = np.searchsorted(terms_[order], np.arange(len(self.term_ids[part]) + 1))
        for term, tid in self.term_ids[part].items():
            a, b = bounds[tid], bounds[tid + 1]
            yield part, term, rows[a:b].tobytes(), tfs[a:b].tobytes()

    def _speaker(self, label: str) -> tuple[list[int], list[int], list[float], set[int]]:
        if label not in self.speakers:
            self.speakers[label] = ([], [], [], set())
        return self.speakers[label]

    def close(self) -> dict[str, dict[str, Any]]:
        """Finish both files (fsynced); returns {file name: {bytes, sha256}} for the manifest."""
        import numpy as np

        def blob(values: Iterable[float | int], kind: str) -> bytes:
            return np.asarray(list(values), dtype=kind).tobytes()

        try:
            for part in self.flat:
                self.conn.executemany("INSERT INTO postings VALUES (?, ?, ?, ?)", self._grouped(part))
            self.conn.executemany("INSERT INTO lengths VALUES (?, ?)", ((p, blob(v, "<i4")) for p, v in self.lengths.items()))
            self.conn.executemany(
                "INSERT INTO speakers VALUES (?, ?, ?, ?, ?)",
                ((label, blob(listed, "<i4"), blob(rows, "<i4"), blob(shares, "<f4"), blob(sorted(srcs), "<i4"))
                 for label, (listed, rows, shares, srcs) in self.speakers.items()),
            )
            meta = {"rows": self.rows, "sources": self.sources, "lex_rows": self.lex_rows, "dim": self.dim}
            self.conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
            self.conn.execute("COMMIT")
            self.conn.close()
            with open(self.db_path, "rb") as fh:
                os.fsync(fh.fileno())
        except (OSError, sqlite3.Error) as exc:
            raise write_error(self.db_path, exc) from exc
        try:
            os.fsync(self.vec)
            os.close(self.vec)
        except OSError as exc:
            raise write_error(self.vec_path, exc) from exc
        self.term_ids.clear()
        self.flat.clear()
        return {
            self.db_path.name: _digest(self.db_path),
            self.vec_path.name: {"bytes": self.vec_path.stat().st_size, "sha256": self.vec_sha.hexdigest()},
        }

    def abort(self) -> None:
        for close in (self.conn.close, lambda: os.close(self.vec)):
            try:
                close()
            except (OSError, sqlite3.Error):
                pass


def _digest(path: Path) -> dict[str, Any]:
    from .diskio import file_digest

    return file_digest(path)


class Segment:
    """A published segment, read lazily: records by row, postings by term, vectors memory-mapped."""

    def __init__(self, folder: Path, name: str, rows: int, dim: int) -> None:
        self.folder, self.name, self.rows, self.dim = folder, name, rows, dim
        self._conn: sqlite3.Connection | None = None
        self._vectors: np.ndarray | None = None

    @property
    def db_path(self) -> Path:
        return self.folder / (self.name + DB_SUFFIX)

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            from urllib.parse import quote

            uri = f"file:{quote(str(self.db_path))}?mode=ro&immutable=1"
            try:
                self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            except sqlite3.Error as exc:
                raise corrupt(f"{self.db_path} cannot be opened ({exc})") from exc
        return self._conn

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read; a damaged database file is the usual `index is corrupt` error."""
        try:
            return self.conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise corrupt(f"{self.db_path} is damaged ({exc})") from exc

    @property
    def vectors(self) -> np.ndarray:
        if self._vectors is None:
            import numpy as np

            path = self.folder / (self.name + VEC_SUFFIX)
            if self.rows == 0:
                self._vectors = np.zeros((0, self.dim), np.float32)
            else:
                self._vectors = np.memmap(path, dtype="<f4", mode="r", shape=(self.rows, self.dim))
        return self._vectors

    def chunk(self, row: int) -> Chunk:
        return self.chunks(row, row + 1)[0]

    def chunks(self, start: int, stop: int) -> list[Chunk]:
        start, stop = int(start), int(stop)
        found = self.query("SELECT row, record FROM chunks WHERE row >= ? AND row < ? ORDER BY row", (start, stop))
        return parse_chunks(found, start, stop, self.db_path)

    def document(self, row: int) -> Document:
        return parse_document(self.query("SELECT record FROM sources WHERE row = ?", (row,)), row, self.db_path)

    def entries(self) -> dict[int, dict[str, Any]]:
        """Every source row's entry (title, sha256, format, fingerprint, ...), by row."""
        return {row: record_json(text, self.db_path) for row, text in self.query("SELECT row, entry FROM sources")}

    def rows_with_text(self, text: str) -> list[int]:
        return [r for (r,) in self.query("SELECT row FROM chunks WHERE text_key = ?", (text_key(text),))]

    def postings(self, part: int, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        import numpy as np

        found = self.query("SELECT rows, tfs FROM postings WHERE part = ? AND term = ?", (part, term))
        if not found:
            return None
        rows, tfs = (np.frombuffer(b, dtype="<i4") for b in found[0])
        if len(rows) != len(tfs):
            raise corrupt(f"{self.db_path} has postings of {term!r} of two lengths")
        return rows, tfs

    def posting_counts(self, part: int, terms: Sequence[str]) -> list[tuple[str, int]]:
        """(term, rows holding it) for those of terms with postings here; the blobs' sizes, not their bytes."""
        out: list[tuple[str, int]] = []
        for start in range(0, len(terms), 500):
            group = list(terms[start : start + 500])
            marks = ",".join("?" * len(group))
            out += self.query(f"SELECT term, length(rows) / 4 FROM postings WHERE part = ? AND term IN ({marks})", (part, *group))  # type: ignore[arg-type]
        return out

    def all_postings(self, part: int) -> list[tuple[str, bytes, bytes]]:
        return self.query("SELECT term, rows, tfs FROM postings WHERE part = ?", (part,))  # type: ignore[return-value]

    def lengths(self, part: int) -> np.ndarray:
        import numpy as np

        found = self.query("SELECT data FROM lengths WHERE part = ?", (part,))
        if not found:
            raise corrupt(f"{self.db_path} has no term counts")
        return np.frombuffer(found[0][0], dtype="<i4")

    def speakers(self) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """(label, chunk rows listing it, chunk rows it speaks in, its share of each, source rows) per speaker."""
        import numpy as np

        out: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        for label, listed, rows, shares, sources in self.query("SELECT label, listed, rows, shares, sources FROM speakers"):
            arrays = [np.frombuffer(listed, "<i4"), np.frombuffer(rows, "<i4"), np.frombuffer(shares, "<f4"), np.frombuffer(sources, "<i4")]
            if len(arrays[1]) != len(arrays[2]) or not isinstance(label, str):
                raise corrupt(f"{self.db_path} has a malformed speaker entry")
            out.append((label, arrays[0], arrays[1], arrays[2], arrays[3]))
        return out

    def speaker_sources(self) -> list[tuple[str, np.ndarray]]:
        """(label, source rows whose turns it speaks in) per speaker: the matcher's labels, without the chunk arrays."""
        import numpy as np

        return [(label, np.frombuffer(sources, "<i4")) for label, sources in self.query("SELECT label, sources FROM speakers") if isinstance(label, str)]

    def meta(self) -> dict[str, Any]:
        return {k: v for k, v in self.query("SELECT key, value FROM meta") if isinstance(k, str)}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._vectors = None


def parse_chunks(found: Sequence[tuple[Any, ...]], start: int, stop: int, where: Path | str) -> list[Chunk]:
    """Chunk records read as (row, record JSON) for rows start..stop-1 (of any store), checked and parsed."""
    if [r for r, _ in found] != list(range(start, stop)):
        raise corrupt(f"{where} lacks chunk rows {start}-{stop - 1}")
    return [chunk_from_record(record_json(rec, where), where) for _, rec in found]  # type: ignore[arg-type]


def parse_document(found: Sequence[tuple[Any, ...]], row: int, where: Path | str) -> Document:
    """A source record read as [(record JSON,)] (of any store), checked and parsed."""
    if not found:
        raise corrupt(f"{where} lacks source row {row}")
    return document_from_record(record_json(found[0][0], where), where)  # type: ignore[arg-type]


def record_json(text: str, path: Path | str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError, TypeError) as exc:
        raise corrupt(f"{path} holds a record that is not JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise corrupt(f"{path} holds a record that is not a JSON object")
    return value
