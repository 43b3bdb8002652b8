"""Batch under faults (issue 30): two jobs on one output, SIGTERM, and `kill -9` of the driver.

Three probes, each on generated clips in a temporary folder, each bounded by a timeout,
no network:

1. two jobs on one output: `emotionnet batch FIRST --out O` beside `emotionnet batch
   FIRST SECOND --out O` (both `--workers 1 --part-rows 25`); rows lost (files without
   a row once both have ended) and rows scored twice (scored counts over both jobs,
   less the files);
2. SIGTERM to the driver alone (as `docker stop` sends it) once its first part is
   written: exit status, rows kept, processes of the job still alive 10 s later;
3. `kill -9` of the driver alone: processes of the job still alive 10 s later.

    python -m benchmarks.faults --json docs/results/faults.json
    python -m benchmarks.faults --checkout ../emotionnet-before   # the same probes on another checkout

`--checkout DIR` runs the jobs with the `emotionnet` of DIR (a `git worktree` of an
older commit, say), to give the figures before a change. Linux only (reads /proc).
Not run by CI.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile

from benchmarks.common import speech_like, write_json

REPO = Path(__file__).resolve().parents[1]


def write_clips(folder: Path, count: int, seed: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        seconds = 1.0 + (i % 5) * 0.25
        soundfile.write(str(folder / f"{i:04d}.wav"), speech_like(seconds, seed=seed + i), 16_000, subtype="PCM_16")
    return folder


MODEL_OPTIONS: list[str] = []  # `--model NAME` for every job, from the command line


def job(inputs: list[Path], out: Path, checkout: Path, *options: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "emotionnet", "batch", *map(str, inputs), "--out", str(out), *options,
               *MODEL_OPTIONS]
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, cwd=checkout, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def rows_in(out: Path) -> tuple[int, int]:
    """(rows, distinct paths) of the readable parts of a results folder."""
    import pyarrow.parquet as pq

    paths = []
    for part in sorted(out.glob("part-*.parquet")):
        try:
            paths += pq.read_table(part, columns=["path"]).column("path").to_pylist()
        except Exception:
            continue
    return len(paths), len(set(paths))


def tree(pid: int) -> set[int]:
    """`pid`'s descendants, read from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    left = set()
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                left.add(pid)
        except OSError:
            continue
    return left


def wait_for_part(process: subprocess.Popen, out: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not list(out.glob("part-*.parquet")):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"no part written: {process.stderr.read()[-2000:] if process.stderr else ''}")
        time.sleep(0.05)


def scored_count(stderr: str) -> int:
    """`emotionnet: 300 files: 120 scored (...)` -> 120 (0 when the job did not get that far)."""
    try:
        return int(stderr.rsplit(" files: ", 1)[1].split(" scored", 1)[0])
    except (IndexError, ValueError):
        return 0


def two_jobs(work: Path, checkout: Path, first: int, second: int, timeout: float) -> dict:
    a = write_clips(work / "first", first, seed=0)
    b = write_clips(work / "second", second, seed=10_000)
    out = work / "shared.parquet"
    options = ("--workers", "1", "--part-rows", "25")
    jobs = [job([a], out, checkout, *options), job([a, b], out, checkout, *options)]
    logs = [j.communicate(timeout=timeout)[1] for j in jobs]
    rows, distinct = rows_in(out)
    files = first + second
    return {"files": files, "rows": rows, "rows_lost": files - distinct, "duplicate_rows": rows - distinct,
            "scored_twice": sum(map(scored_count, logs)) - files, "exit": [j.returncode for j in jobs]}


def stop_driver(work: Path, checkout: Path, files: int, signal_number: int, timeout: float,
                settle: float = 10.0) -> dict:
    folder = write_clips(work / f"signal-{signal_number}", files, seed=20_000)
    out = work / f"signal-{signal_number}.parquet"
    process = job([folder], out, checkout, "--workers", "2", "--chunk", "4", "--part-rows", "40")
    members: set[int] = set()
    try:
        wait_for_part(process, out, timeout)
        time.sleep(2.0)  # rows gather past the first part: the ones a clean stop must write
        members = tree(process.pid)
        written, _ = rows_in(out)
        os.kill(process.pid, signal_number)
        process.wait(timeout=timeout)
        time.sleep(settle)
        left = alive(members)
        rows, _ = rows_in(out)
        return {"signal": signal.Signals(signal_number).name, "exit": process.returncode,
                "rows_in_parts_at_the_signal": written, "rows_kept": rows,
                "processes_of_the_job": len(members), "processes_left": len(left)}
    finally:
        for pid in alive(members | tree(process.pid) | {process.pid}):
            os.kill(pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, default=REPO, help="the emotionnet checkout to run (default: this one)")
    parser.add_argument("--first", type=int, default=300, help="files of the first job (default 300)")
    parser.add_argument("--second", type=int, default=100, help="files only the second job names (default 100)")
    parser.add_argument("--signal-files", type=int, default=400, help="files of the signal probes (default 400)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds any one job may take (default 600)")
    parser.add_argument("--model", help="model name or file for every job (default: the checkout's default)")
    parser.add_argument("--json", metavar="FILE", help="write the result as JSON")
    args = parser.parse_args(argv)
    MODEL_OPTIONS[:] = ["--model", args.model] if args.model else []
    if not Path("/proc/self/stat").exists():
        parser.error("reads processes from /proc (Linux)")
    with tempfile.TemporaryDirectory(prefix="emotionnet-faults-") as tmp:
        work = Path(tmp)
        result = {"checkout": str(args.checkout.resolve()), "model": args.model or "the checkout's default",
                  "two_jobs": two_jobs(work, args.checkout, args.first, args.second, args.timeout),
                  "sigterm": stop_driver(work, args.checkout, args.signal_files, signal.SIGTERM, args.timeout),
                  "kill_9": stop_driver(work, args.checkout, args.signal_files, signal.SIGKILL, args.timeout),
                  "load_average": os.getloadavg()}
    two, term, kill = result["two_jobs"], result["sigterm"], result["kill_9"]
    print(f"two jobs on one output: {two['rows']} rows for {two['files']} files, {two['rows_lost']} lost, "
          f"{two['scored_twice']} scored twice; exit {two['exit']}")
    print(f"SIGTERM: exit {term['exit']}, {term['rows_kept']} rows kept ({term['rows_in_parts_at_the_signal']} "
          "written before it), "
          f"{term['processes_left']} of {term['processes_of_the_job']} processes left")
    print(f"kill -9: {kill['processes_left']} of {kill['processes_of_the_job']} processes left")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
