"""Index save/load: the versioned layout, leftovers, the writer lock, embedder checks (hash embedder, real FAISS)."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import numpy as np
import pytest

import ragkit
from ragkit.errors import EmbedderMismatchError, IndexLockedError, MissingIndexError, RagkitError
from ragkit.index.core import Index
from ragkit.storage import diskio
from ragkit.storage.lock import index_lock, lock_path

WORDS = "data compute model tomato garden river budget design sound light vector search answer meeting water sun".split()


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


def build(corpus: Path, dim: int = 64) -> Index:
    return Index.build(ragkit.read_corpus(corpus), embedder=f"hash:{dim}", corpus=[corpus])


def versions(target: Path) -> list[str]:
    return sorted(n for n in os.listdir(target.parent) if n.startswith(f".{target.name}.v-"))


def test_round_trip_keeps_chunks_vectors_documents_and_search(tmp_path: Path) -> None:
    index = build(write_corpus(tmp_path / "c", 4))
    index.save(tmp_path / "idx")
    loaded = Index.load(tmp_path / "idx")
    assert loaded.chunks == index.chunks
    assert list(loaded.documents.values()) == list(index.documents.values())
    np.testing.assert_array_equal(loaded.store.vectors(), index.store.vectors())
    assert [h.chunk.id for h in loaded.search("tomato garden", k=5)] == [h.chunk.id for h in index.search("tomato garden", k=5)]
    assert loaded.manifest["corpus"] == [str((tmp_path / "c").resolve())]


def test_layout_is_a_symlink_to_a_version_with_checksummed_manifest(tmp_path: Path) -> None:
    build(write_corpus(tmp_path / "c", 2)).save(tmp_path / "idx")
    target = tmp_path / "idx"
    assert target.is_symlink() and os.readlink(target).startswith(".idx.v-")
    files = sorted(os.listdir(target))
    assert files == ["manifest.json", "manifest.json.sha256", "s000001.db", "s000001.f32"]
    line = (target / "manifest.json.sha256").read_text()
    assert line.endswith("  manifest.json\n") and len(line.split()[0]) == 64  # `sha256sum -c` format
    manifest = json.loads((target / "manifest.json").read_text())
    for name, meta in manifest["segments"]["s000001"]["files"].items():
        assert diskio.file_digest(target / name) == meta


def test_repeated_saves_keep_current_and_previous_version_only(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c", 2)
    target = tmp_path / "idx"
    seen = []
    for _ in range(4):
        build(corpus).save(target)
        seen.append(os.readlink(target))
    assert versions(target) == sorted(seen[-2:])
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]


def test_next_save_removes_leftover_staging_folders_and_orphan_versions(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c", 2)
    target = tmp_path / "idx"
    build(corpus).save(target)
    current = os.readlink(target)
    junk = [tmp_path / ".idx.tmp-999999-1", tmp_path / ".idx.v-99999999999999999999"]  # killed writers' leftovers
    for path in junk:
        path.mkdir()
        (path / "chunks.jsonl").write_text("partial")
    os.symlink(current, tmp_path / ".idx.tmp-999999-2.link")
    build(corpus).save(target)
    names = os.listdir(tmp_path)
    assert not any(n.startswith(".idx.tmp-") for n in names)
    assert ".idx.v-99999999999999999999" not in names and current in names


def test_cleanup_leaves_other_indexes_alone(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c", 2)
    for name in ("a", "a.v-b", "ab"):
        build(corpus).save(tmp_path / name)
    for _ in range(3):
        build(corpus).save(tmp_path / "a")
    for name in ("a.v-b", "ab"):
        assert Index.load(tmp_path / name).chunks


def test_plain_index_folder_is_adopted_into_the_versioned_layout(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c", 2)
    build(corpus).save(tmp_path / "idx")
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in os.listdir(tmp_path / "idx"):
        (plain / name).write_bytes((tmp_path / "idx" / name).read_bytes())
    assert Index.load(plain).chunks
    build(write_corpus(tmp_path / "c2", 3, seed=5)).save(plain)
    assert plain.is_symlink() and len(Index.load(plain).documents) == 3
    assert any(n.endswith("-legacy") for n in versions(plain))  # the old one is kept as the previous version


def test_folder_that_is_not_an_index_is_never_replaced(tmp_path: Path) -> None:
    target = tmp_path / "notes"
    target.mkdir()
    (target / "todo.txt").write_text("keep me")
    with pytest.raises(RagkitError, match="not a ragkit index"):
        build(write_corpus(tmp_path / "c", 1)).save(target)
    assert (target / "todo.txt").read_text() == "keep me"


def test_a_user_symlink_to_an_index_folder_is_followed(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c", 2)
    real = tmp_path / "store" / "idx"
    build(corpus).save(real)
    link = tmp_path / "link"
    os.symlink(real, link)
    build(write_corpus(tmp_path / "c2", 3, seed=1)).save(link)
    assert os.readlink(link) == str(real) and len(Index.load(real).documents) == 3


def test_lost_link_after_a_crash_is_read_and_restored(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c", 2)
    target = tmp_path / "idx"
    build(corpus).save(target)
    version = os.readlink(target)
    target.unlink()  # what a kill between moving a plain folder aside and linking leaves
    assert Index.load(target).chunks  # readers use the newest complete version
    build(corpus).save(target)
    assert target.is_symlink() and version in versions(target)


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_no_index_is_a_missing_index_error(tmp_path: Path, make: str) -> None:
    if make == "empty":
        (tmp_path / "idx").mkdir()
    with pytest.raises(MissingIndexError, match="ragkit index"):
        Index.load(tmp_path / "idx")


def test_lock_is_exclusive_reentrant_and_names_the_holder(tmp_path: Path) -> None:
    target = tmp_path / "idx"
    with index_lock(target) as path:
        assert path == lock_path(target.absolute()) and path.read_text().strip() == str(os.getpid())
        with index_lock(target):  # the same thread may re-enter (save inside a locked build)
            pass
        pid = os.fork()
        if pid == 0:  # another process must be refused at once
            try:
                with index_lock(target):
                    os._exit(0)
            except IndexLockedError as exc:
                os._exit(3 if f"index is locked by PID {os.getppid()}" in str(exc) else 4)
            os._exit(5)
        assert os.waitpid(pid, 0)[1] >> 8 == 3
    with index_lock(target):  # released on exit
        pass


def test_save_refuses_while_another_process_holds_the_lock(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c", 1)
    target = tmp_path / "idx"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # holds the lock until killed
        with index_lock(target):
            os.write(write, b"x")
            time.sleep(60)
        os._exit(0)
    os.read(read, 1)
    try:
        with pytest.raises(IndexLockedError, match=f"PID {pid}"):
            build(corpus).save(target)
        assert not target.exists()
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    build(corpus).save(target)  # the kernel released the killed holder's lock


def test_embedder_mismatch_names_both_and_never_searches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build(write_corpus(tmp_path / "c", 2), dim=256).save(tmp_path / "idx")
    monkeypatch.setattr("ragkit.storage.local.LocalStore.search", lambda *a, **k: pytest.fail("search ran"))
    with pytest.raises(EmbedderMismatchError) as exc:
        Index.load(tmp_path / "idx", embedder="hash:128").search("tomato")
    assert "'hash:256' (256 dims)" in str(exc.value) and "'hash:128'" in str(exc.value)


class OddDimEmbedder:
    """Claims the index's spec but gives vectors of another size (a model swapped on disk)."""

    spec = "hash:256"
    dim = 128

    def embed(self, texts, progress=None):  # noqa: ANN001, ANN201
        return np.ones((len(texts), self.dim), np.float32)

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def test_same_spec_other_dimension_names_both_dims(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build(write_corpus(tmp_path / "c", 2), dim=256).save(tmp_path / "idx")
    monkeypatch.setattr("ragkit.storage.local.LocalStore.search", lambda *a, **k: pytest.fail("search ran"))
    index = Index.load(tmp_path / "idx", embedder=OddDimEmbedder())
    with pytest.raises(EmbedderMismatchError, match=r"\(256 dims\).*gives 128 dims"):
        index.search("tomato")
