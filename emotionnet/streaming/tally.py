"""What a stream heard: its duration, its speech time and each emotion's share of that speech."""

from __future__ import annotations

from collections import Counter, deque

from emotionnet.labels import LABELS
from emotionnet.streaming.engine import StreamResult

LATENCY_MEMORY = 10_000  # hops whose latency the median covers


class Tally:
    """Running statistics of a stream's results (a listening session, a WebSocket)."""

    def __init__(self):
        self.duration = 0.0
        self.speech_seconds = 0.0
        self.emotions: Counter[str] = Counter()
        self.latencies: deque[float] = deque(maxlen=LATENCY_MEMORY)  # an endless session: bounded memory
        self.worst_latency = 0.0

    def add(self, result: StreamResult) -> None:
        step = result.time - self.duration
        self.duration = result.time
        self.latencies.append(result.latency_ms)
        self.worst_latency = max(self.worst_latency, result.latency_ms)
        if result.speech:
            self.speech_seconds += step
            self.emotions[result.emotion] += step

    @property
    def speech_share(self) -> float:
        return self.speech_seconds / self.duration if self.duration else 0.0

    def shares(self) -> dict[str, float]:
        """Each emotion's share of the speech time (all zero when there was no speech)."""
        return {label: self.emotions[label] / self.speech_seconds if self.speech_seconds else 0.0
                for label in LABELS}

    def latency_ms(self) -> tuple[float, float] | None:
        """Median (of the last LATENCY_MEMORY) and worst latency of the results so far (None before the first)."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[len(ordered) // 2], self.worst_latency
