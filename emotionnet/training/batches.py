"""Random training batches from cached features: crop, augment, normalise, mask."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import torch

from emotionnet.corpora import Record
from emotionnet.features import BandStats, FeatureConfig, band_stats, normalise, tile_frames
from emotionnet.labels import LABEL_INDEX, LABELS
from emotionnet.training.augment import AugmentConfig, augment_power, spec_augment, stretch_time, tempo_span


def sampling_weights(records: list[Record], balance: float = 0.5) -> torch.Tensor:
    """Weigh each record by its (corpus, emotion) cell's size to the power `-balance`.

    0 is plain frequency, 1 gives every cell the same total weight. For drawing batches,
    plain frequency lets CREMA-D drown the small corpora and full balancing would repeat
    SAVEE's 210 clips until they are memorised: the default square root sits between.
    """
    cells = Counter((r.corpus, r.emotion) for r in records)
    return torch.tensor([cells[(r.corpus, r.emotion)] ** -balance for r in records], dtype=torch.float64)


def classes_present(records: list[Record]) -> torch.Tensor:
    """(clips, classes) bool: the classes each clip's corpus has.

    nEMO and ASED have no disgust, TurEV-DB only four classes: a loss over all six
    would teach that Polish or Turkish voices are never disgusted, a corpus cue.
    """
    present: dict[str, set[str]] = defaultdict(set)
    for record in records:
        present[record.corpus].add(record.emotion)
    return torch.tensor([[label in present[r.corpus] for label in LABELS] for r in records])


def stacked(stats: list[BandStats]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([s.mean for s in stats]), torch.stack([s.std for s in stats])


class BatchMaker:
    def __init__(
        self,
        log_mels: list[np.ndarray],
        records: list[Record],
        feature_config: FeatureConfig,
        frames: int,
        augment: AugmentConfig | None,
        own_context_p: float = 0.3,
        teacher: np.ndarray | None = None,
    ):
        """`own_context_p`: for `speaker` normalisation, the share of clips normalised by their
        own statistics instead of their speaker's, as a lone clip is at prediction time.
        `teacher`: (clips, classes) a teacher's probabilities, the soft labels of distillation."""
        self.log_mels = log_mels
        self.labels = torch.tensor([LABEL_INDEX[r.emotion] for r in records])
        self.present = classes_present(records)
        self.weights = sampling_weights(records)
        self.feature_config = feature_config
        self.frames = frames
        self.augment = augment
        self.own_context_p = own_context_p
        self.teacher = None if teacher is None else torch.as_tensor(teacher, dtype=torch.float32)
        if feature_config.normalisation == "speaker":
            groups: dict[str, list[int]] = defaultdict(list)
            for i, record in enumerate(records):
                groups[record.group].append(i)
            speaker = {key: band_stats([log_mels[i] for i in group]) for key, group in groups.items()}
            self.speaker_stats = stacked([speaker[r.group] for r in records])

    def indices(self, count: int, g: torch.Generator) -> torch.Tensor:
        return torch.multinomial(self.weights, count, replacement=True, generator=g)

    def batch(self, indices: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Model inputs, labels, and the classes each clip's corpus has (see `classes_present`)."""
        crops = []
        for i in indices.tolist():
            mel = self.log_mels[i]
            span = tempo_span(self.frames, self.augment, g) if self.augment else self.frames
            # A random start is the time-shift augmentation; short clips repeat to fill the window.
            start = int(torch.randint(0, max(1, mel.shape[1] - span + 1), (1,), generator=g))
            crop = tile_frames(torch.from_numpy(mel[:, start:start + span].astype(np.float32)), span)
            crops.append(stretch_time(crop, self.frames))
        x = torch.stack(crops)
        per_speaker = self.feature_config.normalisation == "speaker"
        raw = shifted = augment_power(x, self.augment, g) if self.augment else x
        if self.augment and per_speaker:
            # A speaker's other clips would pass through the same channel, so their
            # statistics would carry its colouring: take out the crop's mean shift.
            shifted = raw - (raw.mean(dim=-1, keepdim=True) - x.mean(dim=-1, keepdim=True))
        if per_speaker:
            own = (torch.rand(len(indices), generator=g) < self.own_context_p)[:, None, None]
            # A lone clip is read against its own speech, channel included: its statistics
            # come from the augmented crop, as they would from the recording a user sends.
            own_stats = stacked([band_stats([crop]) for crop in raw])
            mean = torch.where(own, own_stats[0], self.speaker_stats[0][indices])
            std = torch.where(own, own_stats[1], self.speaker_stats[1][indices])
            x = normalise(torch.where(own, raw, shifted), "speaker", BandStats(mean, std))
        else:
            x = normalise(raw, self.feature_config.normalisation)
        if self.augment:
            x = spec_augment(x, self.augment, g)
        return x, self.labels[indices], self.present[indices]
