"""`WS /v1/stream`: PCM chunks in, one JSON object per hop out, through the live engine of `emotionnet listen`.

The protocol is `STREAM_PROTOCOL` below (also in the OpenAPI description at /docs).

A stream shares the inference threads with predict requests: its audio is
scored a hop at a time, so a large message waits its turn between them rather
than holding the model (issue 30: one 4 MB message took predict's worst
latency from 0.07 s to 20.6 s; at a second at a time, 3.6 s on a busy machine).
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from emotionnet.serving.errors import close_reason, error_body
from emotionnet.serving.limits import bearer_ok
from emotionnet.window_rule import MIN_HOP, STREAM_HOP

FORMATS = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}
MIN_RATE, MAX_RATE = 8_000, 192_000

STREAM_PROTOCOL = f"""**WebSocket `/v1/stream`** (live audio; not listed below, as OpenAPI has no WebSockets).

Query: `sample_rate` (required, {MIN_RATE}-{MAX_RATE} Hz: raw PCM says nothing of its rate), `format` `s16le`
(default) or `f32le`, `channels` (1-8, default 1, interleaved), `hop` seconds between results (0.1 to the model's
window, default 0.5). With an API key, send `Authorization: Bearer <key>` with the handshake.

The client sends binary messages of little-endian samples in any sizes (at most 10 s of audio each, by default);
the server sends one JSON object per hop as `emotionnet listen --json` prints them (`time`, `start`, `speech`,
`emotion`, `confidence`, `probabilities`, ...). The text message `end` flushes the last partial hop and closes
(1000).

A problem arrives as `{{"error": {{"code", "message"}}}}`, then a close whose reason is the message: 1008 bad
API key (`unauthorized`), 1003 bad parameters (`invalid_request`), 1013 too many streams (`busy`), 1009 a
message over the audio limit (`too_large`), 1001 nothing received for the idle timeout, 30 s by default
(`idle`). Without an API key, a handshake from another site's page (`Origin`) is refused (403)."""


class StreamParams:
    def __init__(self, query, max_hop: float):
        if "sample_rate" not in query:
            raise ValueError(f"sample_rate is required ({MIN_RATE}-{MAX_RATE} Hz): raw PCM does not say its rate")
        try:
            self.sample_rate = int(query.get("sample_rate"))
            self.channels = int(query.get("channels", 1))
            self.hop = float(query.get("hop", STREAM_HOP))
        except ValueError as exc:
            raise ValueError(f"bad query parameter ({exc})") from None
        self.dtype = FORMATS.get(query.get("format", "s16le"))
        if self.dtype is None:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {query.get('format')!r}")
        if not MIN_RATE <= self.sample_rate <= MAX_RATE:
            raise ValueError(f"sample_rate must be between {MIN_RATE} and {MAX_RATE}")
        if not 1 <= self.channels <= 8:
            raise ValueError("channels must be between 1 and 8")
        if not MIN_HOP <= self.hop <= max_hop:
            raise ValueError(f"hop must be between {MIN_HOP:g} and {max_hop:g} seconds")
        self.frame_bytes = self.dtype.itemsize * self.channels

    def seconds(self, data: bytes) -> float:
        """Seconds of audio in `data`."""
        return len(data) / self.frame_bytes / self.sample_rate


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
            await websocket.close(close_code, reason=close_reason(message))

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
            await run_stream(websocket, service, params, refuse)
        except WebSocketDisconnect:
            pass  # the client went away: nothing to answer
        finally:
            service.streams -= 1
            service.metrics.streams.dec()


async def run_stream(websocket: WebSocket, service, params: StreamParams, refuse) -> None:
    loop = asyncio.get_running_loop()
    settings = service.settings
    engine = service.model.stream_engine(params.hop)
    decoder = PCMDecoder(params, service.model.sample_rate)
    audio_seconds = service.metrics.audio_seconds.labels("stream")
    piece = max(1, int(params.hop * service.model.sample_rate))  # audio scored per turn: one hop, one result

    def feed(samples: np.ndarray, arrived: float, flush: bool) -> list:
        with service.model.turns.light():
            results = engine.feed(samples, arrived) if samples.size else []
            return results + (engine.flush() if flush else [])

    async def score(samples: np.ndarray, arrived: float, flush: bool = False) -> None:
        # Scoring runs in the inference threads, never on the event loop, a hop at a time: predict
        # requests queued meanwhile are scored between the hops.
        starts = range(0, max(samples.size, 1), piece)
        for i, start in enumerate(starts):
            last = flush and i == len(starts) - 1
            for result in await loop.run_in_executor(service.executor, feed, samples[start:start + piece], arrived,
                                                     last):
                service.metrics.hop_latency.observe(result.latency_ms / 1000)
                await websocket.send_json(result.to_dict())
        audio_seconds.inc(samples.size / service.model.sample_rate)

    while True:
        try:
            message = await asyncio.wait_for(websocket.receive(), settings.stream_idle_timeout)
        except asyncio.TimeoutError:
            return await refuse(1001, "idle", f"nothing received for {settings.stream_idle_timeout:g} s")
        if message["type"] == "websocket.disconnect":
            return
        arrived = time.perf_counter()
        if message.get("bytes") is not None:
            if params.seconds(message["bytes"]) > settings.max_message_seconds:
                return await refuse(1009, "too_large", f"a message of {params.seconds(message['bytes']):.1f} s of "
                                    f"audio; at most {settings.max_message_seconds:g} s each (send smaller pieces)")
            await score(decoder.decode(message["bytes"]), arrived)
        elif (message.get("text") or "").strip().lower() in ("end", '{"type": "end"}', '{"type":"end"}'):
            await score(decoder.decode(b"", last=True), arrived, flush=True)
            await websocket.close(1000)
            return
