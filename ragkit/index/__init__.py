"""Index: binds a store, an embedder and the settings; builds, saves, loads, updates and searches."""

from .core import Index, SourceStatus, check_query
from .update import pending_update, recorded_corpus, refresh

__all__ = ["Index", "SourceStatus", "check_query", "pending_update", "recorded_corpus", "refresh"]
