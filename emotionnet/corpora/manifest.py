"""Custom data: a CSV manifest `path,emotion[,speaker,corpus,split]`."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from emotionnet.corpora.records import Collection, Record
from emotionnet.labels import LABELS

SPLITS = ("train", "val", "test")
NUMBERED_SPEAKERS = ("crema-d", "ravdess")  # their fixed split lists name speakers by number


def _speaker_number(speaker: str, corpus: str, where: str) -> str:
    """A known corpus's speaker as its number: `crema-d-1011` -> `1011`, `rav08` and `Actor_08` -> `08`."""
    if speaker.isdigit():
        return speaker
    digits = re.findall(r"\d+", speaker)
    if not digits:
        raise ValueError(f"{where}: speaker {speaker!r} of corpus {corpus} is not a number; its split "
                         f"lists name speakers by number (e.g. 1011), or give another corpus name")
    return digits[-1]


def read_manifest(csv_path: str | Path) -> Collection:
    """Read a manifest; paths are relative to the CSV's folder.

    Without a speaker column each file counts as its own speaker, so the split
    cannot be speaker-independent: give speakers whenever you have them.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: manifest not found")
    collection = Collection()
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = {c.strip().lower() for c in reader.fieldnames or []}
        missing = {"path", "emotion"} - columns
        if missing:
            raise ValueError(f"{csv_path}: manifest lacks column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            emotion = row["emotion"].lower()
            if emotion not in LABELS:
                collection.skipped[emotion or "<empty>"] += 1
                continue
            split = row.get("split", "").lower() or None
            if split is not None and split not in SPLITS:
                raise ValueError(f"{csv_path}:{line}: split must be one of {SPLITS}, got {split!r}")
            if not row["path"]:
                raise ValueError(f"{csv_path}:{line}: empty path")
            path = (csv_path.parent / row["path"]).resolve()
            corpus = (row.get("corpus") or "custom").lower()
            speaker = row.get("speaker") or path.name
            if corpus in NUMBERED_SPEAKERS and row.get("speaker"):
                speaker = _speaker_number(speaker, corpus, f"{csv_path}:{line}")
            collection.records.append(Record(
                path=str(path),
                corpus=corpus,
                speaker=speaker,
                emotion=emotion,
                split=split,
            ))
    return collection
