"""Model families (cnn, crnn, whisper), each in its own folder, listed in `registry.py`.

`build_model(arch, **hparams)` builds an untrained network from a family's defaults and the
hyper-parameters given; a model file records what it was built with (models/file.py, spec.py).
"""

from __future__ import annotations

from emotionnet.models.registry import FAMILIES, build_model, count_parameters, default_hparams, get_family

__all__ = ["FAMILIES", "build_model", "count_parameters", "default_hparams", "get_family"]
