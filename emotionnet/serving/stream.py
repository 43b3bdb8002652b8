"""`WS /v1/stream`: PCM chunks in, one JSON object per hop out, through the live engine of `emotionnet listen`.

Query: `sample_rate` (default 16000), `format` `s16le` (default) or `f32le`,
`channels` (default 1, interleaved), `hop` seconds (default 0.5, at least 0.1: the window rule). The client
sends binary messages of little-endian samples in any sizes; the server sends
`StreamResult.to_dict()` objects (as `emotionnet listen --json`) as hops
complete. A text message `end` flushes the last partial hop and closes.
Problems arrive as `{"error": {"code", "message"}}` followed by a close:
1008 bad API key, 1003 bad parameters, 1013 too many streams.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from emotionnet.serving.errors import error_body
from emotionnet.serving.limits import bearer_ok
from emotionnet.window_rule import MIN_HOP, STREAM_HOP

FORMATS = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}
MIN_RATE, MAX_RATE = 8_000, 192_000


class StreamParams:
    def __init__(self, query, max_hop: float):
        try:
            self.sample_rate = int(query.get("sample_rate", 16000))
            self.channels = int(query.get("channels", 1))
            self.hop = float(query.get("hop", STREAM_HOP))
        except ValueError as exc:
            raise ValueError(f"bad query parameter ({exc})") from None
        self.dtype = FORMATS.get(query.get("format", "s16le"))
        if self.dtype is None:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}")
        if not MIN_RATE <= self.sample_rate <= MAX_RATE:
            raise ValueError(f"sample_rate must be between {MIN_RATE} and {MAX_RATE}")
        if not 1 <= self.channels <= 8:
            raise ValueError("channels must be between 1 and 8")
        if not MIN_HOP <= self.hop <= max_hop:
            raise ValueError(f"hop must be between {MIN_HOP:g} and {max_hop:g} seconds")
        self.frame_bytes = self.dtype.itemsize * self.channels


class PCMDecoder:
    """Bytes of interleaved PCM in arbitrary pieces -> mono float32 at the model's rate."""

    def __init__(self, params: StreamParams, target_rate: int):
        import soxr

        self.params = params
        self.pending = b""
        self.resampler = (soxr.ResampleStream(params.sample_rate, target_rate, 1, dtype="float32", quality="HQ")
                          if params.sample_rate != target_rate else None)

    def decode(self, data: bytes, last: bool = False) -> np.ndarray:
        data = self.pending + data
        usable = len(data) - len(data) % self.params.frame_bytes
        self.pending = data[usable:]
        samples = np.frombuffer(data[:usable], dtype=self.params.dtype).reshape(-1, self.params.channels)
        if self.params.dtype.kind == "i":
            samples = samples.astype(np.float32) / 32768.0
        mono = samples.mean(axis=1, dtype=np.float32) if self.params.channels > 1 else samples[:, 0]
        mono = np.ascontiguousarray(mono, dtype=np.float32)
        if self.resampler is not None:
            mono = self.resampler.resample_chunk(mono, last=last)
        return mono


def add_stream_route(app: FastAPI, service) -> None:
    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket) -> None:
        await websocket.accept()

        async def refuse(close_code: int, code: str, message: str) -> None:
            service.metrics.error(code)
            await websocket.send_json(error_body(code, message))
            await websocket.close(close_code)

        if not bearer_ok(websocket.headers.get("authorization"), service.settings.api_key):
            return await refuse(1008, "unauthorized", "missing or wrong API key (send 'Authorization: Bearer <key>')")
        try:
            params = StreamParams(websocket.query_params, service.model.window)
        except ValueError as exc:
            return await refuse(1003, "invalid_request", str(exc))
        if service.streams >= service.settings.max_streams:
            return await refuse(1013, "busy", f"{service.settings.max_streams} streams are open; retry later")
        service.streams += 1
        service.metrics.streams.inc()
        try:
            await run_stream(websocket, service, params)
        except WebSocketDisconnect:
            pass  # the client went away: nothing to answer
        finally:
            service.streams -= 1
            service.metrics.streams.dec()


async def run_stream(websocket: WebSocket, service, params: StreamParams) -> None:
    loop = asyncio.get_running_loop()
    engine = service.model.stream_engine(params.hop)
    decoder = PCMDecoder(params, service.model.sample_rate)
    audio_seconds = service.metrics.audio_seconds.labels("stream")

    async def score(samples: np.ndarray, arrived: float, flush: bool = False) -> None:
        # Scoring runs in the inference threads, never on the event loop.
        def feed():
            results = engine.feed(samples, arrived) if samples.size else []
            return results + (engine.flush() if flush else [])

        for result in await loop.run_in_executor(service.executor, feed):
            service.metrics.hop_latency.observe(result.latency_ms / 1000)
            await websocket.send_json(result.to_dict())
        audio_seconds.inc(samples.size / service.model.sample_rate)

    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        arrived = time.perf_counter()
        if message.get("bytes") is not None:
            await score(decoder.decode(message["bytes"]), arrived)
        elif (message.get("text") or "").strip().lower() in ("end", '{"type": "end"}', '{"type":"end"}'):
            await score(decoder.decode(b"", last=True), arrived, flush=True)
            await websocket.close(1000)
            return
