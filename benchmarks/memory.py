"""Peak memory of `emotionnet predict` (or `emotionnet batch`) on a long recording against a short one.

Long files are decoded and scored in blocks (`emotionnet/inference/blocks.py`),
so memory should not grow with their length: the target (issue 13) is a peak
RSS for a 3-hour file within 1.5x that of a 10-minute one; for `batch`
(issue 26, which takes the same block path through `inference/many.py`), a
60-minute file within 1.2x of a 10-minute one. Each file is generated
(speech-like bursts and pauses, 16 kHz mono 16-bit WAV, written in blocks),
then scored by a fresh `emotionnet predict --json` (or `emotionnet batch
FILE --out DIR --workers 1`) process whose peak RSS, the largest of the
process and its workers, is read from wait4's rusage (as `benchmarks/speed.py`
does). Not run by CI.

    python -m benchmarks.memory                               # 10 min and 3 h, the shipped model
    python -m benchmarks.memory --minutes 10 60 --json docs/results/memory.json
    python -m benchmarks.memory --command batch --minutes 10 60 --json docs/results/memory-batch.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import soundfile

from benchmarks.common import run_measured, write_json
from emotionnet.evaluation.signals import speech_like

RATIO_TARGET = {"predict": 1.5, "batch": 1.2}


def write_long_wav(path: Path, minutes: float, sample_rate: int = 16_000) -> Path:
    """Speech-like audio of `minutes`, written a minute at a time (the generator never holds it all)."""
    with soundfile.SoundFile(str(path), "w", sample_rate, 1, subtype="PCM_16", format="WAV") as f:
        left = int(minutes * 60 * sample_rate)
        block = 0
        while left > 0:
            n = min(left, 60 * sample_rate)
            gain = 0.5 + 0.5 * ((block * 7) % 5) / 4  # louder and quieter minutes
            f.write(gain * speech_like(n / sample_rate, sample_rate=sample_rate, seed=block, speech_every=(5.0, 9.0)))
            left -= n
            block += 1
    return path


def scoring_command(command: str, path: Path, workdir: Path) -> list[str]:
    """`emotionnet predict FILE --json` or `emotionnet batch FILE --out DIR` on one core."""
    if command == "batch":
        return ["batch", str(path), "--out", str(workdir / f"{path.stem}.parquet"), "--workers", "1"]
    return ["predict", str(path), "--json", "--threads", "1"]


def measure(minutes: list[float], model: str | None, workdir: Path, command_name: str = "predict") -> dict:
    rows = []
    for length in minutes:
        path = write_long_wav(workdir / f"talk-{length:g}min.wav", length)
        command = [sys.executable, "-m", "emotionnet", *scoring_command(command_name, path, workdir)]
        if model:
            command += ["--model", model]
        log = workdir / f"{command_name}.log"
        result = run_measured(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, log=log)
        if result["rc"] != 0:
            raise RuntimeError(f"{command_name} exited with {result['rc']}: "
                               f"{log.read_text(errors='replace')[-2000:]}")
        rows.append({"minutes": length, "file_mb": round(path.stat().st_size / 2**20, 1),
                     "peak_rss_mb": round(result["peak_rss_mb"], 1), "wall_s": round(result["wall_s"], 1),
                     "cpu_s": round(result["user_s"] + result["sys_s"], 1)})
        path.unlink()
        print(f"{length:8g} min  file {rows[-1]['file_mb']:7.1f} MB  peak RSS {rows[-1]['peak_rss_mb']:7.1f} MB  "
              f"wall {rows[-1]['wall_s']:6.1f} s  CPU {rows[-1]['cpu_s']:6.1f} s", flush=True)
    shortest, longest = rows[0], rows[-1]
    ratio = longest["peak_rss_mb"] / shortest["peak_rss_mb"]
    target = RATIO_TARGET[command_name]
    return {"model": model or "shipped", "rows": rows, "ratio_longest_to_shortest": round(ratio, 3),
            "target_ratio": target, "meets_target": ratio <= target, "load_average": os.getloadavg(),
            "command": "emotionnet " + " ".join(scoring_command(command_name, Path("FILE"), Path("."))
                                                ).replace("FILE.parquet", "OUT.parquet")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 180], help="file lengths, shortest first")
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--command", choices=sorted(RATIO_TARGET), default="predict",
                        help="the command measured (default predict)")
    parser.add_argument("--json", metavar="FILE", help="write the result as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="emotionnet-memory-") as tmp:
        result = measure(args.minutes, args.model, Path(tmp), args.command)
    print(f"{args.command}: peak RSS {args.minutes[-1]:g} min / {args.minutes[0]:g} min = "
          f"{result['ratio_longest_to_shortest']:.2f} (target <= {result['target_ratio']})")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
