"""Hostile corpora (issue 19): nested JSON, non-finite times, lone surrogates, empty JSON, unreadable folders, symlinks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run_main as run

import ragkit
from ragkit.errors import RagkitError, TranscriptError
from ragkit.evaluation import GoldError, read_gold
from ragkit.index import Index
from ragkit.readers import read_corpus, read_document

DEEP = "[" * 100_000 + "]" * 100_000
PODCAST = "Ana (00:01):\nThe river rose in spring.\n\nBen (00:09):\nThen the garden flooded twice.\n"


def test_deeply_nested_json_transcript_is_a_transcript_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text(DEEP, encoding="utf-8")
    with pytest.raises(TranscriptError, match="deep.json: JSON nested too deeply"):
        read_document(path)


def test_deeply_nested_sidecar_and_speakers_file_are_errors(tmp_path: Path) -> None:
    (tmp_path / "ep.txt").write_text(PODCAST, encoding="utf-8")
    (tmp_path / "ep.meta.json").write_text(DEEP, encoding="utf-8")
    with pytest.raises(TranscriptError, match="ep.meta.json: JSON nested too deeply"):
        read_document(tmp_path / "ep.txt")
    (tmp_path / "ep.meta.json").unlink()
    (tmp_path / "speakers.json").write_text(DEEP, encoding="utf-8")
    with pytest.raises(RagkitError, match="speakers.json: JSON nested too deeply"):
        read_corpus(tmp_path)


def test_deeply_nested_gold_line_is_a_gold_error(tmp_path: Path) -> None:
    gold = tmp_path / "gold.jsonl"
    gold.write_text(DEEP + "\n", encoding="utf-8")
    with pytest.raises(GoldError, match="line 1: JSON nested too deeply"):
        read_gold(gold)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_times_are_rejected(tmp_path: Path, value: str) -> None:
    path = tmp_path / "whisper.json"
    path.write_text('{"segments": [{"start": ' + value + ', "end": 2.0, "text": "Hello there."}]}', encoding="utf-8")
    with pytest.raises(TranscriptError, match=r"whisper.json.*start.*expected a finite number of seconds"):
        read_document(path)


def test_a_bad_file_in_a_corpus_is_named_and_nothing_crashes_later(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "ok.txt").write_text(PODCAST, encoding="utf-8")
    (corpus / "nan.json").write_text('{"segments": [{"start": NaN, "end": 2.0, "text": "x"}]}', encoding="utf-8")
    code, out, err = run(["index", str(corpus), "-o", str(tmp_path / "idx"), "-e", "hash:64"], capsys)
    assert code == 0 and "nan.json" in err and "finite" in err and "1 file skipped" in out, (out, err)
    assert [s["path"] for s in Index.load(tmp_path / "idx").manifest["sources"]] == ["ok.txt"]


def test_lone_surrogates_in_json_become_replacement_characters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "s.json").write_text(
        '{"segments": [{"start": 0, "end": 2, "speaker": "Ana\\ud800", "text": "The river \\udc00rose in spring."},'
        ' {"start": 2, "end": 4, "speaker": "Ben", "text": "Then the garden flooded."}]}',
        encoding="utf-8",
    )
    doc = read_document(corpus / "s.json")
    assert {t.speaker for t in doc.turns} == {"Ana\ufffd", "Ben"}
    index = Index.build([doc], embedder="hash:64")
    index.save(tmp_path / "idx")
    code, out, err = run(["search", "river", "-i", str(tmp_path / "idx"), "--json"], capsys)
    assert code == 0, err
    out.encode("utf-8")  # no lone surrogate reaches the output
    assert "Ana\ufffd" in json.loads(out)["hits"][0]["chunk"]["text"]


def test_an_empty_json_file_is_skipped_like_other_empty_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "ok.txt").write_text(PODCAST, encoding="utf-8")
    (corpus / "empty.json").write_bytes(b"")
    docs = read_corpus(corpus)
    assert [d.source for d in docs] == ["ok.txt"]
    assert "empty.json" in caplog.text


def test_an_unreadable_subfolder_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = tmp_path / "c"
    (corpus / "locked").mkdir(parents=True)
    (corpus / "locked" / "hidden.txt").write_text(PODCAST, encoding="utf-8")
    (corpus / "ok.txt").write_text(PODCAST, encoding="utf-8")
    real_scandir = os.scandir

    def scandir(path: object = ".") -> object:
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", scandir)
    docs = read_corpus(corpus)
    assert [d.source for d in docs] == ["ok.txt"]
    assert "locked: cannot read this folder (Permission denied); skipped" in caplog.text


def test_symlinks_out_of_the_corpus_are_not_followed_unless_asked(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(PODCAST.replace("river", "password"), encoding="utf-8")
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "ok.txt").write_text(PODCAST, encoding="utf-8")
    (corpus / "status.txt").symlink_to("/proc/self/status")
    (corpus / "leak.txt").symlink_to(outside / "secret.txt")
    (corpus / "inside.txt").symlink_to(corpus / "ok.txt")
    assert sorted(d.source for d in read_corpus(corpus)) == ["inside.txt"]  # a link within the corpus is read; ok.txt is its duplicate
    assert "leak.txt" in caplog.text and "outside the corpus" in caplog.text
    assert sorted(d.source for d in read_corpus(corpus, follow_symlinks=True) if d.source != "status.txt") == ["inside.txt", "leak.txt"]


def test_index_cli_has_a_follow_symlinks_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "other.txt").write_text(PODCAST.replace("river", "canal"), encoding="utf-8")
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "ok.txt").write_text(PODCAST, encoding="utf-8")
    (corpus / "other.txt").symlink_to(outside / "other.txt")
    code, _, err = run(["index", str(corpus), "-o", str(tmp_path / "a"), "-e", "hash:64"], capsys)
    assert code == 0 and "other.txt" in err
    assert [d.source for d in Index.load(tmp_path / "a").documents.values()] == ["ok.txt"]
    code, _, err = run(["index", str(corpus), "-o", str(tmp_path / "b"), "-e", "hash:64", "--follow-symlinks"], capsys)
    assert code == 0, err
    assert sorted(Index.load(tmp_path / "b").documents) == ["ok.txt", "other.txt"]


def test_public_api_unchanged() -> None:
    assert ragkit.read_corpus is read_corpus and ragkit.read_document is read_document
