"""Connection limits for the local server: a cap on open connections and a header deadline.

aiohttp alone keeps a connection open while a client drips its request headers, and accepts
as many connections as the process has file descriptors. Every accepted connection is
wrapped here: over ``max_connections`` it gets an HTTP 503 with a ``detail`` and is closed;
a connection whose first request has not been read within ``header_timeout`` seconds is
closed. After the first request aiohttp's keep-alive timeout takes over for idle HTTP
connections, and the switch socket's own handshake timeout for WebSockets.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

#: The most request bytes a refused connection reads (to answer after its request arrived).
_REFUSED_READ_LIMIT = 16 * 1024


class ConnectionGuard:
    """Counts open connections and arms each one's header deadline."""

    def __init__(
        self,
        max_connections: int,
        header_timeout: float,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.on_change = on_change  # wakes LocalServer.wait_until
        self.open: set[_Guarded] = set()
        self._by_transport: dict[asyncio.BaseTransport, _Guarded] = {}
        self.refused = 0

    def factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        def make() -> asyncio.Protocol:
            if len(self.open) >= self.max_connections:
                self.refused += 1
                return _Refused(self.header_timeout)
            return _Guarded(self, inner())

        return make

    def request_arrived(self, transport: asyncio.BaseTransport | None) -> None:
        """The connection's request was read: its header deadline is over."""
        guarded = self._by_transport.get(transport) if transport is not None else None
        if guarded is not None:
            guarded.cancel_deadline()

    def _opened(self, guarded: _Guarded, transport: asyncio.BaseTransport) -> None:
        self.open.add(guarded)
        self._by_transport[transport] = guarded
        self.on_change()

    def _closed(self, guarded: _Guarded) -> None:
        self.open.discard(guarded)
        if guarded.transport is not None:
            self._by_transport.pop(guarded.transport, None)
        self.on_change()


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol, wrapped: every call is passed on; open and close are counted."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.BaseTransport | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.guard._opened(self, transport)
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self.guard.header_timeout, self._too_slow)
        self.inner.connection_made(transport)

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport is not None:
            self.transport.close()

    def cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.cancel_deadline()
        self.guard._closed(self)
        self.inner.connection_lost(exc)


class _Refused(asyncio.Protocol):
    """Over the cap: read the request (so closing does not reset it), answer 503, close."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._deadline = asyncio.get_running_loop().call_later(self.timeout, self._answer)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n\r\n" in self.buffer or len(self.buffer) > _REFUSED_READ_LIMIT:
            self._answer()

    def eof_received(self) -> bool | None:
        self._answer()
        return None

    def _answer(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        body = json.dumps({"detail": "Too many connections to the local server; try again"})
        transport.write(
            b"HTTP/1.1 503 Service Unavailable\r\n"
            b"Content-Type: application/json\r\n"
            b"Retry-After: 1\r\n"
            b"Connection: close\r\n" + f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
        )
        transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self.transport = None


def guard_middleware(guard: ConnectionGuard) -> Middleware:
    @web.middleware
    async def arrived(request: web.Request, handler: Handler) -> web.StreamResponse:
        guard.request_arrived(request.transport)
        return await handler(request)

    return arrived


class GuardedSockSite(web.SockSite):
    """``SockSite`` whose connections go through a :class:`ConnectionGuard`."""

    __slots__ = ("_guard",)

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, guard: ConnectionGuard) -> None:
        super().__init__(runner, sock)
        self._guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._guard.factory(server), sock=self._sock, backlog=self._backlog
        )
