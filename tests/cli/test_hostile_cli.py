"""Hostile input at the command line (issue 19): terminal and link injection, undecodable arguments, no network."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_main as run
from conftest import run_process as cli

from ragkit.index import Index
from ragkit.readers import read_corpus

PODCAST = "Ana (00:01):\nThe river rose in spring.\n\nBen (00:09):\nThen the garden flooded twice.\n"
ESCAPES = "\x1b]0;PWNED\x07\x1b[2J"


def test_escape_sequences_in_file_names_never_reach_the_terminal(tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "ok.txt").write_text(PODCAST, encoding="utf-8")
    (corpus / f"bad{ESCAPES}.json").write_text("{not json", encoding="utf-8")
    missing = tmp_path / f"gone{ESCAPES}"
    for args in (["index", str(corpus), "-o", str(tmp_path / "idx"), "-e", "hash:64"], ["search", "x", "-i", str(missing)]):
        result = cli(args)
        assert "\x1b" not in result.stderr + result.stdout and "\x07" not in result.stderr, repr(result.stderr)
        assert "\\x1b" in result.stderr, result.stderr  # escaped, so the user still sees which file it was


def test_newlines_in_titles_urls_and_names_cannot_forge_output_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "ep1.txt").write_text(PODCAST, encoding="utf-8")
    forged = "x\n 2. [9.999] FORGED RESULT\nlink: javascript:alert(1)//"
    (corpus / "ep1.meta.json").write_text(json.dumps({"title": forged, "url": "javascript:alert(1)//"}), encoding="utf-8")
    (corpus / "ep2.txt").write_text(PODCAST.replace("river", "canal"), encoding="utf-8")
    (corpus / "ep2.meta.json").write_text(json.dumps({"title": "Two", "url": "https://example.org/ep2\n 3. [9.9] FORGED"}), encoding="utf-8")
    Index.build(read_corpus(corpus), embedder="hash:64").save(tmp_path / "idx")
    for extra in ([], ["--context", "1"], ["--link-template", "{url}\n 4. [9.9] FORGED"]):
        code, out, err = run(["search", "river canal", "-i", str(tmp_path / "idx"), "-k", "2", *extra], capsys)
        assert code in (0, 2), err
        assert not any(line.lstrip().startswith(("2. [9.999]", "3. [9.9]", "4. [9.9]", "link: javascript")) for line in out.splitlines()), out
    code, out, _ = run(["search", "river canal", "-i", str(tmp_path / "idx"), "-k", "2", "--json"], capsys)
    links = [h["link"] for h in json.loads(out)["hits"]]
    assert all(link is None or link.startswith(("http://", "https://")) for link in links), links


@pytest.mark.parametrize("template", ["javascript:alert({start})", "file:///etc/passwd?{start}", "data:text/html,{source}"])
def test_a_link_template_must_make_http_links(tmp_path: Path, capsys: pytest.CaptureFixture[str], template: str) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "ep1.txt").write_text(PODCAST, encoding="utf-8")
    Index.build(read_corpus(corpus), embedder="hash:64").save(tmp_path / "idx")
    code, _, err = run(["search", "river", "-i", str(tmp_path / "idx"), "--link-template", template], capsys)
    assert code == 2 and "http://" in err and len(err.strip().splitlines()) == 1, err


def test_a_query_with_bytes_that_are_not_utf8_is_decoded_with_replacement(tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "ep1.txt").write_text(PODCAST.replace("river", "café"), encoding="utf-8")
    Index.build(read_corpus(corpus), embedder="hash:64").save(tmp_path / "idx")
    query = os.fsdecode(b"caf\xe9 spring")
    for extra in ([], ["--json"]):
        result = subprocess.run([sys.executable, "-m", "ragkit.cli", "search", query, "-i", str(tmp_path / "idx"), *extra],
                                capture_output=True, timeout=120)
        assert result.returncode == 0, result.stderr
        result.stdout.decode("utf-8")  # valid UTF-8 whatever the argument held
        assert b"not valid UTF-8" in result.stderr
        if extra:
            assert json.loads(result.stdout)["query"] == "caf\ufffd spring"


@pytest.mark.integration
def test_a_missing_model_fails_at_once_without_touching_the_network(tmp_path: Path) -> None:
    """The hub endpoint is pointed at a loopback socket that records connections: none may arrive."""
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "ep1.txt").write_text(PODCAST, encoding="utf-8")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
        env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf"), RAGKIT_CACHE_DIR=str(tmp_path / "cache"))
        for backend in ("auto", "torch"):
            start = time.monotonic()
            result = cli(["--embedder-backend", backend, "index", str(corpus), "-o", str(tmp_path / f"i-{backend}"),
                          "-e", "st:someone/not-a-model"], env=env)
            took = time.monotonic() - start
            assert result.returncode == 1 and "not on disk" in result.stderr and "-e st:PATH" in result.stderr, result.stderr
            assert len(result.stderr.strip().splitlines()) <= 2 and took < 30, (took, result.stderr)
            with pytest.raises(BlockingIOError):
                listener.accept()  # nobody tried to download anything
