"""The int8 export: activation smoothing, dynamic int8 quantization and an accuracy check (needs the onnx package).

Plain dynamic int8 quantizes each activation tensor with one scale, and a few outlier channels of the
layer-norm outputs (15x the median channel in MiniLM) stretch that scale until the other channels lose their
precision. Smoothing (SmoothQuant, Xiao et al. 2023) divides each input channel by s and multiplies the matching
weight row by s, which leaves the fp32 result unchanged and moves the outliers into the weights, where
per-channel scales absorb them. s = amax(x)^a / amax(w)^(1-a), with a chosen per matmul from a few values by
the simulated int8 error on calibration text. The FFN output projections stay fp32: their inputs (after GELU)
quantize worst, smoothed or not. The result is checked against fp32 on the calibration passages; an export that
misses ACCURACY is kept but marked, and index builds then use fp32.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .onnx_model import ModelLayout, OnnxUnavailableError, _pad, layout_tokenizer, new_session, pooled_batch

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

ALPHAS = (0.25, 0.5, 0.75)
# Cosine of int8 to fp32 sentence vectors on the calibration texts an export must reach to be used by builds.
# all-MiniLM-L6-v2 measures mean 0.9994 / min 0.9989 on QMSum chunks it was not calibrated on (plain int8
# without smoothing: 0.9932 / 0.983).
ACCURACY = {"mean": 0.998, "min": 0.99}
_QUANTIZED = ("MatMul", "Attention")
_GELU = ("Gelu", "BiasGelu", "FastGelu")


def quantize_model(layout: ModelLayout, source: Path, target: Path, texts: Sequence[str] | None = None) -> dict[str, Any]:
    """Write the smoothed int8 model of the fp32 export `source` to `target`; returns what the check measured."""
    with _root_logger_kept_quiet():
        return _quantize(layout, source, target, texts)


@contextmanager
def _root_logger_kept_quiet() -> Iterator[None]:
    """onnxruntime.quantization logs to the root logger, which installs a stderr handler on first use and then
    prints every library's debug records (bm25s logs at DEBUG); a placeholder handler prevents that."""
    root = logging.getLogger()
    guard = None if root.handlers else logging.NullHandler()
    if guard:
        root.addHandler(guard)
    try:
        yield
    finally:
        if guard:
            root.removeHandler(guard)


def _quantize(layout: ModelLayout, source: Path, target: Path, texts: Sequence[str] | None) -> dict[str, Any]:
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise OnnxUnavailableError(f"int8 quantization needs the onnx package ({exc}); pip install onnx") from exc
    from .calibration import calibration_texts

    started = time.perf_counter()
    texts = list(texts or calibration_texts())
    stem = target.with_name(f".{target.name}.tmp-{os.getpid()}-{time.time_ns()}")
    smoothed, quantized = stem.with_suffix(".smooth.onnx"), stem.with_suffix(".int8.onnx")
    try:
        model = onnx.load(str(source))
        keep_fp32, alphas = smooth(model, calibrate(layout, model, texts))
        onnx.save(model, str(smoothed))
        quantize_dynamic(
            str(smoothed), str(quantized), weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=list(_QUANTIZED),
            nodes_to_exclude=keep_fp32, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": True},
        )
        check = accuracy(layout, source, quantized, texts)
        os.replace(quantized, target)
    finally:
        smoothed.unlink(missing_ok=True)
        quantized.unlink(missing_ok=True)
    return {"seconds": round(time.perf_counter() - started, 2), "alphas": alphas, "fp32_nodes": len(keep_fp32), **check}


def calibrate(layout: ModelLayout, model: Any, texts: Sequence[str]) -> dict[str, np.ndarray]:  # noqa: ANN401 - onnx.ModelProto
    """The input activations (real tokens only, one row per token) of every weight matmul, by tensor name."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    names = sorted({n.input[0] for n in _weight_nodes(probe)})
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    inputs, outputs = [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]
    encodings = layout_tokenizer(layout).encode_batch(list(texts))
    rows: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for start in range(0, len(encodings), 8):
        feed = _pad(encodings[start : start + 8])
        mask = feed["attention_mask"].astype(bool)
        got = dict(zip(outputs, session.run(None, {n: feed[n] for n in inputs}), strict=True))
        for name in names:
            rows[name].append(got[name][mask])
    return {name: np.concatenate(parts) for name, parts in rows.items()}


def smooth(model: Any, activations: dict[str, np.ndarray]) -> tuple[list[str], dict[str, float | None]]:  # noqa: ANN401
    """Smooth every weight matmul in place where that lowers its simulated int8 error; returns (fp32 nodes, alphas)."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {i.name: i for i in graph.initializer}
    made_by = {out: node.op_type for node in graph.node for out in node.output}
    keep_fp32, chosen = [], {}
    for k, node in enumerate(_weight_nodes(model)):
        if made_by.get(node.input[0]) in _GELU:
            keep_fp32.append(node.name)
            continue
        x, w = activations[node.input[0]], numpy_helper.to_array(weights[node.input[1]])
        scale = _best_scale(x, w)
        chosen[node.name] = scale[0]
        if scale[1] is None:
            continue
        s = scale[1]
        weights[node.input[1]].CopyFrom(numpy_helper.from_array((w * s[:, None]).astype(np.float32), node.input[1]))
        inverse, smoothed = f"ragkit_smooth_{k}", f"{node.input[0]}_ragkit_smooth_{k}"
        graph.initializer.append(numpy_helper.from_array((1.0 / s).astype(np.float32), inverse))
        graph.node.insert(list(graph.node).index(node), helper.make_node("Mul", [node.input[0], inverse], [smoothed], name=f"RagkitSmooth_{k}"))
        node.input[0] = smoothed
    return keep_fp32, chosen


def _weight_nodes(model: Any) -> list[Any]:  # noqa: ANN401
    weights = {i.name for i in model.graph.initializer}
    return [n for n in model.graph.node if n.op_type in _QUANTIZED and len(n.input) > 1 and n.input[1] in weights]


def _best_scale(x: np.ndarray, w: np.ndarray) -> tuple[float | None, np.ndarray | None]:
    """(alpha, per-channel s) with the smallest simulated int8 output error; (None, None) when no smoothing wins."""
    import numpy as np

    exact = x @ w
    best = (_relative_error(exact, _quantize_activations(x) @ _quantize_weights(w)), None, None)
    amax, wmax = np.maximum(np.abs(x).max(axis=0), 1e-5), np.maximum(np.abs(w).max(axis=1), 1e-5)
    for alpha in ALPHAS:
        s = np.clip(amax**alpha / wmax ** (1 - alpha), 1e-2, 1e2).astype(np.float32)
        error = _relative_error(exact, _quantize_activations(x / s) @ _quantize_weights(w * s[:, None]))
        if error < best[0]:
            best = (error, alpha, s)
    return best[1], best[2]


def _quantize_activations(x: np.ndarray) -> np.ndarray:
    """What onnxruntime's DynamicQuantizeLinear does: one asymmetric uint8 scale for the whole tensor."""
    import numpy as np

    low, high = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    step = (high - low) / 255 or 1.0
    zero = np.round(-low / step)
    return (np.clip(np.round(x / step) + zero, 0, 255) - zero) * step


def _quantize_weights(w: np.ndarray) -> np.ndarray:
    """Symmetric int8 per output channel, as quantize_dynamic(per_channel=True) stores MatMul weights."""
    import numpy as np

    step = np.maximum(np.abs(w).max(axis=0), 1e-12) / 127
    return np.round(w / step) * step


def _relative_error(exact: np.ndarray, approx: np.ndarray) -> float:
    import numpy as np

    return float(np.linalg.norm(exact - approx) / max(float(np.linalg.norm(exact)), 1e-12))


def accuracy(layout: ModelLayout, fp32: Path, int8: Path, texts: Sequence[str]) -> dict[str, Any]:
    """Cosine of int8 to fp32 sentence vectors over `texts`, and whether it meets ACCURACY."""
    import numpy as np

    from .base import normalize

    encodings = layout_tokenizer(layout).encode_batch(list(texts))
    vectors = []
    for path, batch in ((fp32, 8), (int8, 1)):  # int8 runs one text per batch, as OnnxEmbedder does
        session = new_session(path, 1)
        parts = [pooled_batch(session, layout, encodings[i : i + batch]) for i in range(0, len(encodings), batch)]
        vectors.append(normalize(np.concatenate(parts)))
    cosine = (vectors[0] * vectors[1]).sum(axis=1)
    mean, low = round(float(cosine.mean()), 6), round(float(cosine.min()), 6)
    return {"cosine_mean": mean, "cosine_min": low, "texts": len(texts), "passed": mean >= ACCURACY["mean"] and low >= ACCURACY["min"]}

