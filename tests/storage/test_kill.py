"""SIGKILL during `ragkit index`, and readers during rebuilds: the index is always the complete old or new one."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ragkit.chunking import chunk_corpus
from ragkit.embed import HashEmbedder, load_embedder
from ragkit.index.core import Index

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "ragkit.cli"]
WORDS = "data compute model tomato garden river budget design sound light vector search answer meeting water sun".split()
RANDOM_KILLS = 32


def write_transcript(path: Path, rng: random.Random, turns: int) -> None:
    parts = [f"{rng.choice(['Ana', 'Ben', 'Cho'])} (00:{t:02d}):\n{' '.join(rng.choice(WORDS) for _ in range(rng.randint(6, 40)))}.\n" for t in range(turns)]
    path.write_text("\n".join(parts), encoding="utf-8")


def write_corpus(folder: Path, files: int, seed: int, turns: int = 20, prefix: str = "ep") -> Path:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        write_transcript(folder / f"{prefix}{i:03d}.txt", rng, turns)
    return folder


def mutate(folder: Path, rng: random.Random, step: int) -> None:
    """Edit, delete or add a file, so every run has something new to publish."""
    files = sorted(folder.glob("*.txt"))
    if step % 3 == 1 and len(files) > 5:
        rng.choice(files).unlink()
    elif step % 3 == 2:
        write_transcript(folder / f"new{step:03d}.txt", rng, 20)
    else:
        path = rng.choice(files)
        path.write_text(path.read_text(encoding="utf-8") + f"\nAna (00:59):\nedit {step} {rng.choice(WORDS)} {rng.choice(WORDS)}.\n", encoding="utf-8")


def corpus_state(folder: Path) -> frozenset[tuple[str, str]]:
    return frozenset((p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in folder.glob("*.txt"))


def check_complete(target: Path, embedder: str = "hash:256", sample: int | None = None) -> frozenset[tuple[str, str]]:
    """Load the index, prove it is one whole build (chunks and vectors match its sources), return its sources."""
    index = Index.load(target)
    docs = list(index.documents.values())
    assert index.chunks == chunk_corpus(docs, index.settings)
    rows = list(range(len(index.chunks))) if sample is None else random.Random(0).sample(range(len(index.chunks)), sample)
    # The backend that embedded the build: int8 runs one text per batch, so its vectors are reproducible too.
    emb = HashEmbedder(256) if embedder == "hash:256" else load_embedder(embedder, backend=index.manifest["embedder"].get("backend"))
    expected = emb.embed([index.chunks[i].text for i in rows])
    np.testing.assert_allclose(index.store.vectors()[rows], expected, atol=1e-5)
    assert index.search("tomato garden water", k=3)
    return frozenset((d.source, d.sha256) for d in docs)


def temp_entries(parent: Path) -> list[str]:
    return sorted(n for n in os.listdir(parent) if n.startswith(".idx.tmp-"))


def version_entries(parent: Path) -> list[str]:
    return sorted(n for n in os.listdir(parent) if n.startswith(".idx.v-"))


def index_cmd(corpus: Path, target: Path, *extra: str) -> list[str]:
    return [*CLI, "index", str(corpus), "-o", str(target), "-e", "hash:256", *extra]


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_the_old_or_the_new_index(tmp_path: Path) -> None:
    corpus, target = write_corpus(tmp_path / "c", 40, seed=1), tmp_path / "idx"
    started = time.perf_counter()
    subprocess.run(index_cmd(corpus, target), check=True, capture_output=True)
    one_run = time.perf_counter() - started
    state, rng, outcomes = check_complete(target), random.Random(7), Counter()
    loop_started = time.perf_counter()
    for step in range(RANDOM_KILLS):
        mutate(corpus, rng, step)
        new = corpus_state(corpus)
        proc = subprocess.Popen(index_cmd(corpus, target, *(["--force"] if step % 4 == 0 else [])), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, one_run * 1.1))
        proc.send_signal(signal.SIGKILL)
        killed = proc.wait() == -signal.SIGKILL
        seen = check_complete(target)
        assert seen in (state, new), f"kill {step}: the index is neither the old nor the new corpus"
        outcomes["new" if seen == new else "old", "killed" if killed else "finished", "leftovers" if temp_entries(tmp_path) else "clean"] += 1
        state = seen
    subprocess.run(index_cmd(corpus, target), check=True, capture_output=True)
    assert check_complete(target) == corpus_state(corpus)
    assert temp_entries(tmp_path) == [] and len(version_entries(tmp_path)) <= 2
    print(f"\n{RANDOM_KILLS} random kills in {time.perf_counter() - loop_started:.1f} s (one run {one_run:.2f} s): {dict(outcomes)}")


INJECT = r"""
import atexit, os, signal, sys
from ragkit.storage import diskio, lock

STEP, CALLS = int(os.environ["KILL_AT_STEP"]), 0
WATCHED = {"open", "write", "pwrite", "fsync", "close", "ftruncate", "rename", "replace", "symlink", "mkdir", "unlink", "rmdir"}


class KillingOs:
    # os as seen by ragkit.diskio and ragkit.lock: the STEP-th file-system call is never made; SIGKILL instead
    def __getattr__(self, name):
        real = getattr(os, name)
        if name not in WATCHED:
            return real

        def call(*args, **kwargs):
            global CALLS
            CALLS += 1
            if CALLS == STEP:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)

        return call


diskio.os = lock.os = KillingOs()
atexit.register(lambda: sys.stderr.write(f"\nSTEPS {CALLS}\n"))
from ragkit.cli import main

main(sys.argv[1:])
"""


def run_killed_at(step: int, corpus: Path, target: Path) -> tuple[int, int, str]:
    """(exit status, pid, stderr) of `ragkit index` killed just before its step-th file-system call."""
    args = [sys.executable, "-c", INJECT, "index", str(corpus), "-o", str(target), "-e", "hash:256"]
    proc = subprocess.Popen(args, env={**os.environ, "KILL_AT_STEP": str(step)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, proc.pid, err


@pytest.mark.slow
def test_sigkill_before_every_file_system_step_of_a_save(tmp_path: Path) -> None:
    """Deterministic: kill at each open/write/fsync/rename/symlink/... of the lock and the save, in turn."""
    corpus, target = write_corpus(tmp_path / "c", 6, seed=2, turns=8), tmp_path / "idx"
    subprocess.run(index_cmd(corpus, target), check=True, capture_output=True)
    rng = random.Random(3)
    mutate(corpus, rng, 0)
    code, _, err = run_killed_at(0, corpus, target)
    assert code == 0, err
    steps = int(err.rsplit("STEPS ", 1)[1])
    assert steps >= 20  # lock, four files with their opens, writes and fsyncs, renames, link
    state = check_complete(target)
    for step in range(1, steps + 1):
        mutate(corpus, rng, step)
        new = corpus_state(corpus)
        code, pid, err = run_killed_at(step, corpus, target)
        assert code == -signal.SIGKILL, f"step {step} of {steps} was not reached: {err}"
        seen = check_complete(target)
        assert seen in (state, new), f"killed at step {step}: neither old nor new"
        state = seen
        earlier = [n for n in temp_entries(tmp_path) if f".tmp-{pid}-" not in n]
        assert earlier == [], f"step {step}: leftovers of an earlier run were not cleaned: {earlier}"
        # current + previous, plus at most one this run had no time to remove (or to publish)
        assert len(version_entries(tmp_path)) <= 3, f"step {step}: versions pile up: {version_entries(tmp_path)}"
    subprocess.run(index_cmd(corpus, target), check=True, capture_output=True)
    assert check_complete(target) == corpus_state(corpus) and temp_entries(tmp_path) == []
    print(f"\nkilled before each of {steps} file-system steps")


@pytest.mark.integration
@pytest.mark.slow
def test_sigkill_during_a_real_model_build(tmp_path: Path) -> None:
    corpus, target = tmp_path / "seeds", tmp_path / "idx"
    shutil.copytree(ROOT / "seeds", corpus)
    cmd = [*CLI, "index", str(corpus), "-o", str(target)]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    one_run = time.perf_counter() - started
    spec = Index.load(target).manifest["embedder"]["spec"]
    state, rng, outcomes = check_complete(target, spec, sample=5), random.Random(5), Counter()
    for step in range(3):
        path = sorted(corpus.glob("*.txt"))[0]
        path.write_text(path.read_text(encoding="utf-8") + f"\n\nHost (59:0{step}):\nA closing remark number {step} about {rng.choice(WORDS)}.\n", encoding="utf-8")
        new = corpus_state(corpus) | {(p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in corpus.glob("*.md")}
        proc = subprocess.Popen([*cmd, "--force"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.0) * one_run)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        seen = check_complete(target, spec, sample=5)
        assert seen in (state, new)
        outcomes["new" if seen == new else "old", "leftovers" if temp_entries(tmp_path) else "clean"] += 1
        state = seen
    subprocess.run(cmd, check=True, capture_output=True)
    assert temp_entries(tmp_path) == [] and len(version_entries(tmp_path)) <= 2
    print(f"\nreal model: one build {one_run:.1f} s; after 3 kills: {dict(outcomes)}")


READER = r"""
import json, logging, sys
from pathlib import Path
from ragkit.index.core import Index

target, stop, expected = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
retries = []


class Retries(logging.Handler):
    def emit(self, record):
        retries.append(record.getMessage())


logging.getLogger("ragkit.index.core").addHandler(Retries())
logging.getLogger("ragkit.index.core").setLevel(logging.DEBUG)
seen, errors, loads = {}, [], 0
while not stop.exists() or loads == 0:
    try:
        index = Index.load(target)
        key = min(index.documents)[0]  # corpus "a" or "b"
        if len(index) != expected[key] or not index.search("tomato garden", k=3):
            raise AssertionError(f"{key}: {len(index)} chunks, expected {expected[key]}")
        seen[key] = seen.get(key, 0) + 1
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    loads += 1
print(json.dumps({"loads": loads, "seen": seen, "errors": errors[:5], "error_count": len(errors), "retries": len(retries)}))
"""

WRITER = r"""
import sys
from ragkit.index.update import refresh

target, a, b, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
for i in range(rounds):
    refresh(target, [a if i % 2 else b], "hash:256", force=True)
"""


@pytest.mark.slow
def test_readers_in_other_processes_never_fail_during_rebuilds(tmp_path: Path) -> None:
    a, b = write_corpus(tmp_path / "a", 12, seed=4, prefix="a"), write_corpus(tmp_path / "b", 16, seed=5, prefix="b")
    target, stop = tmp_path / "idx", tmp_path / "stop"
    expected = {}
    for name, corpus in (("a", a), ("b", b)):
        subprocess.run(index_cmd(corpus, target, "--force"), check=True, capture_output=True)
        expected[name] = len(Index.load(target))
    readers = [
        subprocess.Popen([sys.executable, "-c", READER, str(target), str(stop), json.dumps(expected)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        subprocess.run([sys.executable, "-c", WRITER, str(target), str(a), str(b), "30"], check=True, capture_output=True, timeout=600)
    finally:
        stop.touch()
    reports = [json.loads(r.communicate(timeout=120)[0]) for r in readers]
    for report in reports:
        assert report["error_count"] == 0, report["errors"]
        assert set(report["seen"]) == {"a", "b"}, report  # each reader saw both versions come and go
    print(f"\nreaders: {[(r['loads'], r['seen'], r['retries']) for r in reports]}")
