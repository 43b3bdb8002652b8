"""Where a benchmark's full result goes: one JSON file beside its printed tables."""

from __future__ import annotations

import json
from pathlib import Path


def write_json(path: str | Path | None, result: dict) -> None:
    """Write `result` to `path` (folders made as needed); nothing when `path` is None."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(result, indent=1) + "\n")
