"""Prometheus metrics of one service process: requests, latency, audio seconds, errors by kind.

Each app gets its own registry (tests build many apps in one process). With
`serve --workers N` every worker process counts for itself: scrape each, or
run one worker per container as docs/deploy.md does.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Paths counted under their own name; anything else is "other", so scans cannot blow up the label set.
KNOWN_PATHS = frozenset({"/v1/predict", "/v1/stream", "/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServiceMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("emotionnet_requests", "HTTP requests answered", ["path", "status"],
                                registry=self.registry)
        self.latency = Histogram("emotionnet_request_seconds", "Time from request to answer", ["path"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.audio_seconds = Counter("emotionnet_audio_seconds", "Seconds of audio scored", ["source"],
                                     registry=self.registry)
        self.errors = Counter("emotionnet_errors", "Error answers by kind", ["code"], registry=self.registry)
        self.queue_waiting = Gauge("emotionnet_queue_waiting", "Requests waiting for the model",
                                   registry=self.registry)
        self.streams = Gauge("emotionnet_streams_active", "Open WebSocket streams", registry=self.registry)
        self.hop_latency = Histogram("emotionnet_stream_hop_seconds", "From a hop's last sample to its result",
                                     buckets=LATENCY_BUCKETS, registry=self.registry)

    def error(self, code: str) -> None:
        self.errors.labels(code).inc()


class MetricsMiddleware:
    """Pure ASGI (no per-request task): counts every HTTP answer and its latency."""

    def __init__(self, app, metrics: ServiceMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            path = scope["path"] if scope["path"] in KNOWN_PATHS else "other"
            self.metrics.requests.labels(path, str(status[0])).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - start)
