"""A model-free hashing embedder: deterministic bag of words, for fast tests."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .base import Progress, normalize

if TYPE_CHECKING:
    import numpy as np


class HashEmbedder:
    """Deterministic bag-of-words hashing: fast and model-free, for unit tests."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.spec = f"hash:{dim}"

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dim
                out[row, bucket] += 1.0 if digest[4] & 1 else -1.0
        if progress:
            progress(len(texts), len(texts))
        out[np.all(out == 0, axis=1), 0] = 1.0
        return normalize(out)

    def count_tokens(self, text: str) -> int:
        return len(text.split())
