"""The ONNX side of an `st:` model: its layout, cache folder, tokenizer, onnxruntime session and pooling.

The export (torch needed, once per model) is cached under `<cache>/onnx/<model digest>/`; queries then need
only onnxruntime, tokenizers and numpy, and give the same vectors as sentence-transformers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import EmbedderError, MissingDependencyError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

# Bump when the export recipe changes: it is part of the cache key, so old exports are never reused.
EXPORT_VERSION = 6
OPSET = 17
MODEL_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
META_FILE = "export.json"
INT8_META_FILE = "int8.json"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Files whose bytes decide the vectors; README and training metadata do not.
_KEY_FILES = (
    "config.json", "modules.json", "sentence_bert_config.json", "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "model.safetensors", "pytorch_model.bin",
)
_MODULES = {"Transformer", "Pooling", "Normalize"}
_POOLING = ("cls", "max", "mean", "mean_sqrt_len_tokens")
_LEGACY_POOLING = {
    "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max", "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


class OnnxUnavailableError(EmbedderError):
    """The model cannot run through ONNX: unsupported modules, missing files, or a failed export."""


@dataclass(frozen=True, slots=True)
class ModelLayout:
    """What the sentence-transformers config files say about tokenizing and pooling."""

    path: Path
    max_seq_length: int
    hidden: int
    pooling: tuple[str, ...]
    do_lower_case: bool

    @property
    def dim(self) -> int:
        return self.hidden * len(self.pooling)


def cache_root() -> Path:
    """`$RAGKIT_CACHE_DIR/onnx`, by default `~/.cache/ragkit/onnx`."""
    base = os.environ.get("RAGKIT_CACHE_DIR") or Path.home() / ".cache" / "ragkit"
    return Path(base) / "onnx"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OnnxUnavailableError(f"{path}: cannot read JSON ({exc}); the model folder is incomplete") from exc
    if not isinstance(data, (dict, list)):
        raise OnnxUnavailableError(f"{path}: unexpected content; the model folder is incomplete")
    return data  # type: ignore[return-value]


def read_layout(path: Path) -> ModelLayout:
    """Tokenizer limit and pooling from modules.json, sentence_bert_config.json and the pooling config."""
    modules = _read_json(path / "modules.json") if (path / "modules.json").is_file() else []
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if [k for k in kinds if k not in _MODULES] or kinds[:2] != ["Transformer", "Pooling"]:
        raise OnnxUnavailableError(f"{path / 'modules.json'}: modules {kinds} are not Transformer, Pooling[, Normalize]; use the torch backend")
    pool_dir = path / next(m.get("path", "") for m in modules if m.get("type", "").endswith("Pooling"))
    pool = _read_json(pool_dir / "config.json")
    modes = pool.get("pooling_mode") or tuple(mode for key, mode in _LEGACY_POOLING.items() if pool.get(key)) or ("mean",)
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    if any(m not in _POOLING for m in modes):
        raise OnnxUnavailableError(f"{pool_dir / 'config.json'}: pooling {modes} is not supported by the ONNX backend; use the torch backend")
    st_config = _read_json(path / "sentence_bert_config.json") if (path / "sentence_bert_config.json").is_file() else {}
    config = _read_json(path / "config.json")
    limit = st_config.get("max_seq_length") or min(int(config.get("max_position_embeddings", 512)), 512)
    hidden = int(pool.get("word_embedding_dimension") or pool.get("embedding_dimension") or config.get("hidden_size") or 0)
    if hidden < 1:
        raise OnnxUnavailableError(f"{pool_dir / 'config.json'}: no word_embedding_dimension; the model folder is incomplete")
    return ModelLayout(path, int(limit), hidden, modes, bool(st_config.get("do_lower_case", False)))


def model_digest(path: Path, root: Path) -> str:
    """sha256 over the files that decide the vectors; memoized by (size, mtime) so queries skip the hashing."""
    names = [*_KEY_FILES, *sorted(p.relative_to(path).as_posix() for p in path.glob("*/config.json"))]  # module configs
    files = [(rel, path / rel) for rel in names if (path / rel).is_file()]
    stats = [(rel, f.stat().st_size, f.stat().st_mtime_ns) for rel, f in files]
    key = hashlib.sha256(json.dumps([str(path.resolve()), EXPORT_VERSION, stats]).encode()).hexdigest()[:32]
    memo = root / "by-stat" / key
    if memo.is_file():
        return memo.read_text().strip()
    h = hashlib.sha256(f"ragkit-onnx-{EXPORT_VERSION}-opset{OPSET}".encode())
    for rel, f in files:
        h.update(rel.encode() + b"\0")
        with open(f, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    digest = h.hexdigest()[:32]
    try:
        _write_atomic(memo, digest.encode())
    except OSError as exc:  # a read-only cache only costs the hashing again next time
        log.debug("cannot memoize the model digest at %s: %s", memo, exc)
    return digest


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{time.time_ns()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@lru_cache(maxsize=4)
def layout_tokenizer(layout: ModelLayout):  # noqa: ANN201
    """The model's tokenizer truncating at max_seq_length like sentence-transformers; padding is done per batch."""
    from tokenizers import Tokenizer

    file = layout.path / "tokenizer.json"
    if not file.is_file():
        raise OnnxUnavailableError(f"{file}: not found; the ONNX backend needs the fast tokenizer file")
    tok = Tokenizer.from_file(str(file))
    tok.enable_truncation(max_length=layout.max_seq_length, strategy="longest_first")
    tok.no_padding()
    return tok


def _pad(encodings: Sequence[Any]) -> dict[str, np.ndarray]:
    import numpy as np

    width = max(len(e.ids) for e in encodings)
    out = {n: np.zeros((len(encodings), width), dtype=np.int64) for n in _INPUTS}
    for row, enc in enumerate(encodings):
        n = len(enc.ids)
        out["input_ids"][row, :n] = enc.ids
        out["attention_mask"][row, :n] = enc.attention_mask
        out["token_type_ids"][row, :n] = enc.type_ids
    return out


def new_session(path: Path, threads: int):  # noqa: ANN201
    """An onnxruntime CPU session using `threads` intra-op threads."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise MissingDependencyError("onnxruntime", "onnx") from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # BASIC only: the export is already fused offline, and EXTENDED/ALL re-run costly graph passes at every start.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def pool(hidden: np.ndarray, mask: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    """sentence-transformers pooling (right padding): the given modes concatenated in order."""
    import numpy as np

    m = mask[:, :, None].astype(np.float32)
    counts = np.maximum(m.sum(axis=1), 1e-9)
    parts = []
    for mode in modes:
        if mode == "cls":
            parts.append(hidden[:, 0])
        elif mode == "max":
            parts.append(np.where(m > 0, hidden, -np.inf).max(axis=1))
        else:
            total = (hidden * m).sum(axis=1)
            parts.append(total / (counts if mode == "mean" else np.sqrt(counts)))
    return np.concatenate(parts, axis=1)


def pooled_batch(session: Any, layout: ModelLayout, encodings: Sequence[Any]) -> np.ndarray:  # noqa: ANN401 - an onnxruntime session
    """Pooled (not yet normalized) sentence vectors of one batch of tokenizer encodings."""
    feed = _pad(encodings)
    hidden = session.run(None, {i.name: feed[i.name] for i in session.get_inputs()})[0]
    return pool(hidden, feed["attention_mask"], layout.pooling)


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the machine total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
