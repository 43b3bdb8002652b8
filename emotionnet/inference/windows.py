"""Cut feature sequences into fixed-length windows and score them in batches.

Every clip the model sees is exactly `frames` long: longer audio is cut into
windows every `hop` frames (the last one aligned to the end, so no audio is
dropped), shorter audio is repeated to fill one window (or, for a network that reads
any length, filled with NOT_AUDIO frames that it leaves out). Training crops,
evaluation, file prediction and streaming all go through these functions.
"""

from __future__ import annotations

import torch
from torch import nn

from emotionnet.features import BandStats, FeatureConfig, band_stats, model_input


def window_starts(n_frames: int, frames: int, hop_frames: int) -> list[int]:
    """Start frames of the windows (`frames` long, `hop_frames` apart) covering `n_frames` (one if it is short)."""
    if n_frames <= frames:
        return [0]
    starts = list(range(0, n_frames - frames + 1, hop_frames))
    if starts[-1] + frames < n_frames:
        starts.append(n_frames - frames)
    return starts


def cut_windows(
    log_mel: torch.Tensor, frames: int, hop_frames: int, config: FeatureConfig, stats: BandStats | None = None,
    tile: bool = True,
) -> tuple[torch.Tensor, list[int]]:
    """(n_mels, n_frames) un-normalised -> (windows, n_mels, frames) model inputs, and their starts.

    `stats` are the speaker statistics for `speaker` normalisation (default: the whole recording's).
    `tile` False fills audio shorter than the window with NOT_AUDIO instead of repeating it.
    """
    starts = window_starts(log_mel.shape[-1], frames, hop_frames)
    if config.normalisation == "speaker" and stats is None:
        stats = band_stats([log_mel])
    windows = [model_input(log_mel[:, s:s + frames].float(), config, frames, stats, tile) for s in starts]
    return torch.stack(windows), starts


@torch.inference_mode()
def window_logits(model: nn.Module, inputs: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
    """(windows, n_mels, frames) model inputs -> (windows, n_classes) logits, in batches.

    Small batches keep each layer's activations in cache: on one CPU thread, batches
    of 8 score a 10-minute recording about 1.5x faster than batches of 64.
    """
    if len(inputs) == 0:
        return torch.zeros(0, 0)
    return torch.cat([model(inputs[i:i + batch_size]) for i in range(0, len(inputs), batch_size)])
