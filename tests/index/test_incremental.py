"""Incremental `ragkit index`: only new chunk texts are embedded, and the result equals a full rebuild."""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ragkit
from ragkit.cli import main
from ragkit.datatypes import Chunk
from ragkit.embed import HashEmbedder
from ragkit.index import update as incremental
from ragkit.index.core import Index
from ragkit.index.update import diff_chunks, merged_backend, update_index

ROOT = Path(__file__).resolve().parents[2]
WORDS = "data compute model tomato garden river budget design sound light vector search answer meeting water sun".split()
QUERIES = ["tomato garden water", "data compute budget", "meeting design answer"]


def turn_text(rng: random.Random, n: int = 10) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def write_file(path: Path, turns: list[str]) -> None:
    path.write_text("\n".join(f"{'AB'[i % 2]}na (00:{i:02d}):\n{t}.\n" for i, t in enumerate(turns)), encoding="utf-8")


def write_corpus(folder: Path, files: int, seed: int = 0, turns: int = 8) -> dict[str, list[str]]:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    content = {}
    for i in range(files):
        content[f"ep{i:03d}.txt"] = [turn_text(rng, rng.randint(6, 30)) for _ in range(turns)]
        write_file(folder / f"ep{i:03d}.txt", content[f"ep{i:03d}.txt"])
    return content


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def index_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    code, out, err = run(["index", *argv, "--json"], capsys)
    assert code == 0, err
    return json.loads(out)


def assert_same_index(a: Index, b: Index, atol: float = 1e-6) -> None:
    assert a.chunks == b.chunks
    assert list(a.documents.values()) == list(b.documents.values())
    assert a.manifest["embedder"] == b.manifest["embedder"] and a.manifest["chunking"] == b.manifest["chunking"]
    np.testing.assert_allclose(a.store.vectors(), b.store.vectors(), atol=atol)
    for query in QUERIES:
        ha, hb = a.search(query, k=8), b.search(query, k=8)
        assert [h.chunk.id for h in ha] == [h.chunk.id for h in hb]
        np.testing.assert_allclose([h.score for h in ha], [h.score for h in hb], atol=atol * 10)


@pytest.fixture()
def embedded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text the hash embedder is asked to embed."""
    texts: list[str] = []
    real = HashEmbedder.embed

    def spy(self: HashEmbedder, batch, progress=None):  # noqa: ANN001, ANN202
        texts.extend(batch)
        return real(self, batch, progress)

    monkeypatch.setattr(HashEmbedder, "embed", spy)
    return texts


def test_edit_delete_add_and_rename_reembed_only_new_texts_and_equal_a_full_rebuild(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], embedded: list[str]
) -> None:
    corpus, target = tmp_path / "c", tmp_path / "idx"
    content = write_corpus(corpus, 6)
    index_json([str(corpus), "-o", str(target), "-e", "hash:64"], capsys)
    old = Index.load(target)
    rng = random.Random(1)
    content["ep001.txt"][3] = turn_text(rng, 12)  # one turn edited
    write_file(corpus / "ep001.txt", content["ep001.txt"])
    (corpus / "ep002.txt").unlink()  # one file deleted
    write_file(corpus / "ep900.txt", [turn_text(rng) for _ in range(5)])  # one file added
    (corpus / "ep003.txt").rename(corpus / "ep903.txt")  # one file renamed: its texts are known
    embedded.clear()

    summary = index_json(["-o", str(target)], capsys)  # corpus, embedder and settings come from the index
    sent = list(embedded)
    new = Index.load(target)
    full_target = tmp_path / "full"
    index_json([str(corpus), "-o", str(full_target), "-e", "hash:64"], capsys)
    assert_same_index(new, Index.load(full_target))

    old_texts = {c.text for c in old.chunks}
    assert sorted(sent) == sorted({c.text for c in new.chunks} - old_texts)  # exactly the unknown texts, once each
    assert summary["embedded"] == len(sent) and not summary["full"] and summary["written"]
    by_source = Counter(c.source for c in new.chunks)
    untouched = sum(n for s, n in by_source.items() if s in ("ep000.txt", "ep004.txt", "ep005.txt"))
    assert summary["unchanged"] >= untouched
    assert summary["added"] >= by_source["ep900.txt"] + by_source["ep903.txt"]
    assert summary["removed"] >= Counter(c.source for c in old.chunks)["ep002.txt"]
    assert summary["added"] + summary["changed"] + summary["unchanged"] == len(new.chunks)
    assert summary["removed"] + summary["changed"] + summary["unchanged"] == len(old.chunks)


def test_counts_on_a_corpus_built_for_exact_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Turns too long to share a chunk: one chunk per turn, so the expected counts follow from the edit."""
    corpus, target, rng = tmp_path / "c", tmp_path / "idx", random.Random(2)
    corpus.mkdir()
    a = [turn_text(rng, 12) for _ in range(5)]
    write_file(corpus / "a.txt", a)
    write_file(corpus / "b.txt", [turn_text(rng, 12) for _ in range(4)])
    first = index_json([str(corpus), "-o", str(target), "-e", "hash:64", "--max-tokens", "20"], capsys)
    assert first["chunks"] == 9 and first["added"] == 9 and first["full"]  # precondition: one chunk per turn
    a[2] = turn_text(rng, 12)
    write_file(corpus / "a.txt", a)
    (corpus / "b.txt").unlink()
    write_file(corpus / "c.txt", [turn_text(rng, 12) for _ in range(3)])
    expected = "3 added, 1 changed, 4 removed, 4 unchanged"
    code, out, _ = run(["index", "-o", str(target), "--dry-run"], capsys)
    assert code == 0 and expected in out and "nothing written" in out
    code, out, _ = run(["info", "-i", str(target)], capsys)
    assert code == 0 and expected in out
    code, out, _ = run(["index", "-o", str(target)], capsys)
    assert code == 0 and expected in out and "embedded 4" in out


def test_dry_run_and_info_write_nothing_and_agree_with_the_update(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus, target = tmp_path / "c", tmp_path / "idx"
    content = write_corpus(corpus, 4)
    index_json([str(corpus), "-o", str(target), "-e", "hash:64"], capsys)
    content["ep000.txt"][0] = "completely new words about rivers"
    write_file(corpus / "ep000.txt", content["ep000.txt"])
    write_file(corpus / "ep777.txt", ["another file", "with two turns"])
    listing = sorted(os.listdir(tmp_path)), os.readlink(target)
    dry = index_json(["-o", str(target), "--dry-run"], capsys)
    code, out, _ = run(["info", "-i", str(target), "--json"], capsys)
    assert code == 0
    info = json.loads(out)["update"]
    assert (sorted(os.listdir(tmp_path)), os.readlink(target)) == listing
    real = index_json(["-o", str(target)], capsys)
    keys = ("added", "changed", "removed", "unchanged", "embedded", "chunks", "sources", "full")
    assert [dry[k] for k in keys] == [info[k] for k in keys] == [real[k] for k in keys]
    assert dry["dry_run"] and not dry["written"] and real["written"] and real["added"] >= 1


def test_unchanged_corpus_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str], embedded: list[str]) -> None:
    corpus, target = tmp_path / "c", tmp_path / "idx"
    write_corpus(corpus, 3)
    first = index_json([str(corpus), "-o", str(target), "-e", "hash:64"], capsys)
    link = os.readlink(target)
    embedded.clear()
    again = index_json([str(corpus), "-o", str(target)], capsys)
    assert not again["written"] and os.readlink(target) == link and embedded == []
    assert (again["unchanged"], again["added"], again["changed"], again["removed"]) == (first["chunks"], 0, 0, 0)


def test_force_reembeds_everything(tmp_path: Path, capsys: pytest.CaptureFixture[str], embedded: list[str]) -> None:
    corpus, target = tmp_path / "c", tmp_path / "idx"
    write_corpus(corpus, 3)
    index_json([str(corpus), "-o", str(target), "-e", "hash:64"], capsys)
    before = Index.load(target)
    embedded.clear()
    forced = index_json(["-o", str(target), "--force"], capsys)
    assert forced["full"] and forced["reason"] == "--force" and forced["written"]
    assert sorted(embedded) == sorted({c.text for c in before.chunks})
    assert_same_index(Index.load(target), before)


@pytest.mark.parametrize(("option", "reason"), [(["--max-tokens", "40"], "chunk settings changed"), (["--overlap", "1"], "chunk settings changed"), (["-e", "hash:32"], "embedder changed from hash:64 to hash:32")])
def test_other_settings_or_embedder_rebuild_fully(tmp_path: Path, capsys: pytest.CaptureFixture[str], option: list[str], reason: str) -> None:
    corpus, target = tmp_path / "c", tmp_path / "idx"
    write_corpus(corpus, 3)
    index_json([str(corpus), "-o", str(target), "-e", "hash:64"], capsys)
    summary = index_json(["-o", str(target), *option], capsys)
    assert summary["full"] and reason in summary["reason"] and summary["embedded"] == len({c.text for c in Index.load(target).chunks})
    spec = option[1] if option[0] == "-e" else "hash:64"
    extra = option if option[0] != "-e" else []
    index_json([str(corpus), "-o", str(tmp_path / "full"), "-e", spec, *extra], capsys)
    assert_same_index(Index.load(target), Index.load(tmp_path / "full"))


def test_update_index_in_python_equals_a_fresh_build(tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    content = write_corpus(corpus, 4, seed=3)
    previous = Index.build(ragkit.read_corpus(corpus), embedder="hash:64")
    content["ep003.txt"] = content["ep003.txt"][2:]
    write_file(corpus / "ep003.txt", content["ep003.txt"])
    docs = ragkit.read_corpus(corpus)
    updated, report = update_index(previous, docs)
    assert_same_index(updated, Index.build(docs, embedder="hash:64"))
    assert not report.full and report.removed >= 1


def _chunk(source: str, text: str, n: int) -> Chunk:
    return Chunk(f"{source}#{n}-{n}", source, source, text, (), n, n, None, None, None, 0, 1)


chunk_lists = st.lists(st.tuples(st.sampled_from("ab"), st.sampled_from("xyzw"), st.integers(0, 3)), max_size=12)


@settings(max_examples=200, deadline=None)
@given(chunk_lists, chunk_lists)
def test_diff_counts_always_add_up(old: list, new: list) -> None:
    old_chunks = list({(s, n): _chunk(s, t, n) for s, t, n in old}.values())  # ids are unique within an index
    new_chunks = list({(s, n): _chunk(s, t, n) for s, t, n in new}.values())
    added, changed, removed, unchanged = diff_chunks(old_chunks, new_chunks)
    assert min(added, changed, removed, unchanged) >= 0
    assert added + changed + unchanged == len(new_chunks)
    assert removed + changed + unchanged == len(old_chunks)
    both = Counter((c.source, c.text) for c in old_chunks) & Counter((c.source, c.text) for c in new_chunks)
    assert unchanged == sum(both.values())


@pytest.mark.integration
def test_real_model_update_after_editing_a_seed_equals_a_full_rebuild(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    corpus, target = tmp_path / "seeds", tmp_path / "idx"
    shutil.copytree(ROOT / "seeds", corpus)
    index_json([str(corpus), "-o", str(target)], capsys)
    old = Index.load(target)
    path = sorted(corpus.glob("*.txt"))[0]
    text = path.read_text(encoding="utf-8")
    middle = len(text) // 2
    cut = text.index("\n", middle)
    path.write_text(text[:cut] + " And one more sentence about tomatoes in the garden." + text[cut:], encoding="utf-8")
    texts: list[str] = []
    real_load = incremental.load_embedder

    def recording_load(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - whichever backend runs the model
        emb = real_load(*args, **kwargs)
        real_embed = emb.embed
        emb.embed = lambda batch, progress=None: texts.extend(batch) or real_embed(batch, progress)
        return emb

    monkeypatch.setattr(incremental, "load_embedder", recording_load)
    summary = index_json(["-o", str(target)], capsys)
    assert summary["written"] and not summary["full"] and 1 <= summary["embedded"] <= 3
    assert sorted(texts) == sorted({c.text for c in Index.load(target).chunks} - {c.text for c in old.chunks})
    index_json([str(corpus), "-o", str(tmp_path / "full")], capsys)
    assert_same_index(Index.load(target), Index.load(tmp_path / "full"), atol=1e-5)


@pytest.mark.parametrize(
    ("reused", "new", "recorded"),
    [
        ("onnx", "onnx", "onnx"), ("torch", "onnx", "onnx"), (None, "onnx", "onnx"), ("onnx-int8", "onnx-int8", "onnx-int8"),
        (None, None, None), ("onnx", "onnx-int8", "onnx+onnx-int8"), (None, "onnx-int8", "fp32+onnx-int8"),
        ("onnx-int8", "torch", "onnx-int8+torch"), ("onnx-int8+onnx", "onnx", "onnx-int8+onnx"), ("onnx-int8+onnx", "onnx-int8", "onnx-int8+onnx"),
    ],
)
def test_the_manifest_names_every_precision_an_update_mixed(reused: str | None, new: str | None, recorded: str | None) -> None:
    assert merged_backend(reused, new) == recorded


def _write_format_1(folder: Path, docs: list, chunks: list[Chunk], vectors: np.ndarray, corpus: Path) -> None:
    """An index as ragkit wrote it before format 2: JSON lines, a FAISS flat file and a manifest listing their sha256."""
    import hashlib
    from dataclasses import asdict

    import faiss

    from ragkit.chunking import ChunkSettings
    from ragkit.storage.records import document_record

    folder.mkdir()
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    files = {
        "chunks.jsonl": "".join(json.dumps(asdict(c)) + "\n" for c in chunks).encode(),
        "sources.jsonl": "".join(json.dumps(document_record(d)) + "\n" for d in docs).encode(),
        "vectors.faiss": faiss.serialize_index(flat).tobytes(),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    manifest = {
        "format_version": 1, "ragkit_version": "0.1.0", "created": "2026-01-01T00:00:00+00:00",
        "embedder": {"spec": "hash:64", "dim": 64}, "chunking": asdict(ChunkSettings()),
        "corpus": [str(corpus.resolve())], "counts": {"chunks": len(chunks), "sources": len(docs), "vectors": len(chunks)},
        "sources": [{"path": d.source} for d in docs],
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)} for name, data in files.items()},
    }
    data = json.dumps(manifest).encode()
    (folder / "manifest.json").write_bytes(data)
    (folder / "manifest.json.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  manifest.json\n")


def test_a_format_1_index_is_refused_by_queries_and_upgraded_by_index_without_embedding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], embedded: list[str]
) -> None:
    from ragkit.chunking import ChunkSettings, chunk_corpus

    write_corpus(tmp_path / "c", 3)
    docs = ragkit.read_corpus(tmp_path / "c")
    chunks = chunk_corpus(docs, ChunkSettings())
    # Vectors no embedder here would give (the hash vectors negated): finding them after the upgrade proves reuse.
    vectors = -HashEmbedder(64).embed([c.text for c in chunks])
    _write_format_1(tmp_path / "old", docs, chunks, vectors, tmp_path / "c")
    code, _, err = run(["search", "tomato", "-i", str(tmp_path / "old")], capsys)
    assert code == 1 and "format version 1" in err and f"ragkit index -o {tmp_path / 'old'}" in err, err
    embedded.clear()
    summary = index_json([str(tmp_path / "c"), "-o", str(tmp_path / "old")], capsys)
    assert summary["written"] and not summary["full"] and summary["embedded"] == 0 and embedded == []
    assert summary["unchanged"] == len(chunks) and summary["added"] == summary["removed"] == 0
    upgraded = Index.load(tmp_path / "old")
    assert upgraded.manifest["format_version"] == 2 and upgraded.chunks == chunks
    np.testing.assert_array_equal(upgraded.store.vectors(), vectors)
    assert upgraded.search("tomato garden", k=2)


def test_info_skips_hashing_files_whose_stamp_is_unchanged_and_still_sees_a_same_size_edit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ragkit.readers import corpus as reading

    monkeypatch.setattr(reading, "RACY_SECONDS", 0.0)  # the files were written just now
    hashed: list[str] = []
    real_fingerprint = reading.fingerprint
    monkeypatch.setattr(reading, "fingerprint", lambda path, *a, **kw: hashed.append(path.name) or real_fingerprint(path, *a, **kw))
    corpus, target = tmp_path / "c", tmp_path / "idx"
    write_corpus(corpus, 4)
    index_json([str(corpus), "-o", str(target), "-e", "hash:64"], capsys)
    assert sorted(hashed) == [f"ep{i:03d}.txt" for i in range(4)]  # the build hashes every file

    hashed.clear()
    code, out, _ = run(["info", "-i", str(target), "--json"], capsys)
    assert code == 0 and hashed == []  # nothing changed: stat alone says so
    assert {row["state"] for row in json.loads(out)["status"]} == {"unchanged"}

    # Same size, same mtime, other bytes: only the ctime (which no one can set back) tells.
    path = corpus / "ep002.txt"
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[data.index(b"(") - 1 : data.index(b"(")] = b"x"  # Ana/Bna -> one other letter before the time
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    hashed.clear()
    code, out, _ = run(["info", "-i", str(target), "--json"], capsys)
    info = json.loads(out)
    assert hashed == ["ep002.txt"]
    assert {row["source"]: row["state"] for row in info["status"]}["ep002.txt"] == "changed"
    real = index_json(["-o", str(target)], capsys)
    assert real["written"] and (info["update"]["changed"], info["update"]["added"]) == (real["changed"], real["added"])


def test_a_file_changed_within_the_racy_window_gets_no_stamp(tmp_path: Path) -> None:
    from ragkit.readers.corpus import RACY_SECONDS, read_corpus_report

    write_corpus(tmp_path / "c", 2)
    assert RACY_SECONDS >= 1
    assert set(read_corpus_report(tmp_path / "c").stamps.values()) == {""}  # written just now: must be hashed
    old = time.time() - 60
    for path in (tmp_path / "c").iterdir():
        os.utime(path, (old, old))  # mtime back, but the ctime is now: still no stamp
    assert set(read_corpus_report(tmp_path / "c").stamps.values()) == {""}
