"""The model families this version knows: one line each (a family is declared in its own folder).

    FAMILIES["crnn"].default_hparams()      # what a new crnn gets
    family_of(spec).onnx_refusal            # asked, never `if arch == "whisper"`

Adding a family means one folder (`emotionnet/models/<name>/family.py` declaring a `ModelFamily`)
and one line in `_DECLARED` below.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from emotionnet.models.cnn.family import FAMILY as CNN_FAMILY
from emotionnet.models.crnn.family import FAMILY as CRNN_FAMILY
from emotionnet.models.face.family import FAMILY as FACE_FAMILY
from emotionnet.models.family import ModelFamily, ModelSpecError
from emotionnet.models.whisper.family import FAMILY as WHISPER_FAMILY

_DECLARED = (CNN_FAMILY, CRNN_FAMILY, WHISPER_FAMILY, FACE_FAMILY)
FAMILIES: dict[str, ModelFamily] = {family.name: family for family in _DECLARED}


def get_family(name: Any) -> ModelFamily:
    """The family called `name`; ModelSpecError (a ValueError) naming the known ones otherwise."""
    if not isinstance(name, str) or name not in FAMILIES:
        raise ModelSpecError(f"unknown architecture {name!r}; this version knows {', '.join(FAMILIES)}")
    return FAMILIES[name]


def family_of(spec) -> ModelFamily:
    """The family of a `ModelSpec` (its `arch`)."""
    return get_family(spec.arch)


def default_hparams(arch: str, n_mels: int | None = None, n_classes: int = 6) -> dict:
    """The hyper-parameters of a new `arch` model (a copy the caller may change)."""
    return get_family(arch).default_hparams(n_mels, n_classes)


def build_model(arch: str, **hparams) -> nn.Module:
    """An untrained `arch` network: `hparams` over the family's defaults."""
    family = get_family(arch)
    return family.build_network({**family.default_hparams(), **hparams})


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
