"""Search: BM25 and dense scores fused, speaker- and source-aware, assembled into passages; deep links and context."""

from .context import with_context
from .deep_links import check_template, link_for, with_links
from .hybrid import Retriever, fuse, retriever
from .options import DEFAULT_BUDGET, MODES, SearchOptions, describe, search_options
from .speakers import SpeakerMatcher

__all__ = [
    "DEFAULT_BUDGET", "MODES", "Retriever", "SearchOptions", "SpeakerMatcher", "check_template", "describe", "fuse", "link_for",
    "retriever", "search_options", "with_context", "with_links",
]
