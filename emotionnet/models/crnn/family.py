"""The `crnn` family: convolutions, a BiLSTM over time and attention pooling over the log-mel (network.py)."""

from __future__ import annotations

from emotionnet.features import FeatureConfig
from emotionnet.models.family import MAX_BLOCKS, MAX_WIDTH, HParam, ModelFamily, ModelSpecError


def _build(**hparams):
    from emotionnet.models.crnn.network import CRNN

    return CRNN(**hparams)


def _check(hparams: dict, features: FeatureConfig) -> None:
    """Every block halves the mel bands: some must be left for the recurrent layer."""
    if features.n_mels // 2 ** len(hparams["channels"]) < 1:
        raise ModelSpecError(f"{len(hparams['channels'])} crnn blocks halve {features.n_mels} mel bands to nothing")


FAMILY = ModelFamily(
    name="crnn",
    modality="audio",
    description="convolutions, a BiLSTM over time, attention pooling (the fast model)",
    hparams=(
        HParam("channels", [16, 32, 64], "widths", high=MAX_BLOCKS),
        HParam("hidden", 96, "int", 2, MAX_WIDTH, search=(48, 64, 96, 128, 160)),
        HParam("dropout", 0.3, "float", 0, 0.99),
    ),
    build=_build,
    check=_check,
    features=FeatureConfig(),
    recipe="log-mel",
)
