"""The local store: one published index version (a folder of segments and a manifest), read on demand.

Opening reads only the manifest and the sizes of the files it lists; records, postings and vectors are read when
a question needs them. Chunk ids are logical: sources in corpus order (the manifest's `sources`), each source's
chunks in order, exactly as a full rebuild numbers them, whichever segment holds them.
"""

from __future__ import annotations

import math
import os
import stat
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..datatypes import Chunk, Document
from .lexical import K1, B
from .manifest import corrupt
from .segment import CHUNK_PART, DB_SUFFIX, SOURCE_PART, VEC_SUFFIX, Segment

if TYPE_CHECKING:
    import numpy as np

DOCUMENT_CACHE = 64


class LocalStore:
    """Records, vectors, BM25 postings and speaker data of one index version folder."""

    kind = "local"

    def __init__(self, folder: Path, manifest: dict[str, Any], segments: Mapping[str, Segment] | None = None) -> None:
        self.folder, self.manifest = folder, manifest
        self.dim = int(manifest["embedder"]["dim"])
        self.entries: list[dict[str, Any]] = manifest["sources"]
        self.names = [e["path"] for e in self.entries]
        self.position = {name: n for n, name in enumerate(self.names)}
        self.segments = dict(segments) if segments is not None else {
            name: Segment(folder, name, int(meta["rows"]), self.dim) for name, meta in manifest["segments"].items()}
        counts = [int(e["chunks"]) for e in self.entries]
        self.starts = [0]
        for n in counts:
            self.starts.append(self.starts[-1] + n)
        self._docs: OrderedDict[str, Document] = OrderedDict()
        self._logical: dict[str, np.ndarray] | None = None
        self._entries: list[dict[str, Any]] | None = None
        self.chunk_bm25 = SegmentedBm25(self, CHUNK_PART)
        self.source_bm25 = SegmentedBm25(self, SOURCE_PART)

    @property
    def where(self) -> str:
        """The manifest, as error messages name it."""
        return str(self.folder / "manifest.json")

    # ------------------------------------------------------------ checks at open

    def check(self) -> None:
        """Structure only (cheap): every listed file is a regular file of the listed size, vector files hold rows x dim
        floats, and every source points at rows its segment has. `ragkit verify` checks every byte."""
        for name, meta in self.manifest["segments"].items():
            for fname, entry in meta["files"].items():
                path = self.folder / fname
                try:
                    info = os.stat(path)
                except FileNotFoundError:
                    raise corrupt(f"{path} is missing") from None
                except OSError as exc:
                    raise corrupt(f"cannot read {path} ({exc.strerror or exc})") from exc
                if not stat.S_ISREG(info.st_mode):
                    raise corrupt(f"{path} is not a regular file")
                if info.st_size != entry["bytes"]:
                    raise corrupt(f"{path} has {info.st_size} bytes, manifest says {entry['bytes']}")
            vec = meta["files"].get(name + VEC_SUFFIX)
            if vec is None or name + DB_SUFFIX not in meta["files"] or vec["bytes"] != 4 * self.dim * int(meta["rows"]):
                raise corrupt(f"{self.folder / (name + VEC_SUFFIX)} does not hold {meta['rows']} vectors of dim {self.dim}")
        self.check_sources()

    def check_sources(self) -> None:
        """Every source points at rows its segment has, and the counts add up."""
        for e in self.entries:
            seg = self.manifest["segments"].get(e["segment"])
            if seg is None:
                raise corrupt(f"{self.where}: source {e['path']!r} is in segment {e['segment']!r}, which is not listed")
            if not (e["row"] < seg["sources"] and e["first_chunk"] + e["chunks"] <= seg["rows"] and e["lex_row"] < seg["lex_rows"]):
                raise corrupt(f"{self.where}: source {e['path']!r} points past the rows of segment {e['segment']}")
        if self.starts[-1] != self.manifest["counts"]["chunks"] or len(self.entries) != self.manifest["counts"]["sources"]:
            raise corrupt(f"{self.where} counts {self.manifest['counts']['chunks']} chunks, its sources hold {self.starts[-1]}")

    def open(self) -> None:
        """Open every segment now, checking its counts against the manifest: a version removed by a later writer's
        cleanup stays readable through the open files."""
        for name, seg in self.segments.items():
            meta, listed = seg.meta(), self.manifest["segments"][name]
            expected = {"rows": listed["rows"], "sources": listed["sources"], "lex_rows": listed["lex_rows"], "dim": self.dim}
            if {k: meta.get(k) for k in expected} != expected:
                raise corrupt(f"{seg.db_path} holds {meta}, the manifest expects {expected}")
            _ = seg.vectors

    def alive(self) -> bool:
        """Whether reads can go on (a database connection can be lost; open files cannot)."""
        return True

    def prefetch_postings(self, part: int, terms: set[str]) -> None:
        """Read these terms' postings of every segment at once where that saves round trips (a database)."""

    # ------------------------------------------------------------ records

    def __len__(self) -> int:
        return self.starts[-1]

    def locate(self, i: int) -> tuple[int, int]:
        """(source position, chunk number within the source) of logical chunk i."""
        import bisect

        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(i)
        n = bisect.bisect_right(self.starts, i) - 1
        return n, i - self.starts[n]

    def chunk(self, i: int) -> Chunk:
        n, k = self.locate(i)
        e = self.entries[n]
        chunk = self.segments[e["segment"]].chunk(e["first_chunk"] + k)
        if chunk.source != e["path"]:
            raise corrupt(f"{self.segments[e['segment']].db_path}: chunk {i} belongs to {chunk.source!r}, not {e['path']!r}")
        return chunk

    def chunks_of(self, source: str) -> list[tuple[int, Chunk]]:
        """(logical id, chunk) of every chunk of one source, in order."""
        n = self.position[source]
        e = self.entries[n]
        chunks = self.segments[e["segment"]].chunks(e["first_chunk"], e["first_chunk"] + e["chunks"])
        if any(c.source != source for c in chunks):
            raise corrupt(f"{self.segments[e['segment']].db_path} holds chunks of another source among {source!r}'s")
        return list(zip(range(self.starts[n], self.starts[n + 1]), chunks))

    def source_range(self, source: str) -> tuple[int, int]:
        n = self.position[source]
        return self.starts[n], self.starts[n + 1]

    def document(self, source: str) -> Document:
        doc = self._docs.get(source)
        if doc is None:
            e = self.entries[self.position[source]]
            doc = self.segments[e["segment"]].document(e["row"])
            if doc.source != source:
                raise corrupt(f"{self.segments[e['segment']].db_path}: source row {e['row']} is {doc.source!r}, not {source!r}")
            self._docs[source] = doc
            if len(self._docs) > DOCUMENT_CACHE:
                self._docs.popitem(last=False)
        else:
            self._docs.move_to_end(source)
        return doc

    def source_entries(self) -> list[dict[str, Any]]:
        """Every source's full entry (title, sha256, turns, speakers, format, fingerprint, ... and its location), in
        corpus order: read from the segments, one query each (for `ragkit info`, updates and the server's list)."""
        if self._entries is not None:
            return self._entries
        by_segment = {name: self.segments[name].entries() for name in {e["segment"] for e in self.entries}}
        out = []
        for e in self.entries:
            info = by_segment[e["segment"]].get(e["row"])
            if not (isinstance(info, dict) and all(isinstance(info.get(k), str) for k in ("title", "sha256", "file"))
                    and isinstance(info.get("turns"), int) and isinstance(info.get("speakers", {}), dict)):
                raise corrupt(f"{self.segments[e['segment']].db_path} has no valid entry for source {e['path']!r}")
            out.append({**info, **e})
        self._entries = out  # a version never changes
        return out

    # ------------------------------------------------------------ logical <-> segment rows

    def logical(self) -> dict[str, np.ndarray]:
        """Per segment, the logical id of each of its chunk rows (-1: a row no live source owns)."""
        import numpy as np

        if self._logical is None:
            out = {name: np.full(seg.rows, -1, dtype=np.int64) for name, seg in self.segments.items()}
            for n, e in enumerate(self.entries):
                out[e["segment"]][e["first_chunk"] : e["first_chunk"] + e["chunks"]] = np.arange(self.starts[n], self.starts[n + 1])
            self._logical = out
        return self._logical

    def lex_logical(self) -> tuple[dict[str, np.ndarray], int]:
        """Per segment, each source-BM25 row's position among the live sources that have chunks; and their count."""
        import numpy as np

        out = {name: np.full(int(self.manifest["segments"][name]["lex_rows"]), -1, dtype=np.int64) for name in self.segments}
        count = 0
        for e in self.entries:
            if e["lex_row"] >= 0:
                out[e["segment"]][e["lex_row"]] = count
                count += 1
        return out, count

    def lex_names(self) -> tuple[str, ...]:
        return tuple(e["path"] for e in self.entries if e["lex_row"] >= 0)

    # ------------------------------------------------------------ vectors

    def search(self, query: np.ndarray, k: int, ids: Sequence[int] | None = None) -> list[tuple[int, float]]:
        """Exact top-k (id, inner product), best first (ties by id); `ids` restricts the search to those chunks."""
        import numpy as np

        scores = self.scores(np.asarray(query, dtype=np.float32).reshape(-1))
        if ids is not None:
            pick = np.asarray(ids, dtype=np.int64)
            sub = scores[pick]
        else:
            pick, sub = None, scores
        k = min(k, len(sub))
        if k <= 0:
            return []
        top = np.argpartition(-sub, k - 1)[:k] if k < len(sub) else np.arange(len(sub))
        # The k-th score may tie with rows argpartition left out: take every row scoring at least it, then sort by (score, id).
        floor = sub[top].min()
        top = np.flatnonzero(sub >= floor)
        order = top[np.lexsort((top if pick is None else pick[top], -sub[top]))][:k]
        found = order if pick is None else pick[order]
        return [(int(i), float(scores[i])) for i in found]

    def scores(self, query: np.ndarray) -> np.ndarray:
        """Inner product of the query with every live chunk's vector, by logical id."""
        import numpy as np

        out = np.zeros(len(self), dtype=np.float32)
        for name, seg in self.segments.items():
            logical = self.logical()[name]
            live = logical >= 0
            if not live.any():
                continue
            out[logical[live]] = (seg.vectors @ query)[live]
        return out

    def vectors(self) -> np.ndarray:
        import numpy as np

        out = np.zeros((len(self), self.dim), dtype=np.float32)
        for name, seg in self.segments.items():
            logical = self.logical()[name]
            live = logical >= 0
            if live.any():
                out[logical[live]] = np.asarray(seg.vectors)[live]
        return out

    def vector_rows(self, ids: Sequence[int]) -> np.ndarray:
        """The vectors of some logical chunks (an update copies known texts' vectors with it)."""
        import numpy as np

        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        for j, i in enumerate(ids):
            n, k = self.locate(int(i))
            e = self.entries[n]
            out[j] = self.segments[e["segment"]].vectors[e["first_chunk"] + k]
        return out

    def find_text(self, text: str) -> int | None:
        """The logical id of a live chunk with exactly this text, or None."""
        for name, seg in self.segments.items():
            logical = self.logical()[name]
            for row in seg.rows_with_text(text):
                if 0 <= row < len(logical) and logical[row] >= 0:
                    i = int(logical[row])
                    if self.chunk(i).text == text:
                        return i
        return None

    # ------------------------------------------------------------ speakers

    def speaker_labels(self) -> set[str]:
        """Speaker labels of the live sources' turns."""
        import numpy as np

        live: dict[str, np.ndarray] = {}
        for e in self.entries:
            live.setdefault(e["segment"], np.zeros(self.manifest["segments"][e["segment"]]["sources"], dtype=bool))[e["row"]] = True
        labels = set()
        for name, mask in live.items():
            for label, sources in self.segments[name].speaker_sources():
                if len(sources) and mask[sources[(sources >= 0) & (sources < len(mask))]].any():
                    labels.add(label)
        return labels

    def speaker_rows(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per label: logical ids of chunks listing it, logical ids of chunks it speaks in, and its share of each."""
        import numpy as np

        out: dict[str, tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]] = {}
        for name, seg in self.segments.items():
            logical = self.logical()[name]
            for label, listed, rows, shares, _ in seg.speakers():
                if (len(listed) and (listed.min() < 0 or listed.max() >= len(logical))) or (len(rows) and (rows.min() < 0 or rows.max() >= len(logical))):
                    raise corrupt(f"{seg.db_path} has speaker rows past its chunks")
                a, b = logical[listed], logical[rows]
                entry = out.setdefault(label, ([], [], []))
                entry[0].append(a[a >= 0])
                entry[1].append(b[b >= 0])
                entry[2].append(shares[b >= 0])
        result = {}
        for label, (listed_parts, row_parts, share_parts) in out.items():
            rows = np.concatenate(row_parts)
            order = np.argsort(rows, kind="stable")
            result[label] = (np.sort(np.concatenate(listed_parts)), rows[order], np.concatenate(share_parts)[order].astype(np.float32))
        return result

    def close(self) -> None:
        for seg in self.segments.values():
            seg.close()


class SegmentedBm25:
    """BM25 (Lucene idf, k1 1.2, b 0.75) scored at query time from each segment's postings of the live rows.

    Global statistics (row count, mean length, document frequency) come from the live rows only, so the scores equal
    those of a BM25 index built from scratch over the same rows, bit for bit (the same float32/float64 steps as bm25s).
    """

    def __init__(self, store: LocalStore, part: int) -> None:
        self.store, self.part = store, part
        self._stats: tuple[dict[str, np.ndarray], int, float] | None = None

    def _statistics(self) -> tuple[dict[str, np.ndarray], int, float]:
        """Per segment the logical row of each posting row, the live row count and their mean length."""
        import numpy as np

        if self._stats is None:
            if self.part == CHUNK_PART:
                logical, n = self.store.logical(), len(self.store)
            else:
                logical, n = self.store.lex_logical()
            total = 0
            self.lengths = np.zeros(n, dtype=np.int64)
            for name, seg in self.store.segments.items():
                rows = logical[name]
                if not (rows >= 0).any():
                    continue
                lengths = seg.lengths(self.part)
                if len(lengths) != len(rows):
                    raise corrupt(f"{seg.db_path} has {len(lengths)} term counts for {len(rows)} rows")
                self.lengths[rows[rows >= 0]] = lengths[rows >= 0]
            total = int(self.lengths.sum())
            self._stats = (logical, n, total / n if n else 0.0)
        return self._stats

    @property
    def rows(self) -> int:
        return self._statistics()[1]

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """(logical rows, term frequencies) of one term over the live rows."""
        import numpy as np

        logical = self._statistics()[0]
        rows_parts, tf_parts = [], []
        for name, seg in self.store.segments.items():
            found = seg.postings(self.part, term)
            if found is None:
                continue
            rows, tfs = found
            mapping = logical[name]
            if len(rows) and (rows.min() < 0 or rows.max() >= len(mapping)):
                raise corrupt(f"{seg.db_path} has postings past its rows")
            ids = mapping[rows]
            keep = ids >= 0
            rows_parts.append(ids[keep])
            tf_parts.append(tfs[keep])
        if not rows_parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int32)
        return np.concatenate(rows_parts), np.concatenate(tf_parts)

    def df(self, term: str) -> int:
        return len(self.postings(term)[0])

    def dfs(self, terms: Iterable[str]) -> dict[str, int]:
        """Document frequency of many terms over the live rows: in a segment whose rows are all live, counted from
        the postings' stored sizes in one query (common words' postings are large, and are not read)."""
        logical = self._statistics()[0]
        wanted = sorted(set(terms))
        out = dict.fromkeys(wanted, 0)
        for name, seg in self.store.segments.items():
            mapping = logical[name]
            if len(mapping) and bool((mapping >= 0).all()):
                for term, count in seg.posting_counts(self.part, wanted):
                    out[term] += count
                continue
            for term in wanted:
                found = seg.postings(self.part, term)
                if found is not None and len(found[0]):
                    if found[0].max() >= len(mapping):
                        raise corrupt(f"{seg.db_path} has postings past its rows")
                    out[term] += int((mapping[found[0]] >= 0).sum())
        return out

    def scores(self, query: Sequence[str]) -> np.ndarray:
        """BM25 score of every live row for the query terms (a repeated term counts twice, as in bm25s)."""
        import numpy as np

        _, n, avgdl = self._statistics()
        self.store.prefetch_postings(self.part, set(query))
        acc = np.zeros(n, dtype=np.float64)
        cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for term in query:
            if term not in cache:
                rows, tfs = self.postings(term)
                if not len(rows):
                    cache[term] = (rows, np.zeros(0, np.float64))
                    continue
                idf = np.float32(math.log(1 + (n - len(rows) + 0.5) / (len(rows) + 0.5)))
                tf = tfs.astype(np.float32)
                lengths = self.lengths[rows].astype(np.float64)
                tfc = tf / (K1 * ((1 - B) + B * lengths / np.float64(avgdl)) + tf)
                weight = (np.float64(idf) * tfc).astype(np.float32).astype(np.float64)
                cache[term] = (rows, weight)
            rows, weight = cache[term]
            if len(rows):
                acc[rows] += weight  # rows are distinct within one term
        return acc.astype(np.float32)


class Documents(Mapping[str, Document]):
    """The index's documents by source name, in corpus order, each read from its segment when first asked for."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store

    def __getitem__(self, source: str) -> Document:
        if source not in self.store.position:
            raise KeyError(source)
        return self.store.document(source)

    def __iter__(self) -> Iterator[str]:
        return iter(self.store.names)

    def __len__(self) -> int:
        return len(self.store.names)

    def __contains__(self, source: object) -> bool:
        return source in self.store.position


class Chunks(Sequence[Chunk]):
    """The index's chunks by logical id, read from their segments on demand."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i):  # noqa: ANN001, ANN204 - int or slice, as a list
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        return self.store.chunk(i)

    def __iter__(self) -> Iterator[Chunk]:
        for source in self.store.names:
            for _, chunk in self.store.chunks_of(source):
                yield chunk

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Chunks, list, tuple)):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]
