"""FER2013 as arrays: the image folders (`train/`, `validation/`) read once and cached.

The export lays each split out as seven class folders of 48x48 grayscale JPEGs.
Six are our labels; `surprise` is kept as a seventh training class (it teaches
the network faces, and its logit is left out of every answer).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from emotionnet.labels import LABELS

FER_CLASSES: tuple[str, ...] = (*LABELS, "surprise")  # training classes: our six, then surprise
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def read_split(folder: str | Path, cache_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, 48, 48), labels int64 (n,)) of one split folder, in sorted path order.

    Labels index FER_CLASSES. With `cache_dir`, the arrays are kept in an .npz keyed by
    the folder's file list, so a second read skips 30,000 JPEG decodes.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such FER2013 split folder")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    unknown = sorted({p.parent.name for p in paths} - set(FER_CLASSES))
    if unknown:
        raise ValueError(f"{folder}: class folders {unknown} are not FER2013's {list(FER_CLASSES)}")
    if not paths:
        raise ValueError(f"{folder}: no images")
    key = hashlib.sha1("\n".join(str(p.relative_to(folder)) for p in paths).encode()).hexdigest()[:12]
    cached = Path(cache_dir) / f"fer2013-{folder.name}-{key}.npz" if cache_dir else None
    if cached is not None and cached.is_file():
        with np.load(cached) as data:
            return data["images"], data["labels"]
    images = np.stack([_gray48(p) for p in paths])
    labels = np.array([FER_CLASSES.index(p.parent.name) for p in paths], dtype=np.int64)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp.npz")
        np.savez(tmp, images=images, labels=labels)
        tmp.replace(cached)
    return images, labels


def _gray48(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        image = image.convert("L")
        if image.size != (48, 48):
            image = image.resize((48, 48), Image.BILINEAR)
        return np.asarray(image, dtype=np.uint8)
