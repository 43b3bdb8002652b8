"""Find labelled clips under folders, whatever layout a corpus was unpacked in."""

from __future__ import annotations

import os
from pathlib import Path

from emotionnet.corpora.naming import CREMA_D_CONFLICTING, PARSERS
from emotionnet.corpora.records import Collection, Record
from emotionnet.labels import LABELS

AUDIO_EXTENSIONS = frozenset({
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".aifc",
    ".mp3", ".au", ".snd", ".caf", ".w64", ".rf64",
})


def audio_files(path: str | Path) -> list[Path]:
    """Every audio file at or under `path`, sorted, judged by extension."""
    path = Path(path)
    if path.is_file():
        return [path]
    found = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        found.extend(Path(root) / f for f in sorted(files) if Path(f).suffix.lower() in AUDIO_EXTENSIONS)
    return found


def parse_path(path: Path) -> Record | None:
    for parse in PARSERS.values():
        record = parse(path)
        if record is not None:
            return record
    return None


def _identity(record: Record) -> tuple:
    # Redistributions nest TESS twice with byte-identical copies; TESS and SAVEE
    # names also vary in case and prefix, so they are keyed by what they mean.
    stem = "" if record.corpus in ("tess", "savee") else Path(record.path).stem.lower()
    return (record.corpus, record.speaker, record.emotion, record.sentence, record.intensity, stem)


def find_records(paths: list[str | Path], corpora: set[str] | None = None) -> Collection:
    """Parse every clip under `paths` whose name follows a known corpus's naming.

    Out-of-set emotions are counted in `skipped`; the CREMA-D clips with
    conflicting labels are listed in `excluded`; a clip seen twice is kept once.
    """
    collection = Collection()
    seen: set[tuple] = set()
    for base in paths:
        if not Path(base).exists():
            raise FileNotFoundError(f"{base}: no such file or folder")
        for file in audio_files(base):
            record = parse_path(file)
            if record is None or (corpora and record.corpus not in corpora):
                continue
            key = _identity(record)
            if key in seen:
                collection.duplicates += 1
                continue
            seen.add(key)
            if record.corpus == "crema-d" and file.stem in CREMA_D_CONFLICTING:
                collection.excluded.append(str(file))
            elif record.emotion not in LABELS:
                collection.skipped[record.emotion] += 1
            else:
                collection.records.append(record)
    return collection
