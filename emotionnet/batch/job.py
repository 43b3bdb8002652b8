"""A batch job: expand inputs, skip what the results folder already holds, run an engine, write as it goes."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from emotionnet.batch.engines import ENGINES, run_local, run_ray
from emotionnet.batch.inputs import expand_inputs
from emotionnet.batch.output import ResultsFolder
from emotionnet.batch.predictor import BatchPredictor
from emotionnet.errors import EmotionNetError
from emotionnet.models.names import FACE_MODEL


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


class BatchJobError(EmotionNetError, RuntimeError):
    """The job stopped before its end (a worker that could not load the model or crashed, a lost
    cluster): the rows it finished are kept, and running it again goes on from there."""


def run_batch(
    inputs: list[str], out: str | Path, engine: str = "local", workers: int | None = None, chunk: int = 16,
    model: str | None = None, max_seconds: float | None = None, address: str | None = None,
    progress: bool = False, part_rows: int = 1000, part_seconds: float = 30.0, retry_errors: bool = False,
    on_wait: Callable[[str], None] | None = None, load_options: dict | None = None, verbose: bool = False,
    face_model: str = FACE_MODEL,
) -> BatchSummary:
    """Score every input file into the results folder `out`; files already there are skipped.

    Rows are written as a new part once `part_rows` have gathered or the oldest of them
    is `part_seconds` old: a killed job loses at most that much work,
    and a million files make a thousand parts, not sixty thousand. Error rows of the
    job's own making (`error_kind` "job": a scoring or reading failure) are tried again;
    `retry_errors` tries the files' own (bad audio) too. Another job writing to `out`
    is waited for (`on_wait` is told); an `out` that cannot be written is an `OutputError`
    before any scoring, a job that stops early a `BatchJobError`, both with the finished rows kept.
    `load_options` are `load_model`'s (vad, compute_type, encoder_weights), the same in every worker.
    Images and videos (told by content) are read with `face_model`, loaded once per worker at its first one.
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
    predictor = BatchPredictor(model, max_seconds, load_options=load_options, face_model=face_model)
    with results.locked(on_wait):
        done = results.rows_done()
        todo = [f for f in files if f not in done or _retry(*done[f], retry_errors)]
        retried = sum(1 for f in todo if f in done)
        again = set(todo)
        errors = {f: done[f][0] for f in files if f in done and done[f][0] and f not in again}
        scored, failed = _score(todo, results, errors, engine, workers, chunk, predictor,
                                address, progress, len(files), part_rows, part_seconds, retried, verbose)
    failed_paths = [f for f in files if f in errors]  # in input order
    return BatchSummary(len(files), len(files) - len(todo), scored, failed, empty, time.perf_counter() - start,
                        failed_paths)


def _retry(error: str | None, kind: str | None, retry_errors: bool) -> bool:
    return error is not None and (retry_errors or kind == "job")


def _score(todo, results, errors, engine, workers, chunk, predictor, address, progress, total,
           part_rows, part_seconds, retried, verbose=False) -> tuple[int, int]:
    """Run the engine over `todo`, writing parts as rows gather; (rows written, of them errors)."""
    from tqdm import tqdm

    scored = failed = 0
    with tqdm(total=total, initial=total - len(todo), unit="file", disable=not progress, dynamic_ncols=True) as bar:
        if not todo:
            return 0, 0
        batches = (run_local(todo, predictor, workers, chunk) if engine == "local"
                   else run_ray(todo, predictor, workers, chunk, address, verbose))
        pending: list[dict] = []
        oldest = 0.0  # when the oldest row not yet written arrived: at most part_seconds of work is at risk
        try:
            for rows in batches:
                if not pending:
                    oldest = time.monotonic()
                pending.extend(rows)
                scored += len(rows)
                failed += sum(1 for row in rows if row["error"])
                errors.update((row["path"], row["error"]) for row in rows if row["error"])
                bar.update(len(rows))
                if len(pending) >= part_rows or time.monotonic() - oldest >= part_seconds:
                    results.write(pending)
                    pending = []
        except Exception as exc:  # KeyboardInterrupt (Ctrl-C, SIGTERM) goes up as it is
            raise BatchJobError(f"the job stopped: {type(exc).__name__}: {_last_line(exc)}") from exc
        finally:
            results.write(pending)  # finished rows are kept on Ctrl-C or an engine failure too
            if retried:
                results.drop_superseded()  # the error rows that were tried again
    return scored, failed


def _last_line(exc: BaseException) -> str:
    """The line of an engine's error that says what went wrong (a Ray error ends its remote traceback with it)."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else "no message"
