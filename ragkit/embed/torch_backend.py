"""The sentence-transformers (torch) backend: imported only when an index or query really needs it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import EmbedderError, MissingDependencyError
from .base import (
    DEFAULT_MODEL,
    Progress,
    length_sorted_batches,
    local_model_dir,
    model_tokenizer,
    normalize,
    quiet_hub,
    resolve_model,
)

if TYPE_CHECKING:
    import numpy as np


class SentenceTransformerEmbedder:
    """A sentence-transformers model by name or path; imported only when first used."""

    backend = "torch"

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 32) -> None:
        self.model_name = model
        self.spec = f"st:{model}"
        self.batch_size = batch_size
        self._model = None
        self._dim: int | None = None

    @property
    def model(self):  # noqa: ANN201 - the SentenceTransformer type is a heavy import
        if self._model is None:
            quiet_hub()
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise MissingDependencyError("sentence-transformers", "torch") from exc
            path = str(local_model_dir(self.model_name))
            try:
                self._model = SentenceTransformer(path, device="cpu")
            except Exception as exc:  # noqa: BLE001 - any load failure gets one clear message
                raise EmbedderError(
                    f"embedder {self.spec!r}: cannot load model {path!r} ({type(exc).__name__}: {exc}); "
                    "pass an existing sentence-transformers model folder with -e st:PATH"
                ) from exc
        return self._model

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.model.get_embedding_dimension())
        return self._dim

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        done = 0
        for batch in length_sorted_batches(texts, self.batch_size):
            vecs = self.model.encode([texts[i] for i in batch], batch_size=len(batch), convert_to_numpy=True)
            out[batch] = vecs
            done += len(batch)
            if progress:
                progress(done, len(texts))
        return normalize(out)

    def count_tokens(self, text: str) -> int:
        return len(model_tokenizer(resolve_model(self.model_name)).encode(text).ids)
