"""Images and videos on `POST /v1/predict`: the face model, loaded once per process, and their limits.

An upload is told by its first bytes (`emotionnet.media.media_kind`), never by
its name or content type: JPEG, PNG and WebP go to the face model and answer
the image JSON of `emotionnet predict --json`; MP4, MKV, WebM, MOV, AVI and FLV
answer the video JSON (voice, face and fused). Anything else is audio, as before.

Cost is judged from the header before any pixel is decoded: an image of more
than `max_image_pixels` (a small file can claim gigapixels) and a video longer
than `max_video_seconds` get 413. The work then runs on a thread of its own
(one at a time, `queue_size` waiting), as heavy work: the voice windows of a
video let short audio requests go first (`emotionnet.serving.scheduling`).
"""

from __future__ import annotations

import io
import threading
import warnings
from dataclasses import dataclass, field

from emotionnet.errors import AudioError, ImageError
from emotionnet.models.family import AUDIO
from emotionnet.serving.errors import api_error
from emotionnet.serving.scheduling import Abandoned

IMAGE, VIDEO = "image", "video"  # the kinds of upload this module answers (emotionnet.media's names)


class ServedFaces:
    """The face model (`load_model(face_model)`), shared by every image and video request."""

    def __init__(self, recognizer):
        if recognizer.modality == AUDIO:
            raise ValueError("the face model reads audio, not faces (give the face model's name or file)")
        self.recognizer = recognizer

    @classmethod
    def load(cls, name: str) -> ServedFaces:
        from emotionnet import load_model

        return cls(load_model(name))

    @property
    def public_name(self) -> str:
        from emotionnet.models.names import display_name

        return display_name(getattr(self.recognizer, "model_file", None))

    def image(self, source: bytes | str, name: str) -> dict:
        """The image JSON of an upload (bytes or a spooled file), or an ImageError."""
        return self.recognizer.predict(source, name=name).to_json(name)

    def video(self, voice, source: bytes | str, name: str, window: float | None, hop: float | None) -> dict:
        """The video JSON of an upload: `voice` (the served voice recognizer) on its audio track, faces on its frames."""
        from emotionnet.inference.video_timeline import predict_video

        return predict_video(voice, source, self.recognizer.score_frames, window=window, hop=hop, name=name).to_dict()


def image_pixels(source: bytes | str, name: str) -> int:
    """Width x height from an image's header, nothing decoded; an ImageError when there is no readable header."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # Pillow warns past 89 MP: the caller's limit decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
                width, height = image.size
    except Image.DecompressionBombError:  # past Pillow's own hard limit (179 MP): too large, whatever ours is
        return 2 * Image.MAX_IMAGE_PIXELS + 1
    except UnidentifiedImageError:  # its message names Pillow's stream object, not the upload
        raise ImageError(f"{name}: not a JPEG, PNG or WebP image") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: a damaged or unreadable image header ({exc})") from None
    return width * height


def video_seconds(source: bytes | str, name: str) -> float | None:
    """A video's duration from its container (None when it says none), or a VideoError (an AudioError)."""
    from emotionnet.video import open_video

    return open_video(source, name=name).duration


@dataclass
class MediaJob:
    kind: str  # IMAGE or VIDEO
    source: bytes | str  # the upload's bytes or its spooled file
    name: str
    window: float | None
    hop: float | None
    abandoned: threading.Event = field(default_factory=threading.Event)  # set when the request gave up


def check_limits(kind: str, source: bytes | str, name: str, max_image_pixels: float, max_video_seconds: float) -> None:
    """413 for an image or video over its limit, 400 for one whose header cannot be read."""
    if kind == IMAGE:
        try:
            pixels = image_pixels(source, name)
        except ImageError as exc:
            raise api_error(400, "bad_image", str(exc)) from None
        if pixels > max_image_pixels:
            raise api_error(413, "image_too_large", f"{name}: {pixels / 1e6:.0f} megapixels; the limit is "
                            f"{max_image_pixels / 1e6:g}")
        return
    try:
        seconds = video_seconds(source, name)
    except AudioError as exc:  # VideoError: not a video PyAV reads, no track, damaged
        raise api_error(400, "bad_video", str(exc)) from None
    if seconds is not None and seconds > max_video_seconds:
        raise api_error(413, "video_too_long", f"{name}: too long ({seconds:.1f} s; the limit for a video is "
                        f"{max_video_seconds:g} s)")


def make_media_work(faces: ServedFaces, voice_model):
    """What the media thread runs on its jobs, one at a time: the JSON of each, or the exception it raised.

    `voice_model` is the service's `ServedModel`: a video's voice windows go through its scheduled network
    as heavy work, so they let short audio requests go first and stop when the request gave up.
    """

    def work(jobs: list[MediaJob]) -> list:
        results: list = []
        for job in jobs:
            if job.abandoned.is_set():
                results.append(Abandoned("the request gave up"))
                continue
            try:
                if job.kind == IMAGE:
                    results.append(faces.image(job.source, job.name))
                else:
                    with voice_model.turns.heavy(job.abandoned.is_set):
                        results.append(faces.video(voice_model.recognizer, job.source, job.name, job.window, job.hop))
            except Exception as exc:  # bad media: 400; anything else: 500, to this request only
                results.append(exc)
        return results

    return work


def media_error(kind: str, exc: Exception):
    """The HTTP error of an image or video the face model or the decoder refused (None: not the file's fault)."""
    if kind == IMAGE and isinstance(exc, ImageError):
        return api_error(400, "bad_image", str(exc))
    if kind == VIDEO and isinstance(exc, AudioError):  # VideoError, or an audio track the voice cannot read
        return api_error(400, "bad_video", str(exc))
    return None
