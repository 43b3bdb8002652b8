"""The live engine: audio arrives in chunks, an emotion comes out every hop.

    engine = StreamEngine(recognizer)               # window 3 s, hop 0.5 s
    for result in engine.run(MicrophoneSource()):   # or FileSource("talk.wav")
        print(result.time, result.prediction)

The last `window` seconds of audio sit in a ring buffer of fixed size, so an
endless stream runs in constant memory. Every `hop` seconds the window is
turned into log-mel features and scored by the recognizer's own code
(`log_mel` and `EmotionRecognizer.log_mel_scorer`, the normalisation and
padding included), so a streamed window gets exactly the probabilities that
`recognizer.predict` gives for the same audio.

One answer per window: a result whose window is complete (the model's whole
window of audio has arrived) carries exactly the probabilities `predict` gives
for that window's audio. Before the first complete window, results are
flagged `partial` (their audio is repeated to fill the window, as `predict`
does with a short clip) and show their own probabilities: smoothing only ever
combines complete windows, so a stream's first seconds cannot outvote them.

Silence and background get `speech=False` and no emotion. With silero-vad as
the recognizer's detector (`recognizer.vad`) it judges each window's audio as
`predict` would; with the energy gate, a stream has no
"whole recording" to take the loudest level from, so the gate keeps two
running estimates instead: the loudest recent level (a peak that decays
slowly) and the noise floor (the quietest level of the last few seconds).
Speech windows are smoothed with an exponential moving average of their
probabilities, which starts afresh after a long silence.

With `adapt=True` a `speaker`-normalised model reads each window against the
voice heard so far: the engine keeps running per-band statistics of the
stream's speech frames (forgetting over about two minutes) and uses them once
it has heard a few seconds of speech; until then each window is its own
context, as in `predict`. It is off by default: the shipped model scores
about the same with a speaker's context as without (README), and with it off a
window's answer is `predict`'s.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from emotionnet import vad
from emotionnet.audio import MAX_ABS_SAMPLE
from emotionnet.features import BandStats, log_mel
from emotionnet.inference.recognizer import EmotionRecognizer
from emotionnet.inference.results import Prediction
from emotionnet.window_rule import STREAM_HOP

MIN_FLUSH_SECONDS = 0.1  # the least audio after the last hop that earns a result of its own

# The gate (levels in dBFS, see emotionnet.vad).
PEAK_DECAY_DB_PER_S = 1.0  # how fast the loudest-level estimate forgets a loud moment
NOISE_MEMORY_S = 5.0  # the noise floor is the quietest frame of this much recent audio
SPEECH_OVER_NOISE_DB = 10.0  # speech frames stand at least this far above the noise floor

# The speaker context of a speaker-normalised model (see RunningBandStats).
CONTEXT_MIN_SPEECH_S = 3.0  # speech heard before the stream's statistics replace the window's own
CONTEXT_MEMORY_S = 120.0  # time constant over which older audio is forgotten


class Chunk(NamedTuple):
    """A block of 16 kHz mono float32 samples and when it arrived (`time.perf_counter()`)."""

    samples: np.ndarray
    arrived: float


class RingBuffer:
    """The most recent `capacity` samples of an endless stream, in memory that never grows."""

    def __init__(self, capacity: int, dtype: type = np.float32):
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self.data = np.zeros(capacity, dtype=dtype)
        self.total = 0  # samples ever written
        self._end = 0  # where the next sample goes
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def extend(self, samples: np.ndarray) -> None:
        samples = np.asarray(samples, dtype=self.data.dtype).reshape(-1)
        n = samples.size
        if n >= self.capacity:
            self.data[:] = samples[-self.capacity:]
            self._end = 0
        else:
            first = min(n, self.capacity - self._end)
            self.data[self._end:self._end + first] = samples[:first]
            self.data[:n - first] = samples[first:]
            self._end = (self._end + n) % self.capacity
        self._size = min(self.capacity, self._size + n)
        self.total += n

    def latest(self, n: int | None = None) -> np.ndarray:
        """A copy of the last `n` samples (default: all held), oldest first."""
        n = self._size if n is None else min(n, self._size)
        start = (self._end - n) % self.capacity
        if start + n <= self.capacity:
            return self.data[start:start + n].copy()
        return np.concatenate([self.data[start:], self.data[:self._end]])

    def clear(self) -> None:
        self._end = self._size = self.total = 0


class LevelGate:
    """Energy gate for a stream: a decaying peak level and a running noise floor."""

    def __init__(self, hop_seconds: float):
        self.peak_db: float | None = None
        self._minima: deque[float] = deque(maxlen=max(1, math.ceil(NOISE_MEMORY_S / hop_seconds)))

    @property
    def noise_db(self) -> float | None:
        return min(self._minima) if self._minima else None

    def update(self, new_levels: torch.Tensor, seconds: float) -> None:
        """Take in the levels of the frames that arrived in the last `seconds`."""
        if new_levels.numel() == 0:
            return
        loudest, quietest = float(new_levels.max()), float(new_levels.min())
        decayed = -math.inf if self.peak_db is None else self.peak_db - PEAK_DECAY_DB_PER_S * seconds
        self.peak_db = max(loudest, decayed)
        self._minima.append(quietest)

    def speech_mask(self, levels: torch.Tensor) -> torch.Tensor:
        mask = vad.speech_frames(levels, self.peak_db)
        if self.noise_db is not None:
            mask &= levels > self.noise_db + SPEECH_OVER_NOISE_DB
        return mask


class RunningBandStats:
    """Per-band statistics of a stream's speech frames that slowly forget old audio."""

    def __init__(self, frame_seconds: float):
        self.frame_seconds = frame_seconds
        self.count = 0.0
        self.total: torch.Tensor | None = None
        self.squares: torch.Tensor | None = None

    @property
    def speech_seconds(self) -> float:
        return self.count * self.frame_seconds

    def update(self, frames: torch.Tensor, seconds: float) -> None:
        """Forget for `seconds` of stream time, then take in (n_mels, n) speech frames."""
        keep = math.exp(-seconds / CONTEXT_MEMORY_S)
        frames = frames.double()
        if self.total is None:
            self.total = torch.zeros(frames.shape[0], dtype=torch.float64)
            self.squares = torch.zeros_like(self.total)
        self.count = self.count * keep + frames.shape[-1]
        self.total = self.total * keep + frames.sum(dim=-1)
        self.squares = self.squares * keep + frames.square().sum(dim=-1)

    def stats(self) -> BandStats | None:
        """The statistics, once enough speech has been heard (None before)."""
        if self.total is None or self.speech_seconds < CONTEXT_MIN_SPEECH_S:
            return None
        return BandStats.from_sums(self.count, self.total, self.squares)


@dataclass
class StreamResult:
    """The state of the stream at the end of one hop."""

    time: float  # stream seconds at the end of the window (= the end of this hop)
    start: float  # stream seconds at the start of the window
    speech: bool
    prediction: Prediction | None  # smoothed over recent speech windows; None when not speech
    probabilities: dict[str, float] | None  # this window alone, unsmoothed; None when not speech
    level_db: float  # loudest frame of this hop, dBFS (for meters)
    latency_ms: float  # from the arrival of the hop's last sample to this result
    partial: bool = False  # less than a whole window heard yet: its own answer, never smoothed with others

    @property
    def emotion(self) -> str | None:
        return self.prediction.emotion if self.prediction else None

    def to_dict(self) -> dict:
        p = self.prediction
        return {
            "time": round(self.time, 3), "start": round(self.start, 3), "speech": self.speech,
            "emotion": p.emotion if p else None,
            "confidence": round(p.confidence, 4) if p else None,
            "probabilities": {k: round(v, 4) for k, v in p.probabilities.items()} if p else None,
            "raw_probabilities": ({k: round(v, 4) for k, v in self.probabilities.items()}
                                  if self.probabilities else None),
            "level_db": round(self.level_db, 1),
            "latency_ms": round(self.latency_ms, 2),
            "partial": self.partial,
        }


class StreamEngine:
    """Feed it chunks of 16 kHz mono float32; it returns a `StreamResult` every hop.

    `window` (seconds, 0.5 s up to the model's window; default the model's) is the
    audio each result hears; `hop` how often a result comes; `smoothing` the time
    constant in seconds of the moving average over speech windows (0: none);
    `reset_after` the seconds of non-speech after which smoothing starts afresh.
    `on_result`, if given, is called with every result as well. `adapt=True` (for
    `speaker`-normalised models) reads windows against the stream's running
    statistics; by default every window is its own context, as in `predict`.
    Smoothing combines complete windows only; results before the first one are `partial`.
    """

    def __init__(
        self,
        recognizer: EmotionRecognizer,
        window: float | None = None,
        hop: float = STREAM_HOP,
        smoothing: float = 1.0,
        reset_after: float = 2.0,
        on_result: Callable[[StreamResult], None] | None = None,
        adapt: bool = False,
    ):
        self.recognizer = recognizer
        self.features = recognizer.features
        spec = recognizer.spec
        # the one window rule (hop floor included); a stream holds at most the model's window
        windowing = spec.windowing(window, hop, longest=spec.window)
        # Whole feature frames, so every window starts on a frame boundary of the stream.
        self.window_samples = spec.hop_frames(windowing.seconds) * self.features.hop_length
        self.hop_samples = windowing.hop_frames * self.features.hop_length
        self.window = self.window_samples / self.features.sample_rate
        self.hop = self.hop_samples / self.features.sample_rate
        self.smoothing = smoothing
        self.reset_after = reset_after
        self.on_result = on_result
        self.adapt = adapt and self.features.normalisation == "speaker"
        self.buffer = RingBuffer(self.window_samples)
        self.reset()

    def reset(self) -> None:
        """Forget the stream: buffer, gate and smoothing start again from zero."""
        self.buffer.clear()
        self.gate = LevelGate(self.hop)
        self.context = RunningBandStats(self.recognizer.spec.frame_seconds)
        self._since_hop = 0
        self._smoothed: np.ndarray | None = None
        self._silent_for = math.inf

    @property
    def seconds(self) -> float:
        """Stream time: seconds of audio fed so far."""
        return self.buffer.total / self.features.sample_rate

    def feed(self, samples: np.ndarray, arrived: float | None = None) -> list[StreamResult]:
        """Add a chunk; return the results of the hops it completes (often none or one)."""
        arrived = time.perf_counter() if arrived is None else arrived
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        broken = ~np.isfinite(samples) | (np.abs(samples) > MAX_ABS_SAMPLE)
        if broken.any():  # a glitch in a live stream is silence, not NaN levels and answers
            samples = np.where(broken, np.float32(0.0), samples)
        results = []
        position = 0
        while position < samples.size:
            take = min(samples.size - position, self.hop_samples - self._since_hop)
            self.buffer.extend(samples[position:position + take])
            position += take
            self._since_hop += take
            if self._since_hop == self.hop_samples:
                results.append(self._score(arrived))
        return results

    def flush(self) -> list[StreamResult]:
        """At the end of a stream: a last result for audio since the last hop, if there is enough.

        A remainder shorter than `MIN_FLUSH_SECONDS` adds nothing the last hop did not say
        and showed as the same time twice (2.02 s after 2.0 s); it is left out.
        """
        if self._since_hop < MIN_FLUSH_SECONDS * self.features.sample_rate \
                or self.buffer.total < max(self.features.n_fft, self.features.win_length):
            return []
        return [self._score(time.perf_counter())]

    def run(self, source: Iterable[Chunk | np.ndarray]) -> Iterator[StreamResult]:
        """Feed every chunk of a source (and flush at its end), yielding results as they come."""
        for chunk in source:
            if isinstance(chunk, Chunk):
                yield from self.feed(chunk.samples, chunk.arrived)
            else:
                yield from self.feed(chunk)
        yield from self.flush()

    def _score(self, arrived: float) -> StreamResult:
        new_samples, self._since_hop = self._since_hop, 0
        seconds = new_samples / self.features.sample_rate
        audio = self.buffer.latest()
        end = self.seconds
        start = end - audio.size / self.features.sample_rate
        mel = log_mel(audio, self.features)
        levels = vad.frame_levels(mel)
        new_frames = self.features.frames_of_samples(self.buffer.total) - self.features.frames_of_samples(self.buffer.total - new_samples)
        new_levels = levels[levels.numel() - min(new_frames, levels.numel()):]
        self.gate.update(new_levels, seconds)
        mask = self.gate.speech_mask(levels)  # the frames the speaker context takes in
        detected = vad.detector_frames(audio, levels.numel(), self.recognizer.vad, self.features)  # as predict
        speech = vad.is_speech(mask if detected is None else detected)
        partial = audio.size < self.window_samples  # the window is not whole yet
        prediction = raw = None
        if self.adapt:
            fresh = slice(levels.numel() - new_levels.numel(), None)
            self.context.update(mel[:, fresh][:, mask[fresh]], seconds)
        if speech:
            # The recognizer's own path: normalise, fit to the model's frames, score.
            context = self.context.stats() if self.adapt else None
            scored = self.recognizer.log_mel_scorer().scores([mel], contexts=[context])[0]
            probs = scored.window_probabilities(self.recognizer.temperature)[0].astype(np.float64)
            labels = self.recognizer.labels
            raw = {label: float(p) for label, p in zip(labels, probs)}
            # a partial window shows its own answer and stays out of the average of complete windows
            prediction = Prediction.from_probabilities(probs if partial else self._smooth(probs, seconds),
                                                       labels=labels)
            self._silent_for = 0.0
        else:
            self._silent_for += seconds
        level = float(new_levels.max()) if new_levels.numel() else float(levels.max())
        result = StreamResult(end, start, speech, prediction, raw, level, 1000 * (time.perf_counter() - arrived),
                              partial)
        if self.on_result:
            self.on_result(result)
        return result

    def _smooth(self, probs: np.ndarray, seconds: float) -> np.ndarray:
        if self._smoothed is None or self._silent_for >= self.reset_after or self.smoothing <= 0:
            self._smoothed = probs
        else:
            alpha = 1.0 - math.exp(-seconds / self.smoothing)
            self._smoothed = alpha * probs + (1.0 - alpha) * self._smoothed
        return self._smoothed
