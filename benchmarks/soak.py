"""Soak test of the live engine: an hour of audio fed faster than real time, memory sampled.

`StreamEngine` (with `emotionnet listen`'s tally of the session) is fed an hour
of generated speech-like audio with pauses, in 0.1 s chunks as a microphone
delivers them, as fast as it can score them. The process's RSS is sampled
every minute of stream time; the engine keeps the last window in a ring buffer
and the tally bounded statistics, so RSS should stay flat after warm-up (the
target of issue 13). Not run by CI.

    python -m benchmarks.soak                                  # 60 min, the shipped model
    python -m benchmarks.soak --minutes 10 --json docs/results/soak.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from benchmarks.common import write_json
from emotionnet.evaluation.signals import speech_like

SAMPLE_RATE = 16_000
CHUNK_SECONDS = 0.1
FLAT_TARGET_MB = 20.0  # end minus start RSS; more than this is growth, not noise


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def chunks(minutes: float) -> Iterator[np.ndarray]:
    """Minutes of speech-like audio in 0.1 s chunks, made a minute at a time (never all of it)."""
    chunk = int(CHUNK_SECONDS * SAMPLE_RATE)
    for minute in range(int(np.ceil(minutes))):
        seconds = min(60.0, minutes * 60 - minute * 60)
        audio = (0.5 + 0.5 * ((minute * 7) % 5) / 4) * speech_like(seconds, sample_rate=SAMPLE_RATE, seed=minute,
                                                                   speech_every=(5.0, 9.0))
        for start in range(0, audio.size, chunk):
            yield audio[start:start + chunk]


def soak(minutes: float, model: str | None, sample_every_s: float = 60.0) -> dict:
    import torch

    from emotionnet import load_model
    from emotionnet.streaming import StreamEngine
    from emotionnet.streaming.tally import Tally

    torch.set_num_threads(1)
    engine = StreamEngine(load_model(model))
    tally = Tally()
    samples, next_sample, hops = [], 0.0, 0
    began = time.perf_counter()
    for chunk in chunks(minutes):
        for result in engine.feed(chunk):
            tally.add(result)
            hops += 1
        if engine.seconds >= next_sample:
            samples.append({"stream_s": round(engine.seconds, 1), "wall_s": round(time.perf_counter() - began, 1),
                            "rss_mb": round(rss_mb(), 1)})
            print(f"stream {engine.seconds / 60:5.1f} min  wall {samples[-1]['wall_s']:6.1f} s  "
                  f"RSS {samples[-1]['rss_mb']:7.1f} MB", flush=True)
            next_sample += sample_every_s
    for result in engine.flush():
        tally.add(result)
    wall = time.perf_counter() - began
    samples.append({"stream_s": round(engine.seconds, 1), "wall_s": round(wall, 1), "rss_mb": round(rss_mb(), 1)})
    # "start" is after the first minute: the model's first runs and the allocator's pools are warm-up
    start = samples[1] if len(samples) > 2 else samples[0]
    end = samples[-1]
    growth = end["rss_mb"] - start["rss_mb"]
    return {
        "model": model or "shipped", "stream_minutes": round(engine.seconds / 60, 2), "hops": hops,
        "speech_share": round(tally.speech_seconds / max(tally.duration, 1e-9), 3),
        "wall_s": round(wall, 1), "speed_x_realtime": round(engine.seconds / wall, 1),
        "rss_first_sample_mb": samples[0]["rss_mb"], "rss_start_mb": start["rss_mb"], "rss_end_mb": end["rss_mb"],
        "rss_max_mb": max(s["rss_mb"] for s in samples), "growth_mb": round(growth, 1),
        "flat": growth <= FLAT_TARGET_MB, "flat_target_mb": FLAT_TARGET_MB,
        "samples": samples, "load_average": os.getloadavg(), "torch_threads": 1,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="stream length (default 60)")
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--json", metavar="FILE", help="write the result as JSON")
    args = parser.parse_args(argv)
    result = soak(args.minutes, args.model)
    print(f"{result['stream_minutes']:g} min of audio in {result['wall_s']:g} s ({result['speed_x_realtime']:g}x "
          f"real time), {result['hops']} hops; RSS start {result['rss_start_mb']:g} MB (after 1 min), "
          f"end {result['rss_end_mb']:g} MB, max {result['rss_max_mb']:g} MB: growth {result['growth_mb']:+g} MB "
          f"({'flat' if result['flat'] else 'GROWS'}; target <= {FLAT_TARGET_MB:g} MB)")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
