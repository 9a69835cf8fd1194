"""Storage: the index folder on disk: atomic publish, locking, manifest and integrity, records, vectors and BM25 arrays."""

from .diskio import resolve_index, writable_target
from .lexical import LexicalIndex, query_terms, tokenize
from .lock import index_lock
from .manifest import FORMAT_VERSION, REBUILD, canonical_spec, read_manifest
from .vectors import FaissStore, VectorStore

__all__ = [
    "FORMAT_VERSION", "REBUILD", "FaissStore", "LexicalIndex", "VectorStore", "canonical_spec", "index_lock", "query_terms",
    "read_manifest", "resolve_index", "tokenize", "writable_target",
]
