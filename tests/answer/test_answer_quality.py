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


@pytest.mark.parametrize(("which", "gold", "floor"), [("seeds_index", "seeds.jsonl", 0.85), ("real_index", "real.jsonl", 0.85)])
def test_answers_cite_gold_evidence_and_abstain_on_both_gold_sets(request: pytest.FixtureRequest, which: str, gold: str, floor: float) -> None:
    # Measured 0.875 (seeds) and 0.886 (real) cite gold evidence, 8 and 7 of 8 unanswerable questions abstained on;
    # before this round's answer work: 0.768 / 0.714 and 3 of 8, so every assertion fails on that code.
    report = evaluate(request.getfixturevalue(which), ROOT / "eval" / "gold" / gold, k=5)
    summary = report.summary
    assert summary.cites_evidence >= floor, summary
    assert summary.abstention_recall is not None and summary.abstention_recall >= 0.85, summary
    answerable = [r for r in report.questions if r.answerable]
    assert sum(not r.abstained for r in answerable) / len(answerable) >= 0.95
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


def test_the_answer_goes_on_after_a_short_interjection(tmp_path: Path) -> None:
    index = small_index(tmp_path, (
        "Host (00:01): Where do people buy their Halloween costumes these days, in your experience?\n\n"
        "Guest (00:06): In many cases the fastest way to get a costume online is through one specialist shop.\n\n"
        "Host (00:12): Really?\n\n"
        "Guest (00:13): Yeah. They ship with next day delivery where the big marketplaces do not in most cases.\n\n"
        "Host (00:20): I had no idea that the costume business worked like that at all.\n"
    ))
    answer = ask(index, "Why is the specialist shop the fastest way to get a costume?")
    quotes = [(c.speaker, c.start, c.quote) for c in answer.citations]
    assert any(who == "Guest" and "fastest way" in q for who, _, q in quotes), answer.text
    # The resumed answer is its own citation, with the time its turn starts; "Really?" is never quoted.
    assert ("Guest", 13.0) in [(who, start) for who, start, q in quotes if "next day delivery" in q], answer.text
    assert all("Really" not in q for _, _, q in quotes)
    assert verify_citations(index, answer) == []


def test_a_why_answer_that_opens_with_so_starts_at_its_reason(tmp_path: Path) -> None:
    index = small_index(tmp_path, (
        "Interviewer (00:01): Let us talk about how startups in artificial intelligence are built today.\n\n"
        "Founder (00:05): No sane business school graduate would advise spending hundreds of millions on training "
        "a model before there is any business plan at all. So the rules of physics of AI businesses are different. "
        "We see it every week with the founders we meet.\n"
    ))
    answer = ask(index, "Why do conventional business-school rules not apply to AI companies?")
    assert answer.citations[0].quote.startswith("No sane business school graduate"), answer.text
    what = ask(index, "Are the rules of physics of AI businesses different?")  # not asked why: no reason prepended
    assert not what.citations or not what.citations[0].quote.startswith("No sane"), what.text


def test_a_tag_question_is_a_statement(tmp_path: Path) -> None:
    index = small_index(tmp_path, (
        "Ben (00:01): Could a team rebuild the same thing in the same language and still call it replatforming?\n\n"
        "Adam (00:09): Yes, I think it would be totally valid for any team to decide that the platform has no future for them. "
        "And that is a totally valid reason to switch the whole product over, right?\n"
    ))
    answer = ask(index, "Is it a valid reason to switch platforms when a team sees no future in it?")
    assert "totally valid reason to switch" in answer.text, answer.text
    assert all(c.speaker == "Adam" for c in answer.citations)


@pytest.mark.parametrize(
    ("question", "answers"),
    [
        ("How many shark fins had to be reworked before the test?", True),
        ("How many visitors watched the chamber test live?", False),  # numbers in the passage count fins, not visitors
        ("How much did the chamber rental cost?", True),
        ("What is the lab's annual revenue?", False),
        ("Which company made the ferrite tiles?", False),  # no name in the passage answers "which company"
        ("What promo code does the show give for Vonage?", False),  # the passages never mention Vonage
    ],
)
def test_abstains_when_the_passages_lack_what_the_question_asks_for(tmp_path: Path, question: str, answers: bool) -> None:
    index = small_index(tmp_path, (
        "Engineer (00:01): We booked the test chamber for the whole week, and the chamber rental cost us forty thousand dollars. "
        "It is a giant steel box lined with ferrite tiles and foam, which turn radio energy into heat.\n\n"
        "Manager (00:20): And the shark fins? We had to rework one thousand one hundred thirty six shark fins in five days "
        "before the second test, and the lab team stayed late for most of that week.\n\n"
        "Engineer (00:41): Our show is the 100th episode recorded in that lab, and the team was proud of the result.\n"
    ))
    answer = ask(index, question)
    assert bool(answer.citations) is answers, answer.text


def test_page_links_are_never_quoted(tmp_path: Path) -> None:
    index = small_index(tmp_path, (
        "# Trent Alexander-Arnold\n\n"
        "**Read another blog about [Trent Alexander-Arnold: ](./20240416-trentalexander-arnold-theoverlap)**\n\n"
        "The data infrastructure company grew quickly, and its founders kept hiring engineers all through the year.\n"
    ), name="blog.md")
    answer = ask(index, "What position does Trent Alexander-Arnold play?")
    assert all("](" not in c.quote for c in answer.citations), answer.text


def test_an_answer_in_a_passage_below_k_is_found_and_shown(real_index: ragkit.Index) -> None:
    # Gold r06: the evidence passage ranks below the top 5; the answerer reads 8 passages and shows the one it quotes.
    question = "Which technologies is Adam experimenting with for the rewrite?"
    top = [h.chunk.id for h in real_index.search(question, k=5)]
    answer = ask(real_index, question, k=5)
    assert any("felt and tailwind" in c.quote for c in answer.citations), answer.text
    assert [h.chunk.id for h in answer.hits[:5]] == top
    assert {h.chunk.id for h in answer.hits[5:]} == {c.chunk_id for c in answer.citations} - set(top)
    assert verify_citations(real_index, answer) == []
