"""The record: one labelled clip, whatever corpus it came from."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Record:
    path: str
    corpus: str
    speaker: str
    emotion: str
    sentence: str | None = None  # TESS: the carrier word
    intensity: str | None = None
    split: str | None = None  # only when a manifest fixes it

    @property
    def group(self) -> str:
        """Speakers are only unique within a corpus."""
        return f"{self.corpus}:{self.speaker}"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Collection:
    """Records found under some folders, with what was left out and why."""

    records: list[Record] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)  # out-of-set label -> count
    excluded: list[str] = field(default_factory=list)  # known-bad clips left out
    duplicates: int = 0

    def extend(self, other: Collection) -> None:
        self.records.extend(other.records)
        self.skipped.update(other.skipped)
        self.excluded.extend(other.excluded)
        self.duplicates += other.duplicates

    def per_corpus(self) -> dict[str, int]:
        return dict(sorted(Counter(r.corpus for r in self.records).items()))
