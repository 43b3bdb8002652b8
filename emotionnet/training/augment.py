"""Augmentation on batches of cached log-mel crops, for the training split only.

Features are cached, so the waveform augmentations (gain, additive noise,
time shift) and the channel ones (EQ, band-limiting, reverberation) are
applied to the mel power spectrum they would produce: exact for gain, shift
and EQ, and exact in expectation for noise, whose power adds to the speech's.
Vocal-tract-length warping and SpecAugment masks then vary the speaker and
hide parts of the input so no single band or moment decides the answer.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    # Channel randomisation is strong on purpose: a user's clip comes from a room, a microphone
    # and a codec that no corpus had, and the model must not learn the corpora's channels.
    gain_db: tuple[float, float] = (-30.0, 10.0)  # a quiet microphone is commoner than a hot one
    noise_p: float = 0.4
    snr_db: tuple[float, float] = (5.0, 30.0)
    eq_p: float = 0.5
    eq_db: float = 8.0
    bandlimit_p: float = 0.3
    reverb_p: float = 0.3
    warp_p: float = 0.5  # vocal-tract-length warping: voices the corpora lack
    warp: float = 0.12
    tempo_p: float = 0.5  # speaking-rate perturbation, as speed perturbation varies it
    tempo: float = 0.15
    freq_masks: int = 2
    freq_mask_width: int = 8
    time_masks: int = 2
    time_mask_width: int = 25

    def to_dict(self) -> dict:
        return asdict(self)


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g)


def _chosen(n: int, p: float, g: torch.Generator) -> torch.Tensor:
    return (torch.rand(n, generator=g) < p).float()


def augment_power(log_mel: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """(batch, mels, frames) un-normalised log-mel -> augmented log-mel, same shape."""
    b, m, t = log_mel.shape
    power = log_mel.exp()
    bands = torch.linspace(0, 1, m)

    # EQ: a smooth random tilt and ripple over the bands, as a cheap microphone would add.
    tilt = _uniform(b, -1, 1, g)[:, None] * (bands - 0.5)[None, :]
    ripple = _uniform(b, -0.5, 0.5, g)[:, None] * torch.cos(
        math.pi * _uniform(b, 1, 4, g)[:, None] * bands[None, :] + _uniform(b, 0, math.pi, g)[:, None]
    )
    eq_db = cfg.eq_db * (tilt + ripple) * _chosen(b, cfg.eq_p, g)[:, None]
    power = power * (10 ** (eq_db / 10))[:, :, None]

    # Band-limiting: telephone-like low-pass and high-pass, 40 dB down outside the band.
    limited = _chosen(b, cfg.bandlimit_p, g)
    top = (m * _uniform(b, 0.55, 1.0, g)).long()
    bottom = (m * _uniform(b, 0.0, 0.1, g)).long()
    idx = torch.arange(m)[None, :]
    outside = ((idx >= top[:, None]) | (idx < bottom[:, None])).float() * limited[:, None]
    power = power * (1 - outside * (1 - 1e-4))[:, :, None]

    # Reverberation: each band's power decays exponentially into the following frames.
    reverb = _chosen(b, cfg.reverb_p, g)
    if reverb.any():
        decay = _uniform(b, 0.6, 0.93, g)  # per 10 ms frame: RT60 of about 0.1-1 s
        k = torch.arange(60, dtype=torch.float32)
        kernel = decay[:, None] ** k[None, :]
        kernel = kernel / kernel.sum(dim=1, keepdim=True)
        padded = F.pad(power.reshape(1, b * m, t), (59, 0))
        tails = F.conv1d(padded, kernel.flip(1).repeat_interleave(m, 0)[:, None, :], groups=b * m).reshape(b, m, t)
        wet = _uniform(b, 0.3, 0.8, g)[:, None, None] * reverb[:, None, None]
        power = (1 - wet) * power + wet * tails

    # Noise at a random SNR, coloured by a random spectral slope, with periodogram-like fluctuation.
    noisy = _chosen(b, cfg.noise_p, g)
    snr = 10 ** (_uniform(b, *cfg.snr_db, g) / 10)
    level = power.mean(dim=(1, 2)) / snr
    colour = 10 ** (_uniform(b, -1.5, 0.5, g)[:, None] * bands[None, :])
    colour = colour / colour.mean(dim=1, keepdim=True)
    fluctuation = torch.empty(b, m, t).exponential_(generator=g)
    power = power + (noisy * level)[:, None, None] * colour[:, :, None] * fluctuation

    # Gain changes the level relative to the fixed log offset, as a quiet recording would.
    power = power * (10 ** (_uniform(b, *cfg.gain_db, g) / 10))[:, None, None]
    out = torch.log(power + 1e-6)

    # Vocal tract length warping: stretch the band axis by up to +-warp.
    warped = _chosen(b, cfg.warp_p, g)
    alpha = 1 + _uniform(b, -cfg.warp, cfg.warp, g) * warped
    source = (idx.float() * alpha[:, None]).clamp(0, m - 1)
    low = source.floor().long()
    high = (low + 1).clamp(max=m - 1)
    frac = (source - low)[:, :, None]
    out = torch.gather(out, 1, low[:, :, None].expand(b, m, t)) * (1 - frac) + torch.gather(
        out, 1, high[:, :, None].expand(b, m, t)
    ) * frac
    return out


def tempo_span(frames: int, cfg: AugmentConfig, g: torch.Generator) -> int:
    """How many source frames to stretch or squeeze into `frames`: a random speaking rate."""
    if cfg.tempo_p <= 0:
        return frames  # draws nothing: the generator's stream stays that of a recipe without tempo
    if float(torch.rand(1, generator=g)) >= cfg.tempo_p:
        return frames
    return max(1, round(frames * float(_uniform(1, 1 - cfg.tempo, 1 + cfg.tempo, g))))


def stretch_time(log_mel: torch.Tensor, frames: int) -> torch.Tensor:
    """(mels, span) -> (mels, frames) by linear interpolation along time."""
    if log_mel.shape[-1] == frames:
        return log_mel
    return F.interpolate(log_mel[None], size=frames, mode="linear", align_corners=False)[0]


def spec_augment(features: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Zero (the normalised mean) random bands and stretches of time, in place."""
    b, m, t = features.shape
    for size, width, axis in ((m, cfg.freq_mask_width, 1), (t, cfg.time_mask_width, 2)):
        count = cfg.freq_masks if axis == 1 else cfg.time_masks
        for _ in range(count):
            w = torch.randint(0, width + 1, (b,), generator=g)
            start = (torch.rand(b, generator=g) * (size - w)).long()
            pos = torch.arange(size)[None, :]
            mask = (pos >= start[:, None]) & (pos < (start + w)[:, None])
            features.masked_fill_(mask[:, :, None] if axis == 1 else mask[:, None, :], 0.0)
    return features
