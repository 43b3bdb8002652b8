"""Augmentation of waveforms, for models whose features are not the package's log-mel.

The CRNN's augmentation works on cached log-mel power (augment.py). A model on a
pretrained encoder hears Whisper's features of the waveform, so its augmented
copies are made here, before the encoder, and cached like clean ones. The same
kinds of randomisation, for the same reason: a user's voice, room, microphone
and level are none of the corpora's. None of these is a channel of the channel
suite (evaluation/channels.py), which stays unseen: noise is white or brown,
not pink; rooms are synthetic exponential tails, not image-source rooms; the
band limits and EQ are random, not the telephone or laptop responses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import soxr

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class WaveAugmentConfig:
    speed_p: float = 0.6  # resampling moves pitch and formants together, like another vocal tract
    speed: tuple[float, float] = (0.88, 1.12)
    eq_p: float = 0.6
    eq_db: float = 9.0
    bandlimit_p: float = 0.3
    bandlimit_hz: tuple[float, float] = (3_000.0, 7_000.0)
    reverb_p: float = 0.35
    rt60_s: tuple[float, float] = (0.15, 0.9)
    noise_p: float = 0.5
    snr_db: tuple[float, float] = (3.0, 30.0)
    gain_db: tuple[float, float] = (-30.0, 6.0)

    def to_dict(self) -> dict:
        return asdict(self)


def _spectral_filter(audio: np.ndarray, response: np.ndarray) -> np.ndarray:
    spectrum = np.fft.rfft(audio)
    return np.fft.irfft(spectrum * response, n=audio.size).astype(np.float32)


def _random_eq(audio: np.ndarray, db: float, rng: np.random.Generator) -> np.ndarray:
    freqs = np.linspace(0, 1, audio.size // 2 + 1)
    tilt = rng.uniform(-1, 1) * (freqs - 0.5)
    ripple = sum(rng.uniform(-0.5, 0.5) * np.cos(np.pi * k * freqs + rng.uniform(0, np.pi)) for k in (2, 3, 5))
    return _spectral_filter(audio, 10 ** (db * (tilt + ripple) / 20))


def _band_limit(audio: np.ndarray, cutoff_hz: float, rng: np.random.Generator) -> np.ndarray:
    freqs = np.fft.rfftfreq(audio.size, 1 / SAMPLE_RATE)
    low_hz = rng.uniform(50, 400)
    response = 1 / np.sqrt(1 + (freqs / cutoff_hz) ** 8) / np.sqrt(1 + (low_hz / np.maximum(freqs, 1)) ** 4)
    return _spectral_filter(audio, response)


def _reverb(audio: np.ndarray, rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    length = int(rt60_s * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    tail = rng.standard_normal(length) * np.exp(-6.9 * t / rt60_s)  # -60 dB at rt60
    tail[: int(0.002 * SAMPLE_RATE)] = 0
    impulse = np.concatenate([[1.0], 0.5 * tail / np.sqrt(np.sum(tail**2) + 1e-12)])
    n = audio.size + impulse.size - 1
    wet = np.fft.irfft(np.fft.rfft(audio, n) * np.fft.rfft(impulse, n), n)[: audio.size]
    return (wet * np.sqrt(np.sum(audio**2) / (np.sum(wet**2) + 1e-12))).astype(np.float32)


def _noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(audio.size)
    if rng.random() < 0.5:  # brown: most of its power low, like traffic and hum
        noise = np.cumsum(noise)
        noise -= np.convolve(noise, np.ones(401) / 401, mode="same")
    power = np.mean(audio**2) + 1e-12
    noise *= np.sqrt(power / (np.mean(noise**2) + 1e-12) / 10 ** (snr_db / 10))
    return (audio + noise).astype(np.float32)


def augment_wave(audio: np.ndarray, cfg: WaveAugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """One randomised copy of a 16 kHz mono clip (a different length when its speed changes)."""
    audio = np.asarray(audio, dtype=np.float32)
    if rng.random() < cfg.speed_p:
        audio = soxr.resample(audio, SAMPLE_RATE * rng.uniform(*cfg.speed), SAMPLE_RATE).astype(np.float32)
    if rng.random() < cfg.eq_p:
        audio = _random_eq(audio, cfg.eq_db, rng)
    if rng.random() < cfg.bandlimit_p:
        audio = _band_limit(audio, rng.uniform(*cfg.bandlimit_hz), rng)
    if rng.random() < cfg.reverb_p:
        audio = _reverb(audio, rng.uniform(*cfg.rt60_s), rng)
    if rng.random() < cfg.noise_p:
        audio = _noise(audio, rng.uniform(*cfg.snr_db), rng)
    audio = audio * 10 ** (rng.uniform(*cfg.gain_db) / 20)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return audio / peak if peak > 1 else audio  # scaled under full scale rather than clipped
