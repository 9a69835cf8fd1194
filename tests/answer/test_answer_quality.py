"""Issue 15: extractive answers that answer (real model, both gold sets, constructed transcripts for each rule)."""

from __future__ import annotations

from pathlib import Path

import pytest

import ragkit
from ragkit.answer import ask, verify_citations
from ragkit.answer.extractive import ExtractiveAnswerer
from ragkit.evaluation import evaluate

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def seeds_index() -> ragkit.Index:
    return ragkit.Index.build(ragkit.read_corpus(ROOT / "seeds"))


@pytest.fixture(scope="module")
def real_index() -> ragkit.Index:
    return ragkit.Index.build(ragkit.read_corpus(ROOT / "eval" / "corpora" / "real"))


def small_index(tmp_path: Path, text: str, name: str = "ep.txt") -> ragkit.Index:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return ragkit.Index.build(ragkit.read_corpus(tmp_path))


@pytest.mark.parametrize(("which", "gold", "floor"), [("seeds_index", "seeds.jsonl", 0.72), ("real_index", "real.jsonl", 0.65)])
def test_answers_cite_gold_evidence_on_both_gold_sets(request: pytest.FixtureRequest, which: str, gold: str, floor: float) -> None:
    # Floors under the measured 0.768 (seeds) and 0.714 (real); the sentence-similarity answerer before issue 15
    # scored 0.571 on both, so these fail if answer selection falls back to it.
    summary = evaluate(request.getfixturevalue(which), ROOT / "eval" / "gold" / gold, k=5).summary
    assert summary.cites_evidence >= floor, summary
    assert summary.citations_verbatim == 1.0 and summary.hit_at_k is not None


def test_the_answer_follows_the_question_it_is_not_the_question(tmp_path: Path) -> None:
    index = small_index(tmp_path, (
        "Host (00:01): Welcome back, everyone, great to have you on the show again this week.\n\n"
        "Host (00:09): So tell me, what is your costume going to be for Halloween this year?\n\n"
        "Guest (00:14): My partner insisted on going as an acorn, so I will be dressed as a squirrel with a big bushy tail.\n\n"
        "Host (00:25): That sounds like a lot of fun for the two of you.\n"
    ))
    answer = ask(index, "What costume is the guest wearing for Halloween?")
    assert answer.citations and answer.citations[0].speaker == "Guest" and "squirrel" in answer.citations[0].quote, answer.text
    assert "?" not in answer.citations[0].quote


def test_greetings_fillers_and_markup_are_never_quoted(tmp_path: Path) -> None:
    index = small_index(tmp_path, (
        "Chair (00:01): Thank you. Hello, everybody.\n\n"
        "Engineer (00:05): Yeah.\n\n"
        "Engineer (00:07): So the {disfmarker} the battery {vocalsound} lasts about three days with the rubber case, "
        "because the rubber case blocks the charging contacts {disfmarker} mostly.\n\n"
        "Chair (00:20): Okay. Thanks.\n"
    ))
    answer = ask(index, "How long does the battery last with the rubber case?")
    assert answer.citations, answer
    for c in answer.citations:
        assert "{" not in c.quote and "}" not in c.quote, c.quote
        assert c.quote not in ("Thank you.", "Hello, everybody.", "Yeah.", "Okay.", "Thanks.")
    assert "three days" in answer.text
    assert verify_citations(index, answer) == []


def test_the_span_continues_with_what_the_speaker_says_next(seeds_index: ragkit.Index) -> None:
    answer = ask(seeds_index, "What are the base ingredients of AI?")
    assert "compute" in answer.citations[0].quote, answer.text  # the sentence after "...the same base primitives."
    assert verify_citations(seeds_index, answer) == []


def test_parents_question_is_answered_by_the_physicists_sentence(seeds_index: ragkit.Index) -> None:
    answer = ask(seeds_index, "What did Alex's parents do for work?")
    assert "physicists" in answer.citations[0].quote, answer.text


def test_max_words_bounds_the_answer(seeds_index: ragkit.Index) -> None:
    hits = seeds_index.search("Why is data the bottleneck?", k=5)
    long = ExtractiveAnswerer().answer("Why is data the bottleneck?", hits, seeds_index)
    short = ExtractiveAnswerer(max_words=25).answer("Why is data the bottleneck?", hits, seeds_index)
    first = len(short.citations[0].quote.split())  # the best sentence is always whole
    assert sum(len(c.quote.split()) for c in short.citations) <= max(25, first)
    assert sum(len(c.quote.split()) for c in long.citations) <= 80 or len(long.citations) == 1
    assert len(short.citations) <= len(long.citations)


@pytest.mark.parametrize("question", ["What did the city council decide about the crosswalk budget?", "What is the price of bananas in Peru?"])
def test_abstains_when_the_corpus_does_not_say(seeds_index: ragkit.Index, question: str) -> None:
    answer = ask(seeds_index, question)
    assert answer.text == "" and answer.citations == ()
