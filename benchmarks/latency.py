"""Live latency and CPU use of the streaming engine (`emotionnet listen`), streaming in real time.

Audio (a file with --input, else a generated speech-like signal with pauses)
is fed to `StreamEngine` at real-time pace in 0.1 s blocks, as a microphone
delivers it. Two figures (DESIGN.md, "Targets"):

- latency: from the arrival of the block holding a hop's last sample to that
  hop's result (median, p95, max), for all hops and for speech hops (the ones
  that run the model; silent hops only run the gate);
- CPU use: process CPU time / wall time while streaming (1.0 = one core busy),
  and CPU milliseconds per hop: on a busy machine the latency is mostly the
  wait for a core, and this figure shows the work itself.

It states the model file (name, SHA-256), torch threads and the machine's load
average, since a busy machine inflates both figures. Not run by CI.

    python -m benchmarks.latency                           # shipped model, 45 s
    python -m benchmarks.latency --model my.safetensors --seconds 30 --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from benchmarks.common import percentiles
from emotionnet.digest import file_digest
from emotionnet.evaluation.signals import speech_like


def measure(model: str | None, seconds: float, hop: float, window: float | None, threads: int,
            audio_file: str | None = None) -> dict:
    import torch

    from emotionnet import load_model
    from emotionnet.audio import SAMPLE_RATE, load_audio
    from emotionnet.streaming import ArraySource, StreamEngine

    torch.set_num_threads(threads)
    recognizer = load_model(model)
    if audio_file:
        audio = load_audio(audio_file)[: int(seconds * SAMPLE_RATE)]
    else:
        audio = speech_like(seconds, speech_every=(5.0, 9.0))  # 5 s of "speech", then 4 s of room noise
    engine = StreamEngine(recognizer, window=window, hop=hop)
    next(engine.run(ArraySource(audio[:SAMPLE_RATE])))  # warm up kernels, then start afresh
    engine.reset()

    load_before = os.getloadavg()[0]
    cpu, wall = time.process_time(), time.perf_counter()
    results = list(engine.run(ArraySource(audio, realtime=True)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {
        "benchmark": "live latency",
        "model": {"file": str(recognizer.model_file.name), "sha256": file_digest(recognizer.model_file, "sha256"),
                  "arch": recognizer.metadata.get("model", {}).get("arch")},
        "audio": {"source": audio_file or "generated speech-like signal", "seconds": round(audio.size / SAMPLE_RATE, 2)},
        "window": engine.window, "hop": engine.hop, "threads": threads,
        "latency_all": percentiles([r.latency_ms for r in results]),
        "latency_speech": percentiles([r.latency_ms for r in results if r.speech]),
        "cpu": {"cpu_seconds": round(cpu, 3), "wall_seconds": round(wall, 3), "cpu_share": round(cpu / wall, 4),
                "cpu_ms_per_hop": round(1000 * cpu / max(1, len(results)), 2)},
        "machine": {"cpus": os.cpu_count(), "load_average_before": round(load_before, 2),
                    "load_average_after": round(os.getloadavg()[0], 2), "python": platform.python_version(),
                    "torch": torch.__version__},
        "targets": {"median_ms": 50, "p95_ms": 150},
    }


def format_table(report: dict) -> str:
    lines = [
        f"live latency: {report['model']['file']} (sha256 {report['model']['sha256'][:12]}), "
        f"{report['audio']['seconds']} s of {report['audio']['source']} in real time, "
        f"window {report['window']:g} s, hop {report['hop']:g} s, {report['threads']} thread(s)",
        f"{'hops':<8} {'n':>5} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}",
    ]
    for name, key in (("all", "latency_all"), ("speech", "latency_speech")):
        row = report[key]
        if row["n"]:
            lines.append(f"{name:<8} {row['n']:>5} {row['median_ms']:>10.1f} {row['p95_ms']:>8.1f} {row['max_ms']:>8.1f}")
        else:
            lines.append(f"{name:<8} {0:>5} {'-':>10} {'-':>8} {'-':>8}")
    cpu = report["cpu"]
    lines.append(f"CPU: {cpu['cpu_seconds']:.2f} s over {cpu['wall_seconds']:.2f} s wall = "
                 f"{cpu['cpu_share']:.1%} of one core; {cpu['cpu_ms_per_hop']:.1f} ms CPU per hop "
                 "(latency above it is waiting for a core)")
    machine = report["machine"]
    lines.append(f"targets: median < {report['targets']['median_ms']} ms, p95 < {report['targets']['p95_ms']} ms; "
                 f"load average {machine['load_average_before']} -> {machine['load_average_after']} "
                 f"on {machine['cpus']} CPUs")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--input", help="audio file to stream (default: generated speech-like audio)")
    parser.add_argument("--seconds", type=float, default=45.0, help="seconds to stream (default 45)")
    parser.add_argument("--hop", type=float, default=0.5)
    parser.add_argument("--window", type=float, default=None, help="default: the model's window")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as listen)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    report = measure(args.model, args.seconds, args.hop, args.window, args.threads, args.input)
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return report


if __name__ == "__main__":
    main()
