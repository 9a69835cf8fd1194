"""The one-time ONNX export of a sentence-transformers model's transformer (needs torch), fused and checked.

Kept apart from onnx_embedder so the query path never even parses this code; nothing here runs per query.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .onnx_model import _INPUTS, OPSET, ModelLayout, OnnxUnavailableError, _pad, layout_tokenizer, new_session

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

TOLERANCE = 1e-3  # max |onnx - torch| over the hidden states of the check batch
# Encoder families whose attention, layer-norm and gelu subgraphs onnxruntime's BERT optimizer fuses.
_FUSABLE = {"bert", "roberta", "xlm-roberta", "distilbert", "mpnet", "electra"}
_SAMPLES = ("A short sample.", "Speaker B: a longer sample " + "with more words " * 8, "long " * 400)


def export_model(layout: ModelLayout, target: Path) -> dict[str, Any]:
    """Export the transformer to `target` (dynamic batch and length), fuse it if possible, check it against torch."""
    from .base import quiet_hub

    quiet_hub()  # before transformers is imported: it reads these settings once
    try:
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise OnnxUnavailableError(f"the ONNX export of {layout.path} needs torch and transformers ({exc}); install them once or use an existing export") from exc
    started = time.perf_counter()
    feed = _pad(layout_tokenizer(layout).encode_batch(list(_SAMPLES)))
    stem = target.with_name(f".{target.name}.tmp-{os.getpid()}-{time.time_ns()}")
    plain, fused = stem.with_suffix(".plain.onnx"), stem.with_suffix(".fused.onnx")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        # eager attention traces to plain ops; the sdpa path leaves data-dependent branches in the trace.
        model = AutoModel.from_pretrained(str(layout.path), attn_implementation="eager").eval()
        wrapper = _hidden_states(model)
        args = tuple(torch.from_numpy(feed[n]) for n in _INPUTS)
        # The tracer warns about shape-dependent branches; _best_variant checks the export against torch on three lengths.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Reference output first: the legacy exporter leaves the model in training mode (dropout on).
            expected = wrapper(*args).numpy()
            torch.onnx.export(
                wrapper, args, str(plain), dynamo=False, opset_version=OPSET, input_names=list(_INPUTS),
                output_names=["last_hidden_state"], do_constant_folding=True,
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*_INPUTS, "last_hidden_state"]},
            )
        chosen, error, fusion = _best_variant(layout, plain, fused, feed, expected)
        os.replace(chosen, target)
    except OnnxUnavailableError:
        raise
    except Exception as exc:  # noqa: BLE001 - any exporter failure means: fall back to torch
        raise OnnxUnavailableError(f"cannot export {layout.path} to ONNX ({type(exc).__name__}: {exc}); use the torch backend") from exc
    finally:
        plain.unlink(missing_ok=True)
        fused.unlink(missing_ok=True)
    return {"seconds": round(time.perf_counter() - started, 2), "max_abs_error": error, "fused": fusion, "torch": torch.__version__}


def _best_variant(layout: ModelLayout, plain: Path, fused: Path, feed: dict[str, np.ndarray], expected: np.ndarray) -> tuple[Path, float, dict[str, int]]:
    """The fused graph when it still matches torch, else the plain one; neither matching is an error."""
    fusion = _fuse(layout, plain, fused)
    if fusion and (error := _max_error(fused, feed, expected)) <= TOLERANCE:
        return fused, error, fusion
    if fusion:
        log.warning("fused ONNX graph of %s differs from torch by %.2g; keeping the unfused export", layout.path, error)
    error = _max_error(plain, feed, expected)
    if error > TOLERANCE:
        raise OnnxUnavailableError(f"the ONNX export of {layout.path} differs from torch by {error:.2g}; use the torch backend")
    return plain, error, {}


def _fuse(layout: ModelLayout, source: Path, target: Path) -> dict[str, int]:
    """Fold attention, layer norm and gelu into onnxruntime's fused CPU kernels; {} when not applicable."""
    config = json.loads((layout.path / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") not in _FUSABLE:
        return {}
    try:
        from onnxruntime.transformers.optimizer import optimize_model
    except ImportError as exc:  # the optimizer needs the onnx package
        log.info("no graph fusion for %s (%s); the export is still exact, only slower", layout.path, exc)
        return {}
    heads = int(config.get("num_attention_heads") or config.get("n_heads") or 0)
    hidden = int(config.get("hidden_size") or config.get("dim") or 0)
    optimized = optimize_model(str(source), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=1, use_gpu=False)
    optimized.save_model_to_file(str(target))
    return {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}


def _hidden_states(model):  # noqa: ANN001, ANN202 - torch types are a heavy import
    import torch

    class HiddenStates(torch.nn.Module):
        """Positional inputs and one output, which is what the tracer exports."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001, ANN202
            return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state

    return HiddenStates()


def _max_error(path: Path, feed: dict[str, np.ndarray], expected: np.ndarray) -> float:
    import numpy as np

    session = new_session(path, 1)
    got = session.run(None, {i.name: feed[i.name] for i in session.get_inputs()})[0]
    mask = feed["attention_mask"].astype(bool)  # padded positions are pooled away, so they may differ
    return float(np.max(np.abs(got - expected)[mask]))

