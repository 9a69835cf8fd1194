"""Gold questions with verbatim evidence, retrieval and answer metrics, and evaluation reports."""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from statistics import fmean
from typing import TYPE_CHECKING, Any

from . import __version__
from .datatypes import Answer, Chunk, Citation, Document, Hit
from .errors import UsageError
from .gold import Evidence, GoldError, GoldQuestion, load_gold, read_gold, resolve_gold

if TYPE_CHECKING:
    from .index import Index

__all__ = [
    "BUDGET", "EvalReport", "Evidence", "GoldError", "GoldQuestion", "KPoint", "Machine", "QuestionResult", "Summary",
    "budget_prefix", "check_answer", "curve", "evaluate", "evidence_ranks", "failed_thresholds", "hit_at", "load_gold", "machine_info",
    "ndcg", "overlaps", "parse_threshold", "read_gold", "recall_at", "reciprocal_rank", "render_report", "resolve_gold",
    "score_ranking", "summarize",
]

BUDGET = 1000  # tokens of context a reader would be given
CUTOFF = 10  # rank cutoff of MRR and nDCG
SearchFn = Callable[[str, int], Sequence[Hit]]
AnswerFn = Callable[[str, int], Answer]
TokenCounter = Callable[[str], int]


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
class Machine:
    cores: int
    cpu: str
    platform: str
    python: str


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
        from .answer import ask

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


@dataclass(frozen=True, slots=True)
class KPoint:
    k: int
    hit: float
    recall: float


def curve(report: EvalReport, ks: Iterable[int]) -> list[KPoint]:
    """hit@k and evidence recall@k for several k from one run's recorded ranks (k up to max(report.k, 10))."""
    rows = [r for r in report.questions if r.answerable]
    deepest = max(report.k, CUTOFF)
    out = []
    for k in ks:
        if not 1 <= k <= deepest:
            raise UsageError(f"k={k}: this run ranked {deepest} passages per question; evaluate with k={k} instead")
        hits = [1.0 if r.first_relevant_rank is not None and r.first_relevant_rank <= k else 0.0 for r in rows]
        out.append(KPoint(k, fmean(hits) if rows else 0.0, fmean(recall_at(r.evidence_ranks, k) for r in rows) if rows else 0.0))
    return out


def machine_info() -> Machine:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return Machine(cores, cpu, platform.platform(), platform.python_version())


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------- thresholds and text


LABELS = {"hit_at_k": "hit@k", "hit_at_5": "hit@5", "recall_at_k": "recall@k", "mrr_at_10": "MRR@10", "ndcg_at_10": "nDCG@10",
          "recall_at_budget": "R@1k", "abstention_precision": "abstain-P", "abstention_recall": "abstain-R",
          "citations_verbatim": "verbatim", "cites_evidence": "cites-gold"}


def parse_threshold(spec: str) -> tuple[str, float]:
    """`hit@k=0.8` or `hit_at_k=0.8` into (summary field, value)."""
    name, sep, value = spec.partition("=")
    names = {**{v.casefold(): k for k, v in LABELS.items()}, **{k: k for k in LABELS}}
    key = names.get(name.strip().casefold())
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not sep or key is None or math.isnan(number):
        raise UsageError(f"--fail-under {spec!r}: expected METRIC=VALUE with METRIC one of {', '.join(LABELS.values())}, e.g. hit@k=0.8")
    return key, number


def failed_thresholds(summary: Summary, thresholds: Iterable[tuple[str, float]]) -> list[str]:
    """A message for every metric below its threshold (a metric that was not measured fails too)."""
    out = []
    for key, floor in thresholds:
        value = getattr(summary, key)
        if value is None or value < floor:
            out.append(f"{LABELS[key]} = {'n/a' if value is None else f'{value:.3f}'} is below {floor:g}")
    return out


def _fmt(value: float | bool | None) -> str:
    if value is None:
        return "-"
    return ("yes" if value else "no") if isinstance(value, bool) else f"{value:.2f}"


def render_summary(summary: Summary, k: int) -> str:
    lines = [f"questions {summary.questions} ({summary.answerable} answerable, {summary.unanswerable} unanswerable)"]
    for f in fields(summary)[3:]:
        if f.name == "hit_at_5" and k == 5:
            continue
        label = LABELS[f.name].replace("@k", f"@{k}")
        lines.append(f"  {label:<12} {_fmt(getattr(summary, f.name))}")
    return "\n".join(lines)


def render_report(report: EvalReport, per_question: bool = True, width: int = 60) -> str:
    """A readable text table: one row per question, then the overall means."""
    k = report.k
    head = f"{'id':<8}{'hit@' + str(k):>7}{'R@' + str(k):>7}{'RR':>6}{'nDCG':>6}{'R@1k':>6}{'abst':>6}{'cite':>6}  question"
    lines = [head, "-" * len(head)] if per_question else []
    for r in report.questions if per_question else ():
        q = r.question if len(r.question) <= width else r.question[: width - 3] + "..."
        cells = (r.hit_at_k, r.recall_at_k, r.mrr_at_10, r.ndcg_at_10, r.recall_at_budget)
        nums = "".join(f"{_fmt(v):>{w}}" for v, w in zip(cells, (7, 7, 6, 6, 6)))
        lines.append(f"{r.id:<8}{nums}{_fmt(r.abstained):>6}{_fmt(r.cites_evidence):>6}  {q}")
    emb = (report.manifest.get("embedder") or {}).get("spec", "?")
    lines += ["", f"gold {report.gold}, k={k}, budget {report.budget} tokens, embedder {emb}, {report.seconds:.1f}s",
              render_summary(report.summary, k)]
    return "\n".join(lines)
