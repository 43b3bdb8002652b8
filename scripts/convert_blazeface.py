"""Convert MediaPipe's BlazeFace short-range detector (.tflite) once into the ONNX file the package ships.

    pip download mediapipe==0.10.21 --no-deps --only-binary=:all: \\
        --platform manylinux_2_28_x86_64 --python-version 311 -d mediapipe-wheel
    pip install ai-edge-litert onnx      # only for this script: read the .tflite, write the .onnx
    python scripts/convert_blazeface.py mediapipe-wheel/mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl

The wheel's `face_detection_short_range.tflite` stores its 37 kernels and biases
as float16. They are loaded unchanged (transposed from TFLite's NHWC layout)
into the same network written in torch below, which is exported to ONNX
(float32, opset 17, any batch size) as
`emotionnet/assets/blazeface-short-range.onnx`; onnxruntime, already a
dependency of the package, runs it. Before writing, the script runs the .tflite
(ai-edge-litert, no delegate), the torch network and the ONNX file on the same
inputs and stops if any raw output differs from the .tflite's by more than
1e-3. The file's sha256 is printed, to pin as BLAZEFACE_SHA256 in
`emotionnet/models/face/detector.py`; the wheel's Apache-2.0 LICENSE goes
beside it as `blazeface-short-range.LICENSE`.

Why ONNX, not TFLite or torch at run time: ai-edge-litert would be a new
dependency (20 MB wheels, no macOS x86 wheel since 1.0.1) for a small saving,
and torch spends about 3x the CPU time of onnxruntime on this network of small
depthwise convolutions, one thread (docs/results/face-detector.md).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

TFLITE_IN_WHEEL = "mediapipe/modules/face_detection/face_detection_short_range.tflite"
LICENSE_IN_WHEEL = "mediapipe-0.10.21.dist-info/LICENSE"
ASSETS = Path(__file__).resolve().parents[1] / "emotionnet" / "assets"
INPUT_SIZE = 128
# (in channels, out channels, stride) of the 16 blocks; the classification and box heads read
# block 10's output (88 channels, 16x16) and block 15's (96 channels, 8x8).
BLOCKS: tuple[tuple[int, int, int], ...] = (
    (24, 24, 1), (24, 28, 1), (28, 32, 2), (32, 36, 1), (36, 42, 1), (42, 48, 2), (48, 56, 1), (56, 64, 1),
    (64, 72, 1), (72, 80, 1), (80, 88, 1), (88, 96, 2), (96, 96, 1), (96, 96, 1), (96, 96, 1), (96, 96, 1))
HEAD_16, HEAD_8 = 10, 15
ANCHORS_16, ANCHORS_8 = 2, 6  # anchors per cell of each grid


class BlazeBlock(nn.Module):
    """3x3 depthwise + 1x1 pointwise convolution, added to the input (max-pooled when strided, zero-padded
    in channels when widening), then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra_channels = out_channels - in_channels
        # TensorFlow's SAME padding: a stride-2 3x3 convolution on an even size pads one pixel after, none before.
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, stride, padding=1 if stride == 1 else 0,
                                   groups=in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:
            branch = self.pointwise(self.depthwise(F.pad(x, (0, 1, 0, 1))))
            x = F.max_pool2d(x, 2)
        else:
            branch = self.pointwise(self.depthwise(x))
        if self.extra_channels:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return F.relu(x + branch)


class BlazeFaceNet(nn.Module):
    """(batch, 3, 128, 128) RGB in [-1, 1] -> (regressors (batch, 896, 16), score logits (batch, 896, 1))."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 24, 5, 2)
        self.blocks = nn.ModuleList(BlazeBlock(*spec) for spec in BLOCKS)
        channels_16, channels_8 = BLOCKS[HEAD_16][1], BLOCKS[HEAD_8][1]
        self.classifier_8 = nn.Conv2d(channels_16, ANCHORS_16, 1)  # named after the stride, as MediaPipe's layers
        self.classifier_16 = nn.Conv2d(channels_8, ANCHORS_8, 1)
        self.regressor_8 = nn.Conv2d(channels_16, ANCHORS_16 * 16, 1)
        self.regressor_16 = nn.Conv2d(channels_8, ANCHORS_8 * 16, 1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.stem(F.pad(images, (1, 2, 1, 2))))  # SAME padding of a stride-2 5x5 convolution on 128
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == HEAD_16:
                fine = x
        coarse = x

        def per_anchor(head: nn.Conv2d, features: torch.Tensor, width: int) -> torch.Tensor:
            # Anchors are ordered row by row, cell by cell, then anchor within the cell (TFLite's NHWC reshape).
            return head(features).permute(0, 2, 3, 1).reshape(images.shape[0], -1, width)

        scores = torch.cat([per_anchor(self.classifier_8, fine, 1), per_anchor(self.classifier_16, coarse, 1)], 1)
        boxes = torch.cat([per_anchor(self.regressor_8, fine, 16), per_anchor(self.regressor_16, coarse, 16)], 1)
        return boxes, scores


def _tflite_name(torch_name: str) -> str:
    """Torch parameter name -> the TFLite tensor it comes from (the Keras layer names of the original)."""
    part, _, kind = torch_name.rpartition(".")
    suffix = "Kernel" if kind == "weight" else "Bias"
    if part == "stem":
        return f"conv2d/{suffix}"
    if part.startswith("blocks."):
        _, index, layer = part.split(".")
        i = int(index)
        if layer == "depthwise":
            return f"{'depthwise_conv2d' if i == 0 else f'depthwise_conv2d_{i}'}/{suffix}"
        return f"conv2d_{i + 1}/{suffix}"
    return f"{part.replace('classifier', 'classificator')}/{suffix}"


def _float16_constants(interpreter) -> dict[str, np.ndarray]:
    """The float16 constant behind each DEQUANTIZE op, by its layer name (`conv2d_3/Kernel`)."""
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    constants = {}
    for op in interpreter._get_ops_details():
        if op["op_name"] != "DEQUANTIZE":
            continue
        source, target = int(op["inputs"][0]), int(op["outputs"][0])
        value = interpreter.get_tensor(source)
        if value.dtype != np.float16:
            raise SystemExit(f"{details[target]['name']}: a {value.dtype} constant, float16 expected")
        constants[details[target]["name"].removesuffix("_dequantize")] = value
    return constants


def _to_torch_layout(name: str, value: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(value.astype(np.float32))
    if value.ndim == 4:
        # TFLite: conv kernels (out, kh, kw, in), depthwise (1, kh, kw, channels); torch: (out, in/groups, kh, kw)
        tensor = tensor.permute(3, 0, 1, 2) if "depthwise" in name else tensor.permute(0, 3, 1, 2)
    return tensor.contiguous()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("wheel", type=Path, help="mediapipe-0.10.21 wheel (any platform: the model file is the same)")
    parser.add_argument("--out", type=Path, default=ASSETS / "blazeface-short-range.onnx")
    args = parser.parse_args()

    import onnx
    import onnxruntime
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    with zipfile.ZipFile(args.wheel) as wheel:
        tflite = wheel.read(TFLITE_IN_WHEEL)
        licence = wheel.read(LICENSE_IN_WHEEL)
    interpreter = Interpreter(model_content=tflite, num_threads=1,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                              experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    constants = _float16_constants(interpreter)

    network = BlazeFaceNet().eval()
    weights = {}
    for name, parameter in network.state_dict().items():
        tensor = _to_torch_layout(name, constants.pop(_tflite_name(name)))
        if tensor.shape != parameter.shape:
            raise SystemExit(f"{name}: shape {tuple(tensor.shape)} from the .tflite, {tuple(parameter.shape)} expected")
        weights[name] = tensor
    if constants:
        raise SystemExit(f"constants of the .tflite left unused: {sorted(constants)}")
    network.load_state_dict(weights)

    buffer = io.BytesIO()
    example = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
    torch.onnx.export(network, (example,), buffer, input_names=["images"], output_names=["regressors", "scores"],
                      dynamic_axes={"images": {0: "batch"}, "regressors": {0: "batch"}, "scores": {0: "batch"}},
                      opset_version=17, dynamo=False)
    model = onnx.load_from_string(buffer.getvalue())
    model.doc_string = (f"BlazeFace short-range face detector (Google LLC, Apache-2.0), from the mediapipe==0.10.21 "
                        f"wheel's {TFLITE_IN_WHEEL} (sha256 {hashlib.sha256(tflite).hexdigest()}), float16 weights "
                        f"upcast unchanged to float32 by emotionnet's scripts/convert_blazeface.py")
    onnx.checker.check_model(model)
    serialised = model.SerializeToString()
    session = onnxruntime.InferenceSession(serialised, providers=["CPUExecutionProvider"])

    # The same inputs through all three: random pixels in [-1, 1] and a smooth image, outputs compared raw.
    generator = np.random.default_rng(0)
    ramp = np.linspace(-1, 1, INPUT_SIZE, dtype=np.float32)
    inputs = [generator.uniform(-1, 1, (1, INPUT_SIZE, INPUT_SIZE, 3)).astype(np.float32),
              np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], ramp[None, :] * ramp[:, None]), -1)[None]]
    outputs = {d["name"]: d["index"] for d in interpreter.get_output_details()}
    worst = {"torch": 0.0, "onnx": 0.0}
    for image in inputs:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
        interpreter.invoke()
        expected = [interpreter.get_tensor(outputs["regressors"]), interpreter.get_tensor(outputs["classificators"])]
        nchw = np.ascontiguousarray(image.transpose(0, 3, 1, 2))
        with torch.no_grad():
            got = {"torch": [t.numpy() for t in network(torch.from_numpy(nchw))],
                   "onnx": session.run(None, {"images": nchw})}
        for runtime, values in got.items():
            worst[runtime] = max(worst[runtime], *(float(np.abs(v - e).max()) for v, e in zip(values, expected)))
    print(f"largest difference to the .tflite's raw outputs: torch {worst['torch']:.2e}, onnx {worst['onnx']:.2e}")
    if max(worst.values()) > 1e-3:
        raise SystemExit("the converted network differs from the .tflite: nothing written")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(serialised)
    args.out.with_suffix(".LICENSE").write_bytes(licence)
    print(f"wrote {args.out} ({len(serialised)} bytes) and its LICENSE")
    print(f"sha256 {hashlib.sha256(serialised).hexdigest()}  (pin it as BLAZEFACE_SHA256 in "
          f"emotionnet/models/face/detector.py)")


if __name__ == "__main__":
    main()
