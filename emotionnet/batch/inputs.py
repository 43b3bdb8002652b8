"""Batch inputs -> the list of files to score: folders, globs, CSV manifests, text files of paths, URIs."""

from __future__ import annotations

import csv
import glob
import io
import os
from pathlib import Path

GLOB_CHARS = set("*?[")
LIST_SUFFIXES = {".txt", ".lst", ".list"}


def is_uri(path: str) -> bool:
    """`s3://...`, `gs://...`, `file://...`: read through pyarrow's filesystems, not the local one."""
    return "://" in path


def read_bytes(uri: str) -> bytes:
    """A file on any filesystem pyarrow knows (s3://, gs://, hdfs://, file://)."""
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(uri)
    with filesystem.open_input_stream(path) as stream:
        return stream.read()


def expand_inputs(inputs: list[str]) -> tuple[list[str], list[str]]:
    """The files to score (keyed by `file_key`), in order and without duplicates, and the inputs that named nothing.

    A folder means every audio, image and video file under it (`emotionnet.media.media_files`); a glob (quoted, `"calls/**/*.wav"`)
    every match; a `.csv` the column `path` and a `.txt` one path a line, both
    relative to their own folder (in a list, `#` starts a comment line; `\\#x.wav` names `#x.wav`).
    A path that exists is that file, even with `?` or `[` in its name. Anything else is one file, even if missing:
    it then gets an error row like any bad file.
    """
    from emotionnet.media import media_files

    files: list[str] = []
    empty: list[str] = []
    for item in inputs:
        suffix = Path(item.split("?")[0]).suffix.lower()
        if is_uri(item):
            found = read_remote_list(item, suffix) if suffix in LIST_SUFFIXES | {".csv"} else [item]
        elif Path(item).is_dir():
            found = [str(p) for p in media_files(item)]
        elif GLOB_CHARS & set(item) and not Path(item).is_file():  # `take[1].wav` that exists is that file
            found = sorted(p for p in glob.glob(item, recursive=True) if Path(p).is_file())
        elif Path(item).suffix.lower() == ".csv" and Path(item).is_file():
            found = read_path_column(Path(item))
        elif Path(item).suffix.lower() in LIST_SUFFIXES and Path(item).is_file():
            found = read_path_list(Path(item))
        else:
            found = [item]
        if not found:
            empty.append(item)
        files.extend(file_key(f) for f in found)
    return list(dict.fromkeys(files)), empty


def file_key(path: str) -> str:
    """What names a file in the results: its absolute path, or the full URL of a remote one.

    `batchin/a.wav`, `work/batchin/a.wav` and the same path from the filesystem root are one file,
    scored once and skipped on a re-run under any of these spellings. A symbolic link keeps its
    own name (the user's), not its target's.
    """
    if is_uri(path):
        return path
    return os.path.abspath(os.path.expanduser(path))


def _resolve(base: Path | str, path: str) -> str:
    if is_uri(path) or Path(path).is_absolute():
        return path
    return f"{base}/{path}" if isinstance(base, str) else str(base / path)


def path_column(text: str, base: Path | str, name: str) -> list[str]:
    reader = csv.DictReader(io.StringIO(text))
    columns = {c.strip().lower(): c for c in reader.fieldnames or []}
    if "path" not in columns:
        raise ValueError(f"{name}: a manifest needs a column 'path'")
    return [_resolve(base, row[columns["path"]].strip()) for row in reader if (row[columns["path"]] or "").strip()]


def path_lines(text: str, base: Path | str) -> list[str]:
    """One path a line; blank lines and lines starting with `#` are skipped. A file whose name starts
    with `#` is written `./#name` or `\\#name` (the backslash is dropped)."""
    paths = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        paths.append(_resolve(base, line[1:] if line.startswith("\\#") else line))
    return paths


def read_path_column(csv_path: Path) -> list[str]:
    return path_column(csv_path.read_text(encoding="utf-8-sig"), csv_path.parent, str(csv_path))


def read_path_list(list_path: Path) -> list[str]:
    return path_lines(list_path.read_text(encoding="utf-8"), list_path.parent)


def read_remote_list(uri: str, suffix: str) -> list[str]:
    """A list or manifest on s3:// and the like; relative entries are relative to its folder."""
    text = read_bytes(uri).decode("utf-8-sig")
    base = uri.rsplit("/", 1)[0]
    return path_column(text, base, uri) if suffix == ".csv" else path_lines(text, base)
