"""Retrieval metrics over ranked chunks and gold evidence: hit@k, recall, MRR, nDCG, the token-budget prefix."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from ..datatypes import Chunk, Citation
from .gold import Evidence

BUDGET = 1000  # tokens of context a reader would be given
CUTOFF = 10  # rank cutoff of MRR and nDCG
TokenCounter = Callable[[str], int]


def overlaps(chunk: Chunk | Citation, ev: Evidence) -> bool:
    """Relevance: the passage's [char_start, char_end) overlaps the evidence span in the same source."""
    return chunk.source == ev.source and chunk.char_start < ev.char_end and ev.char_start < chunk.char_end


def hit_at(relevant: Sequence[bool], k: int) -> float:
    return 1.0 if any(relevant[:k]) else 0.0


def reciprocal_rank(relevant: Sequence[bool], cutoff: int = CUTOFF) -> float:
    return next((1.0 / rank for rank, rel in enumerate(relevant[:cutoff], start=1) if rel), 0.0)


def ndcg(relevant: Sequence[bool], n_relevant: int, cutoff: int = CUTOFF) -> float:
    """Binary-relevance nDCG; the ideal list ranks all n_relevant relevant chunks first."""
    dcg = sum(1.0 / math.log2(rank + 1) for rank, rel in enumerate(relevant[:cutoff], start=1) if rel)
    n_ideal = min(cutoff, max(n_relevant, sum(bool(r) for r in relevant[:cutoff])))
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, n_ideal + 1))
    return dcg / ideal if ideal else 0.0


def evidence_ranks(chunks: Sequence[Chunk], evidence: Sequence[Evidence]) -> tuple[int | None, ...]:
    """For each evidence span, the first rank whose passage overlaps it (None: not retrieved)."""
    return tuple(next((r for r, c in enumerate(chunks, start=1) if overlaps(c, ev)), None) for ev in evidence)


def recall_at(ranks: Sequence[int | None], k: int) -> float:
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks) if ranks else 0.0


def budget_prefix(chunks: Sequence[Chunk], count: TokenCounter, budget: int = BUDGET) -> int:
    """How many leading passages fit together within the token budget."""
    total = 0
    for n, chunk in enumerate(chunks):
        total += count(chunk.text)
        if total > budget:
            return n
    return len(chunks)
