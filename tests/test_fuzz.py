"""Property-based fuzzing: random bytes and random JSON shapes at every reader and at the index loader.

Whatever the input, the outcome is a Document or a RagkitError naming the file; never another exception.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragkit.errors import RagkitError
from ragkit.index import Index
from ragkit.readers import read_corpus, read_document

SUFFIXES = [".txt", ".md", ".vtt", ".srt", ".json", ".transcript"]
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=20), st.sampled_from(["", "0:01", "00:00:01,000", "SPEAKER_00", "\ud800", "-->", "NaN"]))
KEYS = ["segments", "start", "end", "text", "speaker", "words", "result", "transcription", "output", "results", "items",
        "audio_segments", "speaker_label", "meeting_transcripts", "content", "title", "turns", "start_time", "end_time", "alternatives"]
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), children, max_size=5)),
    max_leaves=30,
)


def _fresh(tmp_path: Path) -> Path:
    """A new folder per example: a file left by an earlier example must not become this one's sidecar."""
    return Path(tempfile.mkdtemp(dir=tmp_path))


def _check(path: Path) -> None:
    try:
        doc = read_document(path)
    except RagkitError as exc:
        assert path.name in str(exc) or str(path) in str(exc) or "speakers" in str(exc), str(exc)
        return
    for turn in doc.turns:
        assert 0 <= turn.char_start <= turn.char_end <= len(doc.text)
        for t in (turn.start, turn.end):
            assert t is None or t == t and abs(t) != float("inf")
    json.dumps([t.speaker for t in doc.turns], ensure_ascii=False).encode("utf-8")


@FUZZ
@given(data=st.binary(max_size=2000), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes_at_every_reader(tmp_path: Path, data: bytes, suffix: str) -> None:
    path = _fresh(tmp_path) / f"fuzz{suffix}"
    path.write_bytes(data)
    _check(path)


@FUZZ
@given(value=json_values)
def test_random_json_shapes_at_the_json_readers(tmp_path: Path, value: object) -> None:
    path = _fresh(tmp_path) / "fuzz.json"
    path.write_text(json.dumps(value, allow_nan=True), encoding="utf-8")
    _check(path)


@FUZZ
@given(lines=st.lists(st.sampled_from([
    "WEBVTT", "", "00:00:01.000 --> 00:00:02.000", "00:00:03,000 --> 00:00:01,000", "1", "<v Ana>Hello there.", "Ana: hi",
    "Ana (00:01):", "[00:00:23] **David:** Hi.", "NOTE x", "99:99:99.999 --> 100:00:00.000", "Speaker 1  0:03", "-->",
]), max_size=30), suffix=st.sampled_from([".vtt", ".srt", ".txt"]))
def test_random_cue_and_header_lines(tmp_path: Path, lines: list[str], suffix: str) -> None:
    path = _fresh(tmp_path) / f"fuzz{suffix}"
    path.write_text("\n".join(lines), encoding="utf-8")
    _check(path)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzzidx")
    corpus = root / "c"
    corpus.mkdir()
    (corpus / "ep.txt").write_text("Ana (00:01):\nThe river rose.\n\nBen (00:09):\nThe garden flooded.\n", encoding="utf-8")
    Index.build(read_corpus(corpus), embedder="hash:32").save(root / "idx")
    return (root / "idx").resolve()


NAMES = ["s000001.db", "s000001.f32", "manifest.json"]


@FUZZ
@given(name=st.sampled_from(NAMES), data=st.one_of(st.binary(max_size=600), json_values.map(lambda v: json.dumps(v).encode() + b"\n")))
def test_random_index_files_with_valid_checksums(tmp_path: Path, built: Path, name: str, data: bytes) -> None:
    folder = tmp_path / "idx"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(built, folder)
    (folder / name).write_bytes(data)
    if name != "manifest.json":
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["segments"]["s000001"]["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        data = json.dumps(manifest).encode()
        (folder / "manifest.json").write_bytes(data)
    (folder / "manifest.json.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  manifest.json\n")
    try:
        index = Index.load(folder)
        index.search("river", k=2)
        index.verify()
    except RagkitError:
        pass
