"""Evaluation: gold question sets with verbatim evidence, retrieval and answer metrics, QMSum, reports."""

from .gold import Evidence, GoldError, GoldQuestion, load_gold, read_gold, resolve_gold
from .metrics import BUDGET, budget_prefix, evidence_ranks, hit_at, ndcg, overlaps, recall_at, reciprocal_rank
from .provenance import Machine, machine_info, now
from .report import KPoint, curve, failed_thresholds, parse_threshold, render_report, render_summary
from .run import (
    EvalReport,
    QuestionResult,
    Summary,
    cached_counter,
    check_answer,
    count_relevant,
    evaluate,
    ranked,
    score_ranking,
    summarize,
)

__all__ = [
    "BUDGET", "EvalReport", "Evidence", "GoldError", "GoldQuestion", "KPoint", "Machine", "QuestionResult", "Summary",
    "budget_prefix", "cached_counter", "check_answer", "count_relevant", "curve", "evaluate", "evidence_ranks", "failed_thresholds",
    "hit_at", "load_gold", "machine_info", "ndcg", "now", "overlaps", "parse_threshold", "ranked", "read_gold", "recall_at",
    "reciprocal_rank", "render_report", "render_summary", "resolve_gold", "score_ranking", "summarize",
]
