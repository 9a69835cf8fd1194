"""Search options: the scorer, its weights, the boosts and the context budget, validated once."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ..errors import UsageError

MODES = ("hybrid", "rrf", "dense", "lexical")
DEFAULT_BUDGET = 0  # tokens of assembled context; 0 returns plain chunks
DENSE_DEPTH = 300  # dense candidates per query; chunks below them get the lowest retrieved score (300 ~ 1000 on QMSum)
RRF_K = 60
CANDIDATES = 30  # ranked chunks handed to passage assembly (at least 3k)
STRIP_NAMES = True


@dataclass(frozen=True, slots=True)
class SearchOptions:
    """How `Index.search` ranks: the scorer, its dense weight, transcript-aware boosts and the context budget."""

    mode: str = "hybrid"  # hybrid (weighted score fusion), rrf (reciprocal rank fusion), dense, lexical
    weight: float = 0.6  # dense share in hybrid and rrf; BM25 gets 1 - weight
    budget: int = DEFAULT_BUDGET  # tokens of context assembled from the top hits; 0 = plain chunks
    speaker_boost: float = 0.2  # added in proportion to the text spoken by speakers the query names
    source_weight: float = 0.2  # BM25 of the whole source, added when a search spans several sources

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"--mode {self.mode!r}: choose one of {', '.join(MODES)}")
        if not 0.0 <= self.weight <= 1.0:
            raise UsageError(f"--weight {self.weight}: the dense weight must be between 0 and 1, e.g. --weight 0.5")
        if isinstance(self.budget, bool) or not isinstance(self.budget, int) or self.budget < 0:
            raise UsageError(f"--budget {self.budget!r}: give a whole number of tokens (0 for plain chunks), e.g. --budget 1000")
        if self.speaker_boost < 0 or self.source_weight < 0:
            raise UsageError("speaker_boost and source_weight must be 0 or more")


def search_options(options: dict[str, Any]) -> SearchOptions:
    """Options from keyword arguments; None means the default, unknown names are an error."""
    names = {f.name for f in fields(SearchOptions)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise UsageError(f"unknown search option {unknown[0]!r}; use one of {', '.join(sorted(names))}")
    return SearchOptions(**{k: v for k, v in options.items() if v is not None})


def describe(options: SearchOptions | None = None) -> dict[str, Any]:
    """The options as a plain dict (for reports and manifests)."""
    opts = options or SearchOptions()
    return {f.name: getattr(opts, f.name) for f in fields(opts)}
