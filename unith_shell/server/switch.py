"""The v2 switch socket (PROTOCOL.md §3): handshake, greeting, turns, keep_session, idle timer.

Close codes are [U] upstream (§3.8); the ones used here are our choices:
1008 unknown head / invalid token, 1007 invalid JSON, 1003 binary frame from the client,
1013 join refused, 1000 after ``timeout``, 1001 on server shutdown, 1009 oversized frame.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from unith_shell.protocol import redact

from .faults import FaultSpec, TurnContext, make_fault, normal
from .frames import FrameBuilder
from .heads import Head
from .jwt import InvalidToken
from .recorded import respond as respond_recorded
from .rest import forced_status
from .state import STATE, ServerState

log = logging.getLogger("unith_shell.server")

Json = dict[str, Any]


def _dumps(frame: Json) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


class Connection:
    """One accepted switch socket. Implements the fault scripts' ``Wire``."""

    def __init__(self, state: ServerState, request: web.Request, ws: web.WebSocketResponse) -> None:
        self.state = state
        self.request = request
        self.ws = ws
        self.org = request.match_info["org"]
        self.head_id = request.match_info["head"]
        # The per-connection fault is fixed when the socket opens (set_fault affects later ones).
        self.fault: FaultSpec | None = state.fault
        self.activity = 0  # client frames seen; the idle watchdog compares snapshots
        self.last_activity = asyncio.get_running_loop().time()
        self._closer: asyncio.Task[Any] | None = None
        self._debug = log.isEnabledFor(logging.DEBUG)

    # -- Wire -----------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self.ws.closed

    @property
    def closing(self) -> bool:
        return self._closer is not None or self.ws.closed

    async def send(self, frame: Json) -> None:
        await self.ws.send_str(_dumps(frame))

    async def send_raw(self, data: str) -> None:
        await self.ws.send_str(data)

    async def send_binary(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def close(self, code: int, reason: str) -> None:
        if self._closer is None:
            self._closer = asyncio.current_task()
        # A close reason may hold at most 123 bytes of valid UTF-8.
        message = reason.encode()[:120].decode(errors="ignore").encode()
        await self.ws.close(code=code, message=message)

    def abort(self) -> None:
        """Drop TCP at once: the client gets no close frame."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    # -- session --------------------------------------------------------------------------

    async def run(self) -> None:
        head = self.state.find_head(self.org, self.head_id)
        if head is None:
            await self.close(1008, f"Head not found: {self.org}/{self.head_id}")  # [I]
            return
        if self.fault is None and head.fault is not None:
            self.fault = make_fault(head.fault)
        tasks: list[asyncio.Task[None]] = []
        try:
            builder = await self._handshake(head)
            if builder is None:
                return
            queue: asyncio.Queue[Json] = asyncio.Queue()
            recorded = self.state.recorded.get(head.key)
            config = self.state.config
            responder = (
                respond_recorded(
                    self, recorded, builder, queue, config.recording_speed, config.recording_match
                )
                if recorded is not None
                else self._respond(head, builder, queue)
            )
            tasks.append(asyncio.create_task(responder))
            idle = self._idle_timing()
            self.last_activity = asyncio.get_running_loop().time()  # the idle clock starts now
            if idle is not None:
                tasks.append(asyncio.create_task(self._watch_idle(*idle)))
            await self._read(queue)
        finally:
            closer = self._closer
            if closer is not None and closer is not asyncio.current_task() and not closer.done():
                # Let a close started elsewhere finish its close handshake before tearing down.
                await asyncio.wait([closer], timeout=self.state.config.close_timeout + 0.5)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _handshake(self, head: Head) -> FrameBuilder | None:
        """Read the first frame; on success send join and the greeting."""
        config = self.state.config
        try:
            msg = await self.ws.receive(timeout=config.handshake_timeout)
        except TimeoutError:
            await self.close(1008, "handshake timeout")  # [I]
            return None
        first = await self._decode(msg)
        if first is None:
            return None
        self.state.record(first)
        if self._debug:
            log.debug("handshake %s", redact(first))
        fault = self.fault.name if self.fault else None
        try:
            if fault == "token-refused":
                raise InvalidToken("refused by fault")
            self.state.signer.verify(first.get("token"))
        except InvalidToken as exc:
            # Upstream's reaction to a bad token is [U]; a policy-violation close is our choice.
            log.info("switch %s/%s: invalid token (%s)", self.org, self.head_id, exc)
            await self.close(1008, "invalid token")
            return None
        # api_key: any value is accepted [U]; data_tag is analytics only and ignored.
        if fault == "join-refused":
            await self.send({"event": "join", "granted": False})  # high demand [C-V2]
            await self.close(1013, "high demand")  # the close itself is [I]
            return None
        builder = FrameBuilder(
            head=head,
            base_url=f"{self.request.scheme}://{self.request.host}",
            text_only=first.get("text_only") is True,
            ids=self.state.ids,
        )
        if config.join_event and fault != "no-join":
            await self.send({"event": "join", "granted": True})  # whether always sent is [U]
        greeting = builder.greeting(enabled=config.greeting and fault != "no-greeting")
        for part in greeting:
            if config.part_delay > 0:
                await asyncio.sleep(config.part_delay)
            await self.send(part)
        return builder

    async def _decode(self, msg: Any) -> Json | None:
        """A client frame as a JSON object; anything else closes the socket and gives None."""
        if msg.type is WSMsgType.TEXT:
            try:
                obj = json.loads(msg.data)
            except (ValueError, RecursionError):  # a deeply nested frame too: no traceback
                await self.close(1007, "invalid JSON")  # [I]
                return None
            if not isinstance(obj, dict):
                await self.close(1007, "expected a JSON object")  # [I]
                return None
            return obj
        if msg.type is WSMsgType.BINARY:
            await self.close(1003, "binary frames are not accepted")  # all frames are text [C]
        return None  # CLOSE/CLOSING/CLOSED/ERROR: the socket is finished

    async def _read(self, queue: asyncio.Queue[Json]) -> None:
        ws = self.ws
        state = self.state
        loop = asyncio.get_running_loop()
        while True:
            msg = await ws.receive()
            obj = await self._decode(msg)
            if obj is None:
                return
            state.record(obj)
            self.activity += 1
            self.last_activity = loop.time()
            event = obj.get("event")
            if event == "text":
                queue.put_nowait(obj)
            elif event == "keep_session":
                await self.send({"event": "keep_session", "granted": True})
            else:
                log.info("switch %s/%s: ignoring client event %r", self.org, self.head_id, event)

    async def _respond(self, head: Head, builder: FrameBuilder, queue: asyncio.Queue[Json]) -> None:
        """Answer user messages one at a time, so turns never interleave.

        Whether upstream overlaps turns when a message arrives mid-reply is [U].
        """
        script = self.fault.script if self.fault else normal
        params = self.fault.params if self.fault else {}
        delay = self.state.config.part_delay
        earlier: list[str] = []  # this conversation's messages, for the demo heads' memory
        while True:
            message = await queue.get()
            text = message.get("text")
            said = text if isinstance(text, str) else ""
            reply = head.reply(said, earlier[-20:])
            earlier.append(said)
            ctx = TurnContext(self, builder.turn(message, reply), builder, params, delay)
            try:
                await script(ctx)
            except ConnectionError:
                return  # the client went away mid-turn
            if self.closing:
                return

    def _idle_timing(self) -> tuple[float, float] | None:
        if self.fault is not None and self.fault.name == "idle-timeout":
            return float(self.fault.params["warning"]), float(self.fault.params["grace"])
        config = self.state.config
        if config.idle_warning is None:
            return None
        return config.idle_warning, config.idle_grace

    async def _watch_idle(self, warning: float, grace: float) -> None:
        """timeout_warning after ``warning`` idle seconds; timeout and close ``grace`` later."""
        loop = asyncio.get_running_loop()
        while True:
            wait = self.last_activity + warning - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            seen = self.activity
            try:
                await self.send({"event": "timeout_warning"})
                await asyncio.sleep(grace)
                if self.activity != seen:
                    continue  # keep_session (or any message) arrived in time
                await self.send({"event": "timeout", "granted": False})
            except ConnectionError:
                return
            await self.close(1000, "session timed out")  # the close after timeout is [I]
            return


async def switch_handler(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    if (forced := forced_status(state, "switch")) is not None:
        return forced  # refuse the upgrade itself
    config = state.config
    # No server heartbeat (upstream sends none [U]); client pings are answered by autoping.
    # compress=False: loopback benchmarks care more about CPU than bytes.
    ws = web.WebSocketResponse(
        heartbeat=None,
        autoping=True,
        compress=False,
        max_msg_size=config.max_msg_size,
        timeout=config.close_timeout,
    )
    await ws.prepare(request)
    conn = Connection(state, request, ws)
    state.connections += 1
    state.open.add(conn)
    state.notify()
    try:
        await conn.run()
    finally:
        state.open.discard(conn)
        state.notify()
        if not ws.closed:
            await ws.close(code=1011, message=b"server error")
    return ws
