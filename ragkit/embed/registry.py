"""Embedder specs (`st:<model>`, `hash:<dim>`, `package.module:Class`) to embedders, choosing the backend."""

from __future__ import annotations

import importlib
import logging
import os
from functools import lru_cache
from pathlib import Path

from ..errors import EmbedderError, MissingDependencyError, UsageError
from .base import BACKEND_ENV, BACKENDS, DEFAULT_EMBEDDER, INT8_BACKEND, Embedder, local_model_dir, quiet_hub
from .hashing import HashEmbedder
from .torch_backend import SentenceTransformerEmbedder

log = logging.getLogger(__name__)


def load_embedder(spec: str | Embedder | None = None, backend: str | None = None, *, build: bool = False) -> Embedder:
    """An embedder from its spec: `st:<model>`, `hash:<dim>` or `package.module:Class`.

    `backend` applies to `st:` specs only: "onnx" runs the cached ONNX export (made now if missing, which
    needs torch once), "torch" runs sentence-transformers, "auto" tries ONNX and falls back to torch with
    one warning. Both give the same vectors, so an index built with one is searched with the other.
    "onnx-int8" is the smoothed int8 export: faster, within cosine ~0.999 of the others' vectors.
    `build=True` (embedding an index's chunks) makes "auto" prefer onnx-int8 when its accuracy check passed.
    """
    # The CLI's --embedder-backend reaches every load (build, query, eval) through this variable.
    quiet_hub()  # before anything imports huggingface_hub: it reads the offline switch once, at import
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


def is_code_spec(spec: str) -> bool:
    """A `package.module:Class` spec: loading it imports and runs that code."""
    kind, _, arg = spec.partition(":")
    return bool(kind and arg and "." in kind)


def refuse_code_spec(spec: str, where: object) -> None:
    """An index is data: it may name a built-in embedder, never code to import (anyone can reseal a manifest)."""
    if is_code_spec(spec):
        raise EmbedderError(
            f"{where} names the custom embedder {spec!r}, which ragkit never imports on an index's word; "
            f"if you trust it, pass it for this run: -e {spec} (Python: Index.load(path, embedder={spec!r}))"
        )


def index_embedder(spec: str, where: object = "the index") -> Embedder:
    """The embedder an index was built with, from built-in specs only (`st:`, `hash:`)."""
    refuse_code_spec(spec, where)
    return load_embedder(spec)


def _st_embedder(model: str, backend: str, build: bool = False) -> Embedder:
    local_model_dir(model)  # a missing model is one clear error now, not a fallback that tries the network
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
