"""The HTTP service: `POST /v1/predict`, `WS /v1/stream`, health, readiness, metrics, OpenAPI at /docs.

    from emotionnet.serving import create_app
    app = create_app()                 # loads the shipped model at start-up
    # uvicorn.run(app, host="127.0.0.1", port=8000)

The model is loaded once per process. A request's body is spooled to disk past
1 MB, its header read, and its cost judged before anything is decoded: audio
over the limits, or asking for more than `max_windows` windows, is refused at
once. Requests then wait in a bounded queue (full: 503 with Retry-After):
short ones for the inference threads, several scored together when several
are waiting; long ones (over `HEAVY_WINDOWS` windows) for a thread of their
own that lets the short ones go first (`emotionnet.serving.scheduling`). A
request that times out is answered 503 and its work stops. Errors are
`{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from emotionnet import __version__
from emotionnet.audio import AudioError
from emotionnet.media import media_kind
from emotionnet.serving.connections import ReadDeadlineMiddleware
from emotionnet.serving.docs import install_docs, swagger_assets
from emotionnet.serving.errors import api_error, install_handlers
from emotionnet.serving.limits import BodyLimitMiddleware, LoopbackGuardMiddleware, bearer_ok, unauthorized
from emotionnet.serving.media import MediaJob, ServedFaces, check_limits, make_media_work, media_error
from emotionnet.serving.metrics import MetricsMiddleware, ServiceMetrics
from emotionnet.serving.model import ServedModel, is_too_long
from emotionnet.serving.queue import InferenceQueue
from emotionnet.serving.scheduling import Abandoned
from emotionnet.serving.settings import ServeSettings
from emotionnet.serving.stream import STREAM_PROTOCOL, add_stream_route
from emotionnet.serving.uploads import read_upload
from emotionnet.window_rule import MAX_WINDOW, MIN_HOP, MIN_WINDOW

HEAVY_WINDOWS = 64  # requests of more windows are scored on the heavy thread, after the short ones
# Decoding costs samples x channels: at most this many per second of the audio limit (600 s of 96 kHz stereo).
DECODE_SAMPLES_PER_SECOND = 192_000

PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    "audio/*": {"schema": {"type": "string", "format": "binary"}},
    "image/*": {"schema": {"type": "string", "format": "binary"}},
    "video/*": {"schema": {"type": "string", "format": "binary"}},
}}}
ERRORS = {status: {"description": what} for status, what in {
    400: "`bad_audio`: unreadable, too short or silent audio; `bad_image`: not a readable JPEG, PNG or WebP; "
         "`bad_video`: a damaged video, or one without an audio or video track", 401: "`unauthorized`: missing or wrong API key",
    403: "`forbidden`: a keyless service refuses other sites' pages (Origin) and other host names (Host)",
    413: "`too_large` (body over --max-upload-mb), `audio_too_long` (over --max-seconds), `audio_too_large` "
         "(too many samples x channels to decode), `too_many_windows` (a hop too small for the audio), "
         "`image_too_large` (over 100 megapixels by default) or `video_too_long` (over --max-video-seconds)",
    415: "`unsupported_media_type`: a body that is not audio (JSON, text)",
    422: "`missing_file` (no audio in the request: no body, or no multipart field 'file') or `invalid_request` "
         "(a bad query or multipart body)",
    503: "`busy`: the queue or the uploads in flight are full, or no answer in time; see Retry-After"}.items()}
DESCRIPTION = ("Six emotions (angry, disgust, fear, happy, neutral, sad) from speech audio, faces and videos.\n\n"
               "`POST /v1/predict` tells what it was sent by the content, never the name or content type: audio "
               "answers `emotionnet predict --json`'s audio object; an image (JPEG, PNG, WebP) each face's box and "
               "emotion (`face`: false when none is found); a video (MP4, MKV, WebM, MOV, AVI, FLV) the voice, "
               "face and fused answers, for the file and per window (`segments`). The WebSocket stream takes "
               "audio only (plain PCM; video frames beside it would need a framing of our own): send recorded "
               "video here.\n\n"
               "Without an API key the service answers this machine only: requests with a `Host` other than "
               "127.0.0.1, localhost or [::1], and POSTs and WebSockets from another site's page (`Origin`), "
               "get 403.\n\n" + STREAM_PROTOCOL)


@dataclass
class PredictJob:
    source: bytes | str  # file bytes, or a spooled upload's path
    name: str
    window: float | None
    hop: float | None
    abandoned: threading.Event = field(default_factory=threading.Event)  # set when the request gave up


def make_work(model: ServedModel, settings: ServeSettings, heavy: bool = False):
    """The function a worker thread runs on a batch of jobs: the jobs of one window and hop scored together
    (`ServedModel.score_uploads`); a result, or an exception, per job.

    Light work goes before heavy work on the model (`heavy`: long requests, one at a time, on their own
    thread); work whose requests have all given up stops.
    """
    turns = model.turns.heavy if heavy else model.turns.light

    def work(jobs: list[PredictJob]) -> list:
        results: list = [Abandoned("the request gave up") if job.abandoned.is_set() else None for job in jobs]
        groups: dict[tuple, list[int]] = {}
        for i, job in enumerate(jobs):
            if results[i] is None:
                groups.setdefault((job.window, job.hop), []).append(i)
        for (window, hop), members in groups.items():
            with turns(lambda members=members: all(jobs[i].abandoned.is_set() for i in members)):
                scored = model.score_uploads([(jobs[i].name, jobs[i].source) for i in members], window, hop,
                                             settings.max_audio_seconds)
            for i, result in zip(members, scored):
                results[i] = result
        return results

    return work


class Service:
    """What the app holds while it runs: settings, model, queues, thread pools, metrics."""

    def __init__(self, settings: ServeSettings, model: ServedModel | None, faces: ServedFaces | None = None):
        self.settings, self.model, self.faces = settings, model, faces
        self.metrics = ServiceMetrics()
        self.executor: ThreadPoolExecutor | None = None
        self.heavy_executor: ThreadPoolExecutor | None = None
        self.queue: InferenceQueue | None = None  # short requests, on the inference threads
        self.heavy_queue: InferenceQueue | None = None  # long requests, one at a time, after the short ones
        self.media_executor: ThreadPoolExecutor | None = None
        self.media_queue: InferenceQueue | None = None  # images and videos, one at a time (serving/media.py)
        self.ready = False
        self.streams = 0

    async def start(self) -> None:
        if self.model is None:
            self.model = await asyncio.to_thread(ServedModel.load, self.settings.model, self.settings.load_options)
        if self.faces is None:
            self.faces = await asyncio.to_thread(ServedFaces.load, self.settings.face_model)
        settings = self.settings
        self.executor = ThreadPoolExecutor(settings.threads, thread_name_prefix="emotionnet-infer")
        self.heavy_executor = ThreadPoolExecutor(1, thread_name_prefix="emotionnet-heavy")
        self.media_executor = ThreadPoolExecutor(1, thread_name_prefix="emotionnet-media")
        self.queue = InferenceQueue(make_work(self.model, settings), self.executor, settings.queue_size,
                                    settings.threads, settings.max_batch)
        self.heavy_queue = InferenceQueue(make_work(self.model, settings, heavy=True), self.heavy_executor,
                                          settings.queue_size, 1, 1)
        self.metrics.queue_waiting.set_function(lambda: self.waiting)
        self.media_queue = InferenceQueue(make_media_work(self.faces, self.model), self.media_executor,
                                          settings.queue_size, 1, 1)
        await self.queue.start()
        await self.heavy_queue.start()
        await self.media_queue.start()
        self.ready = True

    @property
    def waiting(self) -> int:
        return sum(queue.waiting for queue in (self.queue, self.heavy_queue, self.media_queue) if queue is not None)

    async def stop(self) -> None:
        self.ready = False
        for queue in (self.queue, self.heavy_queue, self.media_queue):
            await queue.stop()
        for executor in (self.executor, self.heavy_executor, self.media_executor):
            executor.shutdown(wait=False, cancel_futures=True)

    def busy(self, message: str):
        return api_error(503, "busy", message, {"Retry-After": str(self.settings.retry_after)})

    async def predict(self, source: bytes | str, name: str | None, window: float | None, hop: float | None):
        """The timeline of one upload: its header judged first, then queued by its cost, then decoded and scored."""
        settings, model = self.settings, self.model
        shown = name or "<upload>"
        try:
            header = await asyncio.to_thread(model.header, source, shown)
        except AudioError as exc:
            raise api_error(400, "bad_audio", str(exc)) from None
        if header.seconds > settings.max_audio_seconds:
            raise api_error(413, "audio_too_long", f"{shown}: too long ({header.seconds:.1f} s; the limit is "
                            f"{settings.max_audio_seconds:g} s)")
        most = settings.max_audio_seconds * DECODE_SAMPLES_PER_SECOND
        if header.samples > most:
            raise api_error(413, "audio_too_large", f"{shown}: {header.channels} channels at {header.sample_rate:g} Hz "
                            f"for {header.seconds:.1f} s is {header.samples / 1e6:.0f} million samples to decode; the "
                            f"limit is {most / 1e6:.0f} million ({settings.max_audio_seconds:g} s of 96 kHz stereo)")
        windows = model.count_windows(header.seconds, window, hop)
        if windows > settings.max_windows:
            raise api_error(413, "too_many_windows", f"{shown}: {header.seconds:.1f} s at hop "
                            f"{hop or model.recognizer.hop:g} s is {windows} windows; at most {settings.max_windows} "
                            "per request (use a larger hop)")
        queue = self.heavy_queue if windows > HEAVY_WINDOWS else self.queue
        job = PredictJob(source, shown, window, hop)
        try:
            return await queue.submit(job, settings.request_timeout)
        except asyncio.QueueFull as exc:
            raise self.busy(f"the service is busy: {exc}; retry shortly") from None
        except TimeoutError as exc:
            job.abandoned.set()  # its work stops at the next batch of windows
            raise self.busy(f"the request timed out: {exc}; retry shortly") from None
        except AudioError as exc:
            if is_too_long(exc):
                raise api_error(413, "audio_too_long", str(exc)) from None
            raise api_error(400, "bad_audio", str(exc)) from None

    async def predict_media(self, kind: str, source: bytes | str, name: str | None, window: float | None,
                            hop: float | None) -> dict:
        """The image or video JSON of one upload: its header judged first (413, 400), then on the media thread."""
        settings = self.settings
        shown = name or "<upload>"
        await asyncio.to_thread(check_limits, kind, source, shown, settings.max_image_megapixels * 1e6,
                                settings.max_video_seconds)
        job = MediaJob(kind, source, shown, window, hop)
        try:
            body = await self.media_queue.submit(job, settings.request_timeout)
        except asyncio.QueueFull as exc:
            raise self.busy(f"the service is busy: {exc}; retry shortly") from None
        except TimeoutError as exc:
            job.abandoned.set()  # a video's voice stops at its next batch of windows
            raise self.busy(f"the request timed out: {exc}; retry shortly") from None
        except Exception as exc:
            error = media_error(kind, exc)
            if error is None:
                raise
            raise error from None
        body["path"] = name  # as audio answers: the multipart file name, null for a raw body
        return body


MODEL_HEADER = "X-EmotionNet-Model"  # which model answered: the voice model, the face model, or both for a video


def answer(body: dict, timeline: bool, models: list[str]) -> JSONResponse:
    """A predict answer, without its timeline (`segments`) when the request said `timeline=false`; its
    `X-EmotionNet-Model` header names the models that answered."""
    if not timeline:
        body.pop("segments", None)
    return JSONResponse(body, headers={MODEL_HEADER: ", ".join(models)})


def create_app(settings: ServeSettings | None = None, model: ServedModel | None = None,
               faces: ServedFaces | None = None) -> FastAPI:
    """The app; `model` (a loaded `ServedModel`) and `faces` (a loaded `ServedFaces`) save loading them at start-up."""
    settings = settings or ServeSettings()
    service = Service(settings, model, faces)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.start()
        yield
        await service.stop()

    app = FastAPI(title="EmotionNet", version=__version__, lifespan=lifespan, redoc_url=None, docs_url=None,
                  openapi_url=None, description=DESCRIPTION)
    app.state.service = service
    install_handlers(app, service.metrics.error)
    app.add_middleware(ReadDeadlineMiddleware, read_timeout=settings.read_timeout)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_upload_bytes, inflight_limit=settings.max_inflight_bytes,
                       count_error=service.metrics.error, retry_after=settings.retry_after)
    if settings.keyless:
        app.add_middleware(LoopbackGuardMiddleware, count_error=service.metrics.error)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)  # added last: outermost, sees every answer

    async def require_key(request: Request) -> None:  # async: a sync dependency would cost a thread hop
        if not bearer_ok(request.headers.get("authorization"), settings.api_key):
            raise unauthorized()

    install_docs(app, swagger_assets(), dependencies=[Depends(require_key)])

    @app.post("/v1/predict", dependencies=[Depends(require_key)], openapi_extra=PREDICT_BODY, responses=ERRORS,
              summary="The emotion of one audio file, image or video (multipart field `file`, or the raw bytes as "
                      "the body), told by its content")
    async def predict(
        request: Request,
        timeline: bool = Query(True, description="include the timeline (`segments`) of audio longer than one window"),
        window: float | None = Query(None, ge=MIN_WINDOW, le=MAX_WINDOW, description="seconds per timeline window"),
        hop: float | None = Query(None, ge=MIN_HOP, le=MAX_WINDOW,
                                  description="seconds between window starts, at most the window"),
    ) -> JSONResponse:
        """Answers the object `emotionnet predict --json` prints for a file: audio, image or video."""
        try:
            service.model.windowing(window, hop)  # the one window rule, before the upload is read
        except ValueError as exc:
            raise api_error(422, "invalid_request", str(exc)) from None
        upload = await read_upload(request)
        try:
            kind = await asyncio.to_thread(media_kind, upload.source)  # by content: images and videos too
            if kind != "audio":
                models = [service.faces.public_name] if kind == "image" else [service.model.public_name,
                                                                               service.faces.public_name]
                return answer(await service.predict_media(kind, upload.source, upload.name, window, hop), timeline,
                              models)
            result = await service.predict(upload.source, upload.name, window, hop)
        finally:
            upload.close()
        service.metrics.audio_seconds.labels("predict").inc(result.duration)
        return answer(service.model.result(upload.name, result), timeline, [service.model.public_name])

    @app.get("/healthz", summary="The process is up")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", summary="The model is loaded and requests are taken",
             responses={503: {"description": "starting or stopping"}})
    async def readyz() -> JSONResponse:
        if not service.ready:
            return JSONResponse({"status": "not ready"}, status_code=503)
        return JSONResponse({"status": "ready", "model": service.model.public_name,
                             "face_model": service.faces.public_name, "waiting": service.waiting,
                             "streams": service.streams})

    @app.get("/metrics", dependencies=[Depends(require_key)], summary="Prometheus metrics",
             response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    add_stream_route(app, service)
    return app


def create_app_from_env() -> FastAPI:
    """For `uvicorn --factory` in each worker process of `serve --workers N`: settings from the environment."""
    import torch

    torch.set_num_threads(1)  # each inference thread on one core; `threads` sets how many
    return create_app(ServeSettings.from_env())
