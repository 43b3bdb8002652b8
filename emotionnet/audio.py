"""Audio in: decode, downmix, resample to 16 kHz, validate.

Every path into the model (training, evaluation, prediction, streaming) comes
through `load_audio` or `prepare_array`, so they all see the same samples.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile
import soxr

SAMPLE_RATE = 16_000
MIN_SECONDS = 0.25

AudioSource = str | Path | bytes | np.ndarray


class AudioError(ValueError):
    """Audio that cannot be used: the message names the input and the problem."""


def load_audio(
    source: str | Path | bytes,
    max_seconds: float | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Decode a file (or its bytes) into mono float32 at 16 kHz.

    The format is detected from the content by libsndfile, never from the
    file name, so an AIFF named `.wav` still decodes.
    """
    name = name or (str(source) if not isinstance(source, bytes) else "<bytes>")
    if isinstance(source, bytes):
        if not source:
            raise AudioError(f"{name}: empty input (no bytes)")
        handle: object = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.exists():
            raise AudioError(f"{name}: file not found")
        if path.is_dir():
            raise AudioError(f"{name}: is a directory, not an audio file")
        if path.stat().st_size == 0:
            raise AudioError(f"{name}: empty file (0 bytes)")
        handle = str(path)
    try:
        with soundfile.SoundFile(handle) as f:
            if max_seconds is not None and f.frames > max_seconds * f.samplerate > 0:
                raise AudioError(
                    f"{name}: too long ({f.frames / f.samplerate:.1f} s; "
                    f"the limit is {max_seconds:g} s)"
                )
            samples = f.read(dtype="float32", always_2d=True)
            sample_rate = f.samplerate
    except AudioError:
        raise
    except Exception as exc:  # libsndfile raises several types for bad data
        raise AudioError(f"{name}: unreadable or unsupported audio ({exc})") from None
    return prepare_array(samples, sample_rate, max_seconds=max_seconds, name=name)


def prepare_array(
    samples: np.ndarray,
    sample_rate: int,
    max_seconds: float | None = None,
    name: str = "<array>",
) -> np.ndarray:
    """Turn `(samples,)` or `(samples, channels)` at any rate into mono 16 kHz float32.

    Integer arrays are scaled to [-1, 1] by their type's range.
    """
    samples = np.asarray(samples)
    if sample_rate is None or sample_rate <= 0:
        raise AudioError(f"{name}: a positive sample rate is required, got {sample_rate}")
    if samples.ndim not in (1, 2):
        raise AudioError(f"{name}: expected shape (samples,) or (samples, channels), got {samples.shape}")
    if np.issubdtype(samples.dtype, np.integer):
        info = np.iinfo(samples.dtype)
        # Signed PCM spans [-2^(n-1), 2^(n-1)); unsigned is centred on half range, 2^(n-1).
        offset = 0 if info.min < 0 else (info.max + 1) / 2
        scale = -info.min if info.min < 0 else (info.max + 1) / 2
        samples = (samples.astype(np.float64) - offset) / scale
    elif not np.issubdtype(samples.dtype, np.floating):
        raise AudioError(f"{name}: unsupported sample type {samples.dtype}")
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    samples = samples.astype(np.float32, copy=False)

    if samples.size == 0:
        raise AudioError(f"{name}: no audio samples (empty)")
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{name}: contains non-finite samples (NaN or inf)")
    seconds = samples.size / sample_rate
    if max_seconds is not None and seconds > max_seconds:
        raise AudioError(f"{name}: too long ({seconds:.1f} s; the limit is {max_seconds:g} s)")
    if seconds < MIN_SECONDS:
        raise AudioError(f"{name}: too short ({seconds:.2f} s; at least {MIN_SECONDS} s is needed)")
    if not np.any(samples):
        raise AudioError(f"{name}: silent (all samples are zero)")

    if sample_rate != SAMPLE_RATE:
        samples = soxr.resample(samples, sample_rate, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(samples, dtype=np.float32)


def to_audio(
    source: AudioSource,
    sample_rate: int | None = None,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Accept a path, file bytes or an array (with its rate); return 16 kHz mono float32."""
    if isinstance(source, np.ndarray):
        if sample_rate is None:
            raise AudioError("<array>: pass sample_rate with an array")
        return prepare_array(source, sample_rate, max_seconds=max_seconds)
    return load_audio(source, max_seconds=max_seconds)
