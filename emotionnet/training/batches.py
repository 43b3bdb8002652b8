"""Random training batches from cached features: crop, augment, normalise, mask."""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from emotionnet.corpora import Record
from emotionnet.features import FeatureConfig, normalise, tile_frames
from emotionnet.labels import LABEL_INDEX
from emotionnet.training.augment import AugmentConfig, augment_power, spec_augment


def sampling_weights(records: list[Record]) -> torch.Tensor:
    """Draw each (corpus, emotion) cell in proportion to the square root of its size.

    Plain frequency lets CREMA-D drown the small corpora; full balancing would
    repeat SAVEE's 210 clips until they are memorised. The square root sits between.
    """
    cells = Counter((r.corpus, r.emotion) for r in records)
    return torch.tensor([cells[(r.corpus, r.emotion)] ** -0.5 for r in records], dtype=torch.float64)


class BatchMaker:
    def __init__(
        self,
        log_mels: list[np.ndarray],
        records: list[Record],
        feature_config: FeatureConfig,
        frames: int,
        augment: AugmentConfig | None,
    ):
        self.log_mels = log_mels
        self.labels = torch.tensor([LABEL_INDEX[r.emotion] for r in records])
        self.weights = sampling_weights(records)
        self.feature_config = feature_config
        self.frames = frames
        self.augment = augment

    def indices(self, count: int, g: torch.Generator) -> torch.Tensor:
        return torch.multinomial(self.weights, count, replacement=True, generator=g)

    def batch(self, indices: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        crops = []
        for i in indices.tolist():
            mel = self.log_mels[i]
            # A random start is the time-shift augmentation; short clips repeat to fill the window.
            start = int(torch.randint(0, max(1, mel.shape[1] - self.frames + 1), (1,), generator=g))
            crops.append(tile_frames(torch.from_numpy(mel[:, start:start + self.frames].astype(np.float32)), self.frames))
        x = torch.stack(crops)
        if self.augment:
            x = augment_power(x, self.augment, g)
        x = normalise(x, self.feature_config.normalisation)
        if self.augment:
            x = spec_augment(x, self.augment, g)
        return x, self.labels[indices]
