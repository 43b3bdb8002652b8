"""Faces for `listen`: a video file's sound as a live source with its frames alongside, or a camera.

Both give `frames_until(t)`: the sampled frames (RGB, `DEFAULT_FPS` a second) shown before stream second
`t`, each once, so that each hop's face answer is that of the frames in its window. A video file's frames
are on the file's clock, as its sound is; a camera's on the clock of the session, from when it opened.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from emotionnet.audio import SAMPLE_RATE
from emotionnet.errors import EmotionNetError
from emotionnet.streaming.sources import BLOCK_SECONDS, FileSource
from emotionnet.video import DEFAULT_FPS, VideoFrame, open_video

CAMERA_BACKLOG = 50  # sampled camera frames kept while scoring lags: 10 s at 5 a second


class CameraError(EmotionNetError, OSError):
    """No usable camera: no such device, busy, or not a camera."""


def default_camera() -> str:
    """The first camera as FFmpeg names it on this system."""
    if sys.platform.startswith("linux"):
        return "/dev/video0"
    return "0"  # avfoundation's (macOS) and dshow's first device


class VideoFileSource(FileSource):
    """A video file played as if live: its sound as a `FileSource`'s chunks (silence when it has no
    audio track, so the hops still come), its frames by `frames_until`. Memory stays a block and a frame."""

    def __init__(self, path: str | Path, realtime: bool = True, block_seconds: float = BLOCK_SECONDS,
                 fps: float = DEFAULT_FPS, threads: int = 1):
        self.path = path
        self.realtime = realtime
        self.block = max(1, round(block_seconds * SAMPLE_RATE))
        self.max_seconds = None
        self.video = open_video(path)  # a damaged or unreadable file: VideoError, here
        self.duration = self.video.duration or 0.0
        self.name = str(path)
        self._frames = self.video.frames(fps=fps, threads=threads)
        self._ahead: VideoFrame | None = None  # the first frame of the next window, read already

    def _blocks(self) -> Iterator[np.ndarray]:
        if self.video.has_audio:
            yield from self.video.audio_blocks()
            return
        for start in np.arange(0.0, self.duration, 1.0):  # no sound: a second of silence at a time
            yield np.zeros(round(min(1.0, self.duration - start) * SAMPLE_RATE), np.float32)

    def frames_until(self, seconds: float) -> list[VideoFrame]:
        frames = []
        while True:
            frame = self._ahead or next(self._frames, None)
            self._ahead = None
            if frame is None:
                return frames
            if frame.time >= seconds:
                self._ahead = frame
                return frames
            frames.append(frame)

    def close(self) -> None:
        self._frames.close()


class CameraFrames:
    """A camera opened with PyAV (v4l2 on Linux, avfoundation on macOS, dshow on Windows), read on a
    thread that keeps `fps` frames a second until `frames_until` takes them."""

    def __init__(self, device: str, fps: float = DEFAULT_FPS):
        import av

        if sys.platform.startswith("linux"):
            form, name = "v4l2", device
        elif sys.platform == "darwin":
            form, name = "avfoundation", device
        else:
            form, name = "dshow", f"video={device}"
        self.name = device
        try:
            self._container = av.open(name, format=form)
            self._stream = self._container.streams.video[0]
        except (OSError, ValueError, IndexError, av.FFmpegError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or "no video stream"
            raise CameraError(f"cannot open camera {device!r}: {reason}") from None
        self._step = 1.0 / fps
        self._frames: deque[VideoFrame] = deque(maxlen=CAMERA_BACKLOG)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._started = time.perf_counter()
        self._thread = threading.Thread(target=self._read, name="camera", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        wanted = 0.0
        try:
            for frame in self._container.decode(self._stream):
                if self._stop.is_set():
                    return
                now = time.perf_counter() - self._started
                if now >= wanted:  # decode every frame (the camera sends them anyway), keep fps of them
                    with self._lock:
                        self._frames.append(VideoFrame(now, frame.to_ndarray(format="rgb24")))
                    wanted = now + self._step
        except Exception:  # unplugged or closed under us: no more frames, the voice goes on
            return

    def frames_until(self, seconds: float) -> list[VideoFrame]:
        with self._lock:
            frames = [f for f in self._frames if f.time < seconds]
            for _ in frames:
                self._frames.popleft()
        return frames

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._container.close()
