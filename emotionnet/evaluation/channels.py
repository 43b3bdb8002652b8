"""The channel suite: test audio replayed through channels no training clip went through.

Each channel takes 16 kHz mono float32 and returns the same, made with real tools
where one exists (libsndfile's MP3 and Opus encoders, soxr, an image-source room
simulation) rather than with the mel-domain approximations that training uses.
A channel is a function of the audio and a seeded generator, so a run repeats.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import soundfile
import soxr
from scipy import signal

from emotionnet.audio import SAMPLE_RATE

Channel = Callable[[np.ndarray, np.random.Generator], np.ndarray]

# libsndfile sets the encoders' bit rates from a compression level; these levels give
# 32 kbit/s MP3 (constant rate) and about 11 kbit/s Opus (Ogg pages included) on 2-3 s speech clips.
MP3_LEVEL = 0.85
OPUS_LEVEL = 0.99


def _same_length(audio: np.ndarray, length: int) -> np.ndarray:
    out = np.zeros(length, dtype=np.float32)
    out[:min(length, audio.size)] = audio[:length]
    return out


def _codec(audio: np.ndarray, fmt: str, subtype: str, level: float, mode: str | None = None) -> np.ndarray:
    encoded = io.BytesIO()
    soundfile.write(encoded, audio, SAMPLE_RATE, format=fmt, subtype=subtype, compression_level=level,
                    bitrate_mode=mode)
    decoded, rate = soundfile.read(io.BytesIO(encoded.getvalue()), dtype="float32")
    if rate != SAMPLE_RATE:
        decoded = soxr.resample(decoded, rate, SAMPLE_RATE)
    return _same_length(decoded, audio.size)  # MP3 adds encoder delay and padding


def mp3_32k(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _codec(audio, "MP3", "MPEG_LAYER_III", MP3_LEVEL, "CONSTANT")


def opus_12k(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _codec(audio, "OGG", "OPUS", OPUS_LEVEL)


def mu_law(audio: np.ndarray, bits: int = 8) -> np.ndarray:
    """G.711-style companding: encode to 2^bits levels and decode again."""
    mu = 2 ** bits - 1
    x = np.clip(audio, -1, 1)
    encoded = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    quantised = np.round((encoded + 1) / 2 * mu) / mu * 2 - 1
    return (np.sign(quantised) * np.expm1(np.abs(quantised) * np.log1p(mu)) / mu).astype(np.float32)


def telephone(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """8 kHz narrow band (300-3400 Hz) with 8-bit mu-law, back at 16 kHz."""
    narrow = soxr.resample(audio, SAMPLE_RATE, 8_000)
    band = signal.butter(4, [300, 3400], btype="bandpass", fs=8_000, output="sos")
    narrow = mu_law(signal.sosfilt(band, narrow).astype(np.float32))
    return _same_length(soxr.resample(narrow, 8_000, SAMPLE_RATE), audio.size)


def room_impulse_response(rt60: float, rng: np.random.Generator) -> np.ndarray:
    """An image-source impulse response of a random shoebox room with the given RT60."""
    import pyroomacoustics as pra

    size = np.array([rng.uniform(3, 8), rng.uniform(3, 6), rng.uniform(2.4, 3.2)])
    absorption, max_order = pra.inverse_sabine(rt60, size)
    room = pra.ShoeBox(size, fs=SAMPLE_RATE, materials=pra.Material(absorption), max_order=min(max_order, 30))
    margin = 0.5
    source = rng.uniform(margin, size - margin)
    microphone = rng.uniform(margin, size - margin)
    room.add_source(source)
    room.add_microphone(microphone)
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], dtype=np.float64)
    return (rir / np.abs(rir).max()).astype(np.float32)


def reverberation(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random room with RT60 between 0.3 and 0.8 s; level kept at the dry signal's RMS."""
    wet = signal.fftconvolve(audio, room_impulse_response(rng.uniform(0.3, 0.8), rng))[:audio.size]
    return (wet * _rms(audio) / max(_rms(wet), 1e-9)).astype(np.float32)


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


def pink_noise(length: int, rng: np.random.Generator) -> np.ndarray:
    """Noise with a 1/f power spectrum, as much room and fan noise has."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    spectrum /= np.sqrt(np.maximum(np.arange(spectrum.size), 1))
    noise = np.fft.irfft(spectrum, n=length)
    return noise / max(_rms(noise), 1e-12)


def noise_10db(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pink noise at 10 dB SNR, against the speech level (the loud half of the frames)."""
    frames = audio[: audio.size // 400 * 400].reshape(-1, 400)
    power = np.mean(np.square(frames, dtype=np.float64), axis=1)
    speech = np.sqrt(np.mean(np.sort(power)[power.size // 2:])) if power.size else _rms(audio)
    return (audio + pink_noise(audio.size, rng) * speech / 10 ** (10 / 20)).astype(np.float32)


def quiet_25db(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (audio * 10 ** (-25 / 20)).astype(np.float32)


def laptop_microphone(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A small laptop microphone: little below 250 Hz, a resonance near 4 kHz, roll-off above 6 kHz."""
    highpass = signal.butter(2, 250, btype="highpass", fs=SAMPLE_RATE, output="sos")
    lowpass = signal.butter(4, 6_000, btype="lowpass", fs=SAMPLE_RATE, output="sos")
    b, a = signal.iirpeak(4_000, Q=2.0, fs=SAMPLE_RATE)
    shaped = signal.sosfilt(lowpass, signal.sosfilt(highpass, audio))
    shaped = shaped + 1.0 * signal.lfilter(b, a, shaped)  # about +6 dB at the resonance
    return (shaped * _rms(audio) / max(_rms(shaped), 1e-9)).astype(np.float32)


CHANNELS: dict[str, Channel] = {
    "telephone_8k_mulaw": telephone,
    "mp3_32k": mp3_32k,
    "opus_12k": opus_12k,
    "reverb_rt60_0.3-0.8": reverberation,
    "noise_10db_snr": noise_10db,
    "level_-25db": quiet_25db,
    "laptop_mic": laptop_microphone,
}
