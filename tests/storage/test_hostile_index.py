"""Hostile index folders (issue 19): code named by an index, symlinks, FIFOs, crafted records, failed publishes."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from test_integrity import CORRUPT, _forge, _rehash, cli, run, write_corpus

import ragkit
from ragkit.errors import EmbedderError, IndexFormatError, MissingIndexError, RagkitError
from ragkit.index import Index
from ragkit.storage import diskio


@pytest.fixture()
def index_dir(tmp_path: Path) -> Path:
    Index.build(ragkit.read_corpus(write_corpus(tmp_path / "c", 3)), embedder="hash:64", corpus=[tmp_path / "c"]).save(tmp_path / "idx")
    return tmp_path / "idx"


# ---------------------------------------------------------------- 1. an index names code


def _plant_module(tmp_path: Path) -> Path:
    """A module that, if ever imported, leaves a marker file: the test fails if the marker appears."""
    pkg = tmp_path / "plant" / "plantpkg"
    pkg.mkdir(parents=True)
    marker = tmp_path / "IMPORTED"
    (pkg / "planted.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "class Emb:\n    spec = 'plantpkg.planted:Emb'\n    dim = 64\n"
        "    def embed(self, texts, progress=None):\n        import numpy as np\n        v = np.ones((len(texts), 64), np.float32)\n"
        "        return v / np.linalg.norm(v, axis=1, keepdims=True)\n"
        "    def count_tokens(self, text):\n        return len(text.split())\n",
        encoding="utf-8",
    )
    return marker


@pytest.mark.parametrize("spec", ["plantpkg.planted:Emb", "unittest.main:main", "http.server:test"])
def test_an_index_cannot_make_ragkit_import_code(tmp_path: Path, index_dir: Path, spec: str) -> None:
    marker = _plant_module(tmp_path)
    _forge(index_dir.resolve(), lambda m: m["embedder"].update(spec=spec))
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "plant")}
    for args in (["search", "data", "-i", str(index_dir)], ["ask", "data", "-i", str(index_dir)], ["index", "-o", str(index_dir)]):
        result = cli(args, env=env)
        assert result.returncode == 1, (args, result.stderr)
        assert f"names the custom embedder {spec!r}" in result.stderr and f"-e {spec}" in result.stderr, result.stderr
        assert len([ln for ln in result.stderr.splitlines() if ln.startswith("error")]) == 1 and "Traceback" not in result.stderr
        assert not marker.exists()


def test_a_custom_embedder_passed_explicitly_is_trusted_for_that_run(tmp_path: Path, index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = _plant_module(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path / "plant"))
    _forge(index_dir.resolve(), lambda m: m["embedder"].update(spec="plantpkg.planted:Emb"))
    with pytest.raises(EmbedderError, match="names the custom embedder 'plantpkg.planted:Emb'"):
        Index.load(index_dir).search("data")
    assert not marker.exists()
    assert Index.load(index_dir, embedder="plantpkg.planted:Emb").search("data", k=2)
    assert marker.exists()


# ---------------------------------------------------------------- 4 and 10. symlinks at the index location


def test_writing_through_a_symlink_takes_the_same_lock(tmp_path: Path, index_dir: Path) -> None:
    latest = tmp_path / "latest"
    latest.symlink_to("idx")
    corpus = tmp_path / "c"
    gate = tmp_path / "gate" / "gatepkg"
    gate.mkdir(parents=True)
    # The first writer embeds with a class that waits for a file, so both writers overlap for certain.
    (gate / "gated.py").write_text(
        "import time, pathlib\nclass Emb:\n    spec = 'gatepkg.gated:Emb'\n    dim = 64\n"
        f"    def embed(self, texts, progress=None):\n        pathlib.Path({str(tmp_path / 'started')!r}).write_text('x')\n"
        f"        while not pathlib.Path({str(tmp_path / 'go')!r}).exists():\n            time.sleep(0.05)\n"
        "        import numpy as np\n        v = np.ones((len(texts), 64), np.float32)\n        return v / 8.0\n"
        "    def count_tokens(self, text):\n        return len(text.split())\n",
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(gate.parent)}
    first = subprocess.Popen([sys.executable, "-m", "ragkit.cli", "index", str(corpus), "-o", str(latest), "--force", "-e", "gatepkg.gated:Emb"],
                             env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(600):
            if (tmp_path / "started").exists() or first.poll() is not None:
                break
            threading.Event().wait(0.05)
        second = cli(["index", str(corpus), "-o", str(index_dir), "--force", "-e", "hash:64"])
        assert second.returncode == 1 and "locked by PID" in second.stderr, second.stderr
    finally:
        (tmp_path / "go").write_text("go")
        first.communicate(timeout=120)
    assert first.returncode == 0, first.stderr
    assert latest.readlink() == Path("idx") and os.readlink(index_dir).startswith(".idx.v-")
    inner = [p.name for p in index_dir.resolve().iterdir() if p.name.startswith(".")]
    assert inner == [], inner  # no version was built inside the old one


def test_a_symlink_loop_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to("loop")
    corpus = write_corpus(tmp_path / "c", 1)
    for args in (["search", "x", "-i", str(loop)], ["info", "-i", str(loop)], ["index", str(corpus), "-o", str(loop)]):
        code, out, err = run(args, capsys)
        assert code == 1 and "symbolic link loop" in err and [ln for ln in err.splitlines() if not ln.startswith("reading ")] == [
            ln for ln in err.splitlines() if ln.startswith("error: ")] and err.count("error: ") == 1, (args, err)


# ---------------------------------------------------------------- 11 and 16. files that are not index files


@pytest.mark.parametrize("victim", ["manifest.json", "manifest.json.sha256", "s000001.db", "s000001.f32"])
def test_a_fifo_in_place_of_an_index_file_is_refused_at_once(index_dir: Path, victim: str) -> None:
    path = index_dir.resolve() / victim
    path.unlink()
    os.mkfifo(path)
    result = cli(["search", "data", "-i", str(index_dir)])
    assert result.returncode == 1 and "not a regular file" in result.stderr, result.stderr


def test_a_file_that_is_not_an_index_is_called_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n")
    code, _, err = run(["search", "x", "-i", str(passwd)], capsys)
    assert code == 1 and "is a file, not a ragkit index" in err and "corrupt" not in err, err
    with pytest.raises(MissingIndexError):
        Index.load(passwd)


def test_a_publish_that_fails_removes_the_new_version(tmp_path: Path, index_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted(os.listdir(tmp_path))
    real_symlink = os.symlink

    def no_inodes(src: object, dst: object, *a: object, **k: object) -> None:
        if ".tmp-" in str(dst):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_symlink(src, dst, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(diskio.os, "symlink", no_inodes)
    code, _, err = run(["index", str(tmp_path / "c"), "-o", str(index_dir), "--force", "-e", "hash:64"], capsys)
    assert code == 1 and "previous index is unchanged" in err
    assert sorted(os.listdir(tmp_path)) == before  # no orphaned version folder


@pytest.mark.parametrize(
    ("errno_", "expected", "unexpected"),
    [(errno.EACCES, "permission", "free disk space"), (errno.EROFS, "read-only", "free disk space"), (errno.ENOSPC, "free disk space", "permission")],
)
def test_write_errors_advise_the_right_fix(tmp_path: Path, errno_: int, expected: str, unexpected: str) -> None:
    message = str(diskio.write_error(tmp_path / "x", OSError(errno_, os.strerror(errno_))))
    assert expected in message.lower() and unexpected not in message.lower(), message


# ---------------------------------------------------------------- 12. crafted records with valid checksums


DB = "s000001.db"


def _edit_record(table: str, change: Callable[[dict], None], row: int = 0) -> Callable[[Path], None]:
    """Change one JSON record inside the segment database and reseal the manifest, as a careful tamperer would."""
    def apply(folder: Path) -> None:
        with sqlite3.connect(folder / DB) as conn:
            (text,) = conn.execute(f"SELECT record FROM {table} WHERE row = ?", (row,)).fetchone()
            record = json.loads(text)
            change(record)
            conn.execute(f"UPDATE {table} SET record = ? WHERE row = ?", (json.dumps(record), row))
        _forge(folder, lambda m: _rehash(m, folder, DB))

    return apply


def _edit_postings(change: Callable[[np.ndarray, np.ndarray], tuple[bytes, bytes]]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        with sqlite3.connect(folder / DB) as conn:
            for term, rows, tfs in conn.execute("SELECT term, rows, tfs FROM postings WHERE part = 0").fetchall():
                new_rows, new_tfs = change(np.frombuffer(rows, "<i4"), np.frombuffer(tfs, "<i4"))
                conn.execute("UPDATE postings SET rows = ?, tfs = ? WHERE part = 0 AND term = ?", (new_rows, new_tfs, term))
        _forge(folder, lambda m: _rehash(m, folder, DB))

    return apply


def _set(key: str, value: object) -> Callable[[dict], None]:
    return lambda r: r.__setitem__(key, value)


def _turn_field(pos: int, value: object) -> Callable[[dict], None]:
    return lambda r: r["turns"][0].__setitem__(pos, value)


CRAFTED: dict[str, Callable[[Path], None]] = {
    "chunk start is a string": _edit_record("chunks", _set("start", "0:01")),
    "chunk start is NaN": _edit_record("chunks", _set("start", float("nan"))),
    "chunk first_turn is a string": _edit_record("chunks", _set("first_turn", "x")),
    "chunk first_turn is huge": _edit_record("chunks", _set("first_turn", 1e9)),
    "chunk last_turn past the source": _edit_record("chunks", _set("last_turn", 10**6)),
    "chunk char_end past the source": _edit_record("chunks", _set("char_end", 10**9)),
    "chunk speakers are numbers": _edit_record("chunks", _set("speakers", [1, 2])),
    "chunk text is a number": _edit_record("chunks", _set("text", 5)),
    "chunk id is a number": _edit_record("chunks", _set("id", 5)),
    "chunk misses a field": _edit_record("chunks", lambda r: r.pop("char_end")),
    "chunk names another source": _edit_record("chunks", _set("source", "elsewhere.txt")),
    "source turn speaker is a number": _edit_record("sources", _turn_field(0, 7)),
    "source turn start is a list": _edit_record("sources", _turn_field(1, [1])),
    "source turn offsets reversed": _edit_record("sources", _turn_field(5, -1)),
    "source title is a number": _edit_record("sources", _set("title", 3)),
    "source speaker map holds numbers": _edit_record("sources", _set("speaker_map", {"A": 1})),
    "postings point past the chunks": _edit_postings(lambda rows, tfs: ((rows + 10**6).astype("<i4").tobytes(), tfs.tobytes())),
    "postings of two lengths": _edit_postings(lambda rows, tfs: (rows.tobytes(), tfs[:-1].tobytes() if len(tfs) else b"\0")),
    "manifest sources are numbers": lambda folder: _forge(folder, _set("sources", [5])),
    "manifest source misses its path": lambda folder: _forge(folder, lambda m: m["sources"][0].pop("path")),
    "manifest source points past its segment": lambda folder: _forge(folder, lambda m: m["sources"][0].update(first_chunk=10**6)),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_records_are_corrupt_not_a_traceback(index_dir: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    CRAFTED[case](index_dir.resolve())
    # Opening checks structure; a crafted record is found when a query reads it, and always by `ragkit verify`.
    with pytest.raises(IndexFormatError, match=CORRUPT):
        Index.load(index_dir).verify()
    # A query that reads the record fails the same way, or (a value only checkable against its source) answers;
    # never a traceback.
    code, out, err = run(["search", "data compute", "-k", "50", "-i", str(index_dir), "--json"], capsys)
    assert (code == 0 and not err.strip()) or (code == 1 and CORRUPT.search(err) and len(err.strip().splitlines()) == 1), err
    code, out, err = run(["verify", "-i", str(index_dir)], capsys)
    assert code == 1 and CORRUPT.search(err) and len(err.strip().splitlines()) == 1, err


def test_the_crafted_cases_are_accepted_before_tampering(index_dir: Path) -> None:
    """The harness itself: resealing an unchanged record keeps the index valid, so the cases above test the values."""
    _edit_record("chunks", lambda r: None)(index_dir.resolve())
    _edit_record("sources", lambda r: None)(index_dir.resolve())
    _edit_postings(lambda rows, tfs: (rows.tobytes(), tfs.tobytes()))(index_dir.resolve())
    index = Index.load(index_dir)
    assert index.search("data", k=50, budget=0) and index.verify().chunks == len(index)
    assert hashlib.sha256((index_dir / "manifest.json").read_bytes()).hexdigest() in (index_dir / "manifest.json.sha256").read_text()


def test_failures_are_ragkit_errors() -> None:
    assert issubclass(IndexFormatError, RagkitError) and issubclass(MissingIndexError, RagkitError)
