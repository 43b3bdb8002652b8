"""Which modality a file holds: audio, an image or a video, told from its first bytes, not its name.

    media_kind("photo.jpg")    # "image"
    media_kind("talk.mp4")     # "video"
    media_kind("clip.wav")     # "audio" (also whatever is not recognised: the audio decoder then says why)

A folder's files are picked by extension (`media_files`), as audio folders always were; each file is
then told by content, so a JPEG named `.wav` goes to the face model and a renamed MP4 to video.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from emotionnet.corpora.discover import AUDIO_EXTENSIONS

MediaKind = Literal["audio", "image", "video"]
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi", ".flv"})


def media_kind(source: str | Path | bytes) -> MediaKind:
    """"image" (JPEG, PNG, WebP), "video" (MP4/MOV, Matroska/WebM, AVI, FLV) or "audio" (anything else)
    of a file, or of a file's bytes (an upload)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return kind_of_head(bytes(source[:16]))
    try:
        with open(source, "rb") as f:
            head = f.read(16)
    except OSError:
        return "audio"  # the audio decoder names a missing or unreadable file
    return kind_of_head(head)


def kind_of_head(head: bytes) -> MediaKind:
    """The kind told by a file's first 16 bytes."""
    if head.startswith(b"\xff\xd8\xff") or head.startswith(b"\x89PNG\r\n\x1a\n") or \
            (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "image"
    if head[4:8] == b"ftyp" and head[8:11] != b"M4A":  # ISO media (MP4, MOV); an .m4a is audio only
        return "video"
    if head.startswith(b"\x1a\x45\xdf\xa3") or head.startswith(b"FLV") or \
            (head[:4] == b"RIFF" and head[8:12] == b"AVI "):
        return "video"
    return "audio"


def media_files(path: str | Path) -> list[Path]:
    """Every audio, image and video file at or under `path`, sorted, picked by extension."""
    path = Path(path)
    if path.is_file():
        return [path]
    wanted = AUDIO_EXTENSIONS | IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
    found = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        found.extend(Path(root) / f for f in sorted(files) if Path(f).suffix.lower() in wanted)
    return found
