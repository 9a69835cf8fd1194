"""The QMSum benchmark: meeting queries as gold questions, searched per meeting and pooled over all meetings."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..datatypes import Document, Hit
from ..errors import CorpusError, UsageError
from .gold import Evidence, GoldError, GoldQuestion
from .metrics import BUDGET
from .provenance import Machine, machine_info, now
from .run import QuestionResult, Summary, cached_counter, count_relevant, ranked, score_ranking, summarize

if TYPE_CHECKING:
    from ..chunking import ChunkSettings
    from ..embed import Embedder
    from ..index.core import Index

log = logging.getLogger(__name__)

SETTINGS = ("per-meeting", "pooled")
# A search restricted to one source (a meeting), or over every source when it is None.
ScopedSearch = Callable[[str, int, str | None], Sequence[Hit]]
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class SettingReport:
    """Metrics of every query in one setting (per-meeting or pooled)."""

    setting: str
    summary: Summary
    questions: tuple[QuestionResult, ...]


@dataclass(frozen=True, slots=True)
class QmsumReport:
    """The benchmark run: data, index, per-setting results and what produced them."""

    folder: str
    meetings: int
    queries: int
    turns: int
    chunks: int
    k: int
    budget: int
    embedder: str
    results: tuple[SettingReport, ...]
    options: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    ragkit_version: str = __version__
    machine: Machine | None = None
    date: str = ""
    build_seconds: float = 0.0
    seconds: float = 0.0


def read_meetings(folder: str | Path) -> list[Document]:
    """Every QMSum meeting file (*.json) in a folder, read as a transcript (turn i = meeting_transcripts[i])."""
    from ..readers.corpus import read_document

    root = Path(folder)
    if not root.is_dir():
        raise CorpusError(f"{root}: no such folder; pass a folder of QMSum meeting files, e.g. ../shared/datasets/qmsum/test")
    docs = [read_document(path) for path in sorted(root.glob("*.json"))]
    if not docs:
        raise CorpusError(f"{root}: no *.json meeting files; pass a folder of QMSum meeting files")
    for doc in docs:
        if doc.format != "qmsum":
            raise GoldError(f"{doc.path}: not a QMSum meeting file (no 'meeting_transcripts'); remove it from {root}")
    return docs


def meeting_gold(doc: Document) -> list[GoldQuestion]:
    """A meeting's specific queries as gold: each turn inside a relevant_text_span (inclusive) is one evidence span."""
    data = json.loads(doc.text)
    queries = data.get("specific_query_list") or []
    stem = Path(doc.source).stem
    out = []
    for n, item in enumerate(queries):
        where = f"{doc.path}: specific_query_list[{n}]"
        if not isinstance(item, dict) or not isinstance(item.get("query"), str):
            raise GoldError(f"{where} has no 'query' string")
        turns = sorted({t for s, e in _spans(item.get("relevant_text_span"), len(doc.turns), where) for t in range(s, e + 1)})
        if not turns:
            log.warning("%s has no relevant_text_span; skipped", where)
            continue
        evidence = tuple(Evidence(doc.source, doc.turns[t].text, doc.turns[t].char_start, doc.turns[t].char_end) for t in turns)
        out.append(GoldQuestion(f"{stem}#{n}", item["query"].strip(), evidence, (stem,)))
    return out


def _spans(raw: object, n_turns: int, where: str) -> list[tuple[int, int]]:
    spans = []
    for pair in raw if isinstance(raw, list) else []:
        try:
            start, end = int(pair[0]), int(pair[1])
        except (TypeError, ValueError, IndexError, KeyError):
            raise GoldError(f"{where}: relevant_text_span {pair!r} is not a [start, end] pair of turn indices") from None
        if not 0 <= start <= end < n_turns:
            raise GoldError(f"{where}: relevant_text_span [{start}, {end}] is outside the meeting's {n_turns} turns")
        spans.append((start, end))
    return spans


def dense_search(index: Index) -> ScopedSearch:
    """Search the index's vectors, restricted to one meeting's chunks when a source is given; queries embedded once."""
    ids = {name: list(range(*index.store.source_range(name))) for name in index.store.names}
    vectors: dict[str, Any] = {}

    def search(question: str, k: int, source: str | None = None) -> list[Hit]:
        if question not in vectors:
            vectors[question] = index.embed_query(question)
        found = index.store.search(vectors[question], k, None if source is None else ids.get(source, []))
        return [Hit(index.chunks[i], score, rank) for rank, (i, score) in enumerate(found, start=1)]

    return search


def parse_settings(settings: str | Sequence[str]) -> tuple[str, ...]:
    names = SETTINGS if settings == "both" else (settings,) if isinstance(settings, str) else tuple(settings)
    bad = [s for s in names if s not in SETTINGS]
    if bad or not names:
        raise UsageError(f"--setting {', '.join(bad) or '(none)'}: use per-meeting, pooled or both")
    return names


def run_qmsum(folder: str | Path, embedder: str | Embedder | None = None, settings: str | Sequence[str] = "both", k: int = 10,
              search: Callable[[Index], ScopedSearch] | None = None, chunking: ChunkSettings | None = None,
              budget: int = BUDGET, progress: Progress | None = None, options: Mapping[str, Any] | None = None,
              store: str | Path | None = None) -> QmsumReport:
    """Build one index over all meetings (each chunk embedded once) and score every query in each setting. With
    `store` (a folder or a postgresql:// URL) the index is saved there and every query is answered from there."""
    from ..index.core import Index

    if k < 1:
        raise UsageError(f"-k/--top-k must be at least 1 (got {k})")
    names = parse_settings(settings)
    began = time.perf_counter()
    docs = read_meetings(folder)
    questions = [q for doc in docs for q in meeting_gold(doc)]
    index = Index.build(docs, embedder=embedder, settings=chunking, progress=progress)
    if store is not None:
        index = Index.load(index.save(store), embedder=index.embedder)
    built = time.perf_counter()
    factory = search or dense_search
    scoped = factory(index)
    count = cached_counter(index.embedder.count_tokens)
    relevant = count_relevant(index.chunks, questions)
    results = []
    for name in names:
        rows = []
        for q in questions:
            meeting = q.evidence[0].source if name == "per-meeting" else None
            hits = ranked(_within(scoped, meeting), q.question, k, count, budget)
            rows.append(score_ranking(q, [h.chunk for h in hits], k, relevant[q.id], count, budget))
        results.append(SettingReport(name, summarize(rows), tuple(rows)))
    return QmsumReport(
        str(folder), len(docs), len(questions), sum(len(d.turns) for d in docs), len(index.chunks), k, budget,
        index.manifest["embedder"]["spec"], tuple(results),
        {"settings": list(names), "search": getattr(factory, "__qualname__", repr(factory)), **(options or {})}, index.manifest, __version__, machine_info(), now(),
        round(built - began, 3), round(time.perf_counter() - began, 3),
    )


def _within(scoped: ScopedSearch, source: str | None) -> Callable[[str, int], Sequence[Hit]]:
    return lambda question, k: scoped(question, k, source)


def render_qmsum(report: QmsumReport) -> str:
    """One row per setting, in the README's benchmark table layout plus hit@k, recall@k and nDCG@10."""
    k = report.k
    head = f"{'setting':<13}{'hit@5':>7}{'MRR@10':>8}{'R@1k':>7}{'hit@' + str(k):>8}{'R@' + str(k):>7}{'nDCG@10':>9}"
    lines = [head, "-" * len(head)]
    for r in report.results:
        s = r.summary
        cells = (s.hit_at_5, s.mrr_at_10, s.recall_at_budget, s.hit_at_k, s.recall_at_k, s.ndcg_at_10)
        lines.append(f"{r.setting:<13}" + "".join(f"{v if v is not None else float('nan'):>{w}.3f}" for v, w in zip(cells, (7, 8, 7, 8, 7, 9))))
    lines.append(
        f"\n{report.meetings} meetings, {report.queries} queries, {report.turns} turns, {report.chunks} chunks; "
        f"embedder {report.embedder}; R@1k = gold-turn recall within {report.budget} tokens; "
        f"build {report.build_seconds:.0f}s, total {report.seconds:.0f}s"
    )
    return "\n".join(lines)
