"""The `cnn` family: convolution blocks over the log-mel image, then a pooled linear head (network.py)."""

from __future__ import annotations

from emotionnet.features import FeatureConfig
from emotionnet.models.family import MAX_BLOCKS, HParam, ModelFamily

MAX_CONVS = 8


def _build(**hparams):
    from emotionnet.models.cnn.network import CNN

    return CNN(**hparams)


FAMILY = ModelFamily(
    name="cnn",
    modality="audio",
    description="convolution blocks over the log-mel, mean and max over time, a linear head",
    hparams=(
        HParam("channels", [24, 48, 96, 192], "widths", high=MAX_BLOCKS),
        HParam("convs_per_block", 1, "int", 1, MAX_CONVS),
        HParam("dropout", 0.3, "float", 0, 0.99),
        # False: the plain conv + ReLU + pool blocks of the seed design; files before the switch had batch norm.
        HParam("batch_norm", True, "bool", if_absent=True),
    ),
    build=_build,
    features=FeatureConfig(),
    recipe="log-mel",
)
