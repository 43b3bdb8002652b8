"""What a running service is allowed to do: sizes, durations, queue depth, threads, the API key."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

SETTINGS_ENV = "EMOTIONNET_SERVE_SETTINGS"  # how `serve --workers N` hands settings to each worker process


@dataclass(frozen=True)
class ServeSettings:
    model: str | None = None  # a model name or file (load_model); None: the shipped model
    load_options: dict = field(default_factory=dict)  # load_model's vad, compute_type, encoder_weights
    api_key: str | None = None  # when set, /v1/* and /metrics need `Authorization: Bearer <key>`
    max_upload_mb: float = 50.0  # larger request bodies get 413
    max_audio_seconds: float = 600.0  # longer audio gets 413
    request_timeout: float = 30.0  # seconds a request may wait for its answer before 503
    queue_size: int = 64  # requests waiting for the model; one more gets 503 with Retry-After
    threads: int = 1  # inference threads of this process, each running the model on one core
    max_batch: int = 8  # requests scored together when several are waiting (micro-batching)
    max_streams: int = 16  # concurrent WebSocket streams; one more is closed with code 1013
    retry_after: int = 1  # seconds a 503 asks the client to wait

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServeSettings:
        text = os.environ.get(SETTINGS_ENV)
        return cls(**json.loads(text)) if text else cls()
