"""Vector stores: the protocol and the FAISS flat inner-product store."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

VECTORS_FILE = "vectors.faiss"


class VectorStore(Protocol):
    """Exact or approximate nearest neighbours by inner product; vector id = chunk position."""

    dim: int

    def __len__(self) -> int: ...

    def search(self, query: np.ndarray, k: int, ids: Sequence[int] | None = None) -> list[tuple[int, float]]: ...

    def vectors(self) -> np.ndarray: ...

    def save(self, path: Path) -> None: ...


class FaissStore:
    """faiss.IndexFlatIP: exact cosine search on normalized vectors."""

    def __init__(self, index) -> None:  # noqa: ANN001 - faiss is imported lazily
        self.index = index
        self.dim = int(index.d)

    @classmethod
    def from_vectors(cls, vectors: np.ndarray) -> FaissStore:
        import faiss
        import numpy as np

        index = faiss.IndexFlatIP(int(vectors.shape[1]))
        if len(vectors):
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return cls(index)

    @classmethod
    def from_bytes(cls, data: bytes) -> FaissStore:
        """Deserialize bytes that were already hash-checked (so FAISS never reads a corrupt file)."""
        import faiss
        import numpy as np

        return cls(faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8)))

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def vectors(self) -> np.ndarray:
        import numpy as np

        if not len(self):
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.index.reconstruct_n(0, len(self))

    def search(self, query: np.ndarray, k: int, ids: Sequence[int] | None = None) -> list[tuple[int, float]]:
        """Top-k (id, score) pairs, best first; `ids` restricts the search to those vectors."""
        import faiss
        import numpy as np

        total = len(self) if ids is None else len(ids)
        k = min(k, total)
        if k <= 0:
            return []
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        params = None
        if ids is not None:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(ids, dtype=np.int64)))
        scores, found = self.index.search(query, k, params=params)
        return [(int(i), float(s)) for i, s in zip(found[0], scores[0]) if i >= 0]

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(path))
