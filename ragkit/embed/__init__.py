"""Embed: the `Embedder` protocol and its backends (ONNX fp32/int8, sentence-transformers, hashing), chosen by spec."""

from .base import (
    BACKEND_ENV,
    BACKENDS,
    DEFAULT_EMBEDDER,
    DEFAULT_MODEL,
    INT8_BACKEND,
    Embedder,
    Progress,
    bundled_model_path,
    model_tokenizer,
    resolve_model,
)
from .hashing import HashEmbedder
from .registry import ensure_onnx_export, index_embedder, is_code_spec, load_embedder, refuse_code_spec
from .torch_backend import SentenceTransformerEmbedder

__all__ = [
    "BACKENDS", "BACKEND_ENV", "DEFAULT_EMBEDDER", "DEFAULT_MODEL", "INT8_BACKEND", "Embedder", "HashEmbedder", "Progress",
    "SentenceTransformerEmbedder", "bundled_model_path", "ensure_onnx_export", "index_embedder", "is_code_spec", "load_embedder", "refuse_code_spec", "model_tokenizer", "resolve_model",
]
