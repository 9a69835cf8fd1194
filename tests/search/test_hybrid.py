"""Hybrid search: options, fusion, speaker matching, source weight, passage assembly, the CLI options, QMSum quality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import QMSUM_TEST
from hypothesis import given
from hypothesis import strategies as st

import ragkit
from ragkit.answer import ask, verify_citations
from ragkit.chunking import ChunkSettings, turn_line
from ragkit.cli import main
from ragkit.errors import UsageError
from ragkit.index.core import Index
from ragkit.search import SearchOptions, SpeakerMatcher, fuse, retriever, search_options

MEETING = """\
Grad B: we should fix the belief net structure first before anything else
Professor C: the budget for hiring a new student was approved yesterday
Grad A: the belief net needs three layers of nodes and some more evidence
PhD D: remote control batteries drain quickly in cold weather
Professor C: I think the belief net layers look fine to me now
Grad B: lunch is at noon today in the kitchen downstairs
PhD D: the kitchen fridge is broken again so bring a cooler
Grad A: the recording equipment arrives next week for the meetings
Professor C: transcripts of the meetings should be checked by hand
Grad B: we need more disk space for the recordings
"""
OTHER = """\
Host: gardening with tomatoes needs sun and water every day
Guest: compost makes the tomato beds rich and the garden happy
"""
WORDS = ChunkSettings(max_tokens=16, tokenizer="words")  # one turn per chunk
PLAIN = {"budget": 0, "speaker_boost": 0.0, "source_weight": 0.0}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "meeting.txt").write_text(MEETING)
    (tmp_path / "c" / "garden.txt").write_text(OTHER)
    return tmp_path / "c"


@pytest.fixture
def index(corpus: Path, hash_spec: str) -> Index:
    return Index.build(ragkit.read_corpus(corpus), embedder=hash_spec, settings=WORDS)


def ids(hits: list) -> list[str]:
    return [h.chunk.id for h in hits]


# ---------------------------------------------------------------- options and fusion


@pytest.mark.parametrize(
    ("options", "message"),
    [({"mode": "fuzzy"}, "--mode 'fuzzy'"), ({"weight": 1.5}, "--weight 1.5"), ({"budget": -1}, "--budget -1"),
     ({"budget": 2.5}, "--budget 2.5"), ({"wieght": 0.5}, "unknown search option 'wieght'")],
)
def test_bad_options_name_the_option(options: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        search_options(options)


def test_none_keeps_the_default() -> None:
    assert search_options({"mode": None, "weight": None}) == SearchOptions()
    assert search_options({"budget": 300}).budget == 300


def test_fusion_scales_each_side_by_its_best() -> None:
    dense, lexical = np.array([0.5, 0.25, 0.0]), np.array([0.0, 4.0, 2.0])
    np.testing.assert_allclose(fuse(dense, lexical, "hybrid", 0.5), [0.5, 0.75, 0.25])
    np.testing.assert_allclose(fuse(dense, lexical, "hybrid", 1.0), [1.0, 0.5, 0.0])
    np.testing.assert_allclose(fuse(dense, np.zeros(3), "hybrid", 0.5), [0.5, 0.25, 0.0])  # no lexical match: dense alone
    rrf = fuse(dense, lexical, "rrf", 0.5)
    assert rrf.argmax() == 1 and rrf[0] > rrf[2]  # ranks (1, 3) beat (3, 2)


# ---------------------------------------------------------------- speakers named in questions


LABELS = ["Grad A", "Grad B", "Professor C", "Project Manager", "User Interface", "Marketing", "Barry Hughes", "Sian Hughes",
          "Mr. Pierre Paul-Hus (Charlesbourg—Haute-Saint-Charles, CPC)", "Alexandr Wang", "Daniel Levine", "The Chair"]


@pytest.mark.parametrize(
    ("question", "named"),
    [
        ("What did Grad B say about the belief net?", {"Grad B"}),
        ("What did the professor think of VAD latency?", {"Professor C"}),
        ("What did Mr. Paul-Hus think?", {"Mr. Pierre Paul-Hus (Charlesbourg—Haute-Saint-Charles, CPC)"}),
        ("What did Hughes say?", {"Barry Hughes", "Sian Hughes"}),
        ("What did Barry Hughes say?", {"Barry Hughes"}),
        ("What did Alex's parents do?", {"Alexandr Wang"}),
        ("According to Dan, how should founders pick an idea?", {"Daniel Levine"}),
        ("Why did Marketing disagree with the user interface?", {"Marketing", "User Interface"}),
        ("What did the group discuss about the project plan?", set()),  # a role's first word alone names nobody
        ("how did alex feel?", set()),  # a short form must be capitalized
        ("What did the chair rule?", {"The Chair"}),
    ],
)
def test_speakers_named_in_questions(question: str, named: set[str]) -> None:
    assert SpeakerMatcher(LABELS).match(question) == named


def test_the_naming_words_leave_the_lexical_query() -> None:
    named, rest = SpeakerMatcher(LABELS).split("What did Grad B say about the belief net?")
    assert named == {"Grad B"} and rest == "What did say about the belief net"


def test_speaker_share_is_the_fraction_of_the_chunk_they_speak(corpus: Path, hash_spec: str) -> None:
    index = Index.build(ragkit.read_corpus(corpus / "meeting.txt"), embedder=hash_spec, settings=ChunkSettings(max_tokens=40, tokenizer="words"))
    first = index.chunks[0]
    turns = index.documents[first.source].turns[first.first_turn : first.last_turn + 1]
    expected = sum(len(t.text) for t in turns if t.speaker == "Grad B") / sum(len(t.text) for t in turns)
    share = retriever(index).speaker_share({"Grad B"}, np.arange(len(index)))
    assert share[0] == pytest.approx(expected, rel=1e-3) and 0 < expected < 1


def test_a_named_speaker_lifts_their_passages_by_the_boost(tmp_path: Path, hash_spec: str) -> None:
    (tmp_path / "m.txt").write_text(
        "Grad A: the belief net is ready and the belief net works well\nPhD D: the belief net is ready for the demo\n"
        "Grad A: lunch is served in the kitchen at noon today\n"
    )
    index = Index.build(ragkit.read_corpus(tmp_path / "m.txt"), embedder=hash_spec, settings=WORDS)
    question = "What did PhD D say about the belief net?"

    def scores(boost: float) -> dict[str, float]:
        return {h.chunk.id: h.score for h in index.search(question, k=3, **{**PLAIN, "speaker_boost": boost})}

    low, high = scores(0.01), scores(1.0)
    assert index.chunks[1].speakers == ("PhD D",) and len(low) == len(high) == 3
    lift = {c: high[c] - low[c] for c in low}
    assert lift == pytest.approx({"m.txt#0-0": 0.0, "m.txt#1-1": 0.99, "m.txt#2-2": 0.0}, abs=1e-5)
    assert max(high, key=high.__getitem__) == "m.txt#1-1"


# ---------------------------------------------------------------- modes and filters


def test_weight_one_is_the_dense_ranking_and_zero_the_lexical_one(index: Index) -> None:
    question = "belief net layers and the kitchen"
    dense = [index.chunks[i].id for i, _ in index.store.search(index.embed_query(question), 5)]
    assert ids(index.search(question, k=5, weight=1.0, **PLAIN)) == dense
    assert ids(index.search(question, k=5, mode="dense", **PLAIN)) == dense
    lexical = ids(index.search(question, k=5, mode="lexical", **PLAIN))
    assert ids(index.search(question, k=5, weight=0.0, **PLAIN))[: len(lexical)] == lexical != dense


def test_lexical_mode_needs_a_shared_word(index: Index) -> None:
    assert ids(index.search("fridge", k=3, mode="lexical", **PLAIN)) == ["meeting.txt#6-6"]
    assert index.search("zebra", k=3, mode="lexical", **PLAIN) == []


def test_filters_still_apply(index: Index) -> None:
    hits = index.search("belief net", k=10, source="garden.txt")
    assert hits and {h.chunk.source for h in hits} == {"garden.txt"}
    hits = index.search("belief net", k=10, speaker="professor", budget=0)
    assert hits and all("Professor C" in h.chunk.speakers for h in hits)
    assert index.search("belief net", k=3, source="nothing*") == []


def test_source_weight_prefers_the_source_the_question_is_about(index: Index) -> None:
    question = "tomato garden compost for the kitchen"  # one meeting turn mentions the kitchen
    lexical = index.lexical.sources.scores(ragkit.storage.lexical.query_terms(question))
    assert index.lexical.names[int(lexical.argmax())] == "garden.txt"
    with_source = index.search(question, k=3, budget=0, source_weight=1.0)
    assert [h.chunk.source for h in with_source][:2] == ["garden.txt", "garden.txt"]
    scores = {h.chunk.id: h.score for h in index.search(question, k=12, budget=0, source_weight=0.0)}
    lifted = {h.chunk.id: h.score for h in index.search(question, k=12, budget=0, source_weight=1.0)}
    assert all(lifted[c] - scores[c] == pytest.approx(1.0, abs=1e-5) for c in scores if c.startswith("garden"))


# ---------------------------------------------------------------- passage assembly


def test_budget_zero_gives_the_plain_chunks(index: Index) -> None:
    hits = index.search("belief net", k=4, budget=0)
    assert all(h.chunk in index.chunks for h in hits) and [h.rank for h in hits] == [1, 2, 3, 4]


def test_passages_fit_the_budget_and_are_verbatim_turns(index: Index) -> None:
    budget = 40
    hits = index.search("What did the professor think about the belief net layers?", k=5, budget=budget)
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1)) and len(hits) <= 5
    count = index.embedder.count_tokens
    total, inside = 0, []
    for h in hits:  # the leading passages that fit the budget form the context
        if total + count(h.chunk.text) > budget:
            break
        total += count(h.chunk.text)
        inside.append(h)
    assert inside and total <= budget
    top = inside[0].chunk
    assert top.first_turn < 4 < top.last_turn  # the best turn grew on both sides
    doc = index.documents[top.source]
    turns = doc.turns[top.first_turn : top.last_turn + 1]
    assert top.text == "\n".join(turn_line(t) for t in turns)
    assert (top.char_start, top.char_end) == (turns[0].char_start, turns[-1].char_end)
    assert top.speakers == tuple(dict.fromkeys(t.speaker for t in turns))
    spans = [(h.chunk.source, h.chunk.first_turn, h.chunk.last_turn) for h in hits]
    for n, (source, a, b) in enumerate(spans):  # no passage repeats turns of an earlier one
        assert not any(s == source and a <= y and x <= b for s, x, y in spans[:n])


def test_long_turns_assemble_from_their_pieces(tmp_path: Path, hash_spec: str) -> None:
    sentences = " ".join(f"Sentence {n} talks about topic {n} and nothing else." for n in range(12))
    (tmp_path / "long.txt").write_text(f"Ann: short opener here\nBob: {sentences}\nAnn: short closer here\n")
    index = Index.build(ragkit.read_corpus(tmp_path / "long.txt"), embedder=hash_spec, settings=WORDS)
    pieces = [c for c in index.chunks if c.first_turn == c.last_turn == 1]
    assert len(pieces) > 3
    hits = index.search("topic 6", k=3, budget=50)
    doc = index.documents["long.txt"]
    top = hits[0].chunk
    span = doc.text[top.char_start : top.char_end]
    assert top.char_start <= doc.text.index("topic 6") < top.char_end
    assert top.char_end - top.char_start > max(c.char_end - c.char_start for c in pieces)  # grew past one piece
    for line in top.text.split("\n"):  # every line is a piece or turn of the span, speaker prefix aside
        assert " ".join(line.split(": ", 1)[-1].split()) in " ".join(span.split())
    assert index.embedder.count_tokens(top.text) <= 50


def test_citations_from_assembled_passages_are_verbatim(index: Index) -> None:
    answer = ask(index, "What did the professor say about transcripts of the meetings?", k=3, budget=60)
    assert answer.hits and verify_citations(index, answer) == []


def test_saved_and_loaded_indexes_search_alike(index: Index, tmp_path: Path) -> None:
    index.save(tmp_path / "idx")
    loaded = Index.load(tmp_path / "idx", embedder=index.embedder)
    for options in ({}, {"budget": 50}, {"mode": "rrf", "budget": 0}):
        assert ids(loaded.search("belief net kitchen", k=4, **options)) == ids(index.search("belief net kitchen", k=4, **options))


# ---------------------------------------------------------------- CLI


def test_cli_search_and_ask_take_mode_weight_budget(index: Index, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index.save(tmp_path / "idx")

    def run(*argv: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exit_info:
            main([*argv, "-i", str(tmp_path / "idx")])
        out = capsys.readouterr()
        return int(exit_info.value.code or 0), out.out, out.err

    code, out, _ = run("search", "fridge", "--mode", "lexical", "--budget", "30", "--json")
    hit = json.loads(out)["hits"][0]["chunk"]
    assert code == 0 and hit["first_turn"] <= 6 <= hit["last_turn"] and hit["first_turn"] < hit["last_turn"]
    code, out, _ = run("ask", "who brings a cooler?", "--weight", "0.2", "--budget", "0", "--json")
    assert code == 0 and json.loads(out)["hits"]
    code, _, err = run("search", "fridge", "--mode", "fuzzy")
    assert code == 2 and "--mode 'fuzzy'" in err
    code, _, err = run("search", "fridge", "--weight", "2")
    assert code == 2 and "--weight" in err


# ---------------------------------------------------------------- quality on real data


@pytest.mark.integration
def test_qmsum_meetings_hybrid_and_assembly_beat_dense() -> None:
    from ragkit.evaluation import cached_counter, count_relevant, ranked, score_ranking, summarize
    from ragkit.evaluation.qmsum import meeting_gold, read_meetings

    if not QMSUM_TEST.is_dir():
        pytest.fail(f"{QMSUM_TEST} is missing; the QMSum test split is needed for this test")
    docs = [d for d in read_meetings(QMSUM_TEST) if d.source in {"Bed003.json", "ES2004a.json", "education_4.json", "covid_4.json"}]
    questions = [q for d in docs for q in meeting_gold(d)]
    index = Index.build(docs)
    count = cached_counter(index.embedder.count_tokens)
    relevant = count_relevant(index.chunks, questions)

    def run(**options: object) -> tuple[float, float]:
        rows = [score_ranking(q, [h.chunk for h in ranked(lambda t, n: index.search(t, k=n, **options), q.question, 10, count)],
                              10, relevant[q.id], count) for q in questions]
        s = summarize(rows)
        return s.mrr_at_10, s.recall_at_budget

    dense = run(mode="dense", **PLAIN)
    hybrid = run(budget=0)
    context = run(budget=1000)
    assert hybrid[0] > dense[0]
    assert context[1] > max(hybrid[1], dense[1]) + 0.05


@given(st.lists(st.integers(0, 5), min_size=1, max_size=60), st.integers(1, 70))
def test_top_order_is_the_head_of_a_stable_sort(values: list[int], m: int) -> None:
    from ragkit.search.hybrid import top_order

    scores = np.asarray(values, dtype=np.float32) / 4  # many ties
    np.testing.assert_array_equal(top_order(scores, m), np.argsort(-scores, kind="stable")[:m])
