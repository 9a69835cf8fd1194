"""Retrieval and answers on the seeds with the real model; citation invariants on every answer."""

from __future__ import annotations

from pathlib import Path

import pytest

import ragkit
from ragkit.answer import ExtractiveAnswerer, load_answerer, verify_citations
from ragkit.answer.base import sentences
from ragkit.errors import RagkitError

SEEDS = Path(__file__).resolve().parents[2] / "seeds"
TRANSCRIPT = "spotlight-on-scale-ai-alexandr-wang.txt"
BLOG = "alex-wang-data-not-compute-summary.md"


def _covers(hit: ragkit.Hit, index: ragkit.Index, source: str, phrase: str) -> bool:
    text = index.documents[source].text
    at = text.index(phrase)
    return hit.chunk.source == source and hit.chunk.char_start <= at < hit.chunk.char_end


def _ask(index: ragkit.Index, question: str, **kw: object) -> ragkit.Answer:
    answer = ragkit.ask(index, question, **kw)  # type: ignore[arg-type]
    assert verify_citations(index, answer) == []
    return answer


def test_hash_embedder_answer_quotes_are_verbatim(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "a.txt").write_text(
        "Ann (00:01):\nThe harvest failed because the rain came late. We lost the wheat.\n\n"
        "Bob (00:20):\r\nMarkets  were calm.   Prices held steady all year.\n",
        encoding="utf-8",
    )
    index = ragkit.Index.build(ragkit.read_corpus(folder), embedder="hash:128")
    answer = _ask(index, "why did the harvest fail", answerer=ExtractiveAnswerer(abstain_below=0.0))
    assert answer.citations and "harvest failed" in answer.citations[0].quote
    assert answer.citations[0].speaker == "Ann" and answer.citations[0].start == 1.0


def test_sentences_stay_inside_a_split_turn(tmp_path: Path) -> None:
    long_turn = " ".join(f"Sentence number {i} talks about topic {i}." for i in range(200))
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "a.txt").write_text(f"Ann (00:01):\n{long_turn}\n\nBob (00:05):\nOk.\n", encoding="utf-8")
    index = ragkit.Index.build(ragkit.read_corpus(folder), embedder="hash:64")
    pieces = [c for c in index.chunks if "." in c.id.split("#")[1]]
    assert len(pieces) > 1
    hit = ragkit.Hit(pieces[1], 1.0, 1)
    for s in sentences(index, hit):
        assert pieces[1].char_start <= s.char_start < s.char_end <= pieces[1].char_end


def test_unknown_answerer_spec() -> None:
    with pytest.raises(RagkitError, match="unknown"):
        load_answerer("oracle")


@pytest.fixture(scope="module")
def seed_index(tmp_path_factory: pytest.TempPathFactory) -> ragkit.Index:
    return ragkit.Index.build(ragkit.read_corpus(SEEDS))


@pytest.mark.integration
def test_data_bottleneck_question_retrieves_the_data_wall_passage(seed_index: ragkit.Index) -> None:
    hits = seed_index.search("Why is data the bottleneck?", k=3)
    assert any(
        _covers(h, seed_index, TRANSCRIPT, "It was actually just data") or _covers(h, seed_index, BLOG, 'hit a "data wall."') for h in hits
    )


@pytest.mark.integration
def test_paraphrased_costume_question_retrieves_the_squirrel_turn(seed_index: ragkit.Index) -> None:
    hits = seed_index.search("What outfit is Alex planning to wear for the October 31st party?", k=3)
    assert any(_covers(h, seed_index, TRANSCRIPT, "I will be a squirrel") for h in hits)


@pytest.mark.integration
def test_answer_to_data_question_comes_from_the_data_passages(seed_index: ragkit.Index) -> None:
    answer = _ask(seed_index, "Why is data the bottleneck?")
    assert answer.text and answer.citations
    assert "It was actually just data" in answer.text or "data wall" in answer.text
    first = answer.citations[0]
    assert first.source == TRANSCRIPT and first.speaker == "Alexandr Wang" and first.start == 114.0


@pytest.mark.integration
def test_hits_carry_source_speaker_time_section_and_span(seed_index: ragkit.Index) -> None:
    hit = seed_index.search("Los Alamos weapons physicists parents", k=1)[0]
    chunk = hit.chunk
    assert chunk.source == TRANSCRIPT and "Alexandr Wang" in chunk.speakers
    assert chunk.start is not None and chunk.section is not None
    assert "Los Alamos" in seed_index.documents[TRANSCRIPT].text[chunk.char_start : chunk.char_end]


@pytest.mark.integration
def test_save_load_round_trip_gives_identical_results(seed_index: ragkit.Index, tmp_path: Path) -> None:
    seed_index.save(tmp_path / "idx")
    loaded = ragkit.Index.load(tmp_path / "idx")
    for q in ["Why is data the bottleneck?", "algo-raving music", "What did Dan Levine say about Dropbox?"]:
        a, b = seed_index.search(q, k=10), loaded.search(q, k=10)
        assert [h.chunk for h in a] == [h.chunk for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-6)
    assert loaded.documents == seed_index.documents


@pytest.mark.integration
@pytest.mark.parametrize(
    "question",
    ["What did Dan Levine say about Dropbox?", "Where did Alex grow up?", "What is algo-raving?", "What is the price of tea in China in 1850?"],
)
def test_every_answer_cites_verbatim_quotes_from_its_hits(seed_index: ragkit.Index, question: str) -> None:
    answer = _ask(seed_index, question, k=5)
    top = seed_index.search(question, k=5)
    # The top k passages, then only passages the answer quotes (the answerer reads a few more than it shows).
    assert [h.chunk.id for h in answer.hits[:5]] == [h.chunk.id for h in top]
    assert {h.chunk.id for h in answer.hits[5:]} <= {c.chunk_id for c in answer.citations}
    assert bool(answer.text) == bool(answer.citations)
