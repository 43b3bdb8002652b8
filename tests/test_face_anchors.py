"""The anchors' TensorFlow conventions in torch (benchmarks/face_anchors.py), without the anchors' files.

The real networks come from the registries and are scored by the benchmark; these tests pin the
conventions a port gets wrong silently: TensorFlow's "SAME" padding puts the odd pixel after,
tfjs's default bilinear resize samples without half-pixel centres, quantised tfjs weights are
dequantised, and the seven-class answers map onto our six.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmarks.face_anchors import (
    ANCHOR_CLASSES,
    TfjsGraphModel,
    bilinear_matrix,
    load_anchor,
    six_of_seven,
    tf_max_pool,
)
from emotionnet.labels import LABELS


def test_same_max_pool_pads_after_only():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    # 3x3 windows at stride 2 over rows/columns {0,1,2} and {2,3,(pad)}: the padding is after, never -inf wins.
    assert tf_max_pool(x, (3, 3), (2, 2), "SAME").view(2, 2).tolist() == [[10.0, 11.0], [14.0, 15.0]]


def test_bilinear_half_pixel_is_opencv_and_torch_legacy_is_corner_aligned():
    image = torch.rand(1, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    half_pixel = bilinear_matrix(48, 64, half_pixel=True)
    expected = F.interpolate(image, size=(64, 64), mode="bilinear", align_corners=False)[0, 0]
    assert torch.allclose(half_pixel @ image[0, 0] @ half_pixel.T, expected, atol=1e-5)
    legacy = bilinear_matrix(48, 64, half_pixel=False)
    # output o samples o * 48/64: 1 -> 0.75 (a quarter of pixel 0), 63 -> 47.25 (clamped to pixel 47)
    assert legacy[1, :2].tolist() == pytest.approx([0.25, 0.75])
    assert legacy[63, 47].item() == pytest.approx(1.0)
    assert torch.allclose(legacy.sum(1), torch.ones(64))


def test_six_of_seven_drops_surprise_and_renormalises():
    probs7 = np.full((1, 7), 0.1)
    probs7[0, ANCHOR_CLASSES.index("surprise")] = 0.4
    probs7[0, ANCHOR_CLASSES.index("neutral")] = 0.1 + 0.6  # neutral is the anchors' last class, our fifth
    six = six_of_seven(probs7 / probs7.sum())
    assert six.sum() == pytest.approx(1.0)
    assert LABELS[int(six.argmax())] == "neutral"
    assert six[0, LABELS.index("neutral")] == pytest.approx(0.7 / 1.2)


def _const(name: str) -> dict:
    return {"name": name, "op": "Const", "attr": {"value": {}}}


def _s(text: str) -> dict:
    return {"s": base64.b64encode(text.encode()).decode()}


def test_tfjs_graph_model_runs_a_quantised_fused_convolution(tmp_path):
    """Placeholder -> conv 3x3 stride 2 SAME + bias + relu -> spatial mean -> softmax, uint8 kernel."""
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, size=(3, 3, 1, 4), dtype=np.uint8)
    scale, minimum = 0.01, -1.2
    bias = rng.normal(size=4).astype(np.float32)
    axes = np.array([1, 2], dtype=np.int32)
    nodes = [
        _const("w"), _const("b"), _const("axes"),
        {"name": "x", "op": "Placeholder", "attr": {}},
        {"name": "conv", "op": "_FusedConv2D", "input": ["x", "w", "b"],
         "attr": {"strides": {"list": {"i": ["1", "2", "2", "1"]}}, "padding": _s("SAME"),
                  "data_format": _s("NHWC"), "fused_ops": {"list": {"s": [_s("BiasAdd")["s"], _s("Relu")["s"]]}}}},
        {"name": "mean", "op": "Mean", "input": ["conv", "axes"], "attr": {"keep_dims": {"b": False}}},
        {"name": "out", "op": "Softmax", "input": ["mean"], "attr": {}},
    ]
    manifest = [{"paths": ["m.bin"], "weights": [
        {"name": "w", "shape": [3, 3, 1, 4], "dtype": "float32",
         "quantization": {"dtype": "uint8", "scale": scale, "min": minimum}},
        {"name": "b", "shape": [4], "dtype": "float32"},
        {"name": "axes", "shape": [2], "dtype": "int32"}]}]
    (tmp_path / "m.bin").write_bytes(codes.tobytes() + bias.tobytes() + axes.tobytes())
    (tmp_path / "m.json").write_text(json.dumps({"format": "graph-model", "modelTopology": {"node": nodes},
                                                 "weightsManifest": manifest}))
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))

    # Independently: 8 -> 4 outputs at stride 2 needs one pixel of padding, after (right and bottom).
    kernel = torch.from_numpy(codes.astype(np.float32) * scale + minimum).permute(3, 2, 0, 1)
    conv = F.relu(F.conv2d(F.pad(x, (0, 1, 0, 1)), kernel, torch.from_numpy(bias), stride=2))
    expected = F.softmax(conv.mean(dim=(2, 3)), dim=1)
    with torch.no_grad():
        assert torch.allclose(TfjsGraphModel(tmp_path / "m.json")(x), expected, atol=1e-5)


def test_load_anchor_names_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="one of"):
        load_anchor("affectnet", tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_anchor("human", tmp_path / "emotion.json")
