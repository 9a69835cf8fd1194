"""BM25: tokenization, numpy scoring against bm25s itself, open-format files checked like every index file."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ragkit
from ragkit.datatypes import Chunk
from ragkit.errors import IndexFormatError
from ragkit.index.core import Index
from ragkit.storage.lexical import FILES, Bm25, LexicalIndex, query_terms, terms, tokenize

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


def test_files_round_trip_without_pickle() -> None:
    chunks = [chunk(0, "Grad B: the belief net"), chunk(1, "PhD A: remote control buttons"), chunk(0, "remote design", "b.txt")]
    lex = LexicalIndex.build(chunks)
    files = lex.to_files()
    assert sorted(files) == sorted(FILES)
    meta = json.loads(files["bm25.json"])
    assert meta["source_names"] == ["a.txt", "b.txt"] and meta["chunks"]["rows"] == 3
    back = LexicalIndex.from_files(files, "idx", chunks=3)
    for q in (["remote"], ["belief", "belief net"], ["design"]):
        np.testing.assert_array_equal(back.chunks.scores(q), lex.chunks.scores(q))
        np.testing.assert_array_equal(back.sources.scores(q), lex.sources.scores(q))
    assert back.sources.scores(["remote"]).argmax() == 1  # b.txt is all about the remote


def test_bad_lexical_files_are_format_errors() -> None:
    lex = LexicalIndex.build([chunk(0, "remote control"), chunk(1, "belief net")])
    files = lex.to_files()
    buf = io.BytesIO()
    np.save(buf, np.array([{"x": 1}], dtype=object), allow_pickle=True)  # a pickle inside a .npy
    with pytest.raises(IndexFormatError, match="unreadable"):
        LexicalIndex.from_files({**files, "bm25.chunks.data.npy": buf.getvalue()}, "idx", chunks=2)
    buf = io.BytesIO()
    np.save(buf, np.array([0, 7], dtype=np.int32))  # a chunk id past the end
    with pytest.raises(IndexFormatError, match="inconsistent"):
        LexicalIndex.from_files({**files, "bm25.chunks.indices.npy": buf.getvalue()}, "idx", chunks=2)
    with pytest.raises(IndexFormatError, match="does not match"):
        LexicalIndex.from_files(files, "idx", chunks=3)


def test_only_stopwords_gives_an_empty_index() -> None:
    lex = LexicalIndex.build([chunk(0, "the and of"), chunk(1, "uh um")])
    assert lex.chunks.vocab == {} and not lex.chunks.scores(["remote"]).any()
    assert LexicalIndex.from_files(lex.to_files(), "idx", chunks=2).chunks.rows == 2


@pytest.fixture
def meeting_index(tmp_path: Path, hash_spec: str) -> Path:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "m.json").write_text(MEETING)
    Index.build(ragkit.read_corpus(tmp_path / "c"), embedder=hash_spec).save(tmp_path / "idx")
    return tmp_path / "idx"


def test_saved_with_the_index_and_hash_checked(meeting_index: Path) -> None:
    manifest = json.loads((meeting_index / "manifest.json").read_text())
    assert set(FILES) <= set(manifest["files"])
    loaded = Index.load(meeting_index)
    assert loaded._lexical is not None and loaded._lexical.chunks.rows == len(loaded)
    data = (meeting_index / "bm25.chunks.data.npy").read_bytes()
    (meeting_index / "bm25.chunks.data.npy").write_bytes(data[:-4] + b"\0\0\0\0")
    with pytest.raises(IndexFormatError, match=r"bm25\.chunks\.data\.npy"):
        Index.load(meeting_index)


def test_an_index_without_lexical_files_builds_them_on_first_use(meeting_index: Path) -> None:
    index = Index.load(meeting_index)
    index._lexical = None
    # What an index saved before lexical search looks like: the same data files, no bm25.* entries.
    old = Index(index.chunks, index.store, list(index.documents.values()), index.manifest, lexical=None)
    hits = old.search("batteries remote", k=2, mode="lexical")
    assert hits and "batter" in hits[0].chunk.text


def test_query_process_needs_neither_bm25s_nor_scipy(meeting_index: Path) -> None:
    code = (
        "import sys; from ragkit.index.core import Index\n"
        f"hits = Index.load({str(meeting_index)!r}).search('belief net layers', k=1, mode='lexical')\n"
        "print(hits[0].chunk.first_turn, 'bm25s' in sys.modules, 'scipy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout.split()
    assert out == ["0", "False", "False"]
