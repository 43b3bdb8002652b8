"""Log-mel features: the one implementation used for training and inference.

The STFT runs with `center=False`, so the frames of an audio window that starts
on a hop boundary are exactly a slice of the whole recording's frames. That is
what lets training crop cached features and streaming re-score windows while
both stay identical to scoring the window's audio from scratch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from emotionnet import vad

NORMALISATIONS = ("none", "utterance", "global", "speaker", "whisper")
WHISPER_DYNAMIC_RANGE = 8.0  # decades under a window's loudest bin that Whisper keeps
VARIANCE_FLOOR = 0.01  # keeps near-constant bands (band-limited audio) from blowing up noise


@dataclass(frozen=True)
class FeatureConfig:
    sample_rate: int = 16_000
    win_length: int = 400
    n_fft: int = 512
    hop_length: int = 160
    n_mels: int = 64
    f_min: float = 50.0
    f_max: float = 8_000.0
    log_offset: float = 1e-6
    normalisation: str = "utterance"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FeatureConfig:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def frames_of_samples(self, samples: int) -> int:
        """Number of feature frames for `samples` audio samples (0 if too short); seconds: `ModelSpec.frames`."""
        # torch.stft zero-pads the window to n_fft, so each frame spans n_fft samples.
        span = max(self.n_fft, self.win_length)
        if samples < span:
            return 0
        return 1 + (samples - span) // self.hop_length

    def samples_for_seconds(self, seconds: float) -> int:
        return int(round(seconds * self.sample_rate))


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    # Slaney's scale: linear below 1 kHz, logarithmic above (librosa's default).
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    mel = hz / f_sp
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep, mel)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_filterbank(config: FeatureConfig) -> np.ndarray:
    """Triangular filters, shape (n_mels, n_fft // 2 + 1), area-normalised (Slaney)."""
    fft_hz = np.linspace(0, config.sample_rate / 2, config.n_fft // 2 + 1)
    mel_points = np.linspace(_hz_to_mel(config.f_min), _hz_to_mel(config.f_max), config.n_mels + 2)
    edges = _mel_to_hz(mel_points)
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


_BANKS: dict[FeatureConfig, tuple[torch.Tensor, torch.Tensor]] = {}


def _bank_and_window(config: FeatureConfig) -> tuple[torch.Tensor, torch.Tensor]:
    key = FeatureConfig(**{**config.to_dict(), "normalisation": "none"})
    if key not in _BANKS:
        _BANKS[key] = (
            torch.from_numpy(mel_filterbank(config)),
            torch.hann_window(config.win_length, periodic=True),
        )
    return _BANKS[key]


def log_mel(audio: np.ndarray | torch.Tensor, config: FeatureConfig) -> torch.Tensor:
    """Un-normalised log-mel, shape (n_mels, frames) or (batch, n_mels, frames)."""
    wave = torch.as_tensor(audio, dtype=torch.float32)
    if wave.shape[-1] < max(config.n_fft, config.win_length):
        raise ValueError(f"audio of {wave.shape[-1]} samples is shorter than one window")
    bank, window = _bank_and_window(config)
    spec = torch.stft(
        wave,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window=window,
        center=False,
        return_complex=True,
    )
    power = spec.real.square() + spec.imag.square()
    return torch.log(torch.matmul(bank, power) + config.log_offset)


@dataclass(frozen=True)
class BandStats:
    """Per-band mean and standard deviation of log-mel frames, each shaped (n_mels, 1)."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def from_sums(cls, count: float, total: torch.Tensor, squares: torch.Tensor) -> BandStats:
        """From the frame count and the per-band sums of values and of squared values."""
        mean = total / count
        var = (squares / count - mean.square()).clamp(min=0)
        return cls(mean[:, None].float(), torch.sqrt(var + VARIANCE_FLOOR)[:, None].float())


def band_sums(log_mel: torch.Tensor | np.ndarray) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Frame count and per-band sums (values, squares) over the speech frames of one log-mel.

    Silence is left out so the share of pauses in a recording does not move the
    statistics; a clip with no frame the energy gate calls speech uses all its frames.
    """
    mel = torch.as_tensor(log_mel).double()
    speech = vad.speech_frames(vad.frame_levels(mel))
    if speech.any():
        mel = mel[:, speech]
    return float(mel.shape[-1]), mel.sum(dim=-1), mel.square().sum(dim=-1)


def band_stats(log_mels: Sequence[torch.Tensor | np.ndarray]) -> BandStats:
    """Statistics pooled over the speech of several un-normalised log-mels (a speaker's clips)."""
    sums = [band_sums(mel) for mel in log_mels]
    return BandStats.from_sums(sum(s[0] for s in sums), sum(s[1] for s in sums), sum(s[2] for s in sums))


def normalise(features: torch.Tensor, mode: str, stats: BandStats | None = None) -> torch.Tensor:
    """Mean/variance normalisation per band.

    `utterance` uses the window's own statistics over time: it removes a recording
    channel's colouring along with the speaker's long-term spectrum. `global` pools
    all bands, so the spectral tilt that rises with vocal effort survives.
    `speaker` uses `stats` of the speaker's (or stream's) speech, so what makes this
    clip louder, brighter or more varied than the speaker's usual voice survives;
    without `stats` the features are their own context.
    """
    if mode == "none":
        return features
    if mode == "whisper":  # Whisper's own scaling: log10, clamped under the loudest bin, then (x + 4) / 4
        decades = features / math.log(10)
        decades = torch.maximum(decades, decades.amax(dim=(-2, -1), keepdim=True) - WHISPER_DYNAMIC_RANGE)
        return (decades + 4.0) / 4.0
    if mode not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {mode!r}; choose from {NORMALISATIONS}")
    if mode == "speaker":
        if stats is None and features.dim() != 2:
            raise ValueError("speaker normalisation of a batch needs each item's stats")
        stats = stats or band_stats([features])
        return (features - stats.mean) / stats.std
    dims = (-1,) if mode == "utterance" else (-2, -1)
    mean = features.mean(dim=dims, keepdim=True)
    var = features.var(dim=dims, keepdim=True, unbiased=False)
    return (features - mean) / torch.sqrt(var + VARIANCE_FLOOR)


def tile_frames(features: torch.Tensor, frames: int) -> torch.Tensor:
    """Repeat a short feature sequence along time (or cut a long one) to `frames`."""
    have = features.shape[-1]
    if have < frames:
        repeats = -(-frames // have)
        features = features.repeat(*([1] * (features.dim() - 1)), repeats)
    return features[..., :frames]


NOT_AUDIO = float("nan")  # fills the frames after audio shorter than its window (`pad_frames`)


def pad_frames(features: torch.Tensor, frames: int) -> torch.Tensor:
    """Fill a short feature sequence out to `frames` with NOT_AUDIO (or cut a long one).

    For models that read any length (Whisper's encoder): the network scores the real frames
    only (`real_frames`), so a short clip gets the answer it gets alone at its own length.
    """
    have = features.shape[-1]
    if have < frames:
        fill = features.new_full((*features.shape[:-1], frames - have), NOT_AUDIO)
        features = torch.cat([features, fill], dim=-1)
    return features[..., :frames]


def real_frames(windows: torch.Tensor) -> torch.Tensor:
    """(windows, n_mels, frames) -> (windows,) frames before each window's NOT_AUDIO fill."""
    return (~torch.isnan(windows[:, 0, :])).sum(dim=-1)


def model_input(
    features: torch.Tensor, config: FeatureConfig, frames: int, stats: BandStats | None = None,
    tile: bool = True,
) -> torch.Tensor:
    """Normalise an un-normalised log-mel window, then fit it to the model's frame count: a short
    one repeated (`tile`, for networks of one input length) or filled with NOT_AUDIO (`pad_frames`)."""
    normalised = normalise(features, config.normalisation, stats)
    return tile_frames(normalised, frames) if tile else pad_frames(normalised, frames)
