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
    features=None,  # a face model hears nothing: its files record no audio front end
    recipe="face",
    onnx_refusal="the face model runs in torch (its detector already runs in onnxruntime)",
    recognizer=_recognizer,
)
