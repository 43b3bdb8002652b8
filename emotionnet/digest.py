"""Content hashes of files: what caches and benchmark reports key on."""

from __future__ import annotations

import hashlib
import os


def file_digest(path: str | os.PathLike, algorithm: str = "sha1") -> str:
    """Hex digest of a file's bytes, read in 1 MiB blocks so large files never sit in memory."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
