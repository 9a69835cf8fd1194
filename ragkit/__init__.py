"""ragkit: semantic search and cited answers over transcripts."""

from __future__ import annotations

__version__ = "0.1.0"

from .datatypes import Answer, Chunk, Citation, Document, Hit, Turn  # noqa: E402
from .errors import RagkitError  # noqa: E402

__all__ = [
    "Answer",
    "Chunk",
    "ChunkSettings",
    "Citation",
    "Document",
    "Hit",
    "Index",
    "RagkitError",
    "Turn",
    "__version__",
    "ask",
    "load_embedder",
    "read_corpus",
    "read_document",
]

# Heavier modules load on first attribute access so `import ragkit` stays fast.
_LAZY = {
    "Index": "index",
    "ChunkSettings": "chunking",
    "ask": "answer",
    "load_embedder": "embed",
    "read_corpus": "readers",
    "read_document": "readers",
}


def __getattr__(name: str):  # noqa: ANN202
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'ragkit' has no attribute {name!r}")
