"""Results written as they come: RESULTS.parquet is a folder of Parquet parts, one per finished chunk.

A Parquet file is only readable once its footer is written, so one growing
file would lose everything if the job were killed. Each chunk of rows is
written to a hidden temporary file and renamed into place, so the folder only
ever holds complete parts: a killed job keeps every chunk it finished, and
`pandas.read_parquet("RESULTS.parquet")` (or pyarrow, Spark, DuckDB) reads
the folder as one table.

One job writes to a folder at a time: a job holds `RESULTS.parquet/.lock`
(an advisory `flock`, released by the system however the job ends, `kill -9`
included) from before it reads what is done until its last part is written.
A second job on the same folder waits for it, then scores only what is still
missing: two jobs lose no row and never score a file twice. (Part names
unique per run would avoid the wait, but two jobs with overlapping inputs
would then both score the overlap, and a claim protocol between live jobs is
more machinery than one batch job per output needs.)

Holding the lock, a job tidies the folder before it scores: temporary files of
a killed job are removed; a damaged part, or a Parquet file that is not one of
ours (another schema), is moved to `RESULTS.parquet/_set_aside/` (readers skip
names starting with `_`), its files then scored again; and a row that a later
part supersedes (an error row tried again) is dropped from its older part.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from emotionnet.errors import EmotionNetError

PART = re.compile(r"^part-(\d+)\.parquet$")
LOCK_NAME = ".lock"
SET_ASIDE = "_set_aside"
REQUIRED_COLUMNS = ("path", "error")


class OutputError(EmotionNetError, OSError):
    """The results folder cannot be written (read-only, full, not a folder): found before any scoring."""


class ResultsFolder:
    def __init__(self, out: str | Path):
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise FileExistsError(f"{self.out} is a file; batch results are a folder of parts "
                                  "(give a new name, or the folder of an earlier run to resume it)")
        self._next = 0

    def parts(self) -> list[Path]:
        if not self.out.is_dir():
            return []
        return sorted(p for p in self.out.iterdir() if PART.match(p.name))

    @contextlib.contextmanager
    def locked(self, on_wait: Callable[[str], None] | None = None) -> Iterator[ResultsFolder]:
        """Hold the folder for one job: created and checked writable, locked (waiting for another job
        holding it; `on_wait` is told who), then tidied (see the module's notes)."""
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            lock = open(self.out / LOCK_NAME, "a+")  # noqa: SIM115 (held open for the whole job)
        except OSError as exc:
            raise OutputError(f"{self.out}: cannot write the results here ({exc.strerror or exc})") from None
        with lock:
            _lock(lock, self.out, on_wait)
            self._check_writable()
            for stale in self.out.glob(".part-*.tmp"):  # left by a job killed while writing
                stale.unlink()
            self.set_aside_unreadable()
            self.drop_superseded()
            self._next = max((int(m.group(1)) for p in self.parts() if (m := PART.match(p.name))), default=-1) + 1
            yield self

    def _check_writable(self) -> None:
        probe = self.out / f".probe-{os.getpid()}.tmp"
        try:
            probe.write_bytes(b"\0" * 4096)  # a full disk fails here, before the scoring
            probe.unlink()
        except OSError as exc:
            with contextlib.suppress(OSError):
                probe.unlink()
            raise OutputError(f"{self.out}: cannot write the results here ({exc.strerror or exc})") from None

    def set_aside_unreadable(self) -> list[Path]:
        """Move damaged parts and Parquet files of another schema to `_set_aside/`; their files are then
        not in the results, so they are scored again. Returns where they went."""
        moved = []
        for path in sorted(self.out.glob("*.parquet")):
            problem = _unreadable(path)
            if problem is None:
                continue
            aside = self.out / SET_ASIDE
            aside.mkdir(exist_ok=True)
            target = aside / path.name
            n = 1
            while target.exists():
                target, n = aside / f"{path.stem}.{n}{path.suffix}", n + 1
            os.replace(path, target)
            moved.append(target)
            print(f"emotionnet: warning: {path}: {problem}; moved to {target} (its files are scored again)",
                  file=sys.stderr)
        return moved

    def drop_superseded(self) -> None:
        """Each path keeps only its newest row: an older part's row for a path that a later part holds
        again (an error row tried again) is removed from that part, rewritten in place."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        parts = self.parts()
        paths = [pq.read_table(part, columns=["path"]).column("path").to_pylist() for part in parts]
        newest = {path: index for index, part_paths in enumerate(paths) for path in part_paths}
        for index, part in enumerate(parts):
            keep = [newest[path] == index for path in paths[index]]
            if all(keep):
                continue
            kept = pq.read_table(part).filter(pa.array(keep))
            if kept.num_rows:
                self._write_table(kept, part)
            else:
                part.unlink()

    def rows_done(self) -> dict[str, tuple[str | None, str | None]]:
        """Each path with a row (keyed by `file_key`, so rows of older runs that kept the path as typed
        match too) and its (error, error_kind); (None, None) for a scored file."""
        import pyarrow.parquet as pq

        from emotionnet.batch.inputs import file_key

        done: dict[str, tuple[str | None, str | None]] = {}
        for part in self.parts():
            names = pq.read_schema(part).names
            table = pq.read_table(part, columns=[c for c in ("path", "error", "error_kind") if c in names])
            kinds = (table.column("error_kind").to_pylist() if "error_kind" in table.column_names
                     else [None] * table.num_rows)
            for path, error, kind in zip(table.column("path").to_pylist(), table.column("error").to_pylist(), kinds):
                done[file_key(path)] = (error, kind or legacy_error_kind(error))
        return done

    def write(self, rows: list[dict]) -> Path | None:
        """One new part holding `rows`, in place atomically."""
        if not rows:
            return None
        import pyarrow as pa

        from emotionnet.batch.predictor import arrow_schema

        final = self.out / f"part-{self._next:05d}.parquet"
        self._write_table(pa.Table.from_pylist(rows, schema=arrow_schema()), final)
        self._next += 1
        return final

    def _write_table(self, table, final: Path) -> None:
        import pyarrow.parquet as pq

        temporary = self.out / f".{final.name}.tmp"
        pq.write_table(table, temporary)
        os.replace(temporary, final)


def legacy_error_kind(error: str | None) -> str | None:
    """Whose fault an error row is, for rows written before the `error_kind` column: scoring failures
    (a model that did not load or import, a worker that crashed) were the job's; the rest the file's."""
    if error is None:
        return None
    return "job" if "scoring failed (" in error else "audio"


def _unreadable(path: Path) -> str | None:
    """Why a Parquet file in the folder is not a part of ours (None: it is)."""
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
        if missing := [c for c in REQUIRED_COLUMNS if c not in names]:
            return f"not a results part (no column {', '.join(missing)})"
        if not PART.match(path.name):
            return "not a results part (its name)"
        pq.read_table(path, columns=list(REQUIRED_COLUMNS))
    except Exception as exc:  # damaged: truncated, overwritten, not Parquet at all
        return f"unreadable ({exc})"
    return None


def _lock(lock, out: Path, on_wait: Callable[[str], None] | None) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; one job per folder is then the user's rule
        return
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another job"
        if on_wait:
            on_wait(f"waiting for {holder}, which is writing to {out}")
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
    except OSError as exc:  # a filesystem without locks (some network mounts)
        raise OutputError(f"{out}: cannot lock the results folder ({exc.strerror or exc})") from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"the batch job with pid {os.getpid()}\n")
    lock.flush()


def read_results(out: str | Path):
    """All rows of a results folder as one pyarrow table (parts that are not ours are skipped, with a warning)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from emotionnet.batch.predictor import arrow_schema

    tables = []
    for part in ResultsFolder(out).parts():
        problem = _unreadable(part)
        if problem:
            print(f"emotionnet: warning: {part}: {problem}; skipped", file=sys.stderr)
            continue
        tables.append(pq.read_table(part))
    if not tables:
        return arrow_schema().empty_table()
    # parts written before a column was added (`speech`, `error_kind`) read with that column null
    return pa.concat_tables(tables, promote_options="default")
