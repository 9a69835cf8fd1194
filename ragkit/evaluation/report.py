"""Evaluation reports: the machine and time they ran on, k-curves, thresholds (--fail-under) and the text table."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields
from statistics import fmean

from ..errors import UsageError
from .metrics import CUTOFF, recall_at
from .run import EvalReport, Summary


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
