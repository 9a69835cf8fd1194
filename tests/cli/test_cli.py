"""The CLI end to end: real model on the seeds, hash embedder for the bad-input paths."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ragkit
from ragkit.cli import main

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds"
PODCAST = "Host (00:01):\nWelcome to the show about gardening and tomatoes.\n\nGuest (00:09):\nTomatoes need sun and water every day.\n"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def ragkit_subprocess(args: list[str], cwd: Path, **kw: object) -> subprocess.CompletedProcess[str]:
    code = "import sys; from ragkit.cli import main; sys.argv[0] = 'ragkit'; main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=600, **kw)  # type: ignore[call-overload]


@pytest.fixture()
def tiny_corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "show.txt").write_text(PODCAST, encoding="utf-8")
    return folder


@pytest.fixture()
def tiny_index(tmp_path: Path, tiny_corpus: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "idx"
    code, _, err = run(["index", str(tiny_corpus), "-o", str(out), "-e", "hash:64"], capsys)
    assert code == 0, err
    return out


# ------------------------------------------------------------------ fast: hash embedder


def test_index_search_ask_json_with_hash_embedder(tiny_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["search", "tomatoes sun water", "-i", str(tiny_index), "--json"], capsys)
    assert code == 0
    hits = json.loads(out)["hits"]
    assert hits and hits[0]["chunk"]["source"] == "show.txt"
    assert hits[0]["chunk"]["speakers"] == ["Host", "Guest"]
    code, out, _ = run(["info", "-i", str(tiny_index), "--json"], capsys)
    info = json.loads(out)
    assert info["manifest"]["embedder"]["spec"] == "hash:64"
    assert [s["state"] for s in info["status"]] == ["unchanged"]


def test_k_larger_than_chunk_count_returns_all(tiny_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["search", "tomatoes", "-i", str(tiny_index), "-k", "50", "--json"], capsys)
    hits = json.loads(out)["hits"]
    index = ragkit.Index.load(tiny_index)
    assert code == 0 and len(hits) == len(index) >= 1
    assert sorted(h["chunk"]["id"] for h in hits) == sorted(c.id for c in index.chunks)


@pytest.mark.parametrize("k", ["0", "-3"])
def test_bad_k_is_a_usage_error(tiny_index: Path, k: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["search", "tomatoes", "-i", str(tiny_index), "-k", k], capsys)
    assert code == 2 and "top-k" in err


@pytest.mark.parametrize("query", ["", "   \t "])
def test_empty_query_is_a_usage_error_before_any_model_loads(tmp_path: Path, query: str) -> None:
    result = ragkit_subprocess(["search", query, "-i", str(tmp_path / "nothing")], cwd=tmp_path)
    assert result.returncode == 2
    assert "query is empty" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_custom_index_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["search", "tomatoes", "-i", str(tmp_path / "nope")], capsys)
    assert code == 1 and "no index here" in err and "ragkit index" in err


def test_missing_corpus_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["index", str(tmp_path / "missing"), "-o", str(tmp_path / "i"), "-e", "hash:64"], capsys)
    assert code == 1 and "missing" in err and "no such file or folder" in err


def test_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = run(["index", str(tmp_path / "empty"), "-o", str(tmp_path / "i"), "-e", "hash:64"], capsys)
    assert code == 1 and "no transcript files" in err


def test_empty_file_skipped_and_all_empty_corpus_leaves_index_untouched(tmp_path: Path, tiny_corpus: Path, tiny_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tiny_corpus / "blank.txt").write_text("  \n\t\n", encoding="utf-8")
    code, _, err = run(["index", str(tiny_corpus), "-o", str(tmp_path / "two"), "-e", "hash:64"], capsys)
    assert code == 0 and "blank.txt" in err and "skipped" in err
    before = {p.name: p.read_bytes() for p in tiny_index.resolve().iterdir()}
    only_blank = tmp_path / "blank_only"
    only_blank.mkdir()
    (only_blank / "a.txt").write_text("\n\n", encoding="utf-8")
    code, _, err = run(["index", str(only_blank), "-o", str(tiny_index), "-e", "hash:64"], capsys)
    assert code == 1 and "every file is empty" in err
    assert {p.name: p.read_bytes() for p in tiny_index.resolve().iterdir()} == before


def test_query_with_another_embedder_is_refused(tiny_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["search", "tomatoes", "-i", str(tiny_index), "-e", "hash:128"], capsys)
    assert code == 1 and "hash:64" in err and "hash:128" in err


def test_help_does_not_import_torch(tmp_path: Path) -> None:
    probe = (
        "import sys\nfrom ragkit.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers', 'faiss') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert "Usage" in result.stdout and "HEAVY []" in result.stdout


def test_terminal_escapes_are_escaped_in_human_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "evil.txt").write_text("Host (00:01):\nred \x1b[31malert\x1b[0m tomatoes here\n", encoding="utf-8")
    run(["index", str(folder), "-o", str(tmp_path / "i"), "-e", "hash:64"], capsys)
    _, out, _ = run(["search", "tomatoes", "-i", str(tmp_path / "i")], capsys)
    assert "\x1b" not in out and "\\x1b[31m" in out
    _, out, _ = run(["search", "tomatoes", "-i", str(tmp_path / "i"), "--json"], capsys)
    assert "\x1b[31malert" in json.loads(out)["hits"][0]["chunk"]["text"]


# ------------------------------------------------------------------ integration: real model, seeds


@pytest.mark.integration
def test_first_run_builds_default_index_and_answers(tmp_path: Path) -> None:
    shutil.copytree(SEEDS, tmp_path / "seeds")
    result = ragkit_subprocess(["ask", "Why is data the bottleneck?"], cwd=tmp_path, env={**os.environ, "COLUMNS": "120"})
    assert result.returncode == 0, result.stderr
    assert "building it from seeds" in result.stderr
    assert (tmp_path / "indexes" / "default" / "manifest.json").is_file()
    assert "It was actually just data" in result.stdout or "data wall" in result.stdout
    assert "Alexandr Wang" in result.stdout and "01:54" in result.stdout
    again = ragkit_subprocess(["ask", "Why is data the bottleneck?", "--json"], cwd=tmp_path)
    assert again.returncode == 0 and "building" not in again.stderr
    data = json.loads(again.stdout)
    assert set(data) == {f.name for f in dataclasses.fields(ragkit.Answer)}
    assert {f.name for f in dataclasses.fields(ragkit.Citation)} == set(data["citations"][0])
    index = ragkit.Index.load(tmp_path / "indexes" / "default")
    for c in data["citations"]:
        assert index.documents[c["source"]].text[c["char_start"] : c["char_end"]] == c["quote"]
        assert c["chunk_id"] in {h["chunk"]["id"] for h in data["hits"]}


@pytest.mark.integration
def test_search_filters_by_speaker_and_source(seed_index_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["search", "Dropbox", "-i", str(seed_index_path), "--speaker", "levine", "-k", "3", "--json"], capsys)
    hits = json.loads(out)["hits"]
    assert code == 0 and hits and all(any("Levine" in s for s in h["chunk"]["speakers"]) for h in hits)
    code, out, _ = run(["search", "data wall", "-i", str(seed_index_path), "--source", "*.md", "--json"], capsys)
    hits = json.loads(out)["hits"]
    assert hits and {h["chunk"]["source"] for h in hits} == {"alex-wang-data-not-compute-summary.md"}


@pytest.mark.integration
def test_human_ask_output_shows_title_speaker_time_and_quotes(seed_index_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["ask", "Why is data the bottleneck?", "-i", str(seed_index_path)], capsys)
    assert code == 0
    assert out.startswith("Answer:") and "Sources:" in out and "[1]" in out
    assert "Spotlight On: Scale AI's Alexandr Wang" in out and "01:54" in out


@pytest.mark.integration
def test_unanswerable_question_says_so_and_shows_passages(seed_index_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["ask", "What is the boiling point of liquid nitrogen in kelvin?", "-i", str(seed_index_path)], capsys)
    assert code == 0 and out.startswith("The corpus does not say.") and " 1. [" in out


@pytest.fixture(scope="module")
def seed_index_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("seedidx") / "idx"
    ragkit.Index.build(ragkit.read_corpus(SEEDS)).save(path)
    return path


@pytest.mark.integration
@pytest.mark.parametrize(("backend", "torch_loaded"), [("onnx", False), ("torch", True)])
def test_embedder_backend_option_forces_the_query_backend(seed_index_path: Path, tmp_path: Path, backend: str, torch_loaded: bool) -> None:
    probe = (
        "import sys, json\nfrom ragkit.cli import main\n"
        f"argv = ['--embedder-backend', {backend!r}, 'search', 'Why is data the bottleneck?', '-i', {str(seed_index_path)!r}, '-k', '3', '--json']\n"
        "try:\n    main(argv)\nexcept SystemExit as exc:\n    code = exc.code\n"
        "print('TORCH', 'torch' in sys.modules, 'CODE', code, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert f"TORCH {torch_loaded} CODE 0" in result.stderr, result.stderr
    hits = json.loads(result.stdout)["hits"]
    assert len(hits) == 3 and hits[0]["chunk"]["source"] == "spotlight-on-scale-ai-alexandr-wang.txt"


@pytest.mark.integration
def test_index_backend_choice_is_recorded_and_shown(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "show.txt").write_text(PODCAST, encoding="utf-8")
    for backend, expected in ((None, "onnx-int8"), ("onnx", "onnx"), ("torch", "torch")):
        out = tmp_path / f"idx-{backend}"
        monkeypatch.setenv("RAGKIT_EMBEDDER_BACKEND", "auto")  # the option sets this for the process; teardown restores it
        code, _, err = run([*(["--embedder-backend", backend] if backend else []), "index", str(corpus), "-o", str(out)], capsys)
        assert code == 0, err
        code, text, _ = run(["info", "-i", str(out)], capsys)
        assert code == 0 and f"(384 dims, embedded with {expected})" in text, text
        code, text, _ = run(["info", "-i", str(out), "--json"], capsys)
        assert json.loads(text)["manifest"]["embedder"] == {"spec": "st:all-MiniLM-L6-v2", "dim": 384, "backend": expected}


@pytest.mark.integration
def test_first_build_on_a_machine_says_why_it_waits_and_nothing_else(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "show.txt").write_text(PODCAST, encoding="utf-8")
    env = {**os.environ, "RAGKIT_CACHE_DIR": str(tmp_path / "empty-cache")}
    env.pop("RAGKIT_EMBEDDER_BACKEND", None)
    result = ragkit_subprocess(["index", str(corpus), "-o", str(tmp_path / "idx")], tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert [ln.split(":")[0] for ln in lines if ln.startswith("preparing")] == ["preparing the embedding model"] * 2, lines
    assert lines[0].startswith("reading ") and lines[-1] == "embedding chunks" and result.stdout.startswith("updated ")
    # the exporter's tracer warnings, onnxruntime's root-logger warning and bm25s debug records stay out
    assert not [ln for ln in lines if "Warning" in ln or "WARNING" in ln or "DEBUG" in ln or "Loading weights" in ln], lines
    assert len(lines) == 4, lines  # reading, two preparing lines, embedding chunks
