"""Who runs on the model next: short work first, long work in between, abandoned work stopped.

The service has two kinds of work. Light work (predict requests of a few
windows, a stream's next second of audio) runs on the inference threads, in
order. Heavy work (a predict request of many windows: a long file, a small
hop) runs on a thread of its own, and before each batch of windows it lets
light work go first (waiting at most `HEAVY_WAIT` seconds), so that a 10-minute
file does not hold up the 3 s clips behind it, and the service stays at about
one core. Every batch of windows of every kind also checks whether the
requests it is for have given up (timed out): then it stops (`Abandoned`)
instead of scoring for no one.

All of it hangs on the model's network: `ScheduledNetwork` wraps it, and the
work says what it is with `Turns.light(...)` / `Turns.heavy(...)` on its thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# Seconds a heavy batch of windows waits for light work to finish, at most: under a steady stream of
# short requests the long one still gets about half the time (at 0.2 s a 590 s file timed out).
HEAVY_WAIT = 0.05


class Abandoned(Exception):
    """Every request the work was for has given up: nothing more is scored for it."""


class Turns:
    def __init__(self, heavy_wait: float = HEAVY_WAIT):
        self.heavy_wait = heavy_wait
        self._light_running = 0
        self._changed = threading.Condition()
        self._here = threading.local()  # this thread's work: (heavy?, abandoned?)

    @contextmanager
    def light(self, abandoned: Callable[[], bool] = lambda: False) -> Iterator[None]:
        """Run light work on this thread: heavy work waits while it runs."""
        with self._changed:
            self._light_running += 1
        self._here.work = (False, abandoned)
        try:
            yield
        finally:
            self._here.work = None
            with self._changed:
                self._light_running -= 1
                self._changed.notify_all()

    @contextmanager
    def heavy(self, abandoned: Callable[[], bool] = lambda: False) -> Iterator[None]:
        """Run heavy work on this thread: each batch of windows lets light work go first."""
        self._here.work = (True, abandoned)
        try:
            yield
        finally:
            self._here.work = None

    def before_batch(self) -> None:
        """Called before each batch of windows: stop abandoned work, let light work pass heavy work."""
        heavy, abandoned = getattr(self._here, "work", None) or (False, None)
        if abandoned is not None and abandoned():
            raise Abandoned("the request gave up")
        if heavy:
            with self._changed:
                self._changed.wait_for(lambda: self._light_running == 0, timeout=self.heavy_wait)


class ScheduledNetwork:
    """The model's network (windows -> logits), asking `turns` before each batch of windows."""

    def __init__(self, network: Callable, turns: Turns):
        self.network, self.turns = network, turns

    def __call__(self, inputs):
        self.turns.before_batch()
        return self.network(inputs)
