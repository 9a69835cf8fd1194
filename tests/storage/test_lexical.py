"""BM25: tokenization, and scores from the stored postings equal to bm25s itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ragkit
from ragkit.datatypes import Chunk
from ragkit.index import refresh
from ragkit.index.core import Index
from ragkit.storage.lexical import Bm25, LexicalIndex, query_terms, terms, tokenize

REPO = Path(__file__).resolve().parents[2]

MEETING = """{"meeting_transcripts": [
 {"speaker": "Grad B", "content": "So the {disfmarker} the belief net has three layers . {vocalsound}"},
 {"speaker": "Professor C", "content": "Uh , what about the batteries ? [laughter]"},
 {"speaker": "Grad B", "content": "The batteries are fine . The remote control needs a new design ."},
 {"speaker": "PhD A", "content": "I tested the remote , and the control buttons were hard to reach ."},
 {"speaker": "Professor C", "content": "OK . Let's talk about the hiring of a new student ."}
]}"""


def chunk(n: int, text: str, source: str = "a.txt") -> Chunk:
    return Chunk(f"{source}#{n}-{n}", source, "t", text, (), n, n, None, None, None, 0, len(text))


def test_tokens_drop_annotations_stopwords_fillers_and_letters() -> None:
    words = tokenize("Grad B: Uh, the {disfmarker} belief nets' [laughter] <noise> layers and batteries (inaudible) ok")
    assert words == ["grad", "belief", "net", "layer", "battery"]
    assert tokenize("Alex's Parents DISCUSSED designs") == ["alex", "parent", "discuss", "design"]
    assert tokenize("class classes") == ["class", "class"]


def test_pairs_and_question_words() -> None:
    assert terms(["remote", "control", "design"]) == ["remote", "control", "design", "remote control", "control design"]
    # Words about the conversation itself are no topic; the pair that spans them is formed after they go.
    assert query_terms("Summarize the discussion about the remote control") == ["remote", "control", "remote control"]
    assert query_terms("What did the group think?") == []


def test_numpy_scores_equal_bm25s_scores() -> None:
    import bm25s

    rows = [tokenize(t) for t in ("the cat sat on the mat", "dogs chase cats", "a mat for the dog", "quantum physics lecture", "cat cat cat")]
    ours = Bm25.build(rows)
    theirs = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    theirs.index(rows, show_progress=False)
    for query in (["cat"], ["mat", "dog"], ["physic", "cat", "cat"]):
        np.testing.assert_allclose(ours.scores(query), theirs.get_scores(query), rtol=1e-5)
    assert not ours.scores(["unknown"]).any()


def test_only_stopwords_gives_an_empty_index() -> None:
    lex = LexicalIndex.build([chunk(0, "the and of"), chunk(1, "uh um")])
    assert lex.chunks.vocab == {} and not lex.chunks.scores(["remote"]).any()


@pytest.fixture
def meeting_index(tmp_path: Path, hash_spec: str) -> Path:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "m.json").write_text(MEETING)
    Index.build(ragkit.read_corpus(tmp_path / "c"), embedder=hash_spec).save(tmp_path / "idx")
    return tmp_path / "idx"


def _assert_equal_to_bm25s(index: Index, queries: list[str]) -> None:
    reference = LexicalIndex.build(list(index.chunks))
    assert index.lexical.names == reference.names
    for q in queries:
        for part in ("chunks", "sources"):
            # Bit for bit: the same float32 and float64 steps as bm25s, so rankings and ties cannot differ.
            np.testing.assert_array_equal(getattr(index.lexical, part).scores(query_terms(q)), getattr(reference, part).scores(query_terms(q)))
    # Document frequencies looked up many at once (live rows only, whatever the segment) equal bm25s's.
    words = sorted({t for q in queries for t in query_terms(q)} | {"the", "batteries", "zzz-absent"})
    for part in ("chunks", "sources"):
        stored, expected = getattr(index.lexical, part), getattr(reference, part)
        assert stored.dfs(words) == {t: expected.df(t) for t in words} == {t: stored.df(t) for t in words}


QUERIES = ["belief net layers", "batteries remote control", "remote remote design", "hiring student", "nothing matches zyx"]


def test_stored_postings_score_exactly_like_bm25s(meeting_index: Path, tmp_path: Path, hash_spec: str) -> None:
    _assert_equal_to_bm25s(Index.load(meeting_index), QUERIES)
    # Several sources in several segments, one of them replaced by an update (its old rows are dead).
    corpus = tmp_path / "many"
    corpus.mkdir()
    for n in range(6):
        (corpus / f"ep{n}.txt").write_text("\n\n".join(f"Host: remote control {w} batteries design {n}" for w in ("belief", "net", "student", "hiring")[: n % 4 + 1]))
    refresh(tmp_path / "m", [corpus], hash_spec)
    (corpus / "ep2.txt").write_text("Guest: the remote was hard to reach.\n\nHost: new batteries and a new design")
    (corpus / "ep4.txt").unlink()
    refresh(tmp_path / "m", [corpus], hash_spec)
    updated = Index.load(tmp_path / "m")
    assert len(updated.manifest["segments"]) == 2  # the update wrote one segment and kept the first
    _assert_equal_to_bm25s(updated, QUERIES)


def test_query_process_needs_neither_bm25s_nor_scipy(meeting_index: Path) -> None:
    code = (
        "import sys; from ragkit.index.core import Index\n"
        f"hits = Index.load({str(meeting_index)!r}).search('belief net layers', k=1, mode='lexical')\n"
        "print(hits[0].chunk.first_turn, 'bm25s' in sys.modules, 'scipy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout.split()
    assert out == ["0", "False", "False"]
