"""Request limits: body size (413), bytes on their way in (503), the API key (401), Host and Origin (403)."""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.responses import JSONResponse

from emotionnet.serving.errors import api_error, close_reason, error_body


def body_too_large(limit: int):
    return api_error(413, "too_large", f"request body over the limit of {limit / 2**20:g} MB "
                     "(start the server with a larger --max-upload-mb)")


def too_much_in_flight(limit: int, retry_after: int):
    return api_error(503, "busy", f"uploads of over {limit / 2**20:g} MB in all are on their way in; retry shortly",
                     {"Retry-After": str(retry_after)})


class BodyLimitMiddleware:
    """Refuse a body over `limit` bytes (413), and one that would take the bytes of every body on its way
    in or waiting for its answer past `inflight_limit` (503): at once from Content-Length, else as it arrives."""

    def __init__(self, app, limit: int, inflight_limit: int, count_error, retry_after: int = 1):
        self.app, self.limit, self.inflight_limit = app, limit, inflight_limit
        self.count_error, self.retry_after = count_error, retry_after
        self.inflight = 0  # bytes held by requests in progress (each counted at its Content-Length, or as read)

    def _refuse(self, error) -> JSONResponse:
        self.count_error(error.detail["code"])
        # Answer before reading: the client learns at once, the server never buffers the body.
        return JSONResponse(error_body(**error.detail), status_code=error.status_code,
                            headers={**(error.headers or {}), "Connection": "close"})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        held = int(length) if length is not None and length.isdigit() else 0
        if held > self.limit:
            return await self._refuse(body_too_large(self.limit))(scope, receive, send)
        if held and self.inflight + held > self.inflight_limit:
            return await self._refuse(too_much_in_flight(self.inflight_limit, self.retry_after))(scope, receive, send)
        self.inflight += held
        received = 0

        async def counted_receive():
            nonlocal received, held
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise body_too_large(self.limit)  # inside the endpoint's read: answered by its handler
                if received > held:  # a body without Content-Length, or longer than it said
                    self.inflight += received - held
                    held = received
                    if self.inflight > self.inflight_limit:
                        raise too_much_in_flight(self.inflight_limit, self.retry_after)
            return message

        try:
            await self.app(scope, counted_receive, send)
        finally:
            self.inflight -= held


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def host_name(host: str) -> str:
    """`127.0.0.1:8000` -> `127.0.0.1`; `[::1]:8000` -> `[::1]`; lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[:host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback_origin(origin: str) -> bool:
    parts = urlsplit(origin.strip())
    return parts.scheme in ("http", "https") and host_name(parts.netloc) in LOOPBACK_HOSTS


class LoopbackGuardMiddleware:
    """On a keyless service, what only a web page would send is refused (issue 30):

    - a `Host` other than 127.0.0.1, localhost or [::1] (with any port): a page whose domain was made to
      resolve to 127.0.0.1 (DNS rebinding) sends its own domain;
    - an `Origin` other than a loopback page on a WebSocket or a request that changes something (POST):
      a form or a script of another site, which needs no CORS preflight for a plain POST.
    """

    def __init__(self, app, count_error):
        self.app, self.count_error = app, count_error

    def problem(self, scope) -> str | None:
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"").decode("latin-1")
        if host and host_name(host) not in LOOPBACK_HOSTS:
            return (f"Host {host!r} is not this machine's loopback name (a service without an API key answers "
                    "127.0.0.1, localhost and [::1] only)")
        origin = headers.get(b"origin")
        if origin is not None and (scope["type"] == "websocket" or scope.get("method") not in SAFE_METHODS):
            origin_text = origin.decode("latin-1")
            if not is_loopback_origin(origin_text):
                return (f"requests from the web page {origin_text!r} are refused (a service without an API key "
                        "answers pages of this machine only; start it with --api-key to serve others)")
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        problem = self.problem(scope)
        if problem is None:
            return await self.app(scope, receive, send)
        self.count_error("forbidden")
        if scope["type"] == "websocket":  # closed before the handshake: the client sees 403
            await receive()  # websocket.connect
            return await send({"type": "websocket.close", "code": 1008, "reason": close_reason(problem)})
        response = JSONResponse(error_body("forbidden", problem), status_code=403)
        return await response(scope, receive, send)


def bearer_ok(authorization: str | None, api_key: str | None) -> bool:
    """True when no key is set, or the header is `Bearer <key>` (compared in constant time)."""
    if api_key is None:
        return True
    scheme, _, token = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode())


def unauthorized():
    return api_error(401, "unauthorized", "missing or wrong API key (send 'Authorization: Bearer <key>')",
                    {"WWW-Authenticate": "Bearer"})
