"""Generated speech-like signals: what tests and benchmarks feed the models where no recording is needed.

The energy gate hears them as speech; silero-vad, rightly, does not (they are tones), so a caller
that needs speech flags from them uses the gate (`load_model(..., vad="energy")`).
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000


def speech_like(seconds: float, f0: float = 140.0, seed: int = 0, sample_rate: int = SAMPLE_RATE,
                random_phase: bool = False, speech_every: tuple[float, float] | None = None) -> np.ndarray:
    """A gliding harmonic tone with syllable-rate bursts and a little noise: speech to a level gate.

    `random_phase` starts the syllable rhythm at a seeded phase (clips that differ); `speech_every`
    = (speech, period) seconds keeps the bursts to the first `speech` seconds of every `period`,
    leaving room noise in between.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    pitch = f0 * (1 + 0.15 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 12))
    offset = rng.uniform(0, 6) if random_phase else 0.0
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 4 * t + offset)) ** 2
    if speech_every:
        envelope = envelope * ((t % speech_every[1]) < speech_every[0])
    return (0.2 * wave * envelope + 0.003 * rng.standard_normal(t.size)).astype(np.float32)
