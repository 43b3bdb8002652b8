"""Every error the service answers is JSON `{"error": {"code", "message"}}`, never a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("emotionnet.serving")

# The code a plain HTTP status gets when nothing more specific was said.
STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
                413: "too_large", 415: "unsupported_media_type", 422: "invalid_request", 503: "busy"}


def api_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> StarletteHTTPException:
    """An answer other than 200: the status, a stable machine code and a message for people."""
    return StarletteHTTPException(status, detail={"code": code, "message": message}, headers=headers)


def close_reason(message: str) -> str:
    """A WebSocket close reason: at most 123 bytes of UTF-8 by the protocol."""
    return message.encode()[:120].decode(errors="ignore")


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def install_handlers(app: FastAPI, count_error) -> None:
    """Turn every exception into the JSON error shape; `count_error(code)` feeds /metrics."""

    def respond(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
        count_error(code)
        return JSONResponse(error_body(code, message), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
                             for e in exc.errors())
        return respond(422, "invalid_request", problems or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.detail, dict):  # ours, from api_error
            return respond(exc.status_code, exc.detail["code"], exc.detail["message"], exc.headers)
        code = STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")  # Starlette's own (404, 405)
        return respond(exc.status_code, code, str(exc.detail), exc.headers)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)  # the traceback goes to the log only
        return respond(500, "internal", "internal error; see the server log")
