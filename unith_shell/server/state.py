"""What one running server shares between its routes, its sockets and its test hooks."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .catalog import find_head
from .config import ServerConfig
from .faults import FaultSpec, Wire
from .heads import Head
from .jwt import TokenSigner

if TYPE_CHECKING:
    from .recorded import RecordedHead

#: Routes whose HTTP status a test may force with ``set_http_fault``.
HTTP_FAULT_ROUTES = frozenset({"token", "videos", "idle", "head", "media", "switch"})


@dataclass(slots=True)
class ServerState:
    config: ServerConfig
    signer: TokenSigner
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    #: The last ``config.received_limit`` client frames: a bounded window, so a long run
    #: does not keep every frame forever (set in ``__post_init__``).
    received: deque[dict[str, Any]] = field(default_factory=deque)
    connections: int = 0
    logins: int = 0
    fault: FaultSpec | None = None
    http_faults: dict[str, int] = field(default_factory=dict)
    #: The open switch sockets (server/switch.py's ``Connection``).
    open: set[Wire] = field(default_factory=set)
    #: ``recorded/<name>`` heads by key (server/recorded.py), loaded from config.recordings.
    recorded: dict[str, RecordedHead] = field(default_factory=dict)
    _waiters: list[asyncio.Future[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.received = deque(maxlen=max(1, self.config.received_limit))

    def find_head(self, org: str, head_id: str) -> Head | None:
        """A built-in head, or a recording served as one."""
        head = find_head(org, head_id)
        if head is None and (entry := self.recorded.get(f"{org}/{head_id}")) is not None:
            head = entry.head
        return head

    def record(self, frame: dict[str, Any]) -> None:
        self.received.append(frame)
        if self._waiters:
            self.notify()

    def notify(self) -> None:
        """Wake everyone in :meth:`wait_until`: something they may be waiting for changed."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter


STATE: web.AppKey[ServerState] = web.AppKey("unith_state", ServerState)
