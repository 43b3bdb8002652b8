"""Fuzzing the audio loader: random and mutated bytes, truncations and absurd headers.

Every case must end in audio or in one AudioError naming the input: never another
exception, never a hang (a watchdog stops a case after 20 s), and never memory
beyond what the file's size justifies (traced by tracemalloc: NumPy's buffers).
"""

from __future__ import annotations

import io
import signal
import struct
import tracemalloc

import numpy as np
import pytest
import soundfile
from conftest import voiced

from emotionnet.audio import AudioError, AudioLimits, load_audio

CASE_SECONDS = 20
# Decoded audio at 16 kHz float32 from a file of B bytes: at most 4 output samples
# per 8-bit frame at 4 kHz (16 bytes per byte), a block at the file's rate and a copy;
# compressed formats expand further, so the cap is generous but proportional.
BYTES_PER_FILE_BYTE = 200
BASE_BYTES = 8 * 2**20
LIMITS = AudioLimits(max_seconds=600)  # keeps a header claiming hours from mattering for time


def _encode(audio: np.ndarray, rate: int, **kwargs) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, rate, **kwargs)
    return buffer.getvalue()


def seeds() -> dict[str, bytes]:
    """Small valid files of every family libsndfile reads."""
    mono, stereo = voiced(0.6), np.stack([voiced(0.6), voiced(0.6, seed=1)], axis=1)
    return {
        "wav16": _encode(mono, 16_000, format="WAV", subtype="PCM_16"),
        "wav8-48k-stereo": _encode(voiced(0.4, sample_rate=48_000), 48_000, format="WAV", subtype="PCM_U8"),
        "wav-float": _encode(stereo, 16_000, format="WAV", subtype="FLOAT"),
        "flac": _encode(mono, 16_000, format="FLAC"),
        "ogg": _encode(mono, 16_000, format="OGG", subtype="VORBIS"),
        "aiff": _encode(mono, 22_050, format="AIFF"),
    }


def _wav_header_cases(wav: bytes) -> list[bytes]:
    """The canonical 44-byte header with each field set to absurd values."""
    fields = {"channels": (22, "<H"), "rate": (24, "<I"), "byte_rate": (28, "<I"),
              "block_align": (32, "<H"), "bits": (34, "<H"), "riff_size": (4, "<I"), "data_size": (40, "<I")}
    values = {"<H": (0, 1, 3, 255, 65535), "<I": (0, 1, 7, 2**31 - 1, 2**32 - 1)}
    cases = []
    for offset, fmt in fields.values():
        for value in values[fmt]:
            data = bytearray(wav)
            data[offset:offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
            cases.append(bytes(data))
    return cases


def cases() -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(13)
    out: list[tuple[str, bytes]] = []
    for size in (1, 2, 4, 12, 44, 100, 1000, 20_000):
        for k in range(6):
            out.append((f"random-{size}-{k}", rng.integers(0, 256, size, dtype=np.uint8).tobytes()))
    for name, data in seeds().items():
        for k in range(50):  # flipped bytes, denser near the header
            mutated = bytearray(data)
            for _ in range(int(rng.integers(1, 16))):
                limit = 64 if rng.random() < 0.6 else len(mutated)
                mutated[int(rng.integers(0, min(limit, len(mutated))))] = int(rng.integers(0, 256))
            out.append((f"{name}-flip-{k}", bytes(mutated)))
        for k, cut in enumerate(sorted(set(rng.integers(1, len(data), 15).tolist()) | {4, 12, 44})):
            out.append((f"{name}-cut-{k}", data[:cut]))
        out.append((f"{name}-doubled-header", data[:64] + data))
    out += [(f"wav-header-{k}", data) for k, data in enumerate(_wav_header_cases(seeds()["wav16"]))]
    return out


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang


def run_case(name: str, data: bytes) -> str:
    """'audio', 'error' (a clean AudioError) or a description of what went wrong."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_SECONDS)
    tracemalloc.start()
    try:
        audio = load_audio(data, name=name, limits=LIMITS)
        outcome = "audio" if audio.dtype == np.float32 and np.all(np.isfinite(audio)) else "bad audio"
    except AudioError as exc:
        outcome = "error" if str(exc).startswith(f"{name}:") else f"error not naming the input: {exc}"
    except _Hang:
        outcome = f"no answer within {CASE_SECONDS} s"
    except Exception as exc:  # the failure this test exists to find
        outcome = f"{type(exc).__name__}: {exc}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    if peak > BASE_BYTES + BYTES_PER_FILE_BYTE * len(data):
        outcome = f"allocated {peak / 2**20:.1f} MB for {len(data)} bytes"
    return outcome


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # soundfile's seek callback
def test_every_fuzz_case_is_audio_or_one_clear_error():
    all_cases = cases()
    outcomes = {name: run_case(name, data) for name, data in all_cases}
    bad = {name: outcome for name, outcome in outcomes.items() if outcome not in ("audio", "error")}
    errors = sum(outcome == "error" for outcome in outcomes.values())
    print(f"\naudio fuzz: {len(all_cases)} cases, {errors} clean errors, "
          f"{len(all_cases) - errors - len(bad)} decoded, {len(bad)} otherwise")
    assert len(all_cases) > 400 and errors > 100
    assert not bad, bad


@pytest.mark.parametrize("rate", [1, 2, 3_999, 768_001, 2**31 - 1])
def test_absurd_header_rates_are_refused_before_decoding(rate):
    data = bytearray(seeds()["wav16"])
    data[24:28] = struct.pack("<I", rate)
    with pytest.raises(AudioError, match="sample rate"):
        load_audio(bytes(data), name="probe.wav")
