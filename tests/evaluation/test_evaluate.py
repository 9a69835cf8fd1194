"""Gold files, relevance by span overlap, metrics, evaluate() and reports."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import pytest

import ragkit
from ragkit.chunking import ChunkSettings
from ragkit.datatypes import Answer, Chunk, Citation, Hit
from ragkit.errors import UsageError
from ragkit.evaluation import (
    BUDGET,
    EvalReport,
    budget_prefix,
    check_answer,
    evaluate,
    evidence_ranks,
    failed_thresholds,
    hit_at,
    ndcg,
    overlaps,
    parse_threshold,
    ranked,
    recall_at,
    reciprocal_rank,
    render_report,
    score_ranking,
    summarize,
)
from ragkit.evaluation.gold import Evidence, GoldError, GoldQuestion, load_gold, read_gold
from ragkit.readers.corpus import read_source_text

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds"
GOLD = ROOT / "eval" / "gold" / "seeds.jsonl"

TRANSCRIPT = """Ann (00:01):
The harbor freezes every January and the ferries stop running.

Bob (00:09):
We moved the bakery to the hill because the old oven cracked in the flood.

Ann (00:20):
My brother repairs violins in a shop behind the train station.

Bob (00:31):
The council voted to plant four hundred cherry trees along the river.
"""


def chunk(source: str, start: int, end: int, text: str = "a b c", cid: str | None = None) -> Chunk:
    return Chunk(cid or f"{source}#{start}", source, "t", text, (), 0, 0, None, None, None, start, end)


def ev(source: str, start: int, end: int) -> Evidence:
    return Evidence(source, "q", start, end)


def write_lines(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def tiny(tmp_path: Path) -> ragkit.Index:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "town.txt").write_text(TRANSCRIPT, encoding="utf-8")
    docs = ragkit.read_corpus(corpus)
    return ragkit.Index.build(docs, embedder="hash:256", settings=ChunkSettings(max_tokens=16, tokenizer="words"))


# ---------------------------------------------------------------- relevance and metrics


def test_overlap_is_half_open_and_per_source() -> None:
    e = ev("a.txt", 10, 20)
    assert overlaps(chunk("a.txt", 0, 11), e)
    assert overlaps(chunk("a.txt", 19, 30), e)
    assert overlaps(chunk("a.txt", 12, 15), e)  # inside
    assert overlaps(chunk("a.txt", 0, 100), e)  # around
    assert not overlaps(chunk("a.txt", 0, 10), e)  # ends where the evidence starts
    assert not overlaps(chunk("a.txt", 20, 30), e)  # starts where it ends
    assert not overlaps(chunk("b.txt", 10, 20), e)


def test_rank_metrics_on_known_lists() -> None:
    rel = [False, True, False, True]
    assert hit_at(rel, 1) == 0.0 and hit_at(rel, 2) == 1.0
    assert reciprocal_rank(rel) == 0.5
    assert reciprocal_rank([False] * 10 + [True]) == 0.0  # beyond the cutoff of 10
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert ndcg(rel, n_relevant=2) == pytest.approx(expected)
    # A third relevant chunk exists in the pool but was not retrieved: the ideal list grows.
    assert ndcg(rel, n_relevant=3) == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3) + 0.5))
    assert ndcg([True, True], n_relevant=2) == pytest.approx(1.0)
    assert ndcg([False, False], n_relevant=0) == 0.0


def test_evidence_ranks_recall_and_budget() -> None:
    chunks = [chunk("a", 0, 10, "one two three"), chunk("a", 10, 20, "four five"), chunk("a", 30, 40, "six seven eight nine")]
    evidence = [ev("a", 12, 14), ev("a", 35, 36), ev("a", 50, 60)]
    ranks = evidence_ranks(chunks, evidence)
    assert ranks == (2, 3, None)
    assert recall_at(ranks, 1) == 0.0
    assert recall_at(ranks, 2) == pytest.approx(1 / 3)
    assert recall_at(ranks, 3) == pytest.approx(2 / 3)
    words = lambda text: len(text.split())  # noqa: E731
    assert budget_prefix(chunks, words, budget=5) == 2  # 3 + 2 words fit, the next 4 do not
    assert budget_prefix(chunks, words, budget=4) == 1
    assert budget_prefix(chunks, words, budget=2) == 0
    assert budget_prefix(chunks, words, budget=100) == 3


def test_score_ranking_per_question() -> None:
    q = GoldQuestion("x", "?", (ev("a", 12, 14), ev("a", 35, 36)))
    chunks = [chunk("a", 50, 60, "w " * 3), chunk("a", 10, 20, "w " * 3), chunk("b", 30, 40, "w " * 3), chunk("a", 30, 40, "w " * 3)]
    r = score_ranking(q, chunks, k=2, n_relevant=2, count=lambda t: len(t.split()), budget=7)
    assert (r.hit_at_k, r.recall_at_k, r.mrr_at_10, r.first_relevant_rank) == (1.0, 0.5, 0.5, 2)
    assert r.evidence_ranks == (2, 4)
    assert r.budget_passages == 2 and r.recall_at_budget == 0.5
    assert r.ndcg_at_10 == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3)))
    assert r.top == ("a#50", "a#10")


def test_ranked_fetches_past_the_budget() -> None:
    pool = [Hit(chunk("a", i, i + 1, "w", cid=f"a#{i}"), 1.0, i + 1) for i in range(100)]
    asked: list[int] = []

    def search(question: str, k: int) -> list[Hit]:
        asked.append(k)
        return pool[:k]

    hits = ranked(search, "q", 5, lambda t: 20, budget=BUDGET)  # 50 passages of 20 tokens fit in 1000
    assert len(hits) > 50 and asked[0] == 10
    assert ranked(lambda q, k: pool[:3], "q", 5, lambda t: 1) == pool[:3]


# ---------------------------------------------------------------- gold files


def test_read_gold_parses_questions(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "g.jsonl", [
        {"id": "a", "question": " Where? ", "evidence": [{"source": "town.txt", "quote": "cherry trees"}], "tags": ["factual"]},
        "",
        {"question": "Nothing?", "evidence": []},
    ])
    qs = read_gold(path)
    assert [q.id for q in qs] == ["a", "line3"]
    assert qs[0].question == "Where?" and qs[0].tags == ("factual",) and qs[0].answerable
    assert not qs[1].answerable and qs[1].line == 3


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not valid JSON"),
        ('["a list"]', "line 2: expected a JSON object"),
        ('{"evidence": []}', "line 2: missing or empty \"question\""),
        ('{"question": "q"}', "line 2: missing \"evidence\" list"),
        ('{"question": "q", "evidence": [{"source": "town.txt"}]}', "line 2: evidence[0] needs non-empty \"source\" and \"quote\""),
        ('{"question": "q", "evidence": [], "tags": "x"}', "line 2: \"tags\" must be a list"),
        ('{"id": "a", "question": "q", "evidence": []}', "line 2: duplicate id 'a' (first on line 1)"),
    ],
)
def test_read_gold_rejects_bad_lines(tmp_path: Path, line: str, message: str) -> None:
    path = write_lines(tmp_path / "g.jsonl", [{"id": "a", "question": "ok", "evidence": []}, line])
    with pytest.raises(GoldError) as err:
        read_gold(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_read_gold_missing_or_empty_file(tmp_path: Path) -> None:
    with pytest.raises(GoldError, match="no such gold file"):
        read_gold(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(GoldError, match="no questions"):
        read_gold(tmp_path / "empty.jsonl")


def test_load_gold_locates_quotes(tiny: ragkit.Index, tmp_path: Path) -> None:
    text = tiny.documents["town.txt"].text
    path = write_lines(tmp_path / "g.jsonl", [
        {"question": "trees?", "evidence": [{"source": "town.txt", "quote": "four hundred cherry trees"}]},
        # whitespace differs from the source (a line break in the quote): still located, at the source's span
        {"question": "oven?", "evidence": [{"source": "corpus/town.txt", "quote": "the old oven\n  cracked"}]},
    ])
    trees, oven = load_gold(path, tiny)
    e = trees.evidence[0]
    assert text[e.char_start : e.char_end] == "four hundred cherry trees"
    assert text[oven.evidence[0].char_start : oven.evidence[0].char_end] == "the old oven cracked"
    assert oven.evidence[0].source == "town.txt"  # suffix of the longer name in the gold file


@pytest.mark.parametrize(
    ("evidence", "message"),
    [
        ({"source": "town.txt", "quote": "purple elephants"}, "line 1: quote 'purple elephants' not found in town.txt"),
        ({"source": "town.txt", "quote": "Ann"}, "occurs more than once in town.txt; lengthen it"),
        ({"source": "city.txt", "quote": "cherry"}, "line 1: source 'city.txt' is not in the index (it holds town.txt)"),
    ],
)
def test_load_gold_rejects_unlocatable_evidence(tiny: ragkit.Index, tmp_path: Path, evidence: dict, message: str) -> None:
    path = write_lines(tmp_path / "g.jsonl", [{"question": "q", "evidence": [evidence]}])
    with pytest.raises(GoldError) as err:
        load_gold(path, tiny)
    assert str(path) in str(err.value) and message in str(err.value)


# ---------------------------------------------------------------- evaluate, answers, reports


def tiny_gold(tmp_path: Path) -> Path:
    return write_lines(tmp_path / "g.jsonl", [
        {"id": "trees", "question": "How many cherry trees did the council plant along the river?",
         "evidence": [{"source": "town.txt", "quote": "plant four hundred cherry trees"}]},
        {"id": "violins", "question": "Who repairs violins behind the train station?",
         "evidence": [{"source": "town.txt", "quote": "My brother repairs violins"}]},
        {"id": "none", "question": "What is the price of gold in Zurich?", "evidence": [], "tags": ["unanswerable"]},
    ])


def test_evaluate_with_pluggable_search_and_answers(tiny: ragkit.Index, tmp_path: Path) -> None:
    by_text = {c.text: c for c in tiny.chunks}
    violin = next(c for t, c in by_text.items() if "violins" in t)
    others = [c for c in tiny.chunks if c != violin]

    def worst_first(question: str, k: int) -> list[Hit]:  # the violin chunk always last
        order = others + [violin]
        return [Hit(c, 0.0, r) for r, c in enumerate(order[:k], start=1)]

    def answer(question: str, k: int) -> Answer:
        if "gold" in question:
            return Answer(question, "", (), (), "fake")
        text = tiny.documents["town.txt"].text
        s = text.index("My brother")
        cite = Citation(violin.id, "town.txt", "t", "Ann", None, text[s : s + 10], s, s + 10)
        wrong = Citation(violin.id, "town.txt", "t", "Ann", None, "not there", s, s + 9)
        return Answer(question, "My brother", (cite,) if "violins" in question else (wrong,), (), "fake")

    report = evaluate(tiny, tiny_gold(tmp_path), k=2, search=worst_first, answer_fn=answer)
    rows = {r.id: r for r in report.questions}
    assert rows["violins"].hit_at_k == 0.0 and rows["violins"].first_relevant_rank == len(tiny.chunks)
    assert len(tiny.chunks) == 4 and rows["violins"].mrr_at_10 == 0.25  # found last, at rank 4
    assert rows["violins"].citations_verbatim is True and rows["violins"].cites_evidence is True
    assert rows["trees"].citations_verbatim is False and rows["trees"].cites_evidence is False
    assert rows["none"].abstained is True and rows["none"].hit_at_k is None
    s = report.summary
    assert (s.questions, s.answerable, s.unanswerable) == (3, 2, 1)
    assert s.abstention_precision == 1.0 and s.abstention_recall == 1.0
    assert s.cites_evidence == 0.5 and s.citations_verbatim == 0.5
    assert report.settings["search"].endswith("worst_first")


def test_evaluate_default_search_and_real_answer_stage(tiny: ragkit.Index, tmp_path: Path) -> None:
    report = evaluate(tiny, tiny_gold(tmp_path), k=1)
    rows = {r.id: r for r in report.questions}
    assert rows["trees"].hit_at_k == 1.0 and rows["violins"].hit_at_k == 1.0  # bag-of-words queries share most words
    assert all(r.abstained is not None for r in report.questions)
    assert report.summary.citations_verbatim in (1.0, None)  # the extractive answerer quotes verbatim
    data = json.loads(json.dumps(asdict(report)))  # --json is asdict of the report
    assert data["manifest"]["embedder"]["spec"] == "hash:256" and data["machine"]["cores"] >= 1
    assert data["ragkit_version"] == ragkit.__version__ and data["k"] == 1 and data["date"]


def test_evaluate_retrieval_only_and_bad_k(tiny: ragkit.Index, tmp_path: Path) -> None:
    report = evaluate(tiny, tiny_gold(tmp_path), k=3, answers=False)
    assert all(r.abstained is None for r in report.questions)
    assert report.summary.abstention_recall is None and report.summary.hit_at_k == 1.0
    with pytest.raises(UsageError, match="at least 1"):
        evaluate(tiny, tiny_gold(tmp_path), k=0)


def test_curve_matches_separate_runs(tiny: ragkit.Index, tmp_path: Path) -> None:
    from ragkit.evaluation import curve

    gold = load_gold(tiny_gold(tmp_path), tiny)

    def best_last(question: str, k: int) -> list[Hit]:  # the best match ends up at the bottom
        return list(reversed(tiny.search(question, len(tiny))))[:k]

    one = evaluate(tiny, gold, k=2, search=best_last, answers=False)
    points = curve(one, range(1, 5))
    assert [p.hit for p in points] == [0.0, 0.0, 0.0, 1.0]
    for point in points:
        run = evaluate(tiny, gold, k=point.k, search=best_last, answers=False).summary
        assert (point.hit, point.recall) == (run.hit_at_k, run.recall_at_k)
    with pytest.raises(UsageError, match="k=11"):
        curve(one, [11])


def test_check_answer_flags() -> None:
    doc = ragkit.Document("a.txt", "t", "hello world, data is the bottleneck", ())
    q = GoldQuestion("x", "?", (Evidence("a.txt", "data", 13, 17),))
    good = Citation("a.txt#0-0", "a.txt", "t", None, None, "data is", 13, 20)
    elsewhere = Citation("a.txt#0-0", "a.txt", "t", None, None, "hello", 0, 5)
    out = check_answer(q, Answer("?", "data is", (good, elsewhere), (), "x"), {"a.txt": doc})
    assert out == {"answer": "data is", "abstained": False, "citations_verbatim": True, "cites_evidence": True}
    moved = Citation("a.txt#0-0", "a.txt", "t", None, None, "data is", 12, 19)
    assert check_answer(q, Answer("?", "x", (moved,), (), "x"), {"a.txt": doc})["citations_verbatim"] is False
    unknown = Citation("b#0", "b.txt", "t", None, None, "hello", 0, 5)
    assert check_answer(q, Answer("?", "x", (unknown,), (), "x"), {"a.txt": doc})["citations_verbatim"] is False


def test_summary_abstention_precision_counts_wrong_abstentions() -> None:
    from ragkit.evaluation import QuestionResult

    rows = [
        QuestionResult("a", "?", (), True, 1, hit_at_k=1.0, abstained=True),  # abstained though answerable
        QuestionResult("b", "?", (), False, 0, abstained=True),
        QuestionResult("c", "?", (), False, 0, abstained=False),
        QuestionResult("d", "?", (), True, 1, hit_at_k=0.0, abstained=False),
    ]
    s = summarize(rows)
    assert s.abstention_precision == 0.5 and s.abstention_recall == 0.5 and s.hit_at_k == 0.5


def test_thresholds() -> None:
    assert parse_threshold("hit@k=0.8") == ("hit_at_k", 0.8)
    assert parse_threshold("MRR@10=0.5") == ("mrr_at_10", 0.5)
    assert parse_threshold("recall_at_budget=0.3") == ("recall_at_budget", 0.3)
    for bad in ("hit@k", "speed=1", "hit@k=high"):
        with pytest.raises(UsageError, match="--fail-under"):
            parse_threshold(bad)
    from ragkit.evaluation import Summary

    s = Summary(2, 2, 0, 0.75, 0.75, 0.5, 0.4, 0.5, 0.3)
    assert failed_thresholds(s, [("hit_at_k", 0.7), ("mrr_at_10", 0.5)]) == ["MRR@10 = 0.400 is below 0.5"]
    assert failed_thresholds(s, [("abstention_recall", 0.1)]) == ["abstain-R = n/a is below 0.1"]


def test_render_report(tiny: ragkit.Index, tmp_path: Path) -> None:
    report = evaluate(tiny, tiny_gold(tmp_path), k=2, answers=False)
    text = render_report(report)
    assert "trees" in text and "violins" in text and "hit@2" in text and "R@1k" in text
    assert "questions 3 (2 answerable, 1 unanswerable)" in text
    assert "trees" not in render_report(report, per_question=False)
    assert isinstance(report, EvalReport)


# ---------------------------------------------------------------- the seeds gold set (real model)


@pytest.mark.integration
def test_seeds_gold_set_is_well_formed() -> None:
    questions = read_gold(GOLD)
    texts = {p.name: read_source_text(p) for p in SEEDS.iterdir() if p.suffix in (".txt", ".md")}
    assert len(questions) >= 45 and sum(not q.answerable for q in questions) >= 6
    tags = {t for q in questions for t in q.tags}
    assert {"paraphrase", "why", "speaker", "blog", "unanswerable"} <= tags
    assert any(q.question == "Why is data the bottleneck?" for q in questions)
    for q in questions:
        assert ("unanswerable" in q.tags) == (not q.answerable), q.id
        for e in q.evidence:
            assert texts[e.source].count(e.quote) == 1, (q.id, e.quote)


@pytest.mark.integration
def test_seeds_gold_with_real_model(tmp_path: Path) -> None:
    built = ragkit.Index.build(ragkit.read_corpus(SEEDS))
    built.save(tmp_path / "idx")
    index = ragkit.Index.load(tmp_path / "idx")  # the real FAISS index read back from disk
    report = evaluate(index, GOLD, k=5)
    s = report.summary
    # Measured on this gold set (64 questions, default chunking): hit@5 0.80, recall@5 0.77, MRR@10 0.62,
    # nDCG@10 0.66, R@1k 0.79, abstention P 1.00 / R 0.25, verbatim 1.00. Floors sit clearly below.
    assert s.hit_at_k >= 0.70 and s.recall_at_k >= 0.65 and s.mrr_at_10 >= 0.50
    assert s.ndcg_at_10 >= 0.55 and s.recall_at_budget >= 0.65
    assert s.citations_verbatim == 1.0  # an invariant of the answer stage, not a quality floor
    assert s.abstention_recall is not None and s.abstention_recall >= 0.1
    rows = {r.question: r for r in report.questions}
    assert rows["Why is data the bottleneck?"].hit_at_k == 1.0
    assert report.manifest["embedder"]["spec"] == "st:all-MiniLM-L6-v2"
