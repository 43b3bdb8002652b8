"""A video's emotion: voice, face and both fused, per window and for the file (issue 29).

    result = predict_video(load_model(), "talk.mp4", face_scorer=my_faces, fps=5)
    result.to_dict()   # DESIGN.md "Face and video": {"path", "duration", "emotion", ..., "voice", "face", "segments"}

The audio track goes through the voice model's timeline; frames sampled at
`fps` go through `face_scorer(frames) -> [probabilities or None per frame]` (six
probabilities in LABELS order, None where the frame holds no face), so any face
model plugs in as a callable. Both are on the file's clock (emotionnet/video.py):
a window's face answer is the mean of the face probabilities of the frames
shown within it, and its fused answer `emotionnet.fusion.fuse` of the two. A
side that has nothing in a window (no speech, no face, no track) leaves the
other's answer; neither gives `"emotion": null`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emotionnet.audio import AudioError
from emotionnet.fusion import fuse
from emotionnet.inference.results import Prediction, Timeline
from emotionnet.labels import LABELS
from emotionnet.video import DEFAULT_FPS, open_video

FaceScorer = Callable[[Sequence[np.ndarray]], Sequence[np.ndarray | None]]
FRAME_BATCH = 16  # frames given to the face scorer at once: a batch for its network, memory still flat


def _answer(probs: np.ndarray | None) -> dict:
    if probs is None:
        return {"emotion": None, "confidence": None, "probabilities": None}
    best = int(np.argmax(probs))
    return {"emotion": LABELS[best], "confidence": float(probs[best]),
            "probabilities": {label: float(p) for label, p in zip(LABELS, probs)}}


@dataclass
class FaceTrack:
    """The face answers of the sampled frames: their times and probabilities (None: no face)."""

    times: list[float] = field(default_factory=list)
    probabilities: list[np.ndarray | None] = field(default_factory=list)

    def between(self, start: float, end: float) -> tuple[np.ndarray | None, int, int]:
        """(mean probabilities of the frames with a face shown in [start, end), frames, frames with a face)."""
        chosen = [p for t, p in zip(self.times, self.probabilities) if start <= t < end]
        faces = [p for p in chosen if p is not None]
        return (np.mean(faces, axis=0) if faces else None), len(chosen), len(faces)


def _face_dict(probs: np.ndarray | None, frames: int, with_face: int) -> dict:
    return {"face": probs is not None, "frames": frames, "frames_with_face": with_face, **_answer(probs)}


def _voice_dict(prediction: Prediction | None) -> dict:
    if prediction is None:  # no audio track
        return {"speech": False, "emotion": None, "confidence": None, "probabilities": None}
    return prediction.to_dict()


def face_and_fused(voice: Prediction | None, face: tuple[np.ndarray | None, int, int]) -> tuple[dict, dict]:
    """One stretch's face answer (`FaceTrack.between`'s) and the fused answer with `voice`, as JSON, for
    callers that keep the voice's answer their own way (`listen`)."""
    face_probs = face[0]
    return _face_dict(*face), _answer(fuse(_voice_probs(voice), face_probs))


def _voice_probs(prediction: Prediction | None) -> np.ndarray | None:
    if prediction is None or not prediction.speech:
        return None
    return np.array([prediction.probabilities[label] for label in LABELS])


@dataclass
class VideoResult:
    path: str
    duration: float
    voice: Timeline | None  # None: no audio track
    face: FaceTrack | None  # None: no video track or no face scorer
    windows: list[tuple[float, float, Prediction | None]]  # each window's span and voice answer
    audio_error: str | None = None  # an audio track that could not be used (the face still answers)

    def to_dict(self) -> dict:
        face = self.face or FaceTrack()
        voice = self.voice.prediction if self.voice else None
        face_probs, frames, with_face = face.between(0.0, float("inf"))
        fused = fuse(_voice_probs(voice), face_probs)
        data = {"path": self.path, "duration": round(self.duration, 3), **_answer(fused),
                "voice": _voice_dict(voice), "face": _face_dict(face_probs, frames, with_face)}
        if self.audio_error:
            data["voice"]["error"] = self.audio_error
        segments = []
        for start, end, prediction in self.windows:
            window_face = face.between(start, end)
            segments.append({"start": round(start, 3), "end": round(end, 3),
                             **_answer(fuse(_voice_probs(prediction), window_face[0])),
                             "voice": _voice_dict(prediction), "face": _face_dict(*window_face)})
        data["segments"] = segments
        return data


def _face_track(video, face_scorer: FaceScorer, fps: float, threads: int) -> FaceTrack:
    track, batch = FaceTrack(), []

    def flush() -> None:
        answers = face_scorer([frame.image for frame in batch])
        if len(answers) != len(batch):
            raise ValueError(f"face_scorer answered {len(answers)} times for {len(batch)} frames")
        for frame, probs in zip(batch, answers):
            track.times.append(frame.time)
            track.probabilities.append(None if probs is None else np.asarray(probs, dtype=np.float64))
        batch.clear()

    for frame in video.frames(fps=fps, threads=threads):
        batch.append(frame)
        if len(batch) == FRAME_BATCH:
            flush()
    if batch:
        flush()
    return track


def _windows(duration: float, window: float, hop: float) -> list[tuple[float, float]]:
    """Windows over a video without voice, as a voice timeline would lay them out."""
    if duration <= window:
        return [(0.0, duration)]
    starts = list(np.arange(0.0, duration - window + 1e-9, hop))
    if starts[-1] + window < duration - 1e-3:
        starts.append(duration - window)
    return [(float(s), float(min(s + window, duration))) for s in starts]


def predict_video(recognizer, source: str | Path | bytes, face_scorer: FaceScorer | None = None, *,
                  fps: float = DEFAULT_FPS, window: float | None = None, hop: float | None = None,
                  threads: int = 1, name: str | None = None) -> VideoResult:
    """Voice, face and fused answers of a video, per window and for the file.

    `recognizer`: a voice model (`load_model`). `face_scorer`: frames (H, W, 3 uint8 RGB) -> per frame
    six probabilities or None (no face); None scores no frames. `name`: what the result and its errors
    call the video (default: its path, or `<bytes>`). A damaged file is a VideoError; an
    audio track the voice cannot use (too short, say) is reported under `voice.error` and the face
    answers alone.
    """
    video = open_video(source, name=name)
    voice, audio_error = None, None
    if video.has_audio:
        try:
            voice = recognizer.predict_timeline(video.audio(), 16_000, window=window, hop=hop)
        except AudioError as exc:
            audio_error = str(exc)
    face = _face_track(video, face_scorer, fps, threads) if face_scorer and video.has_video else None
    duration = video.duration or (voice.duration if voice else (face.times[-1] if face and face.times else 0.0))
    if voice is not None and voice.segments:
        windows = [(s.start, s.end, s.prediction) for s in voice.segments]
    elif voice is not None:
        windows = [(0.0, voice.duration, voice.prediction)]
    else:
        windowing = recognizer.windowing(window, hop)
        windows = [(start, end, None) for start, end in _windows(duration, windowing.seconds, windowing.hop)]
    return VideoResult(video.name, duration, voice, face, windows, audio_error)
