"""Where live audio comes from: a microphone, or a file played as if it were one.

A source is any iterable of `Chunk`s (16 kHz mono float32 samples plus the
`time.perf_counter()` at which they arrived); `StreamEngine.run` takes one.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from emotionnet.audio import DEFAULT_LIMITS, SAMPLE_RATE, AudioError, audio_info, iter_audio_blocks
from emotionnet.errors import AudioTooLongError
from emotionnet.streaming.engine import Chunk

BLOCK_SECONDS = 0.1
INPUT_HINT = "use --input FILE to stream an audio file instead"


class MicrophoneError(AudioError):
    """No usable microphone: no input device, a wrong device id, or no PortAudio library."""

    hint = INPUT_HINT


def _sounddevice():
    try:
        import sounddevice
    except OSError as exc:  # the Python package is there, the PortAudio library is not
        raise MicrophoneError(f"no microphone support: the PortAudio library is missing ({exc})") from None
    except ImportError:
        error = MicrophoneError("the microphone needs sounddevice")
        error.hint = 'pip install "emotionnet[live]"; or use --input FILE to stream an audio file'
        raise error from None
    return sounddevice


def list_input_devices() -> list[dict]:
    """Input devices as `{"id", "name", "channels", "sample_rate", "default"}`."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        default = sd.default.device[0]
    except Exception as exc:
        raise MicrophoneError(f"cannot list audio devices; PortAudio: {exc}") from None
    return [
        {"id": i, "name": d["name"], "channels": d["max_input_channels"],
         "sample_rate": d["default_samplerate"], "default": i == default}
        for i, d in enumerate(devices) if d["max_input_channels"] > 0
    ]


class MicrophoneSource:
    """Blocks of 16 kHz mono float32 from an input device (default: the system's).

    Opening checks the device at once and raises `MicrophoneError` with a hint
    when there is none. Devices that cannot record at 16 kHz are recorded at
    their own rate and resampled. When the consumer falls behind by more than
    `max_queue_seconds`, blocks are dropped (counted in `dropped`) rather than
    letting memory grow.
    """

    def __init__(self, device: int | str | None = None, block_seconds: float = BLOCK_SECONDS,
                 max_queue_seconds: float = 5.0):
        self.device = device
        self.block_seconds = block_seconds
        self.dropped = 0
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, round(max_queue_seconds / block_seconds)))
        self._stream = None
        self._resampler = None
        self.name = "microphone"
        self.sample_rate = SAMPLE_RATE
        self._open()

    def _open(self) -> None:
        sd = _sounddevice()
        device = self.device
        try:
            info = sd.query_devices(device, kind="input")
        except Exception as exc:  # ValueError for a bad id or name, PortAudioError for no device
            which = "no audio input device found" if device is None else f"no input device {device!r}"
            raise MicrophoneError(f"{which}; PortAudio: {exc}") from None
        self.name = info["name"]
        try:
            sd.check_input_settings(device=device, channels=1, dtype="float32", samplerate=SAMPLE_RATE)
        except Exception:
            self.sample_rate = int(info["default_samplerate"])
            import soxr

            self._resampler = soxr.ResampleStream(self.sample_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        try:
            self._stream = sd.InputStream(
                samplerate=self.sample_rate, channels=1, dtype="float32", device=device,
                blocksize=round(self.block_seconds * self.sample_rate), callback=self._callback,
            )
            self._stream.start()
        except Exception as exc:
            self.close()
            raise MicrophoneError(f"cannot open input device {self.name!r}; PortAudio: {exc}") from None

    def _callback(self, indata, frames, time_info, status) -> None:
        try:
            self._queue.put_nowait(Chunk(indata[:, 0].copy(), time.perf_counter()))
        except queue.Full:
            self.dropped += 1

    def __iter__(self) -> Iterator[Chunk]:
        try:
            while self._stream is not None:
                try:
                    chunk = self._queue.get(timeout=1.0)
                except queue.Empty:
                    if self._stream is None or not self._stream.active:
                        return
                    continue
                if self._resampler is not None:
                    chunk = Chunk(self._resampler.resample_chunk(chunk.samples), chunk.arrived)
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
            finally:
                stream.close()

    def __enter__(self) -> MicrophoneSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ArraySource:
    """A NumPy array (16 kHz mono float32) as a source, in blocks, optionally at real-time pace.

    `realtime=True` paces the blocks as a microphone would (10 s of audio take
    10 s); `realtime=False` gives them out as fast as they are taken.
    """

    def __init__(self, samples: np.ndarray, realtime: bool = False, block_seconds: float = BLOCK_SECONDS):
        self.samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self.realtime = realtime
        self.block = max(1, round(block_seconds * SAMPLE_RATE))
        self.duration = self.samples.size / SAMPLE_RATE
        self.name = "<array>"

    def __iter__(self) -> Iterator[Chunk]:
        begun = time.perf_counter()
        for start in range(0, self.samples.size, self.block):
            block = self.samples[start:start + self.block]
            if self.realtime:
                delay = begun + (start + block.size) / SAMPLE_RATE - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            yield Chunk(block, time.perf_counter())


class FileSource:
    """An audio file as a live source: decoded block by block (any format and rate, as
    `iter_audio_blocks` reads it) and given out in chunks like an `ArraySource`; real-time
    pace by default. Memory stays one decoding block, however long the file.

    The file is checked when the source is made (it exists, its header reads, its
    length is within `max_seconds`); damage further in raises AudioError while streaming.
    """

    def __init__(self, path: str | Path, realtime: bool = True, block_seconds: float = BLOCK_SECONDS,
                 max_seconds: float | None = None):
        self.path = path
        self.realtime = realtime
        self.block = max(1, round(block_seconds * SAMPLE_RATE))
        self.max_seconds = max_seconds
        _, self.duration = audio_info(path)
        limit = DEFAULT_LIMITS.max_seconds if max_seconds is None else max_seconds
        if self.duration > limit:
            raise AudioTooLongError(f"{path}: too long ({self.duration:.1f} s; the limit is {limit:g} s)")
        self.name = str(path)

    def __iter__(self) -> Iterator[Chunk]:
        begun, given = time.perf_counter(), 0
        pending = np.zeros(0, np.float32)
        for decoded in self._blocks():
            pending = np.concatenate([pending, decoded]) if pending.size else decoded
            whole = pending.size - pending.size % self.block
            for start in range(0, whole, self.block):
                given += self.block
                yield self._paced(pending[start:start + self.block], begun, given)
            pending = pending[whole:]
        if pending.size:
            yield self._paced(pending, begun, given + pending.size)

    def _blocks(self) -> Iterator[np.ndarray]:
        """The file's 16 kHz mono samples, a decoding block at a time."""
        return iter_audio_blocks(self.path, max_seconds=self.max_seconds)

    def _paced(self, block: np.ndarray, begun: float, given: int) -> Chunk:
        if self.realtime:
            delay = begun + given / SAMPLE_RATE - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        return Chunk(block, time.perf_counter())
