"""Two engines behind one interface: chunks of paths in, lists of rows out, as each chunk finishes.

`local` runs a process pool on this machine; `ray` runs Ray Data with a pool
of actors, each holding one model and one inference thread. Both give every
chunk's rows to the caller, who writes them, so results and the progress bar
live in one place whatever the engine.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from emotionnet.batch.predictor import BatchPredictor

ENGINES = ("local", "ray")

_worker_predictor: BatchPredictor | None = None  # one per pool process
_load_failure: Exception | None = None  # why its model did not load


def _init_worker(predictor: BatchPredictor, driver: int) -> None:
    global _worker_predictor
    threading.Thread(target=_exit_with, args=(driver,), daemon=True, name="exit-with-driver").start()
    _worker_predictor = predictor
    try:
        predictor.recognizer()  # load the model once, before the first chunk
    except Exception as exc:  # raised with each chunk, so the driver hears why (not "pool broken")
        global _load_failure
        _load_failure = exc


def _exit_with(driver: int, every: float = 1.0) -> None:
    """Exit once the driver is gone (killed with -9, say): a pool worker would otherwise wait for work for good."""
    while os.getppid() == driver:
        time.sleep(every)
    os._exit(1)


def _predict_chunk(paths: list[str]) -> list[dict]:
    if _load_failure is not None:
        raise _load_failure
    return _worker_predictor.predict_paths(paths)


def chunks(paths: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(paths), size):
        yield paths[i:i + size]


def run_local(paths: list[str], predictor: BatchPredictor, workers: int, chunk: int) -> Iterator[list[dict]]:
    """A pool of `workers` processes (spawned: no forked torch state), a few chunks in flight each."""
    context = multiprocessing.get_context("spawn")
    pending_chunks = chunks(paths, chunk)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                             initargs=(predictor, os.getpid())) as pool:
        try:
            running = set()
            for part in pending_chunks:
                running.add(pool.submit(_predict_chunk, part))
                if len(running) >= 2 * workers:
                    break
            while running:
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    part = next(pending_chunks, None)
                    if part is not None:
                        running.add(pool.submit(_predict_chunk, part))
                    yield future.result()
        except BaseException:  # Ctrl-C, SIGTERM or a crash: stop at once, leaving no worker behind
            pool.shutdown(wait=False, cancel_futures=True)
            for worker in multiprocessing.active_children():  # this process's children: the pool's workers
                worker.terminate()
            raise


def start_ray(address: str | None, workers: int | None, verbose: bool = False) -> int:
    """Join the cluster at `address`, or start a local Ray with `workers` CPUs (or join the running one).

    Returns the number of actors to run: `workers`, or by default every CPU of the cluster.
    Unless `verbose`, Ray's own chatter stays in its log files (Ray's session_latest/logs folder):
    its Python loggers say errors only, and its C++ core (whose error-level lines, such as
    core_worker.cc's at the end of a successful run, go to stderr as well) fatal ones only.
    """
    import ray

    from emotionnet.subprocesses import package_search_path

    if not ray.is_initialized():
        level = logging.WARNING if verbose else logging.ERROR
        if not verbose:
            os.environ["RAY_BACKEND_LOG_LEVEL"] = "fatal"  # read by the core of this driver and the local nodes
            for name in ("ray", "ray.data", "ray.train", "ray.tune"):
                logging.getLogger(name).setLevel(level)
        if address:
            ray.init(address=address, log_to_driver=verbose, logging_level=level)
        else:  # the local workers find this package first; they need nothing else from the driver's PYTHONPATH
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=verbose, logging_level=level,
                     runtime_env={"env_vars": {"PYTHONPATH": package_search_path()}})
    return workers or max(1, int(ray.cluster_resources().get("CPU", 1)))


def run_ray(paths: list[str], predictor: BatchPredictor, workers: int | None, chunk: int,
            address: str | None = None, verbose: bool = False) -> Iterator[list[dict]]:
    """Ray Data: paths in, `map_batches` over `workers` actors (one CPU, one model each), rows out."""
    import ray.data

    workers = start_ray(address, workers, verbose)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours is the one bar
    context.print_on_execution_start = False
    dataset = ray.data.from_items([{"path": p} for p in paths],
                                  override_num_blocks=max(1, min(len(paths) // chunk, 10_000)))
    scored = dataset.map_batches(type(predictor), fn_constructor_kwargs=dict(
        model=predictor.model, max_seconds=predictor.max_seconds, threads=predictor.threads,
        face_model=predictor.face_model),
        batch_size=chunk, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1)
    for batch in scored.iter_batches(batch_size=None, batch_format="pyarrow"):
        yield batch.to_pylist()
