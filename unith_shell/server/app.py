"""``LocalServer``: the local Unith server running in the current event loop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from types import TracebackType
from typing import Any

from aiohttp import web

from .config import ServerConfig
from .faults import make_fault
from .guard import ConnectionGuard, GuardedSockSite, guard_middleware
from .jwt import TokenSigner
from .recorded import load_recorded_heads
from .rest import add_routes, json_errors
from .state import HTTP_FAULT_ROUTES, STATE, ServerState
from .switch import switch_handler


def build_app(state: ServerState, guard: ConnectionGuard | None = None) -> web.Application:
    middlewares = [json_errors] if guard is None else [guard_middleware(guard), json_errors]
    app = web.Application(middlewares=middlewares)
    app[STATE] = state
    add_routes(app)
    app.router.add_get("/api/v2/switch/{org}/{head}", switch_handler)
    return app


class LocalServer:
    """A faithful stand-in for Unith's chat-origin host (PROTOCOL.md §9), for tests and demos.

    Use as ``async with LocalServer() as server:``; ``server.base_url`` is then live.
    """

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config if config is not None else ServerConfig()
        self._state = ServerState(self.config, TokenSigner(self.config.secret))
        #: One line per recording in ``config.recordings`` that could not be served.
        self.recording_problems: list[str] = []
        if self.config.recordings is not None:
            self._state.recorded, self.recording_problems = load_recorded_heads(
                self.config.recordings, self.config.recording_match
            )
        self._runner: web.AppRunner | None = None
        self._guard = ConnectionGuard(
            self.config.max_connections, self.config.header_timeout, self._state.notify
        )
        self.base_url = ""
        self.port = 0

    # -- observation ----------------------------------------------------------------------

    @property
    def received(self) -> list[dict[str, Any]]:
        """The JSON objects clients sent on switch sockets, handshakes included, oldest
        first: the last ``config.received_limit`` of them (a copy)."""
        return list(self._state.received)

    @property
    def connections(self) -> int:
        """Switch sockets accepted so far."""
        return self._state.connections

    @property
    def open_connections(self) -> int:
        """Switch sockets open right now."""
        return len(self._state.open)

    @property
    def recorded_heads(self) -> list[str]:
        """The ``recorded/<name>`` heads served from ``config.recordings``."""
        return sorted(self._state.recorded)

    @property
    def open_tcp_connections(self) -> int:
        """TCP connections open right now (HTTP and WebSocket), refused ones not counted."""
        return len(self._guard.open)

    @property
    def logins(self) -> int:
        """Successful ``POST /token`` calls so far."""
        return self._state.logins

    def ws_url(self, org: str = "unith", head: str = "aiko") -> str:
        return f"{self.base_url.replace('http', 'ws', 1)}/api/v2/switch/{org}/{head}"

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` holds, re-checking whenever a frame, socket or login
        arrives; raise ``TimeoutError`` after ``timeout`` seconds. For tests: no sleeps."""
        await self._state.wait_until(predicate, timeout)

    # -- scripting ------------------------------------------------------------------------

    def set_fault(self, name: str | None, **params: Any) -> None:
        """Apply fault ``name`` to switch sockets opened after this call (None clears it).

        Raises ``ValueError`` for an unknown fault or parameter.
        """
        self._state.fault = None if name is None else make_fault(name, **params)

    def set_http_fault(self, route: str, status: int | None) -> None:
        """Make ``route`` (token, videos, idle, head, media, switch) answer ``status`` with a
        ``detail`` body; ``None`` restores normal behaviour."""
        if route not in HTTP_FAULT_ROUTES:
            raise ValueError(
                f"unknown route {route!r}; known: {', '.join(sorted(HTTP_FAULT_ROUTES))}"
            )
        if status is None:
            self._state.http_faults.pop(route, None)
        else:
            self._state.http_faults[route] = status

    async def drop_all(self, mode: str | int = "abort") -> None:
        """Close every open switch socket: ``"abort"`` drops TCP with no close frame; a close
        code (int or numeric str, e.g. 1011) sends a close frame with that code."""
        conns = list(self._state.open)
        if mode == "abort":
            for conn in conns:
                conn.abort()
            return
        code = int(mode)
        await asyncio.gather(
            *(conn.close(code, "dropped by the server") for conn in conns), return_exceptions=True
        )

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("server already started")
        host, port = self.config.host, self.config.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family)
        sock.setblocking(False)
        runner = web.AppRunner(
            build_app(self._state, self._guard),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=1.0,
            keepalive_timeout=self.config.keepalive_timeout,
        )
        try:
            await runner.setup()
            await GuardedSockSite(runner, sock, self._guard).start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = sock.getsockname()[1]
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        self.base_url = f"http://{shown}:{self.port}"

    async def stop(self) -> None:
        """Close open sockets (1001, going away) quickly, then stop listening."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        conns = list(self._state.open)
        if conns:
            closing = [asyncio.ensure_future(c.close(1001, "server shutting down")) for c in conns]
            _, pending = await asyncio.wait(closing, timeout=self.config.close_timeout)
            for task in pending:
                task.cancel()
            for conn in conns:
                if not conn.closed:
                    conn.abort()
        await runner.cleanup()

    async def __aenter__(self) -> LocalServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
