"""Which frames hold speech: silero-vad where it is installed, else an energy gate.

Two detectors answer the same question per 10 ms feature frame:

- silero-vad (MIT; its model ships inside its wheel, nothing is downloaded), run
  with onnxruntime where present, else with torch. On recordings that are not
  clean it is far more accurate: `benchmarks/vad.py` (docs/results/vad.md) found
  a clip error of 0.00-0.01 against the energy gate's 0.30-0.37 over speech,
  silence, noise, music-like tones, babble-like mixtures and keyboard-like
  clicks, clean, at 10 dB SNR and at -25 dB; the gate calls steady noise, music
  and clicks speech, and misses quiet speech. It costs about 14-17 CPU seconds
  per hour of audio (the gate: under 1 s).
- the energy gate: the level of each log-mel frame against the loudest and an
  absolute floor. It reads the log-mel the model gets anyway, so it costs
  nothing; it also picks the frames the features' normalisation statistics use
  (`features.band_sums`), whichever detector decides speech.

The caller chooses (`load_model(..., vad=)`; the command line reads
`EMOTIONNET_VAD`): `silero`, `energy`, or `auto` (the default: silero where installed). Cached features (evaluation, training) have no audio and use
the gate. A window holds speech when at least MIN_SPEECH of its frames do; a
clip or file when any window does (`has_speech`).
"""

from __future__ import annotations

import threading
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # the model's front end (features.py, a layer above) says where its frames lie
    from emotionnet.features import FeatureConfig

# 10*log10 of a frame's summed mel power is about this many dB above its RMS
# level in dBFS (measured with noise and sines: 25-29 dB, depending on spectrum).
MEL_POWER_TO_DBFS = 27.0
FLOOR_DBFS = -55.0  # below this a frame is never speech
RANGE_DB = 35.0  # frames more than this below the loudest are not speech
MIN_SPEECH = 0.15  # a window is speech when at least this share of its frames is


def frame_levels(log_mel: torch.Tensor) -> torch.Tensor:
    """Approximate level in dBFS of each feature frame, from the un-normalised log-mel."""
    return 10 * torch.log10(log_mel.float().exp().sum(dim=-2) + 1e-12) - MEL_POWER_TO_DBFS


def speech_frames(levels: torch.Tensor, reference_db: float | None = None) -> torch.Tensor:
    """Boolean speech mask; `reference_db` is the loudest level known (default: of `levels`)."""
    if levels.numel() == 0:
        return torch.zeros(0, dtype=torch.bool)
    reference = float(levels.max()) if reference_db is None else reference_db
    return levels > max(FLOOR_DBFS, reference - RANGE_DB)


def is_speech(mask: torch.Tensor) -> bool:
    """A window holds speech when at least MIN_SPEECH of its frames are speech frames."""
    return mask.numel() > 0 and float(mask.float().mean()) >= MIN_SPEECH


def speech_runs(mask: torch.Tensor, frame_seconds: float) -> list[tuple[float, float]]:
    """(start, end) seconds of each run of speech frames, frame k spanning [k, k + 1) frame steps."""
    flags = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(flags[1:] != flags[:-1])  # alternately where a run starts and where it ends
    return [(float(a) * frame_seconds, float(b) * frame_seconds) for a, b in zip(edges[::2], edges[1::2])]


def has_speech(window_flags) -> bool:
    """The one rule for a clip or a file: it holds speech when any of its windows does (`is_speech`).

    Without speech every output says so (`"speech": false`, `"emotion": null`) and keeps
    the model's answer only as a guess.
    """
    return any(bool(flag) for flag in window_flags)


# --------------------------------------------------------------------------- the detector in use

DETECTORS = ("auto", "silero", "energy")
SAMPLE_RATE = 16_000
SILERO_CHUNK = 512  # samples per silero-vad decision (32 ms)
SILERO_CONTEXT = 64  # samples of the previous chunk silero-vad reads with each chunk
SILERO_THRESHOLD = 0.5  # silero-vad's own default
SILERO_BATCH = 512  # chunks per call of its sequence model (16 s)


def silero_available() -> bool:
    return find_spec("silero_vad") is not None


def detector_name(choice: str = "auto") -> str:
    """The detector `choice` means: `silero` or `energy`, where `auto` means silero where installed."""
    if choice not in DETECTORS:
        raise ValueError(f"speech detector {choice!r}: choose one of {', '.join(DETECTORS)}")
    if choice == "silero" and not silero_available():
        raise ValueError("the silero speech detector, but silero-vad is not installed (pip install silero-vad)")
    if choice == "auto":
        return "silero" if silero_available() else "energy"
    return choice


class SileroStream:
    """silero-vad over audio that arrives in pieces: a speech probability per 32 ms chunk.

    The network is stateful; one stream carries its state from chunk to chunk, so a
    file read block by block gets the probabilities it would get read whole.
    """

    def __init__(self):
        self.run = _silero_runner()
        self.state = None  # the runner's own, from its first call
        self.context = np.zeros(SILERO_CONTEXT, np.float32)
        self.pending = np.zeros(0, np.float32)
        self.probabilities: list[np.ndarray] = []

    def feed(self, samples: np.ndarray) -> None:
        data = np.concatenate([self.pending, np.asarray(samples, np.float32).reshape(-1)])
        whole = data.size // SILERO_CHUNK * SILERO_CHUNK
        if whole:
            self._chunks(data[:whole].reshape(-1, SILERO_CHUNK))
        self.pending = data[whole:]

    def finish(self) -> np.ndarray:
        """The probabilities of everything fed (the last piece padded with zeros to a whole chunk)."""
        if self.pending.size:
            self._chunks(np.pad(self.pending, (0, SILERO_CHUNK - self.pending.size))[None, :])
            self.pending = np.zeros(0, np.float32)
        return np.concatenate(self.probabilities) if self.probabilities else np.zeros(0, np.float32)

    def _chunks(self, chunks: np.ndarray) -> None:
        """(n, 512) chunks -> each read with the last 64 samples before it, as silero-vad does."""
        contexts = np.empty((len(chunks), SILERO_CONTEXT), np.float32)
        contexts[0] = self.context
        contexts[1:] = chunks[:-1, -SILERO_CONTEXT:]
        self.context = chunks[-1, -SILERO_CONTEXT:].copy()
        for start in range(0, len(chunks), SILERO_BATCH):
            windows = np.concatenate([contexts[start:start + SILERO_BATCH], chunks[start:start + SILERO_BATCH]], axis=1)
            probabilities, self.state = self.run(np.ascontiguousarray(windows), self.state)
            self.probabilities.append(probabilities)


def frame_centres(n_frames: int, features: FeatureConfig) -> np.ndarray:
    """The sample at the centre of each feature frame: a frame every `hop_length` samples, each spanning
    max(n_fft, win_length) samples (torch.stft, center=False): 256 into the log-mel models' 512-sample
    frames, 200 into Whisper's 400."""
    return np.arange(n_frames) * features.hop_length + max(features.n_fft, features.win_length) // 2


def frames_from_chunks(probabilities: np.ndarray, n_frames: int, features: FeatureConfig) -> torch.Tensor:
    """silero-vad's chunk decisions spread over the feature frames (of `features`) whose centre each chunk holds."""
    if n_frames <= 0 or probabilities.size == 0:
        return torch.zeros(max(n_frames, 0), dtype=torch.bool)
    chunk = np.minimum(frame_centres(n_frames, features) // SILERO_CHUNK, probabilities.size - 1)
    return torch.from_numpy(probabilities[chunk] >= SILERO_THRESHOLD)


def detector_frames(audio: np.ndarray | None, n_frames: int, detector: str,
                    features: FeatureConfig) -> torch.Tensor | None:
    """The speech frames (of `features`) of 16 kHz audio by `detector` (`detector_name`'s); None when it is
    the energy gate (which the caller runs on its log-mel, as `speech_frames(frame_levels(mel))`)."""
    if audio is None or detector != "silero":
        return None
    stream = SileroStream()
    stream.feed(audio)
    return frames_from_chunks(stream.finish(), n_frames, features)


_runner = None
_runner_lock = threading.Lock()


def _silero_runner():
    """`(windows (n, 576), state) -> (probabilities (n,), state)`, state None at the start: silero-vad's
    sequence model on onnxruntime where present (one call per 16 s), else its torch model chunk by chunk."""
    global _runner
    with _runner_lock:
        if _runner is None:
            _runner = _load_silero()
        return _runner


def _load_silero():
    data = Path(find_spec("silero_vad").origin).parent / "data"
    if find_spec("onnxruntime") is not None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(str(data / "silero_vad_16k_sequence.onnx"), options,
                                               providers=["CPUExecutionProvider"])

        def run(windows: np.ndarray, state):
            h, c = state if state is not None else (np.zeros((1, 1, 128), np.float32),) * 2
            probabilities, h, c = session.run(None, {"input": windows, "h": h, "c": c})
            return probabilities.reshape(-1).astype(np.float32), (h, c)

        return run
    model = torch.jit.load(str(data / "silero_vad.jit"), map_location="cpu").eval()
    lock = threading.Lock()

    def run_torch(windows: np.ndarray, state):  # the JIT model keeps its state inside: one caller at a time
        state = state if state is not None else np.zeros((2, 1, 128), np.float32)
        out = np.empty(len(windows), np.float32)
        with lock, torch.inference_mode():
            for i, window in enumerate(windows):
                model._state = torch.from_numpy(state)
                model._context = torch.from_numpy(window[None, :SILERO_CONTEXT])
                model._last_sr, model._last_batch_size = SAMPLE_RATE, 1
                out[i] = float(model(torch.from_numpy(window[None, SILERO_CONTEXT:]), SAMPLE_RATE)[0, 0])
                state = model._state.numpy().copy()
        return out, state

    return run_torch
