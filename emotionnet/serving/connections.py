"""Connections that read too slowly are dropped; past a cap, the slowest reader makes room (issue 30).

Three hundred connections trickling a byte every 2 s were held for good and,
past the open-file limit, normal requests failed (slowloris). Here:

- a request's headers must arrive within `read_timeout` of the connection's
  opening (or of the previous answer on a kept-alive connection): else the
  connection is closed; its body has the same time from its headers on
  (`ReadDeadlineMiddleware`, answered 408);
- at most `max_connections` are open (less where the open-file limit is
  lower): one more closes the connection that has been reading its request
  the longest, so a trickling client cannot keep a fast one out.

`uvicorn_options(settings)` gives the server what it needs for both.
"""

from __future__ import annotations

import asyncio
import functools
import resource
import time

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from emotionnet.serving.errors import api_error

RESERVED_FILES = 64  # open files kept for the process itself (model, logs, spooled uploads)
MIN_READING_AGE = 1.0  # seconds: a connection reading for less is never closed to make room


def connection_cap(max_connections: int) -> int:
    """`max_connections`, or fewer where the open-file limit would run out first."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return max_connections
    return max(8, min(max_connections, soft - RESERVED_FILES))


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on reading headers and a cap on connections."""

    def __init__(self, *args, read_timeout: float, max_connections: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.read_timeout, self.max_connections = read_timeout, max_connections
        self.reading_since: float | None = None  # when it began reading the request it has not finished reading
        self.headers_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._make_room()
        self._start_reading()

    def connection_lost(self, exc) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._stop_deadline()  # the body's deadline is ReadDeadlineMiddleware's
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.reading_since = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._start_reading()  # kept alive: the next request's headers have the same deadline

    def _start_reading(self) -> None:
        self._stop_deadline()
        self.reading_since = time.monotonic()
        self.headers_deadline = self.loop.call_later(self.read_timeout, self._too_slow)

    def _stop_deadline(self) -> None:
        if self.headers_deadline is not None:
            self.headers_deadline.cancel()
            self.headers_deadline = None

    def _too_slow(self) -> None:
        self.headers_deadline = None
        self.transport.close()

    def _make_room(self) -> None:
        """Close the connection that has been reading its request the longest (not this one), or this one."""
        now = time.monotonic()
        readers = [c for c in self.connections if c is not self and isinstance(c, GuardedHttpProtocol)
                   and c.reading_since is not None and now - c.reading_since >= MIN_READING_AGE]
        victim = min(readers, key=lambda c: c.reading_since) if readers else self
        victim.transport.close()


class ReadDeadlineMiddleware:
    """A request's body must arrive within `read_timeout` of its headers: else 408 and the connection closed."""

    def __init__(self, app, read_timeout: float):
        self.app, self.read_timeout = app, read_timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        deadline = time.monotonic() + self.read_timeout
        body_done = False

        async def timed_receive():
            nonlocal body_done
            if body_done:
                return await receive()  # after the body: only the disconnect is left, whenever it comes
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                raise api_error(408, "read_timeout", f"the request's body did not arrive within "
                                f"{self.read_timeout:g} s", {"Connection": "close"}) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, timed_receive, send)


def uvicorn_options(settings) -> dict:
    """What `uvicorn.run` / `uvicorn.Config` takes for the read deadline and the connection cap."""
    return {"http": functools.partial(GuardedHttpProtocol, read_timeout=settings.read_timeout,
                                      max_connections=connection_cap(settings.max_connections)),
            "timeout_keep_alive": 5}
