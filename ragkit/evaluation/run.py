"""Running a gold set against an index: per-question retrieval and answer results and their means."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import fmean
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..datatypes import Answer, Chunk, Citation, Document, Hit
from ..errors import UsageError
from .gold import GoldQuestion, load_gold
from .metrics import (
    BUDGET,
    CUTOFF,
    TokenCounter,
    budget_prefix,
    evidence_ranks,
    hit_at,
    ndcg,
    overlaps,
    recall_at,
    reciprocal_rank,
)
from .provenance import Machine, machine_info, now

if TYPE_CHECKING:
    from ..index.core import Index

SearchFn = Callable[[str, int], Sequence[Hit]]
AnswerFn = Callable[[str, int], Answer]


@dataclass(frozen=True, slots=True)
class QuestionResult:
    """Metrics of one question; retrieval metrics are None for unanswerable questions."""

    id: str
    question: str
    tags: tuple[str, ...]
    answerable: bool
    evidence: int
    hit_at_k: float | None = None
    hit_at_5: float | None = None
    recall_at_k: float | None = None
    mrr_at_10: float | None = None
    ndcg_at_10: float | None = None
    recall_at_budget: float | None = None
    first_relevant_rank: int | None = None
    evidence_ranks: tuple[int | None, ...] = ()
    budget_passages: int = 0
    top: tuple[str, ...] = ()
    answer: str | None = None
    abstained: bool | None = None
    citations_verbatim: bool | None = None
    cites_evidence: bool | None = None


@dataclass(frozen=True, slots=True)
class Summary:
    """Means over answerable questions; answer-stage rates are None when the answer stage did not run."""

    questions: int
    answerable: int
    unanswerable: int
    hit_at_k: float | None
    hit_at_5: float | None
    recall_at_k: float | None
    mrr_at_10: float | None
    ndcg_at_10: float | None
    recall_at_budget: float | None
    abstention_precision: float | None = None
    abstention_recall: float | None = None
    citations_verbatim: float | None = None
    cites_evidence: float | None = None


@dataclass(frozen=True, slots=True)
class EvalReport:
    """A full evaluation: per-question rows, overall means and what produced them."""

    gold: str
    k: int
    budget: int
    summary: Summary
    questions: tuple[QuestionResult, ...]
    settings: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    ragkit_version: str = __version__
    machine: Machine | None = None
    date: str = ""
    seconds: float = 0.0


# ---------------------------------------------------------------- metrics


def score_ranking(q: GoldQuestion, chunks: Sequence[Chunk], k: int, n_relevant: int, count: TokenCounter, budget: int = BUDGET) -> QuestionResult:
    """Retrieval metrics of one answerable question from its ranked passages."""
    relevant = [any(overlaps(c, ev) for ev in q.evidence) for c in chunks]
    ranks = evidence_ranks(chunks, q.evidence)
    fit = budget_prefix(chunks, count, budget)
    return QuestionResult(
        q.id, q.question, q.tags, True, len(q.evidence),
        hit_at_k=hit_at(relevant, k), hit_at_5=hit_at(relevant, 5), recall_at_k=recall_at(ranks, k),
        mrr_at_10=reciprocal_rank(relevant), ndcg_at_10=ndcg(relevant, n_relevant), recall_at_budget=recall_at(ranks, fit),
        first_relevant_rank=next((r for r, rel in enumerate(relevant, start=1) if rel), None),
        evidence_ranks=ranks, budget_passages=fit, top=tuple(c.id for c in chunks[:k]),
    )


def ranked(search: SearchFn, question: str, k: int, count: TokenCounter, budget: int = BUDGET) -> list[Hit]:
    """Hits deep enough for every metric: at least max(k, 10), and past the token budget when there are more."""
    depth = max(k, CUTOFF)
    while True:
        hits = list(search(question, depth))
        if len(hits) < depth or budget_prefix([h.chunk for h in hits], count, budget) < len(hits):
            return hits
        depth *= 2


def cached_counter(count: TokenCounter) -> TokenCounter:
    memo: dict[str, int] = {}
    return lambda text: memo[text] if text in memo else memo.setdefault(text, count(text))


def count_relevant(chunks: Sequence[Chunk], questions: Sequence[GoldQuestion]) -> dict[str, int]:
    """Per question id, how many chunks of the pool overlap its evidence (the nDCG ideal)."""
    by_source: dict[str, list[Chunk]] = {}
    for c in chunks:
        by_source.setdefault(c.source, []).append(c)
    out = {}
    for q in questions:
        pool = {id(c): c for ev in q.evidence for c in by_source.get(ev.source, [])}.values()
        out[q.id] = sum(1 for c in pool if any(overlaps(c, ev) for ev in q.evidence))
    return out


# ---------------------------------------------------------------- answers and reports


def check_answer(q: GoldQuestion, answer: Answer, documents: Mapping[str, Document]) -> dict[str, Any]:
    """Abstention, verbatim citations and whether a citation overlaps the evidence."""
    def verbatim(c: Citation) -> bool:
        doc = documents.get(c.source)
        return doc is not None and bool(c.quote) and doc.text[c.char_start : c.char_end] == c.quote

    cites = any(overlaps(c, ev) for c in answer.citations for ev in q.evidence) if q.answerable else None
    return {
        "answer": answer.text,
        "abstained": not answer.text.strip(),
        "citations_verbatim": all(verbatim(c) for c in answer.citations) if answer.citations else None,
        "cites_evidence": cites,
    }


def summarize(rows: Sequence[QuestionResult]) -> Summary:
    """Means over answerable questions, and abstention precision/recall over all of them."""
    ans = [r for r in rows if r.answerable]

    def mean(name: str, pool: Sequence[QuestionResult] = ans) -> float | None:
        values = [float(v) for r in pool if (v := getattr(r, name)) is not None]
        return fmean(values) if values else None

    answered = [r for r in rows if r.abstained is not None]
    abstained = [r for r in answered if r.abstained]
    unanswerable = [r for r in answered if not r.answerable]
    correct = sum(1 for r in abstained if not r.answerable)
    return Summary(
        len(rows), len(ans), len(rows) - len(ans),
        mean("hit_at_k"), mean("hit_at_5"), mean("recall_at_k"), mean("mrr_at_10"), mean("ndcg_at_10"), mean("recall_at_budget"),
        abstention_precision=correct / len(abstained) if abstained else None,
        abstention_recall=correct / len(unanswerable) if unanswerable else None,
        citations_verbatim=mean("citations_verbatim", answered),
        cites_evidence=mean("cites_evidence", [r for r in answered if r.answerable]),
    )


def evaluate(index: Index, gold: str | Path | Sequence[GoldQuestion], k: int = 5, *, search: SearchFn | None = None,
             answers: bool = True, answer_fn: AnswerFn | None = None, budget: int = BUDGET,
             settings: Mapping[str, Any] | None = None) -> EvalReport:
    """Run every gold question through retrieval (and the answer stage) and score it."""
    if k < 1:
        raise UsageError(f"-k/--top-k must be at least 1 (got {k})")
    began = time.perf_counter()
    questions = load_gold(gold, index) if isinstance(gold, (str, Path)) else list(gold)
    search = search or index.search
    count = cached_counter(index.embedder.count_tokens)
    if answers and answer_fn is None:
        from ..answer import ask

        answer_fn = lambda question, n: ask(index, question, k=n)  # noqa: E731
    n_relevant = count_relevant(index.chunks, questions)
    rows = []
    for q in questions:
        row = QuestionResult(q.id, q.question, q.tags, False, 0)
        if q.answerable:
            row = score_ranking(q, [h.chunk for h in ranked(search, q.question, k, count, budget)], k, n_relevant[q.id], count, budget)
        if answers and answer_fn is not None:
            row = replace(row, **check_answer(q, answer_fn(q.question, k), index.documents))
        rows.append(row)
    used = {"search": getattr(search, "__qualname__", repr(search)), "answers": answers, "embedder": index.manifest.get("embedder"),
            "chunking": index.manifest.get("chunking"), **(settings or {})}
    return EvalReport(str(gold) if isinstance(gold, (str, Path)) else "<questions>", k, budget, summarize(rows), tuple(rows),
                      used, index.manifest, __version__, machine_info(), now(), round(time.perf_counter() - began, 3))


