"""`emotionnet serve`: the recognizer as an HTTP + WebSocket service (FastAPI on uvicorn)."""

from __future__ import annotations

import ipaddress
import math
import os
import sys

from emotionnet.cli.common import CLIError, add_command, add_model_option

EXAMPLES = """  emotionnet serve                                   http://127.0.0.1:8000, OpenAPI at /docs
  curl -F file=@speech.wav http://127.0.0.1:8000/v1/predict
  curl --data-binary @talk.flac 'http://127.0.0.1:8000/v1/predict?timeline=false'
  curl -F file=@photo.jpg http://127.0.0.1:8000/v1/predict   each face's box and emotion (JPEG, PNG, WebP)
  curl -F file=@talk.mp4 http://127.0.0.1:8000/v1/predict    voice, face and both, over time (MP4, MKV, WebM, ...)
  emotionnet serve --host 0.0.0.0 --api-key "$KEY"   other machines may call it, with 'Authorization: Bearer $KEY'
  emotionnet serve --workers 2                       two processes, each with its own model
Endpoints: POST /v1/predict, WS /v1/stream?sample_rate=N&format=s16le|f32le, GET /healthz /readyz /metrics /docs.
Needs the extra: pip install 'emotionnet[serve]'."""

API_KEY_ENV = "EMOTIONNET_API_KEY"


def add_parser(sub) -> None:
    from emotionnet.models.names import FACE_MODEL  # as predict's: no torch import, --help stays fast

    p = add_command(sub, "serve", "Serve emotion recognition over HTTP and WebSocket.", EXAMPLES)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--api-key", metavar="KEY", default=os.environ.get(API_KEY_ENV),
                   help=f"require 'Authorization: Bearer KEY' (default ${API_KEY_ENV}); needed off loopback")
    p.add_argument("--max-upload-mb", type=float, default=50.0, metavar="N", help="largest request body (default 50)")
    p.add_argument("--max-seconds", type=float, default=600.0, metavar="S",
                   help="longest audio accepted, in seconds (default 600)")
    p.add_argument("--max-video-seconds", type=float, default=120.0, metavar="S",
                   help="longest video accepted, in seconds (default 120)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help="seconds a request may wait for its answer before 503 (default 30)")
    p.add_argument("--queue", type=int, default=64, metavar="N",
                   help="requests that may wait for the model; more get 503 with Retry-After (default 64)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="server processes, each loading the model once (default 1)")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="inference threads per process, one core each (default 1)")
    add_model_option(p)
    p.add_argument("--face-model", default=FACE_MODEL, metavar="NAME|FILE",
                   help=f"the model for images and video frames, loaded at start-up (default: '{FACE_MODEL}')")
    p.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"),
                   help="server log level (default warning)")
    p.set_defaults(run=run)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def settings_from(args):
    """The service's settings from the command line, each checked here: one line names a bad value."""
    from emotionnet.serving.settings import ServeSettings

    for name in ("max_upload_mb", "max_seconds", "max_video_seconds", "timeout"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):  # nan would turn a limit off, inf is no limit
            raise CLIError(f"--{name.replace('_', '-')} {value:g} is not allowed", "give a positive finite number")
    for name in ("queue", "workers", "threads"):
        if getattr(args, name) < 1:
            raise CLIError(f"--{name} must be at least 1")
    if not 1 <= args.port <= 65535:
        raise CLIError(f"--port {args.port} is not a port number", "use 1-65535")
    api_key = args.api_key.strip() if args.api_key else None  # a key read from a file often ends in a newline
    if api_key == "":
        raise CLIError("the API key is only whitespace", f"give a key with --api-key KEY or ${API_KEY_ENV}")
    if not is_loopback(args.host) and not api_key:
        raise CLIError(f"--host {args.host} is reachable from other machines",
                       f"add --api-key KEY (or set ${API_KEY_ENV}), or keep the default 127.0.0.1")
    from emotionnet.cli.common import model_settings

    environment = model_settings()  # $EMOTIONNET_MODEL and the options, read once and checked here
    return ServeSettings(model=args.model or environment.model, load_options=environment.load_options(),
                         api_key=api_key, max_upload_mb=args.max_upload_mb,
                         max_audio_seconds=args.max_seconds, max_video_seconds=args.max_video_seconds,
                         face_model=args.face_model, request_timeout=args.timeout,
                         queue_size=args.queue, threads=args.threads)


def run(args) -> int:
    try:
        import uvicorn

        from emotionnet.serving.app import create_app
        from emotionnet.serving.connections import uvicorn_options
        from emotionnet.serving.media import ServedFaces
        from emotionnet.serving.model import ServedModel
        from emotionnet.serving.settings import SETTINGS_ENV
    except ImportError as exc:
        raise CLIError(f"the service needs packages that are not installed ({exc.name})",
                       "pip install 'emotionnet[serve]'") from None
    import torch

    from emotionnet.cli.common import load_recognizer

    settings = settings_from(args)
    torch.set_num_threads(1)  # each inference thread on one core; --threads sets how many
    model = ServedModel(load_recognizer(settings.model))  # here, so a bad model file is a clean CLI error
    try:
        faces = ServedFaces(load_recognizer(settings.face_model))
    except ValueError as exc:  # a voice model given as the face model
        raise CLIError(f"--face-model {settings.face_model}: {exc}") from None
    print(f"emotionnet: serving {model.name} on http://{args.host}:{args.port} "
          f"(docs at /docs; {args.workers} worker(s) x {args.threads} thread(s)); Ctrl-C stops",
          file=sys.stderr, flush=True)
    common = {"host": args.host, "port": args.port, "log_level": args.log_level, "ws_max_size": 4 * 2**20,
              **uvicorn_options(settings)}
    try:
        if args.workers == 1:
            uvicorn.run(create_app(settings, model, faces), **common)
        else:
            os.environ[SETTINGS_ENV] = settings.to_env()  # each worker process builds its own app from it
            uvicorn.run("emotionnet.serving.app:create_app_from_env", factory=True, workers=args.workers, **common)
    except KeyboardInterrupt:
        pass  # uvicorn has shut down gracefully; Ctrl-C is how a service is stopped by hand
    return 0
