"""Throughput of `emotionnet batch`: local process pool and Ray Data, at 1 and 2 workers.

Scores a folder of clips (generated 3 s speech-like WAVs by default, or
--input FOLDER) with each engine and worker count, through the same engine
functions the command uses, and reports:

- steady throughput: files/s from the first chunk's start to the last chunk's
  end, by the workers' own clocks (start-up excluded), and audio hours per
  core-hour (one core per worker);
- audio hours per CPU-hour: the CPU time the scoring threads actually used,
  the cost basis whatever else the machine was running;
- start-up: from the job's start to the first chunk's start (processes
  spawned, torch imported, model loaded; for Ray the actor pool; `ray.init`
  reported apart);
- scaling from 1 to 2 workers, and Ray's per-core throughput against local's.

Targets (DESIGN.md): >= 1.8x from 1 to 2 workers; Ray within 20 % of local per
core. On a shared 2-core machine the second worker competes with whatever else
runs: the load average before and after is reported.

    python -m benchmarks.batch                        # 400 generated clips, both engines
    python -m benchmarks.batch --files 100 --engines local
    python -m benchmarks.batch --json docs/results/batch.json --md docs/results/batch.md
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import finish
from emotionnet.batch.predictor import BatchPredictor, arrow_schema
from emotionnet.digest import file_digest
from emotionnet.evaluation.signals import speech_like

REPO = Path(__file__).resolve().parents[1]

SR = 16_000


def make_clips(folder: Path, count: int, seconds: float) -> list[str]:
    import soundfile

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"clip{i:05d}.wav"
        soundfile.write(str(path), speech_like(seconds, seed=i)[: int(seconds * SR)], SR, subtype="PCM_16")
        paths.append(str(path))
    return paths


def audio_seconds(paths: list[str]) -> float:
    import soundfile

    return sum(soundfile.info(p).duration for p in paths)


class TimedPredictor(BatchPredictor):
    """The command's predictor, plus when each chunk ran and the CPU it took, measured in the worker."""

    def predict_paths(self, paths: list[str]) -> list[dict]:
        started, cpu = time.time(), time.thread_time()
        rows = super().predict_paths(paths)
        finished, cpu = time.time(), time.thread_time() - cpu
        return [{**row, "started": started, "finished": finished, "cpu_s": cpu / len(rows)} for row in rows]

    def schema(self):
        import pyarrow as pa

        return arrow_schema().append(pa.field("started", pa.float64())).append(
            pa.field("finished", pa.float64())).append(pa.field("cpu_s", pa.float64()))


def measure(engine: str, workers: int, paths: list[str], seconds_of_audio: float, model: str | None,
            chunk: int) -> dict:
    """One job through the command's engine; throughput from the workers' own clocks, so start-up and
    the way results travel back (Ray returns them in few large blocks) do not blur it."""
    from emotionnet.batch.engines import run_local, run_ray

    predictor = TimedPredictor(model)
    start = time.time()
    runner = run_local(paths, predictor, workers, chunk) if engine == "local" else run_ray(paths, predictor, workers, chunk)
    rows = [row for batch in runner for row in batch]
    end = time.time()
    first, last = min(r["started"] for r in rows), max(r["finished"] for r in rows)
    files_per_s = len(rows) / (last - first)
    cpu = sum(r["cpu_s"] for r in rows)
    return {"engine": engine, "workers": workers, "files": len(rows), "errors": sum(1 for r in rows if r["error"]),
            "wall_s": round(end - start, 2), "startup_s": round(first - start, 2),
            "steady_files_per_s": round(files_per_s, 1), "files_per_s_per_core": round(files_per_s / workers, 1),
            "audio_hours_per_core_hour": round(seconds_of_audio / (last - first) / workers, 0),
            # CPU the scoring threads actually used: the cost basis, whatever else the cores were running
            "audio_hours_per_cpu_hour": round(seconds_of_audio / cpu, 0)}


def run(args) -> dict:
    load_before = os.getloadavg()
    results, ray_start = [], None
    with tempfile.TemporaryDirectory() as tmp:
        paths = [str(p) for p in sorted(Path(args.input).rglob("*.wav"))][: args.files] if args.input \
            else make_clips(Path(tmp) / "clips", args.files, args.clip_seconds)
        seconds = audio_seconds(paths)
        for engine in args.engines:
            if engine == "ray":
                import logging

                import ray

                start = time.perf_counter()
                ray.init(num_cpus=max(args.workers), include_dashboard=False, log_to_driver=False,
                         logging_level=logging.WARNING,
                         runtime_env={"env_vars": {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}})
                ray_start = round(time.perf_counter() - start, 2)
            for workers in args.workers:
                results.append(measure(engine, workers, paths, seconds, args.model, args.chunk))
                print(results[-1], file=sys.stderr, flush=True)
            if engine == "ray":
                ray.shutdown()
    by = {(r["engine"], r["workers"]): r for r in results}
    scaling = {engine: round(by[(engine, 2)]["steady_files_per_s"] / by[(engine, 1)]["steady_files_per_s"], 2)
               for engine in args.engines if (engine, 1) in by and (engine, 2) in by}
    ray_vs_local = {f"{w} workers, {basis}": round(by[("ray", w)][key] / by[("local", w)][key], 2)
                    for w in args.workers if ("ray", w) in by and ("local", w) in by
                    for basis, key in (("wall", "files_per_s_per_core"), ("CPU", "audio_hours_per_cpu_hour"))}
    from emotionnet.inference.recognizer import default_model_path

    model = Path(args.model) if args.model else default_model_path()
    return {"benchmark": "batch", "model": model.name, "model_sha256": file_digest(model, "sha256")[:12],
            "files": len(paths), "audio_seconds": round(seconds, 1), "input": args.input or
            f"generated {args.clip_seconds:g} s speech-like WAVs", "chunk": args.chunk, "results": results,
            "scaling_1_to_2": scaling, "ray_vs_local_per_core": ray_vs_local, "ray_init_s": ray_start,
            "cpus": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def report(result: dict) -> str:
    lines = [f"batch: {result['model']} (sha256 {result['model_sha256']}), {result['files']} files "
             f"({result['input']}, {result['audio_seconds']:.0f} s of audio), chunks of {result['chunk']}, "
             f"{result['date']}",
             "engine  workers  wall s  start-up s  files/s  files/s/core  audio h per core-hour  per CPU-hour  errors"]
    for r in result["results"]:
        per_cpu = f"{r['audio_hours_per_cpu_hour']:.0f}"
        lines.append(f"{r['engine']:<7} {r['workers']:>7} {r['wall_s']:>7} {r['startup_s']:>11} "
                     f"{r['steady_files_per_s']:>8} {r['files_per_s_per_core']:>13} "
                     f"{r['audio_hours_per_core_hour']:>22.0f} {per_cpu:>13} {r['errors']:>7}")
    lines.append(f"scaling 1 -> 2 workers (steady files/s): {result['scaling_1_to_2']} (target >= 1.8)")
    lines.append(f"Ray / local per core: {result['ray_vs_local_per_core']} (target >= 0.8); "
                 f"ray.init {result['ray_init_s']} s")
    lines.append(f"load average {result['load_average_before'][0]} -> {result['load_average_after'][0]} "
                 f"on {result['cpus']} CPUs")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--input", help="a folder of WAVs to score instead of generated clips")
    parser.add_argument("--files", type=int, default=400, help="files to score (default 400)")
    parser.add_argument("--clip-seconds", type=float, default=3.0, help="length of generated clips (default 3)")
    parser.add_argument("--engines", type=lambda s: s.split(","), default=["local", "ray"],
                        help="comma-separated (default local,ray)")
    parser.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2],
                        help="worker counts, comma-separated (default 1,2)")
    parser.add_argument("--chunk", type=int, default=16, help="files per task (default 16, as the command)")
    parser.add_argument("--json", metavar="OUT", help="write the figures as JSON")
    parser.add_argument("--md", metavar="OUT", help="write the report text")
    args = parser.parse_args(argv)
    result = run(args)
    return finish(result, report(result), args.json, args.md)


if __name__ == "__main__":
    sys.exit(main())
