"""The HTTP service: `POST /v1/predict`, `WS /v1/stream`, health, readiness, metrics, OpenAPI at /docs.

    from emotionnet.serving import create_app
    app = create_app()                 # loads the shipped model at start-up
    # uvicorn.run(app, host="127.0.0.1", port=8000)

The model is loaded once per process. Requests wait in a bounded queue (full:
503 with Retry-After) and are scored in worker threads, several at a time when
several are waiting. Errors are `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from emotionnet import __version__
from emotionnet.audio import AudioError
from emotionnet.serving.docs import install_docs, swagger_assets
from emotionnet.serving.errors import api_error, install_handlers
from emotionnet.serving.limits import BodyLimitMiddleware, bearer_ok, unauthorized
from emotionnet.serving.metrics import MetricsMiddleware, ServiceMetrics
from emotionnet.serving.model import ServedModel, is_too_long
from emotionnet.serving.queue import InferenceQueue
from emotionnet.serving.settings import ServeSettings
from emotionnet.window_rule import MAX_WINDOW, MIN_HOP, MIN_WINDOW

# Bodies that are certainly not audio; anything else is read as audio, whose format is judged by content
# (form-urlencoded included: it is what `curl --data-binary @clip.wav` sends unless told otherwise).
NOT_AUDIO = ("application/json",)

PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    "audio/*": {"schema": {"type": "string", "format": "binary"}},
}}}
ERRORS = {status: {"description": what} for status, what in {
    400: "bad audio (unreadable, empty, too short, silent)", 401: "missing or wrong API key",
    413: "body over --max-upload-mb, or audio over the duration limit", 415: "a body that is not audio",
    422: "invalid query or form", 503: "busy or timed out; see Retry-After"}.items()}


@dataclass
class PredictJob:
    data: bytes
    name: str
    window: float | None
    hop: float | None


def make_work(model: ServedModel, settings: ServeSettings):
    """The function worker threads run on a batch of jobs: decode each, score them together."""

    def work(jobs: list[PredictJob]) -> list:
        results: list = [None] * len(jobs)
        groups: dict[tuple, list[tuple[int, object]]] = {}
        for i, job in enumerate(jobs):
            try:
                audio = model.decode(job.data, job.name, settings.max_audio_seconds)
            except AudioError as exc:
                results[i] = exc
                continue
            groups.setdefault((job.window, job.hop), []).append((i, audio))
        for (window, hop), items in groups.items():
            try:
                timelines = model.score([audio for _, audio in items], window, hop)
            except Exception:
                # One clip must not fail the requests it happened to share a batch with: score each alone.
                timelines = [_score_alone(model, audio, window, hop) for _, audio in items]
            for (i, _), timeline in zip(items, timelines):
                results[i] = timeline
        return results

    return work


def _score_alone(model: ServedModel, audio, window, hop):
    try:
        return model.score([audio], window, hop)[0]
    except Exception as exc:  # answered 500 to this request only
        return exc


class Service:
    """What the app holds while it runs: settings, model, queue, thread pool, metrics."""

    def __init__(self, settings: ServeSettings, model: ServedModel | None):
        self.settings, self.model = settings, model
        self.metrics = ServiceMetrics()
        self.executor: ThreadPoolExecutor | None = None
        self.queue: InferenceQueue | None = None
        self.ready = False
        self.streams = 0

    async def start(self) -> None:
        if self.model is None:
            self.model = await asyncio.to_thread(ServedModel.load, self.settings.model)
        self.executor = ThreadPoolExecutor(self.settings.threads, thread_name_prefix="emotionnet-infer")
        self.queue = InferenceQueue(make_work(self.model, self.settings), self.executor, self.settings.queue_size,
                                    self.settings.threads, self.settings.max_batch)
        self.metrics.queue_waiting.set_function(lambda: self.queue.waiting if self.queue else 0)
        await self.queue.start()
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        await self.queue.stop()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def busy(self, message: str):
        return api_error(503, "busy", message, {"Retry-After": str(self.settings.retry_after)})


def create_app(settings: ServeSettings | None = None, model: ServedModel | None = None) -> FastAPI:
    """The app; `model` (a loaded `ServedModel`) saves loading one at start-up."""
    settings = settings or ServeSettings()
    service = Service(settings, model)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.start()
        yield
        await service.stop()

    assets = swagger_assets()
    app = FastAPI(title="EmotionNet", version=__version__, lifespan=lifespan, redoc_url=None,
                  docs_url=None if assets else "/docs",  # the default page loads Swagger UI from a CDN
                  description="Six emotions (angry, disgust, fear, happy, neutral, sad) from speech audio.")
    if assets:
        install_docs(app, assets)
    app.state.service = service
    install_handlers(app, service.metrics.error)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_upload_bytes, count_error=service.metrics.error)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)  # added last: outermost, sees every answer

    async def require_key(request: Request) -> None:  # async: a sync dependency would cost a thread hop
        if not bearer_ok(request.headers.get("authorization"), settings.api_key):
            raise unauthorized()

    @app.post("/v1/predict", dependencies=[Depends(require_key)], openapi_extra=PREDICT_BODY, responses=ERRORS,
              summary="The emotion of one audio file (multipart field `file`, or the raw bytes as the body)")
    async def predict(
        request: Request,
        timeline: bool = Query(True, description="include the timeline (`segments`) of audio longer than one window"),
        window: float | None = Query(None, ge=MIN_WINDOW, le=MAX_WINDOW, description="seconds per timeline window"),
        hop: float | None = Query(None, ge=MIN_HOP, le=MAX_WINDOW,
                                  description="seconds between window starts, at most the window"),
    ) -> JSONResponse:
        """Answers the object `emotionnet predict --json` prints for a file."""
        try:
            service.model.windowing(window, hop)  # the one window rule, before the upload is read
        except ValueError as exc:
            raise api_error(422, "invalid_request", str(exc)) from None
        data, name = await read_audio(request)
        try:
            result = await service.queue.submit(PredictJob(data, name or "<upload>", window, hop),
                                                settings.request_timeout)
        except asyncio.QueueFull as exc:
            raise service.busy(f"the service is busy: {exc}; retry shortly") from None
        except TimeoutError as exc:
            raise service.busy(f"the request timed out: {exc}; retry shortly") from None
        except AudioError as exc:
            if is_too_long(exc):
                raise api_error(413, "audio_too_long", str(exc)) from None
            raise api_error(400, "bad_audio", str(exc)) from None
        service.metrics.audio_seconds.labels("predict").inc(result.duration)
        body = service.model.result(name, result)
        if not timeline:
            body.pop("segments", None)
        return JSONResponse(body)

    @app.get("/healthz", summary="The process is up")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", summary="The model is loaded and requests are taken",
             responses={503: {"description": "starting or stopping"}})
    async def readyz() -> JSONResponse:
        if not service.ready:
            return JSONResponse({"status": "not ready"}, status_code=503)
        return JSONResponse({"status": "ready", "model": service.model.name, "waiting": service.queue.waiting,
                             "streams": service.streams})

    @app.get("/metrics", dependencies=[Depends(require_key)], summary="Prometheus metrics",
             response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    from emotionnet.serving.stream import add_stream_route

    add_stream_route(app, service)
    return app


async def read_audio(request: Request) -> tuple[bytes, str | None]:
    """The uploaded bytes and the file's name: multipart field `file`, or the whole body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=16)
        except HTTPException as exc:
            if isinstance(exc.detail, dict):  # ours: the body is over the size limit
                raise
            # Starlette's 400 for too many files or fields
            raise api_error(422, "invalid_request", f"bad multipart body ({exc.detail})") from None
        except Exception as exc:  # malformed multipart: python-multipart raises several types
            raise api_error(422, "invalid_request", f"malformed multipart body ({exc})") from None
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise api_error(422, "missing_file", "multipart body without a file field named 'file'")
            return await upload.read(), upload.filename
        finally:
            await form.close()
    if content_type in NOT_AUDIO or content_type.startswith("text/"):
        raise api_error(415, "unsupported_media_type", f"a body of type {content_type} is not audio (send the "
                       "file's bytes, e.g. as application/octet-stream, or multipart with a field 'file')")
    return await request.body(), None


def create_app_from_env() -> FastAPI:
    """For `uvicorn --factory` in each worker process of `serve --workers N`: settings from the environment."""
    import torch

    torch.set_num_threads(1)  # each inference thread on one core; `threads` sets how many
    return create_app(ServeSettings.from_env())
