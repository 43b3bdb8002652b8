"""Audio in: decode, downmix, resample to 16 kHz, validate.

Every path into the model (training, evaluation, prediction, streaming) comes
through `load_audio`, `iter_audio_blocks` or `prepare_array`, so they all see
the same samples.

Limits guard memory and time against absurd input (a header claiming 1 Hz
would otherwise be resampled into hours of audio): by default a recording is
at most 4 hours long and sampled at 4 kHz to 768 kHz. Pass `max_seconds`
(`math.inf` lifts it) or `limits=AudioLimits(...)` to change them for one call,
or set `emotionnet.audio.DEFAULT_LIMITS = AudioLimits(...)` for every path in
(the recognizer's included). Long files
are decoded and resampled in blocks, so decoding never holds more than one
block at the file's own rate.
"""

from __future__ import annotations

import io
import itertools
import math
import numbers
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from emotionnet.errors import AudioError, AudioNotFoundError, AudioTooLongError

SAMPLE_RATE = 16_000
MIN_SECONDS = 0.25
# Float audio is nominally within [-1, 1]; PCM values stored as floats reach 2^31.
# Beyond that the log-mel's power overflows float32 and the model answers NaN.
MAX_ABS_SAMPLE = 2.0**31
# Float audio peaking above this is integer PCM that was cast to float without scaling (an int16
# recording's `.astype(float)`): 24 dB over full scale, which no float pipeline reaches by clipping
# or resampling overshoot (those stay within a few dB of 1), while any audible 16-bit recording
# (peak above -66 dBFS, 16 LSB) passes it once cast. It is warned about, not refused: the answer
# can still be computed, and a pipeline that worked keeps working while it is fixed.
INTEGER_SCALE_PEAK = 16.0
MAX_ARRAY_CHANNELS = 64  # an array "with more channels" is a (channels, samples) array
BLOCK_SECONDS = 60.0  # decoding block, at the file's own rate
# A block holds at most this many values (frames x channels: 60 s of 48 kHz stereo, 23 MB as float32),
# so a file of many channels at a high rate is read in shorter blocks: a 212 KB FLAC of 8 channels at
# 384 kHz decoded whole took 1.4 GB (issue 30).
BLOCK_VALUES = 60 * 48_000 * 2

AudioSource = str | Path | bytes | np.ndarray


class AudioWarning(UserWarning):
    """Audio that can be used but is likely not what was meant: float samples at integer scale, or
    a truncated file (scored for what it holds). The message names the input."""


def warn_if_integer_scale(samples: np.ndarray, name: str) -> bool:
    """An AudioWarning naming the input when float samples peak above INTEGER_SCALE_PEAK
    (True when it warned)."""
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak > INTEGER_SCALE_PEAK:
        import warnings

        hint = "int16: divide by 32768" if peak <= 32768 else "int32: divide by 2**31"
        warnings.warn(f"{name}: float samples peak at {peak:.0f}, far outside [-1, 1]: integer PCM cast to "
                      f"float without scaling? ({hint}, or pass the integer array as it is)",
                      AudioWarning, stacklevel=3)
    return peak > INTEGER_SCALE_PEAK


@dataclass(frozen=True)
class AudioLimits:
    """What audio is accepted; every limit can be lifted (`math.inf`, 0)."""

    max_seconds: float = 4 * 3600.0
    min_sample_rate: float = 4_000.0
    max_sample_rate: float = 768_000.0


DEFAULT_LIMITS = AudioLimits()


def _limits(limits: AudioLimits | None, max_seconds: float | None) -> AudioLimits:
    limits = limits or DEFAULT_LIMITS
    if max_seconds is not None:
        limits = AudioLimits(float(max_seconds), limits.min_sample_rate, limits.max_sample_rate)
    return limits


def check_sample_rate(sample_rate: object, name: str = "<array>", limits: AudioLimits | None = None) -> float:
    """The rate as a float, or an AudioError: not a number, not finite, or outside the limits."""
    limits = limits or DEFAULT_LIMITS
    if sample_rate is None:
        raise AudioError(f"{name}: pass sample_rate with an array (a positive number, e.g. 16000)")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Real):
        raise AudioError(f"{name}: the sample rate must be a number, got {type(sample_rate).__name__} "
                         f"{sample_rate!r}")
    rate = float(sample_rate)
    if not math.isfinite(rate) or rate <= 0:
        raise AudioError(f"{name}: a positive sample rate is required, got {sample_rate}")
    if not limits.min_sample_rate <= rate <= limits.max_sample_rate:
        raise AudioError(f"{name}: sample rate {rate:g} Hz is outside {limits.min_sample_rate:g}-"
                         f"{limits.max_sample_rate:g} Hz (a damaged header? lift with AudioLimits)")
    return rate


def _too_long(name: str, seconds: float, limit: float) -> AudioTooLongError:
    return AudioTooLongError(f"{name}: too long ({seconds:.1f} s; the limit is {limit:g} s)")


def _as_array(samples: object, name: str) -> np.ndarray:
    """Any array-like (NumPy, a list, a torch tensor) as a NumPy array, or an AudioError."""
    if samples is None:
        raise AudioError(f"{name}: no audio (got None)")
    if hasattr(samples, "detach") and hasattr(samples, "cpu"):  # a torch tensor, without importing torch
        samples = samples.detach().cpu().numpy()
    try:
        array = np.asarray(samples)
    except (TypeError, ValueError) as exc:
        raise AudioError(f"{name}: not an array of samples ({exc})") from None
    if array.dtype == object or array.dtype.kind in "USV":
        raise AudioError(f"{name}: unsupported sample type {array.dtype} (expected numbers)")
    return array


def _check_block(block: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(block)):
        raise AudioError(f"{name}: contains non-finite samples (NaN or inf)")
    if block.size and float(np.max(np.abs(block))) > MAX_ABS_SAMPLE:
        raise AudioError(f"{name}: absurd sample values (peak {float(np.max(np.abs(block))):.3g}; "
                         "float audio should lie within [-1, 1])")


def _to_float_mono(samples: np.ndarray, name: str) -> np.ndarray:
    """Integer PCM scaled to [-1, 1], channels averaged; shape and type checked."""
    if samples.ndim not in (1, 2):
        raise AudioError(f"{name}: expected shape (samples,) or (samples, channels), got {samples.shape}")
    if samples.ndim == 2 and samples.shape[1] > MAX_ARRAY_CHANNELS:
        hint = "pass samples.T" if samples.shape[0] <= MAX_ARRAY_CHANNELS else "is it audio?"
        raise AudioError(f"{name}: shape {samples.shape} looks like (channels, samples); "
                         f"expected (samples, channels) ({hint})")
    if samples.dtype in (np.int64, np.uint64):
        raise AudioError(f"{name}: {samples.dtype} samples have no PCM scale "
                         "(cast to the width they hold, e.g. samples.astype(np.int16), or to float in [-1, 1])")
    if np.issubdtype(samples.dtype, np.integer):
        info = np.iinfo(samples.dtype)
        # Signed PCM spans [-2^(n-1), 2^(n-1)); unsigned is centred on half range, 2^(n-1).
        offset = 0 if info.min < 0 else (info.max + 1) / 2
        scale = -info.min if info.min < 0 else (info.max + 1) / 2
        samples = (samples.astype(np.float64) - offset) / scale
    elif not np.issubdtype(samples.dtype, np.floating):
        raise AudioError(f"{name}: unsupported sample type {samples.dtype}")
    else:
        _check_block(samples, name)  # before float32 turns huge float64 values into inf
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    return samples.astype(np.float32, copy=False)


def prepare_array(
    samples: np.ndarray,
    sample_rate: int,
    max_seconds: float | None = None,
    name: str = "<array>",
    limits: AudioLimits | None = None,
) -> np.ndarray:
    """Turn `(samples,)` or `(samples, channels)` at any rate into mono 16 kHz float32.

    Integer arrays are scaled to [-1, 1] by their type's range (int64 is refused:
    it has no PCM scale). Lists and torch tensors are accepted as arrays.
    """
    limits = _limits(limits, max_seconds)
    rate = check_sample_rate(sample_rate, name, limits)
    samples = _to_float_mono(_as_array(samples, name), name)
    warn_if_integer_scale(samples, name)

    if samples.size == 0:
        raise AudioError(f"{name}: no audio samples (empty)")
    seconds = samples.size / rate
    if seconds > limits.max_seconds:
        raise _too_long(name, seconds, limits.max_seconds)
    if seconds < MIN_SECONDS:
        raise AudioError(f"{name}: too short ({seconds:.2f} s; at least {MIN_SECONDS} s is needed)")

    if rate != SAMPLE_RATE:
        samples = soxr.resample(samples, rate, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(samples, dtype=np.float32)


def _open(source: str | Path | bytes, name: str):
    if isinstance(source, (bytes, bytearray, memoryview)):
        if not len(source):
            raise AudioError(f"{name}: empty input (no bytes)")
        return io.BytesIO(source)
    if not isinstance(source, (str, Path)):
        raise AudioError(f"{name}: expected a path, file bytes or an array, got {type(source).__name__}")
    path = Path(source)
    if str(source) == "":
        raise AudioError("<empty path>: no file named")
    if not path.exists():
        raise AudioNotFoundError(f"{name}: file not found")
    if path.is_dir():
        raise AudioError(f"{name}: is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{name}: empty file (0 bytes)")
    return str(path)


def _unreadable(name: str, exc: Exception, handle: object) -> AudioError:
    """libsndfile's complaint, with the input's name where it printed an in-memory buffer's repr."""
    detail = str(exc).replace(repr(handle), name) if not isinstance(handle, str) else str(exc)
    return AudioError(f"{name}: unreadable or unsupported audio ({detail})")


_OVERSTATED = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def declared_seconds(f: soundfile.SoundFile) -> float | None:
    """The length a truncated WAV's header promises, in seconds (None when the file holds what it says).

    libsndfile reads what is there and notes `data : 96000 (should be 956)` in its log.
    """
    match = _OVERSTATED.search(f.extra_info or "")
    if not match or int(match.group(1)) <= int(match.group(2)):
        return None
    frame_bytes = max(1, f.channels * {"PCM_S8": 1, "PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4,
                                       "FLOAT": 4, "DOUBLE": 8}.get(f.subtype, 2))
    return int(match.group(1)) / frame_bytes / f.samplerate


def _truncated(name: str, held: float, declared: float) -> AudioError:
    return AudioError(f"{name}: truncated file (its header promises {declared:.2f} s, it holds {held:.2f} s; "
                      f"at least {MIN_SECONDS} s is needed)")


def source_name(source: object) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    return str(source)


def audio_info(source: str | Path | bytes, name: str | None = None,
               limits: AudioLimits | None = None) -> tuple[float, float]:
    """(sample rate, seconds) from the header, checked against the limits, without decoding."""
    name = name or source_name(source)
    handle = _open(source, name)
    try:
        with soundfile.SoundFile(handle) as f:
            rate, frames = f.samplerate, f.frames
    except AudioError:
        raise
    except Exception as exc:  # libsndfile raises several types for bad data
        raise _unreadable(name, exc, handle) from None
    return check_sample_rate(rate, name, limits), frames / rate


def block_frames(sample_rate: float, channels: int, block_seconds: float = BLOCK_SECONDS) -> int:
    """Frames per decoding block: `block_seconds` of the file, or fewer so that the block holds
    at most `BLOCK_VALUES` samples over all its channels."""
    return max(1, min(int(block_seconds * sample_rate), BLOCK_VALUES // max(1, channels)))


def resample_blocks(
    blocks: Iterable[np.ndarray],
    sample_rate: float,
    name: str = "<stream>",
    limits: AudioLimits | None = None,
    frames_per_block: int | None = None,
    declared: float | None = None,
) -> Iterator[np.ndarray]:
    """Decoded audio at its own rate, in pieces of any size, as checked mono float32 blocks at 16 kHz.

    `blocks` are float or integer arrays `(frames,)` or `(frames, channels)` at `sample_rate`
    (a libsndfile read, a PyAV frame). Audio of at most one block (`frames_per_block`, default
    `block_frames(sample_rate, 2)`) is treated whole, exactly as `prepare_array` treats it;
    longer audio is regrouped into blocks of that size, each checked and resampled as it
    comes (memory: one block at the source's rate), so an excess length may be found after
    some blocks. `declared` is the length in seconds a header promised, for the error of a
    truncated file.
    """
    limits = limits or DEFAULT_LIMITS
    rate = check_sample_rate(sample_rate, name, limits)
    frames_per_block = frames_per_block or block_frames(rate, 2)
    pieces = iter(blocks)
    first, held = [], 0
    for piece in pieces:
        first.append(piece)
        held += len(piece)
        if held > frames_per_block:
            break
    else:  # all of it fits in one block
        if declared is not None and held / rate < MIN_SECONDS:
            raise _truncated(name, held / rate, declared)
        if not first:
            raise AudioError(f"{name}: no audio samples (empty)")
        whole = first[0] if len(first) == 1 else np.concatenate(first)
        yield prepare_array(whole, rate, name=name, limits=limits)
        return
    resampler = None if rate == SAMPLE_RATE else soxr.ResampleStream(
        rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
    frames_read, warned = 0, False
    for block in _regrouped(itertools.chain(first, pieces), frames_per_block):
        frames_read += len(block)
        if frames_read > limits.max_seconds * rate:
            raise _too_long(name, frames_read / rate, limits.max_seconds)
        mono = _to_float_mono(block, name)
        warned = warned or warn_if_integer_scale(mono, name)  # once per input
        yield resampler.resample_chunk(mono) if resampler else mono
    if frames_read / rate < MIN_SECONDS:  # only with blocks shorter than that
        if declared is not None:
            raise _truncated(name, frames_read / rate, declared)
        raise AudioError(f"{name}: too short ({frames_read / rate:.2f} s; at least {MIN_SECONDS} s is needed)")
    if resampler is not None:
        yield resampler.resample_chunk(np.zeros(0, np.float32), last=True)


def _regrouped(pieces: Iterable[np.ndarray], block_frames: int) -> Iterator[np.ndarray]:
    """Pieces joined into blocks of at least `block_frames` (the last may be shorter); a piece
    already that long passes as it is."""
    held, count = [], 0
    for piece in pieces:
        held.append(piece)
        count += len(piece)
        if count >= block_frames:
            yield held[0] if len(held) == 1 else np.concatenate(held)
            held, count = [], 0
    if held:
        yield held[0] if len(held) == 1 else np.concatenate(held)


def iter_audio_blocks(
    source: str | Path | bytes,
    max_seconds: float | None = None,
    name: str | None = None,
    limits: AudioLimits | None = None,
    block_seconds: float = BLOCK_SECONDS,
) -> Iterator[np.ndarray]:
    """Decode a file (or its bytes) block by block into mono float32 at 16 kHz.

    A file of at most one block is decoded whole, exactly as `prepare_array`
    would treat its samples. A longer one is read, checked and resampled one
    block at a time (`resample_blocks`; memory: one block at the file's rate,
    whatever its length or channel count: see `block_frames`); a length its
    header understated is found as the blocks go, so an AudioError may come
    after some blocks. Digital silence (every sample zero) is audio, not an
    error: the recognizer answers it with "no speech".
    """
    name = name or source_name(source)
    limits = _limits(limits, max_seconds)
    handle = _open(source, name)
    try:
        with soundfile.SoundFile(handle) as f:
            rate = check_sample_rate(f.samplerate, name, limits)
            if f.channels > MAX_ARRAY_CHANNELS:
                raise AudioError(f"{name}: {f.channels} channels; at most {MAX_ARRAY_CHANNELS} are supported")
            if f.frames > limits.max_seconds * rate:
                raise _too_long(name, f.frames / rate, limits.max_seconds)
            frames_per_block = block_frames(rate, f.channels, block_seconds)
            declared = declared_seconds(f)
            if declared is not None and f.frames / rate >= MIN_SECONDS:  # shorter: the error below says it
                import warnings

                warnings.warn(f"{name}: truncated file (its header promises {declared:.2f} s, it holds "
                              f"{f.frames / rate:.2f} s): scored for what it holds", AudioWarning, stacklevel=2)
            reads = (f.read(frames_per_block, dtype="float32", always_2d=True) for _ in itertools.count())
            pieces = itertools.takewhile(len, reads)  # until a read comes back empty
            yield from resample_blocks(pieces, rate, name, limits, frames_per_block, declared)
    except AudioError:
        raise
    except Exception as exc:  # libsndfile raises several types for bad data
        raise _unreadable(name, exc, handle) from None


def load_audio(
    source: str | Path | bytes,
    max_seconds: float | None = None,
    name: str | None = None,
    limits: AudioLimits | None = None,
) -> np.ndarray:
    """Decode a file (or its bytes) into mono float32 at 16 kHz.

    The format is detected from the content by libsndfile, never from the
    file name, so an AIFF named `.wav` still decodes.
    """
    blocks = list(iter_audio_blocks(source, max_seconds=max_seconds, name=name, limits=limits))
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def to_audio(
    source: AudioSource,
    sample_rate: int | None = None,
    max_seconds: float | None = None,
    limits: AudioLimits | None = None,
) -> np.ndarray:
    """Accept a path, file bytes or an array (with its rate); return 16 kHz mono float32."""
    if isinstance(source, (str, Path, bytes, bytearray, memoryview)):
        return load_audio(bytes(source) if not isinstance(source, (str, Path, bytes)) else source,
                          max_seconds=max_seconds, limits=limits)
    return prepare_array(source, sample_rate, max_seconds=max_seconds, limits=limits)
