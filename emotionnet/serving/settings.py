"""What a running service is allowed to do: sizes, durations, queue depth, threads, deadlines, the API key."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields

from emotionnet.models.names import FACE_MODEL

SETTINGS_ENV = "EMOTIONNET_SERVE_SETTINGS"  # how `serve --workers N` hands settings to each worker process


@dataclass(frozen=True)
class ServeSettings:
    model: str | None = None  # a model name or file (load_model); None: the shipped model
    load_options: dict = field(default_factory=dict)  # load_model's vad, compute_type, encoder_weights
    face_model: str = FACE_MODEL  # the model for images and video frames (a name or file), loaded at start-up
    api_key: str | None = None  # when set, /v1/* and /metrics need `Authorization: Bearer <key>`
    max_upload_mb: float = 50.0  # larger request bodies get 413
    max_audio_seconds: float = 600.0  # longer audio gets 413
    max_video_seconds: float = 120.0  # longer videos get 413 (a video costs its frames besides its audio)
    max_image_megapixels: float = 100.0  # larger images get 413, judged from the header before decoding
    request_timeout: float = 30.0  # seconds a request may wait for its answer before 503
    queue_size: int = 64  # requests waiting for the model; one more gets 503 with Retry-After
    threads: int = 1  # inference threads of this process, each running the model on one core
    max_batch: int = 8  # requests scored together when several are waiting (micro-batching)
    max_streams: int = 16  # concurrent WebSocket streams; one more is closed with code 1013
    retry_after: int = 1  # seconds a 503 asks the client to wait
    max_windows: int = 1200  # analysis windows one request may ask for (600 s at hop 0.5 s); more get 413
    max_inflight_mb: float = 256.0  # request bodies being received or waiting, all together; more get 503
    read_timeout: float = 30.0  # seconds a request's headers and body may take to arrive; slower: disconnected
    max_connections: int = 1000  # open HTTP connections (less where the open-file limit is lower)
    stream_idle_timeout: float = 30.0  # seconds a stream may send nothing before it is closed
    max_message_seconds: float = 10.0  # audio in one stream message; more closes the stream (1009)

    def __post_init__(self):
        for setting in fields(self):
            value = getattr(self, setting.name)
            if setting.type in ("float", "int") and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{setting.name} must be a positive finite number, got {value!r}")
        if self.api_key is not None and (not self.api_key or self.api_key != self.api_key.strip()):
            raise ValueError("api_key is empty or has spaces around it (it could never match a request's key)")
        if self.max_inflight_mb < self.max_upload_mb:
            raise ValueError(f"max_inflight_mb ({self.max_inflight_mb:g}) must be at least max_upload_mb "
                             f"({self.max_upload_mb:g})")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_inflight_bytes(self) -> int:
        return int(self.max_inflight_mb * 1024 * 1024)

    @property
    def keyless(self) -> bool:
        """No API key: a loopback service, which then checks Host and Origin against web pages (issue 30)."""
        return self.api_key is None

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServeSettings:
        text = os.environ.get(SETTINGS_ENV)
        return cls(**json.loads(text)) if text else cls()
