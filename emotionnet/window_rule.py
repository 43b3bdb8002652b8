"""The one rule for analysis windows, at every entry point (predict, the Python API, listen, the
service's queries and WebSocket, batch): a window from MIN_WINDOW s to the longest allowed, a hop
from MIN_HOP s to the window. `ModelSpec.windowing` applies it (with the model's own window and hop
where none is given) and turns seconds into the frame counts scoring takes; nothing below re-defaults.

No imports: the command line's `--help` reads these numbers without loading torch.
"""

from __future__ import annotations

import math

DEFAULT_WINDOW = 3.0  # seconds a new model hears at once
DEFAULT_HOP = 1.5  # seconds between a new model's windows of longer audio
MIN_WINDOW = 0.5  # shorter windows leave the CRNN's pooled time axis a handful of steps
MAX_WINDOW = 60.0
# The floor of every hop. Each hop scores a whole window, so the work per second of audio is
# (window cost) / hop: whisper-base's 3 s window costs 43-69 ms on one core (docs/results), so at
# 0.1 s a live stream takes up to 0.7 of a core and keeps up in real time, and below it cannot; a
# 4-hour file at 0.1 s is 144,000 windows, where a query's hop=0.001 would ask for 14 million.
MIN_HOP = 0.1
STREAM_HOP = 0.5  # seconds between a live stream's results by default (listen, the WebSocket)


def check_window(window: float, hop: float, longest: float = MAX_WINDOW) -> None:
    """The rule: MIN_WINDOW <= window <= longest, MIN_HOP <= hop <= window (ValueError saying which)."""
    if not (isinstance(window, (int, float)) and math.isfinite(window) and MIN_WINDOW <= window <= longest + 1e-9):
        raise ValueError(f"window must be from {MIN_WINDOW:g} s to {longest:g} s; got {window:g} s")
    if not (isinstance(hop, (int, float)) and math.isfinite(hop) and MIN_HOP <= hop <= window + 1e-9):
        raise ValueError(f"hop must be from {MIN_HOP:g} s to the window ({window:g} s); got {hop:g} s")
