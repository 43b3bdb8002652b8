"""Batch inputs -> the list of files to score: folders, globs, CSV manifests, text files of paths, URIs."""

from __future__ import annotations

import csv
import glob
from pathlib import Path

GLOB_CHARS = set("*?[")
LIST_SUFFIXES = {".txt", ".lst", ".list"}


def is_uri(path: str) -> bool:
    """`s3://...`, `gs://...`, `file://...`: read through pyarrow's filesystems, not the local one."""
    return "://" in path


def expand_inputs(inputs: list[str]) -> tuple[list[str], list[str]]:
    """The files to score, in order and without duplicates, and the inputs that named nothing.

    A folder means every audio file under it; a glob (quoted, `"calls/**/*.wav"`)
    every match; a `.csv` the column `path` and a `.txt` one path a line, both
    relative to their own folder. Anything else is one file, even if missing:
    it then gets an error row like any bad file.
    """
    from emotionnet.corpora import audio_files

    files: list[str] = []
    empty: list[str] = []
    for item in inputs:
        if is_uri(item):
            found = [item]
        elif Path(item).is_dir():
            found = [str(p) for p in audio_files(item)]
        elif GLOB_CHARS & set(item):
            found = sorted(p for p in glob.glob(item, recursive=True) if Path(p).is_file())
        elif Path(item).suffix.lower() == ".csv" and Path(item).is_file():
            found = read_path_column(Path(item))
        elif Path(item).suffix.lower() in LIST_SUFFIXES and Path(item).is_file():
            found = read_path_list(Path(item))
        else:
            found = [item]
        if not found:
            empty.append(item)
        files.extend(found)
    return list(dict.fromkeys(files)), empty


def _resolve(base: Path, path: str) -> str:
    return path if is_uri(path) or Path(path).is_absolute() else str(base / path)


def read_path_column(csv_path: Path) -> list[str]:
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = {c.strip().lower(): c for c in reader.fieldnames or []}
        if "path" not in columns:
            raise ValueError(f"{csv_path}: a manifest needs a column 'path'")
        return [_resolve(csv_path.parent, row[columns["path"]].strip())
                for row in reader if (row[columns["path"]] or "").strip()]


def read_path_list(list_path: Path) -> list[str]:
    lines = list_path.read_text(encoding="utf-8").splitlines()
    return [_resolve(list_path.parent, line.strip()) for line in lines if line.strip() and not line.startswith("#")]
