"""The `face` family: BlazeFace finds the faces, FaceCNN reads each FER2013-style 48x48 crop (network.py).

A face model file holds FaceCNN's weights; its `labels` are the network's outputs (FER2013's seven
classes, surprise included: it helps the network learn faces) and its `answers` our six, so
surprise is never an answer (ModelSpec.answer_index). The detector ships beside it in the package
(emotionnet/assets/blazeface-short-range.onnx, digest-checked), so a face model needs nothing
installed. Loaded, it answers images through `FaceRecognizer` (recognizer.py). It hears no audio:
its file records no audio front end.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from emotionnet.features import FeatureConfig
from emotionnet.models.family import MAX_BLOCKS, HParam, LoadOptions, ModelFamily

MODALITY = "face"


def _build(channels: tuple[int, ...], dropout: float, n_classes: int, flip_average: bool = False, **_audio):
    from emotionnet.models.face.network import FaceCNN

    return FaceCNN(channels, dropout, n_classes)  # flip_average is how it is run, not what it is


def _recognizer(loaded, path: Path, options: LoadOptions, threads: int = 1):
    from emotionnet.models.face.recognizer import FaceRecognizer

    spec = loaded.spec
    return FaceRecognizer(loaded.network, spec.answer_labels, spec.answer_index or list(range(len(spec.labels))),
                          spec.temperature, flip_average=spec.hparams["flip_average"], threads=threads,
                          metadata=loaded.metadata, model_file=path)


def save_face_model(path: str | Path, network: nn.Module, temperature: float, flip_average: bool,
                    training: dict, calibration: dict, metrics: dict) -> None:
    """A face model file: FaceCNN's weights, FER2013's classes as its outputs, our six as its answers."""
    from emotionnet import __version__
    from emotionnet.labels import LABELS
    from emotionnet.models.face.fer2013 import FER_CLASSES
    from emotionnet.models.file import save_model_file

    channels = [m.out_channels for m in network.modules() if isinstance(m, nn.Conv2d)]
    widths = [channels[0]] + channels[2::2]  # one convolution in the first stage, two in each after
    dropout = next(m.p for m in network.modules() if isinstance(m, nn.Dropout))
    save_model_file(path, network, {
        "labels": list(FER_CLASSES), "answers": list(LABELS), "temperature": temperature,
        "model": {"arch": FAMILY.name, "hparams": {"channels": widths, "dropout": dropout,
                                                   "flip_average": flip_average}},
        "training": {**training, "package_version": __version__},
        "calibration": calibration, "metrics": metrics,
    })


FAMILY = ModelFamily(
    name="face-cnn",
    modality=MODALITY,
    description="the shipped face-expression model: BlazeFace + a small CNN on 48x48 FER2013-style crops",
    hparams=(
        HParam("channels", [32, 64, 128, 256], "widths", high=MAX_BLOCKS),
        HParam("dropout", 0.3, "float", 0, 0.99),
        # Score each face and its mirror image and average the logits (chosen on validation).
        HParam("flip_average", False, "bool", if_absent=False),
    ),
    build=_build,
    features=FeatureConfig(),  # unused: a face model hears nothing (ModelSpec records no audio front end for it)
    recipe="face",
    onnx_refusal="the face model runs in torch (its detector already runs in onnxruntime)",
    recognizer=_recognizer,
)
