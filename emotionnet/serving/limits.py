"""Request limits: body size (413) and the API key (401)."""

from __future__ import annotations

import hmac

from starlette.responses import JSONResponse

from emotionnet.serving.errors import api_error, error_body


def body_too_large(limit: int):
    return api_error(413, "too_large", f"request body over the limit of {limit / 2**20:g} MB "
                     "(start the server with a larger --max-upload-mb)")


class BodyLimitMiddleware:
    """Refuse bodies over `limit` bytes: at once from Content-Length, else while reading a chunked body."""

    def __init__(self, app, limit: int, count_error):
        self.app, self.limit, self.count_error = app, limit, count_error

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            detail = body_too_large(self.limit).detail
            self.count_error(detail["code"])
            # Answer before reading: the client learns at once, the server never buffers the body.
            response = JSONResponse(error_body(**detail), status_code=413, headers={"Connection": "close"})
            return await response(scope, receive, send)
        received = 0

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise body_too_large(self.limit)  # inside the endpoint's read: answered by its handler
            return message

        await self.app(scope, counted_receive, send)


def bearer_ok(authorization: str | None, api_key: str | None) -> bool:
    """True when no key is set, or the header is `Bearer <key>` (compared in constant time)."""
    if api_key is None:
        return True
    scheme, _, token = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode())


def unauthorized():
    return api_error(401, "unauthorized", "missing or wrong API key (send 'Authorization: Bearer <key>')",
                    {"WWW-Authenticate": "Bearer"})
