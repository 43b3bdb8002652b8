"""Model architectures by name, built from the hyper-parameters a model file records."""

from __future__ import annotations

from torch import nn

from emotionnet.models.cnn import CNN
from emotionnet.models.crnn import CRNN
from emotionnet.models.spec import default_hparams
from emotionnet.models.whisper.head import WhisperEmotionNet

ARCHITECTURES: dict[str, type[nn.Module]] = {"cnn": CNN, "crnn": CRNN, "whisper": WhisperEmotionNet}


def build_model(arch: str, **hparams) -> nn.Module:
    """An untrained `arch` network: `hparams` over the architecture's defaults (models/spec.py)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}")
    hparams = {**default_hparams(arch), **hparams}
    if "channels" in hparams:
        hparams["channels"] = tuple(hparams["channels"])
    return ARCHITECTURES[arch](**hparams)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
