"""Video in: the audio track at 16 kHz and frames at a fixed rate, on one clock (issue 29).

    video = open_video("talk.mp4")          # MP4, MKV, WebM, MOV, AVI, FLV: whatever PyAV opens
    video.duration, video.has_audio, video.has_video
    for block in video.audio_blocks():      # mono float32 at 16 kHz, as emotionnet.audio gives
        ...
    for frame in video.frames(fps=5):       # frame.time (s), frame.image (H, W, 3) uint8 RGB
        ...

PyAV (FFmpeg inside its wheel) decodes; the audio then goes through
`emotionnet.audio.resample_blocks`, the audio contract's own downmix, resampling
and checks, so a video's voice is scored exactly like an audio file's.

One clock: time 0 is the start of the file (its earliest stream). Audio sample
`i` is at `i / 16000` s on it (a track that starts late is preceded by
silence, samples before time 0 are dropped) and each frame carries its
presentation time on it. Both are streams: one block of audio and one
frame are held at a time, whatever the video's length.

A file without an audio track or without a video track answers with what it has
(`audio_blocks()` and `frames()` yield nothing for the missing side); a file
that is missing, empty or not a media file PyAV reads is one `VideoError`
naming it. Audio problems (too short, too long) are `AudioError`s, as for
any audio; a silent track is audio (the recognizer answers it "no speech").
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from emotionnet.audio import (
    BLOCK_SECONDS,
    SAMPLE_RATE,
    AudioError,
    AudioLimits,
    _open,
    block_frames,
    resample_blocks,
    source_name,
)

DEFAULT_FPS = 5.0  # frames a second given to a face model: faces change slower than this
VideoSource = str | Path | bytes


class VideoError(AudioError):
    """A video that cannot be read: the message names the input and the problem.

    An `AudioError`, so every command that reports bad audio per file and goes on does
    the same for a bad video."""


@dataclass(frozen=True)
class VideoFrame:
    time: float  # seconds on the file's clock (the audio's too)
    image: np.ndarray  # (height, width, 3) uint8, RGB


def _av():
    import av  # here: `import emotionnet` and the audio paths need no FFmpeg

    return av


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    return None if value is None or time_base is None else float(value * time_base)


def _is_cover_art(stream) -> bool:
    """An audio file's album picture is a one-frame 'video' stream: not a video."""
    av = _av()
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


class Video:
    """A video file's streams (read on opening) and decoders for its audio and frames.

    Each of `audio_blocks()` and `frames()` opens the file again and decodes its own
    stream, so they can run one after the other or side by side.
    """

    def __init__(self, source: VideoSource, name: str | None = None, limits: AudioLimits | None = None):
        self.name = name or source_name(source)
        self.limits = limits
        self._source = source
        self._handle = _open(source, self.name)  # missing, empty, a folder: one AudioError naming it
        with self._container() as container:
            audio = container.streams.audio
            video = [s for s in container.streams.video if not _is_cover_art(s)]
            if not audio and not video:
                raise VideoError(f"{self.name}: no audio or video track")
            self.has_audio, self.has_video = bool(audio), bool(video)
            starts = [_seconds(s.start_time, s.time_base) for s in (*audio[:1], *video[:1])]
            # Time 0 of the clock: the earliest stream's start (a missing start time counts as 0).
            self.origin = min((s for s in starts if s is not None), default=0.0)
            self.duration = self._duration(container, [*audio[:1], *video[:1]])
            self.sample_rate = audio[0].rate if audio else None  # the track's own rate, before resampling
            self.frame_rate = float(video[0].average_rate) if video and video[0].average_rate else None
            self.width = video[0].codec_context.width if video else None
            self.height = video[0].codec_context.height if video else None

    def _container(self):
        av = _av()
        handle = io.BytesIO(self._source) if isinstance(self._handle, io.BytesIO) else self._handle
        try:
            return av.open(handle, mode="r")
        except av.FFmpegError as exc:
            raise VideoError(f"{self.name}: unreadable or unsupported video ({exc.strerror or exc})") from None

    def _duration(self, container, streams) -> float | None:
        """Seconds from the clock's 0 to the end, from the container or else its streams; None if unknown."""
        if container.duration is not None:
            start = container.start_time / 1e6 if container.start_time is not None else self.origin
            return max(0.0, start - self.origin + container.duration / 1e6)
        ends = [(_seconds(s.start_time, s.time_base) or 0.0) + _seconds(s.duration, s.time_base)
                for s in streams if s.duration is not None]
        return max(ends) - self.origin if ends else None

    def _decoded(self, container, stream):
        """The stream's decoded frames; FFmpeg's complaint about damaged data as one VideoError."""
        av = _av()
        try:
            yield from container.decode(stream)
        except av.FFmpegError as exc:
            raise VideoError(f"{self.name}: damaged {stream.type} data ({exc.strerror or exc})") from None

    def audio_blocks(self, block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
        """The first audio track as mono float32 blocks at 16 kHz on the file's clock; nothing without one."""
        if not self.has_audio:
            return
        with self._container() as container:
            stream = container.streams.audio[0]
            frames_per_block = block_frames(stream.rate, stream.channels, block_seconds)
            yield from resample_blocks(self._native_audio(container, stream), stream.rate, self.name,
                                       self.limits, frames_per_block)

    def _native_audio(self, container, stream) -> Iterator[np.ndarray]:
        """(samples, channels) float32 at the track's rate, from time 0 of the clock (a late start as silence)."""
        av = _av()
        rate = stream.rate
        planar = av.AudioResampler(format="fltp", rate=rate)  # any sample format and layout -> float planes
        position = 0  # samples given so far, at `rate`, counted from time 0
        for frame in self._decoded(container, stream):
            for converted in planar.resample(frame):
                samples = converted.to_ndarray().T  # (channels, samples) planes -> (samples, channels)
                if converted.time is not None:
                    start = round((converted.time - self.origin) * rate)
                    if start < position and position == 0:  # before time 0 (an encoder's priming)
                        samples = samples[position - start:]
                    while start > position:  # the track starts late, or a gap: silence keeps the clock
                        gap = min(start - position, rate)  # a second at a time: a long gap stays small
                        yield np.zeros((gap, samples.shape[1]), np.float32)
                        position += gap
                position += len(samples)
                if len(samples):
                    yield samples
        # resample(None) flushes what the converter holds (nothing when rates match, but formats may pad)
        for converted in planar.resample(None):
            yield converted.to_ndarray().T

    def audio(self) -> np.ndarray | None:
        """The whole audio track as one 16 kHz mono float32 array; None without an audio track."""
        if not self.has_audio:
            return None
        blocks = list(self.audio_blocks())
        return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)

    def frames(self, fps: float = DEFAULT_FPS, threads: int = 1, skip_deblocking: bool = False) -> Iterator[VideoFrame]:
        """Frames sampled at `fps` on the file's clock: for each time k / fps, the first frame shown at or
        after it (each decoded frame at most once). Nothing without a video track.

        Every frame is decoded (inter-coded video needs them all); only those kept are converted
        to RGB. `threads`: FFmpeg's decoding threads. `skip_deblocking` leaves out H.264/H.265's
        in-loop deblocking filter: about a quarter less decoding on 720p H.264
        (docs/results/video-decode.md) for slightly blocky pictures.
        """
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        if not self.has_video:
            return
        with self._container() as container:
            stream = next(s for s in container.streams.video if not _is_cover_art(s))
            stream.thread_count = threads
            if skip_deblocking:
                stream.codec_context.options = {"skip_loop_filter": "all"}
            step, wanted = 1.0 / fps, 0  # the next frame wanted is number `wanted`, at wanted * step
            for frame in self._decoded(container, stream):
                if frame.time is None:
                    continue  # no timestamp: it cannot be placed on the clock
                time = frame.time - self.origin
                if time + 1e-6 < wanted * step:
                    continue
                yield VideoFrame(time, frame.to_ndarray(format="rgb24"))
                wanted = math.floor(time / step + 1e-6) + 1


def open_video(source: VideoSource, name: str | None = None, limits: AudioLimits | None = None) -> Video:
    """A video (a path or the file's bytes): its streams read, nothing decoded yet."""
    return Video(source, name=name, limits=limits)


__all__ = ["DEFAULT_FPS", "SAMPLE_RATE", "Video", "VideoError", "VideoFrame", "open_video"]
