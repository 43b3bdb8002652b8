"""Results written as they come: RESULTS.parquet is a folder of Parquet parts, one per finished chunk.

A Parquet file is only readable once its footer is written, so one growing
file would lose everything if the job were killed. Each chunk of rows is
written to a hidden temporary file and renamed into place, so the folder only
ever holds complete parts: a killed job keeps every chunk it finished, and
`pandas.read_parquet("RESULTS.parquet")` (or pyarrow, Spark, DuckDB) reads
the folder as one table. One job writes to a folder at a time: a job starting
on it removes the temporary files another job left behind.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

PART = re.compile(r"^part-(\d+)\.parquet$")


class ResultsFolder:
    def __init__(self, out: str | Path):
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise FileExistsError(f"{self.out} is a file; batch results are a folder of parts "
                                  "(give a new name, or the folder of an earlier run to resume it)")
        self.out.mkdir(parents=True, exist_ok=True)
        for stale in self.out.glob(".part-*.tmp"):  # left by a job killed while writing
            stale.unlink()
        self._next = max((int(m.group(1)) for p in self.out.iterdir() if (m := PART.match(p.name))), default=-1) + 1

    def parts(self) -> list[Path]:
        return sorted(p for p in self.out.iterdir() if PART.match(p.name))

    def done_paths(self) -> set[str]:
        """Paths that already have a row (error rows included: a bad file stays bad), keyed by `file_key`."""
        return set(self.rows_done())

    def rows_done(self) -> dict[str, str | None]:
        """Each path with a row (keyed by `file_key`, so rows of older runs that kept the path as typed
        match too) and its error, None for a scored file."""
        import pyarrow.parquet as pq

        from emotionnet.batch.inputs import file_key

        done: dict[str, str | None] = {}
        for part in self.parts():
            try:
                table = pq.read_table(part, columns=["path", "error"])
            except Exception as exc:  # not ours, or damaged by hand: its files are scored again
                print(f"emotionnet: warning: {part}: unreadable, ignored ({exc})", file=sys.stderr)
                continue
            for path, error in zip(table.column("path").to_pylist(), table.column("error").to_pylist()):
                done[file_key(path)] = error
        return done

    def write(self, rows: list[dict]) -> Path | None:
        """One new part holding `rows`, in place atomically."""
        if not rows:
            return None
        import pyarrow as pa
        import pyarrow.parquet as pq

        from emotionnet.batch.predictor import arrow_schema

        final = self.out / f"part-{self._next:05d}.parquet"
        temporary = self.out / f".part-{self._next:05d}.parquet.tmp"
        pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema()), temporary)
        os.replace(temporary, final)
        self._next += 1
        return final


def read_results(out: str | Path):
    """All rows of a results folder as one pyarrow table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from emotionnet.batch.predictor import arrow_schema

    parts = ResultsFolder(out).parts()
    if not parts:
        return arrow_schema().empty_table()
    # parts written before a column was added (`speech`) read with that column null
    return pa.concat_tables([pq.read_table(p) for p in parts], promote_options="default")
