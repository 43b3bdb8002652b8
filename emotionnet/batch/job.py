"""A batch job: expand inputs, skip what the results folder already holds, run an engine, write as it goes."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from emotionnet.batch.engines import ENGINES, run_local, run_ray
from emotionnet.batch.inputs import expand_inputs
from emotionnet.batch.output import ResultsFolder
from emotionnet.batch.predictor import BatchPredictor


@dataclass
class BatchSummary:
    files: int  # inputs found
    skipped: int  # already in the results from an earlier run
    scored: int  # rows written by this run
    failed: int  # of those, rows with an error
    empty_inputs: list[str]  # inputs that named no file
    seconds: float
    failed_paths: list[str] = field(default_factory=list)  # every file of these inputs with an error row,
    # this run's and earlier runs' alike: the output holds their error rows

    @property
    def output_has_errors(self) -> bool:
        return bool(self.failed_paths)


def available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):  # the cores this process may use (containers, taskset)
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def run_batch(
    inputs: list[str], out: str | Path, engine: str = "local", workers: int | None = None, chunk: int = 16,
    model: str | None = None, max_seconds: float | None = None, address: str | None = None,
    progress: bool = False, part_rows: int = 1000, part_seconds: float = 30.0, load_options: dict | None = None,
) -> BatchSummary:
    """Score every input file into the results folder `out`; files already there are skipped.

    Rows are written as a new part once `part_rows` have gathered or `part_seconds`
    have passed since the last part: a killed job loses at most that much work,
    and a million files make a thousand parts, not sixty thousand. `load_options` are
    `load_model`'s (vad, compute_type, encoder_weights), the same in every worker.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if chunk < 1:
        raise ValueError("chunk must be at least 1")
    if engine == "local":
        workers = workers or available_cores()  # Ray's default is every CPU of its cluster
    start = time.perf_counter()
    files, empty = expand_inputs(inputs)
    results = ResultsFolder(out)
    done = results.rows_done()
    todo = [f for f in files if f not in done]
    errors = {f: done[f] for f in files if done.get(f)}  # error rows an earlier run left for these inputs
    predictor = BatchPredictor(model, max_seconds, load_options=load_options)
    scored = failed = 0
    from tqdm import tqdm

    with tqdm(total=len(files), initial=len(files) - len(todo), unit="file", disable=not progress,
              dynamic_ncols=True) as bar:
        if todo:
            batches = (run_local(todo, predictor, workers, chunk) if engine == "local"
                       else run_ray(todo, predictor, workers, chunk, address))
            pending: list[dict] = []
            last_write = time.monotonic()
            try:
                for rows in batches:
                    pending.extend(rows)
                    scored += len(rows)
                    failed += sum(1 for row in rows if row["error"])
                    errors.update((row["path"], row["error"]) for row in rows if row["error"])
                    bar.update(len(rows))
                    if len(pending) >= part_rows or time.monotonic() - last_write >= part_seconds:
                        results.write(pending)
                        pending, last_write = [], time.monotonic()
            finally:
                results.write(pending)  # finished rows are kept on Ctrl-C or an engine failure too
    failed_paths = [f for f in files if f in errors]  # in input order
    return BatchSummary(len(files), len(files) - len(todo), scored, failed, empty, time.perf_counter() - start,
                        failed_paths)
