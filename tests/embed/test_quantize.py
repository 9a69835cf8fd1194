"""The int8 export's smoothing on small hand-made graphs (fast); the real model's export is tested in test_onnx.py."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from ragkit.embed.calibration import PASSAGES, calibration_texts
from ragkit.embed.quantize import _best_scale, _quantize_activations, _quantize_weights, _relative_error, smooth


def _graph(w1: np.ndarray, w2: np.ndarray) -> onnx.ModelProto:
    """x -> MatMul(w1) -> y, and x -> Gelu -> MatMul(w2) -> z: one smoothable matmul and one FFN-output-like one."""
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["y"], name="up"),
        helper.make_node("Gelu", ["x"], ["g"], name="gelu", domain="com.microsoft"),
        helper.make_node("MatMul", ["g", "w2"], ["z"], name="down"),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, w1.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None), helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)], ir_version=9)


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


def _outlier_activations(rng: np.random.Generator, rows: int = 512, width: int = 16) -> np.ndarray:
    x = rng.normal(size=(rows, width)).astype(np.float32)
    x[:, 3] *= 40  # one channel far wider than the rest, like MiniLM's layer-norm outputs
    return x


def test_smoothing_leaves_the_fp32_graph_exact_and_keeps_gelu_inputs_fp32() -> None:
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(scale=0.1, size=(16, 8)).astype(np.float32), rng.normal(scale=0.1, size=(16, 8)).astype(np.float32)
    model, x = _graph(w1, w2), _outlier_activations(rng)
    before = _run(model, x)
    keep_fp32, alphas = smooth(model, {"x": x, "g": x})
    after = _run(model, x)
    np.testing.assert_allclose(after[0], before[0], rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(after[1], before[1])
    assert keep_fp32 == ["down"] and list(alphas) == ["up"] and alphas["up"] is not None
    assert [n.op_type for n in model.graph.node][:2] == ["Mul", "MatMul"]  # x / s feeds the smoothed matmul only
    assert model.graph.node[1].input[0] != "x" and model.graph.node[2].input == ["x"]
    assert not np.array_equal(numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "w1")), w1)


def test_smoothing_cuts_the_simulated_int8_error_of_outlier_channels() -> None:
    rng = np.random.default_rng(1)
    x, w = _outlier_activations(rng), rng.normal(scale=0.1, size=(16, 8)).astype(np.float32)
    plain = _relative_error(x @ w, _quantize_activations(x) @ _quantize_weights(w))
    alpha, s = _best_scale(x, w)
    assert alpha is not None and s is not None and s.shape == (16,)
    smoothed = _relative_error(x @ w, _quantize_activations(x / s) @ _quantize_weights(w * s[:, None]))
    assert smoothed < plain / 2, (plain, smoothed)  # measured: 0.023 -> 0.008


def test_simulated_quantizers_stay_on_their_grids() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 8)).astype(np.float32)
    q = _quantize_activations(x)
    step = (x.max() - min(x.min(), 0)) / 255
    assert np.abs(q - x).max() <= step / 2 + 1e-6
    w = rng.normal(size=(8, 4)).astype(np.float32)
    qw = _quantize_weights(w)
    steps = np.abs(w).max(axis=0) / 127
    assert np.all(np.abs(qw - w) <= steps / 2 + 1e-7)
    assert np.allclose(qw / steps, np.round(qw / steps), atol=1e-4)
    assert np.array_equal(_quantize_activations(np.zeros((2, 2), np.float32)), np.zeros((2, 2)))


def test_calibration_text_mixes_short_passages_and_chunk_length_ones() -> None:
    texts = calibration_texts()
    assert texts[: len(PASSAGES)] == list(PASSAGES) and len(texts) == 2 * len(PASSAGES)
    words = sorted(len(t.split()) for t in texts)
    assert words[0] < 40 and words[-1] > 150  # one-line replies up to chunk-length monologues
    assert len(set(texts)) == len(texts)


def test_all_zero_activations_do_not_divide_by_zero() -> None:
    w = np.random.default_rng(4).normal(size=(16, 8)).astype(np.float32)
    alpha, s = _best_scale(np.zeros((4, 16), np.float32), w)
    assert s is None or np.all(np.isfinite(s))
