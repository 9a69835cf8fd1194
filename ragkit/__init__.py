"""ragkit: semantic search and cited answers over transcripts."""

from __future__ import annotations

__version__ = "0.1.0"

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

# Modules load on first attribute access so `import ragkit` (and so `ragkit --help`) stays fast: even the
# records wait, as building their slotted dataclasses costs about 10 ms.
_LAZY = {
    **{name: "datatypes" for name in ("Answer", "Chunk", "Citation", "Document", "Hit", "Turn")},
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

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # later lookups skip __getattr__
        return value
    raise AttributeError(f"module 'ragkit' has no attribute {name!r}")
