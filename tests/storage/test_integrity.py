"""A damaged, foreign or busy index is refused with a clear error before any parser sees bad bytes; no pickle."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import pickle
import random
import re
import resource
import signal
import subprocess
import sys
import time
import tokenize
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import ragkit
from ragkit.cli import main
from ragkit.errors import EmbedderMismatchError, IndexFormatError
from ragkit.index.core import Index

ROOT = Path(__file__).resolve().parents[2]
WORDS = "data compute model tomato garden river budget design sound light vector search answer meeting water sun".split()
FILES = ["s000001.db", "s000001.f32", "manifest.json", "manifest.json.sha256"]
# Written through os.write (SQLite writes its database in C; the RLIMIT test below covers it with real kernel errors).
PY_WRITTEN = [".f32", "manifest.json", "manifest.json.sha256"]  # the update writes segment s000002
CORRUPT = re.compile(r"index is corrupt: .+ rebuild with `ragkit index --force`")


def write_corpus(folder: Path, files: int, seed: int = 0, turns: int = 10) -> Path:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        parts = []
        for t in range(turns):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 30)))
            parts.append(f"{rng.choice(['Ana', 'Ben', 'Cho'])} (00:{t:02d}):\n{words}.\n")
        (folder / f"ep{i:03d}.txt").write_text("\n".join(parts), encoding="utf-8")
    return folder


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def cli(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ragkit.cli", *args], capture_output=True, text=True, timeout=300, **kw)  # type: ignore[call-overload]


def snapshot(parent: Path, name: str = "idx") -> dict[str, object]:
    """Everything a reader could see: the folder listing, the link and every byte of the current version."""
    target = parent / name
    folder = target.resolve()
    return {
        "names": sorted(n for n in os.listdir(parent) if n != f".{name}.lock"),
        "link": os.readlink(target),
        "files": {n: (folder / n).read_bytes() for n in sorted(os.listdir(folder))},
    }


@pytest.fixture()
def index_dir(tmp_path: Path) -> Path:
    Index.build(ragkit.read_corpus(write_corpus(tmp_path / "c", 3)), embedder="hash:64", corpus=[tmp_path / "c"]).save(tmp_path / "idx")
    return tmp_path / "idx"


# ------------------------------------------------------------------ write errors


@pytest.mark.parametrize("victim", PY_WRITTEN)
def test_disk_full_while_saving_any_file_keeps_the_old_index(
    tmp_path: Path, index_dir: Path, victim: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = write_corpus(tmp_path / "c2", 4, seed=9)
    before = snapshot(tmp_path)
    real_write = os.write

    def full_disk(fd: int, data: bytes) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(victim if victim.startswith(".") else "/" + victim):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk)
    code, _, err = run(["index", str(corpus), "-o", str(index_dir), "-e", "hash:64"], capsys)
    assert code == 1
    assert re.search(rf"{re.escape(victim)}: cannot write \(No space left on device\)", err), err
    assert snapshot(tmp_path) == before  # byte-identical, and no staging folder left behind
    assert Index.load(index_dir).search("tomato", k=1)


def test_failed_publish_keeps_the_old_index(tmp_path: Path, index_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = write_corpus(tmp_path / "c2", 4, seed=9)
    before = snapshot(tmp_path)

    def no_rename(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "rename", no_rename)
    code, _, err = run(["index", str(corpus), "-o", str(index_dir), "-e", "hash:64"], capsys)
    assert code == 1 and "cannot publish" in err and str(index_dir) in err
    assert snapshot(tmp_path) == before


def test_real_write_error_from_the_kernel_in_a_cli_run(tmp_path: Path, index_dir: Path) -> None:
    """RLIMIT_FSIZE makes the kernel refuse writes past a size (EFBIG), for FAISS and Python alike."""
    corpus = write_corpus(tmp_path / "c2", 6, seed=9)
    before = snapshot(tmp_path)
    limit = 4096

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    proc = cli(["index", str(corpus), "-o", str(index_dir), "-e", "hash:64"], preexec_fn=small_files)
    assert proc.returncode == 1, proc.stderr
    match = re.search(r"(\S+): cannot write \((File too large|database or disk is full|disk I/O error)\)", proc.stderr)
    assert match and re.fullmatch(r"s\d{6}\.(db|f32)|manifest\.json(\.sha256)?", Path(match.group(1)).name), proc.stderr
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------ corruption


def _forge(folder: Path, edit: Callable[[dict], None]) -> None:
    """Rewrite the manifest and its checksum consistently, as a buggy writer or a careful tamperer would."""
    manifest = json.loads((folder / "manifest.json").read_text())
    edit(manifest)
    data = json.dumps(manifest).encode()
    (folder / "manifest.json").write_bytes(data)
    (folder / "manifest.json.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  manifest.json\n")


def _rehash(manifest: dict, folder: Path, name: str) -> None:
    data = (folder / name).read_bytes()
    manifest["segments"][name.split(".")[0]]["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def _miscount(folder: Path, delta: int) -> None:
    def edit(m: dict) -> None:
        m["counts"]["chunks"] += delta
        m["counts"]["vectors"] += delta

    _forge(folder, edit)


def _mutations() -> dict[str, tuple[Callable[[Path, Path], None], bool]]:
    """name -> (damage(folder, other_index_folder), whether the manifest stays checksum-valid)."""
    out: dict[str, tuple[Callable[[Path, Path], None], bool]] = {}
    for name in FILES:
        intact = not name.startswith("manifest")
        out[f"truncated-{name}"] = (lambda f, o, n=name: (f / n).write_bytes((f / n).read_bytes()[: (f / n).stat().st_size // 2]), intact)
        out[f"zero-{name}"] = (lambda f, o, n=name: (f / n).write_bytes(b""), intact)
        out[f"random-{name}"] = (lambda f, o, n=name: (f / n).write_bytes(os.urandom(max(1, (f / n).stat().st_size))), intact)
        out[f"missing-{name}"] = (lambda f, o, n=name: (f / n).unlink(), intact)
        out[f"flipped-byte-{name}"] = (lambda f, o, n=name: _flip(f / n), intact)
        out[f"from-other-index-{name}"] = (lambda f, o, n=name: (f / n).write_bytes((o / n).read_bytes()), intact)
    out["swapped-records-and-vectors"] = (lambda f, o: _swap(f / "s000001.db", f / "s000001.f32"), True)
    out["manifest-pair-from-other-index"] = (_copy_manifest_pair, True)
    out["manifest-counts-a-chunk-more"] = (lambda f, o: _miscount(f, 1), True)
    out["manifest-counts-a-chunk-less"] = (lambda f, o: _miscount(f, -1), True)
    out["manifest-source-in-unknown-segment"] = (lambda f, o: _forge(f, lambda m: m["sources"][0].update(segment="s000009")), True)
    out["manifest-wrong-shape"] = (lambda f, o: _forge(f, lambda m: m["embedder"].update(dim="384")), True)
    out["manifest-backend-not-a-name"] = (lambda f, o: _forge(f, lambda m: m["embedder"].update(backend=["onnx"])), True)
    out["manifest-lists-no-vectors"] = (lambda f, o: _forge(f, lambda m: m["segments"]["s000001"]["files"].pop("s000001.f32")), True)
    return out


def _copy_manifest_pair(folder: Path, other: Path) -> None:
    for name in ("manifest.json", "manifest.json.sha256"):
        (folder / name).write_bytes((other / name).read_bytes())


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _swap(a: Path, b: Path) -> None:
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)


MUTATIONS = _mutations()


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_damaged_index_is_refused_before_any_record_is_parsed(tmp_path: Path, index_dir: Path, case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other"
    Index.build(ragkit.read_corpus(write_corpus(tmp_path / "oc", 2, seed=3)), embedder="hash:64").save(other)
    damage, manifest_valid = MUTATIONS[case]
    folder = index_dir.resolve()
    damage(folder, other.resolve())
    allowed = {(folder / "manifest.json").read_text(errors="replace")} if manifest_valid else set()
    parsed: list[str] = []
    real_loads = json.loads

    def spy(text: str | bytes, *a: object, **k: object) -> object:
        parsed.append(text if isinstance(text, str) else text.decode(errors="replace"))
        return real_loads(text, *a, **k)

    monkeypatch.setattr(json, "loads", spy)
    # Opening refuses structural damage (sizes, counts, missing files, a foreign manifest); damage that keeps every
    # size (a flipped byte, random bytes) is found by verify, which hashes every file before parsing any record.
    with pytest.raises(IndexFormatError) as exc:
        Index.load(index_dir).verify()
    assert CORRUPT.search(str(exc.value)), str(exc.value)
    assert set(parsed) <= allowed  # at most the intact, checksum-verified manifest was parsed


def test_damage_through_the_cli_needs_force(tmp_path: Path, index_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vectors = index_dir.resolve() / "s000001.f32"
    vectors.write_bytes(vectors.read_bytes()[:-4])
    for argv in (["search", "tomato", "-i", str(index_dir)], ["index", str(tmp_path / "c"), "-o", str(index_dir)], ["info", "-i", str(index_dir)],
                 ["verify", "-i", str(index_dir)]):
        code, _, err = run(argv, capsys)
        assert code == 1 and CORRUPT.search(err) and "s000001.f32" in err, err
    code, out, _ = run(["index", str(tmp_path / "c"), "-o", str(index_dir), "--force", "-e", "hash:64"], capsys)
    assert code == 0 and "full rebuild: --force" in out
    assert Index.load(index_dir).search("tomato", k=1)


def test_dangling_link_is_corrupt(index_dir: Path) -> None:
    folder = index_dir.resolve()
    for name in os.listdir(folder):
        (folder / name).unlink()
    folder.rmdir()
    with pytest.raises(IndexFormatError, match="which is missing.*--force"):
        Index.load(index_dir)


def test_newer_format_version_names_both_versions(index_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ragkit.storage.manifest import FORMAT_VERSION

    newer = FORMAT_VERSION + 1
    _forge(index_dir.resolve(), lambda m: m.update(format_version=newer))
    with pytest.raises(IndexFormatError, match=rf"format version {newer} is newer .*\(version {FORMAT_VERSION}\)"):
        Index.load(index_dir)
    code, _, err = run(["index", "-o", str(index_dir)], capsys)  # an older ragkit never overwrites it without --force
    assert code == 1 and f"version {newer}" in err


# ------------------------------------------------------------------ another embedder


@pytest.mark.parametrize("spec", ["hash:128", "st:paraphrase-MiniLM-L3-v2", "all-MiniLM-L6-v2"])
def test_query_with_another_embedder_fails_and_names_both(index_dir: Path, spec: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ragkit.storage.local.LocalStore.search", lambda *a, **k: pytest.fail("search ran"))
    code, out, err = run(["search", "tomato", "-i", str(index_dir), "-e", spec], capsys)
    assert code == 1 and not out
    assert "'hash:64' (64 dims)" in err and repr(spec) in err, err


@pytest.mark.integration
def test_real_model_index_refuses_a_hash_query_of_the_same_dimension(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = write_corpus(tmp_path / "c", 1, turns=4)
    code, _, err = run(["index", str(corpus), "-o", str(tmp_path / "idx")], capsys)
    assert code == 0, err
    for spec in ("hash:384", "hash:128"):
        with pytest.raises(EmbedderMismatchError, match=r"'st:all-MiniLM-L6-v2' \(384 dims\)"):
            Index.load(tmp_path / "idx", embedder=spec)
    assert Index.load(tmp_path / "idx", embedder="sentence-transformers/all-MiniLM-L6-v2").search("tomato", k=1)


# ------------------------------------------------------------------ two writers


GATED = '''
import os, time
from ragkit.embed import HashEmbedder

class Gated(HashEmbedder):
    """Blocks in embed() until the test opens the gate, so two runs overlap for sure."""

    def __init__(self):
        super().__init__(64)
        self.spec = "gatepkg.emb:Gated"

    def embed(self, texts, progress=None):
        gate = os.environ["GATE"]
        open(gate + ".waiting", "w").close()
        while not os.path.exists(gate):
            time.sleep(0.02)
        return super().embed(texts, progress)
'''


def _gated_env(tmp_path: Path) -> dict[str, str]:
    pkg = tmp_path / "plug" / "gatepkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "emb.py").write_text(GATED)
    path = os.pathsep.join(filter(None, [str(tmp_path / "plug"), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "GATE": str(tmp_path / "gate")}


def _wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the first run never reached embedding"
        time.sleep(0.02)


def test_second_writer_fails_fast_with_the_holders_pid(tmp_path: Path) -> None:
    corpus, target, env = write_corpus(tmp_path / "c", 3), tmp_path / "idx", _gated_env(tmp_path)
    first = subprocess.Popen([sys.executable, "-m", "ragkit.cli", "index", str(corpus), "-o", str(target), "-e", "gatepkg.emb:Gated"], env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(tmp_path / "gate.waiting", first)
        second = cli(["index", str(corpus), "-o", str(target), "-e", "hash:64"], env=env)
        assert second.returncode == 1 and f"index is locked by PID {first.pid}" in second.stderr, second.stderr
        (tmp_path / "gate").touch()
        assert first.wait(timeout=120) == 0
    finally:
        first.kill()
        first.communicate()
    assert Index.load(target).manifest["embedder"]["spec"] == "gatepkg.emb:Gated"


def test_lock_of_a_killed_writer_does_not_block_the_next_run(tmp_path: Path) -> None:
    corpus, target, env = write_corpus(tmp_path / "c", 3), tmp_path / "idx", _gated_env(tmp_path)
    first = subprocess.Popen([sys.executable, "-m", "ragkit.cli", "index", str(corpus), "-o", str(target), "-e", "gatepkg.emb:Gated"], env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(tmp_path / "gate.waiting", first)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert (tmp_path / ".idx.lock").read_text().strip() == str(first.pid)  # the stale PID is still written there
    proc = cli(["index", str(corpus), "-o", str(target), "-e", "hash:64"], env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(Index.load(target).documents) == 3


# ------------------------------------------------------------------ no pickle


class Planted:
    """Unpickling this creates the marker file: proof that something loaded a pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (Path.touch, (self.marker,))


def test_planted_pickles_are_never_loaded(tmp_path: Path, index_dir: Path) -> None:
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(Planted(marker))
    pickle.loads(payload)  # noqa: S301 - our own payload: proves it would leave the marker
    assert marker.exists()
    marker.unlink()
    folder = index_dir.resolve()
    for name in ("vectors.pkl", "index.pkl", "chunks.pkl", "manifest.pkl", "store.pickle"):
        (folder / name).write_bytes(payload)
        (tmp_path / name).write_bytes(payload)
    np.save(folder / "vectors.npy", np.array([Planted(marker)], dtype=object), allow_pickle=True)
    for argv in (["search", "tomato", "-i", str(index_dir), "--json"], ["info", "-i", str(index_dir)], ["index", "-o", str(index_dir)]):
        proc = cli(argv, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    assert not marker.exists()


BANNED_MODULES = {"pickle", "cPickle", "_pickle", "cloudpickle", "dill", "shelve", "marshal", "joblib"}


def banned_uses(source: str) -> list[str]:
    """Pickle-family modules, allow_pickle other than False, builtin eval/exec and torch.load, in code (not comments)."""
    found = []
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type not in (tokenize.COMMENT, tokenize.NL)]
    for i, tok in enumerate(tokens):
        prev = tokens[i - 1].string if i else ""
        nxt = tokens[i + 1].string if i + 1 < len(tokens) else ""
        after = tokens[i + 2].string if i + 2 < len(tokens) else ""
        if tok.type == tokenize.NAME and tok.string in BANNED_MODULES:
            found.append(f"line {tok.start[0]}: {tok.string}")
        if tok.type == tokenize.STRING and tok.string.strip("'\"") in BANNED_MODULES:
            found.append(f"line {tok.start[0]}: {tok.string}")
        if tok.string == "allow_pickle" and nxt == "=" and after != "False":
            found.append(f"line {tok.start[0]}: allow_pickle={after}")
        if tok.string in ("eval", "exec") and nxt == "(" and prev != ".":
            found.append(f"line {tok.start[0]}: {tok.string}(")
        if tok.string == "load" and prev == "." and i >= 2 and tokens[i - 2].string == "torch":
            found.append(f"line {tok.start[0]}: torch.load")
    return found


def test_scanner_catches_what_it_must() -> None:
    bad = "import pickle\nfrom dill import loads\nnp.load(f, allow_pickle=True)\neval('1')\nexec('x')\ntorch.load(p)\n__import__('marshal')\n"
    assert len(banned_uses(bad)) == 7
    assert banned_uses("np.load(f, allow_pickle=False)\nmodel.eval()\n# no pickle here\n") == []


def test_package_has_no_pickle_eval_or_exec() -> None:
    problems = {}
    for path in sorted((ROOT / "ragkit").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        if found := banned_uses(source):
            problems[str(path.relative_to(ROOT))] = found
        if re.search(r"allow_pickle\s*=\s*True", source):
            problems.setdefault(str(path.relative_to(ROOT)), []).append("allow_pickle=True")
    assert not problems, problems
