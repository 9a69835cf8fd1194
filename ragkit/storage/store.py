"""The Store protocol: what an index needs of its storage (records, vectors, BM25 postings, speakers).

LocalStore (a folder of segments) implements it; a database-backed store can implement the same seam.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

    from ..datatypes import Chunk, Document


class Scorer(Protocol):
    """BM25 over one kind of row (chunks, or whole sources) with global statistics of the live rows."""

    @property
    def rows(self) -> int: ...

    def df(self, term: str) -> int: ...

    def dfs(self, terms: Iterable[str]) -> dict[str, int]: ...

    def scores(self, query: Sequence[str]) -> np.ndarray: ...


class Store(Protocol):
    """An index's data by logical chunk id (sources in corpus order, each source's chunks in order)."""

    kind: str  # "local" or "postgres"
    manifest: dict[str, Any]
    names: list[str]  # source names in corpus order
    starts: list[int]  # source n's chunks are the ids starts[n] to starts[n + 1] - 1
    dim: int
    chunk_bm25: Scorer
    source_bm25: Scorer

    def __len__(self) -> int: ...

    def alive(self) -> bool: ...

    def prefetch_postings(self, part: int, terms: set[str]) -> None: ...

    def chunk(self, i: int) -> Chunk: ...

    def chunks_of(self, source: str) -> list[tuple[int, Chunk]]: ...

    def source_range(self, source: str) -> tuple[int, int]: ...

    def document(self, source: str) -> Document: ...

    def source_entries(self) -> list[dict[str, Any]]: ...

    def lex_names(self) -> tuple[str, ...]: ...

    def search(self, query: np.ndarray, k: int, ids: Sequence[int] | None = None) -> list[tuple[int, float]]: ...

    def vectors(self) -> np.ndarray: ...

    def vector_rows(self, ids: Sequence[int]) -> np.ndarray: ...

    def find_text(self, text: str) -> int | None: ...

    def speaker_labels(self) -> set[str]: ...

    def speaker_rows(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]: ...
