"""Storage: the index folder on disk: atomic publish, locking, manifest and integrity, segments of records,
vectors and postings, and the local store that reads them."""

from .diskio import resolve_index, writable_target
from .lexical import LexicalIndex, query_terms, tokenize
from .local import LocalStore
from .lock import index_lock
from .manifest import FORMAT_VERSION, REBUILD, canonical_spec, read_manifest
from .store import Store

__all__ = [
    "FORMAT_VERSION", "REBUILD", "LexicalIndex", "LocalStore", "Store", "canonical_spec", "index_lock", "query_terms",
    "read_manifest", "resolve_index", "tokenize", "writable_target",
]
