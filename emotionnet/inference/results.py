"""The JSON object of one file's result, shared by `predict --json`, the HTTP service and batch jobs."""

from __future__ import annotations


def file_result(path: str | None, timeline) -> dict:
    """`{"path", "duration", "emotion", "confidence", "probabilities", "segments"?}` for one file.

    `segments` is present when the audio is longer than one window (see `Timeline.to_dict`).
    """
    return {"path": path, **timeline.to_dict()}
