"""Hybrid retrieval: dense and BM25 scores fused, aware of speakers and sources, assembled into passages.

Measured on QMSum and the seeds gold set (eval/results/retrieval_ablation.md); the defaults below are the
best settings found there, chosen as round values on broad plateaus rather than per-query tuning.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..datatypes import Hit
from ..storage.lexical import query_terms
from .moments import locate
from .options import CANDIDATES, DENSE_DEPTH, RRF_K, STRIP_NAMES, SearchOptions, search_options
from .speakers import SpeakerMatcher

if TYPE_CHECKING:
    import numpy as np

    from ..index.core import Index
    from .passages import Assembler

log = logging.getLogger(__name__)

_GLOB = re.compile(r"[*?\[\]]")

# ---------------------------------------------------------------- the retriever


class Retriever:
    """Search state for one index: source maps, speaker shares and passage assembly, built on first use."""

    def __init__(self, index: Index) -> None:
        import numpy as np

        self.index = index
        store = index.store
        self.by_source: dict[str, list[tuple[int, int]]] = {}  # casefolded name -> chunk id ranges
        for name, a, b in zip(store.names, store.starts, store.starts[1:]):
            self.by_source.setdefault(name.casefold(), []).append((a, b))
        rows = {name: n for n, name in enumerate(index.lexical.names)}
        self.source_row = np.repeat(np.array([rows.get(name, 0) for name in store.names], dtype=np.int64), np.diff(store.starts))
        self._matcher: SpeakerMatcher | None = None
        self._shares: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
        self._assembler: Assembler | None = None

    def search(self, query: str, k: int, *, speaker: str | None = None, source: str | None = None, **options: Any) -> list[Hit]:
        """The k best passages (or chunks, with budget 0) for the query within the filters."""

        opts = search_options(options)
        ids = self.scope(speaker, source)
        if ids is not None and not len(ids):
            return []
        scores, ids = self.scores(query, ids, k, opts)
        if opts.mode == "lexical":
            keep = scores > 0  # no shared word, no lexical hit
            scores, ids = scores[keep], ids[keep]
        order = top_order(scores, k if not opts.budget else max(CANDIDATES, 3 * k))
        if not opts.budget:
            hits = [Hit(self.index.chunks[ids[n]], float(scores[n]), rank) for rank, n in enumerate(order[:k], start=1)]
        else:
            ranked = [(int(ids[n]), float(scores[n])) for n in order[: max(CANDIDATES, 3 * k)]]
            hits = self.assembler.passages(ranked, k, opts.budget)
        return locate(hits, query, self.index.documents, speaker)

    def scope(self, speaker: str | None, source: str | None) -> np.ndarray | None:
        """Sorted chunk ids allowed by the filters, or None for all."""
        import numpy as np

        if source and not speaker and not _GLOB.search(source):
            return self.source_ids(source)  # a plain name: no scan
        ids = self.index.select(speaker, source)
        return None if ids is None else np.array(sorted(ids), dtype=np.int64)

    def source_ids(self, source: str) -> np.ndarray:
        """Sorted chunk ids of the sources named `source` (case-insensitive)."""
        import numpy as np

        ranges = self.by_source.get(source.casefold(), [])
        return np.sort(np.concatenate([np.arange(a, b) for a, b in ranges])) if ranges else np.zeros(0, np.int64)

    def scores(self, query: str, ids: np.ndarray | None, k: int, opts: SearchOptions) -> tuple[np.ndarray, np.ndarray]:
        """Fused scores of the chunks in scope, and their ids."""
        import numpy as np

        lex = self.index.lexical
        ids = np.arange(len(self.index.chunks), dtype=np.int64) if ids is None else ids
        named, rest = self.matcher.split(query) if opts.speaker_boost else (set(), query)
        # Names are matched against speaker labels below; as words they would favour passages *about* the person.
        lexical = lex.chunks.scores(query_terms(rest if STRIP_NAMES else query))[ids] if opts.mode != "dense" else None
        dense = self.dense(query, ids, k) if opts.mode != "lexical" else None
        fused = fuse(dense, lexical, opts.mode, opts.weight)
        if named:
            fused += opts.speaker_boost * self.speaker_share(named, ids)
        if opts.source_weight and len(np.unique(self.source_row[ids])) > 1:
            whole = lex.sources.scores(query_terms(query))  # here a name helps: it tells which source
            top = float(whole.max())
            if top > 0:
                fused += opts.source_weight * (whole / top)[self.source_row[ids]]
        return fused, ids

    def dense(self, query: str, ids: np.ndarray, k: int) -> np.ndarray:
        """Cosine scores of the scoped chunks; those past the dense candidates get the lowest retrieved score."""
        import numpy as np

        everything = len(ids) == len(self.index.chunks)
        depth = min(len(ids), max(DENSE_DEPTH, 10 * k))
        found = self.index.store.search(self.index.embed_query(query), depth, None if everything else ids.tolist())
        if not found:
            return np.zeros(len(ids), dtype=np.float32)
        pairs = np.asarray(found, dtype=np.float64)  # (id, score) rows, best first
        hit_ids, hit_scores = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.float32)
        out = np.full(len(ids), hit_scores[-1], dtype=np.float32)
        out[hit_ids if everything else np.searchsorted(ids, hit_ids)] = hit_scores
        return out

    def speaker_share(self, named: set[str], ids: np.ndarray) -> np.ndarray:
        """Per chunk in scope, the share of its text spoken by the named speakers."""
        import numpy as np

        if self._shares is None:  # built on the first question that names someone
            self._shares = {label: (rows, shares) for label, (_, rows, shares) in self.index.store.speaker_rows().items()}
        shares = self._shares
        total = np.zeros(len(self.index.chunks), dtype=np.float32)
        for label in named:
            if label in shares:
                np.add.at(total, *shares[label])
        log.debug("query names speakers %s", sorted(named))
        return total[ids]

    @property
    def matcher(self) -> SpeakerMatcher:
        if self._matcher is None:
            self._matcher = SpeakerMatcher(self.index.store.speaker_labels())
        return self._matcher

    @property
    def assembler(self) -> Assembler:
        if self._assembler is None:
            from .passages import Assembler

            self._assembler = Assembler(self.index, self.index.embedder.count_tokens)
        return self._assembler


def top_order(scores: np.ndarray, m: int) -> np.ndarray:
    """The positions of the m best scores, best first, ties in position order: the first m of a stable argsort of
    -scores, without sorting every chunk of a large index."""
    import numpy as np

    if m >= len(scores):
        return np.argsort(-scores, kind="stable")
    floor = np.partition(scores, len(scores) - m)[len(scores) - m]  # the m-th best score
    candidates = np.flatnonzero(scores >= floor)  # ascending positions, so a stable sort keeps ties in order
    return candidates[np.argsort(-scores[candidates], kind="stable")][:m]


def fuse(dense: np.ndarray | None, lexical: np.ndarray | None, mode: str, weight: float) -> np.ndarray:
    """One score per chunk: each side divided by its best score, then weighted; rrf uses ranks instead."""
    import numpy as np

    if lexical is None or mode == "dense":
        return _by_max(dense)  # type: ignore[arg-type]
    if dense is None or mode == "lexical":
        return _by_max(lexical)
    if mode == "rrf":
        def rrf(x: np.ndarray) -> np.ndarray:
            ranks = np.empty(len(x), dtype=np.float32)
            ranks[np.argsort(-x, kind="stable")] = np.arange(1, len(x) + 1)
            return (RRF_K + 1) / (RRF_K + ranks)  # 1.0 at rank 1, like the normalized scores

        return weight * rrf(dense) + (1 - weight) * rrf(lexical)
    return weight * _by_max(dense) + (1 - weight) * _by_max(lexical)


def _by_max(x: np.ndarray) -> np.ndarray:
    import numpy as np

    top = float(x.max()) if len(x) else 0.0
    return (x / top).astype(np.float32) if top > 0 else np.zeros(len(x), dtype=np.float32)


def retriever(index: Index) -> Retriever:
    """The index's retriever, created on first search."""
    found = getattr(index, "_retriever", None)
    if found is None or found.index is not index:
        found = Retriever(index)
        index._retriever = found  # type: ignore[attr-defined]
    return found


__all__: Sequence[str] = ("Retriever", "fuse", "retriever", "top_order")
