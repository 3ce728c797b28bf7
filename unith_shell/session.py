"""One conversation with one Unith head over the v2 switch socket.

The session is a small state machine (disconnected -> connecting -> connected, reconnecting,
closed). A supervisor task owns the socket: it logs in, handshakes, reads the greeting, then
runs a reader and a sender until the socket ends, and reconnects with backoff when that was
unexpected. It knows nothing of terminals: everything it sees goes to a
:class:`SessionListener`, which the front end implements.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.frames import CloseCode
from websockets.uri import parse_uri

from unith_shell import api as api_mod
from unith_shell.api import APIError, Credentials, UnithAPI
from unith_shell.protocol import (
    DEFAULT_MAX_PARTS,
    GREETING_ID,
    Choice,
    ConversationEnd,
    Handshake,
    Join,
    NlpException,
    ProtocolError,
    ResponsePart,
    ServerEvent,
    SessionTimeout,
    TimeoutWarning,
    Turn,
    TurnOverflow,
    UserMessage,
    encode,
    keep_session_message,
    parse_frame,
)
from unith_shell.sanitize import sanitize
from unith_shell.urls import display_url


class State(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class SessionError(Exception):
    """A connection attempt failed. ``str()`` is one line; ``retry`` says if backoff helps."""

    retry = True


class HandshakeRefused(SessionError):
    """The socket closed during the handshake (a refused token, most likely [I])."""


class JoinRefused(SessionError):
    """``join`` with ``granted: false``: high demand [C-V2]."""


class FatalSessionError(SessionError):
    retry = False


@dataclass(slots=True)
class SessionOptions:
    base_url: str
    org: str
    head: str
    api_key: str = ""
    username: str = api_mod.DEFAULT_USERNAME
    password: str = api_mod.DEFAULT_PASSWORD
    text_only: bool = False
    data_tag: str | None = None
    timeout: float = 30.0
    connect_timeout: float = 10.0
    rest_timeout: float = 15.0
    keep_alive: bool = True
    reconnect_initial: float = 0.2
    reconnect_max: float = 10.0
    max_frame_size: int = 1 << 20
    #: Most parts in one reply, and the bound on part_order (0 .. max_parts - 1).
    max_parts: int = DEFAULT_MAX_PARTS
    #: Cap on a REST body after decompression.
    max_body_size: int = api_mod.DEFAULT_MAX_BODY
    #: Overall deadline for opening the socket and reading the greeting to its end.
    handshake_timeout: float = 30.0
    insecure: bool = False
    # When the is_last part is in but an earlier part never came, wait this long for it.
    gap_grace: float = 0.5

    def __repr__(self) -> str:
        shown = display_url(self.base_url)
        return f"SessionOptions(base_url={shown!r}, org={self.org!r}, head={self.head!r})"


class SessionListener:
    """What a session tells its front end. Override what you need; all may be async."""

    async def on_state(self, session: Session) -> None: ...

    async def on_frame(self, session: Session, direction: str, data: str | bytes) -> None:
        """Every frame as sent (``"out"``) or received (``"in"``), before parsing."""

    async def before_send(self, session: Session, message: UserMessage) -> None:
        """May change ``message.text`` or cancel it."""

    async def on_event(self, session: Session, event: ServerEvent) -> None:
        """Every parsed server event, before turn assembly."""

    async def on_parts(self, session: Session, turn: Turn, parts: list[ResponsePart]) -> None:
        """Parts of ``turn`` that became showable, in ``part_order``."""

    async def on_turn_complete(self, session: Session, turn: Turn) -> None: ...

    async def on_protocol_error(self, session: Session, error: ProtocolError) -> None: ...

    async def on_notice(self, session: Session, text: str) -> None:
        """A one-line message about the connection (retries, refusals, timeouts)."""

    async def on_connect(self, session: Session) -> None: ...

    async def on_disconnect(self, session: Session, reason: str) -> None: ...


@dataclass(slots=True)
class _Outgoing:
    message: UserMessage
    turn: Turn | None  # None for keep_session


class Session:
    """One conversation: :meth:`start` (or :meth:`connect` for one attempt), :meth:`close`."""

    def __init__(
        self,
        options: SessionOptions,
        listener: SessionListener | None = None,
        *,
        api: UnithAPI | None = None,
    ) -> None:
        self.options = options
        self.listener = listener or SessionListener()
        self.api = api or UnithAPI(
            options.base_url,
            timeout=options.rest_timeout,
            verify=not options.insecure,
            max_body=options.max_body_size,
        )
        self.state = State.DISCONNECTED
        self.credentials: Credentials | None = None
        self.turns: dict[int, Turn] = {}
        self.greeting: Turn | None = None
        #: The head's configuration (``alias``, ``language``, ...), fetched while connecting.
        self.head_info: dict[str, Any] | None = None
        self.last_turn: Turn | None = None
        self.last_error: str | None = None
        self.attempt = 0
        #: Successful connections to this head so far (a reconnect makes it > 1).
        self.connections = 0
        self.next_attempt_at: float | None = None
        #: Set once the server said ``timeout`` (granted false): never reconnect [C-V2].
        self.timed_out = False
        #: Set after ``conversation_end``: the next message starts a new conversation.
        self.ended = False
        self._next_id = 0
        self._ws: ClientConnection | None = None
        self._outbox: deque[_Outgoing] = deque()
        self._inflight: Turn | None = None
        self._outbox_changed = asyncio.Event()
        self._reconnect_now = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self._waiters: dict[int, list[asyncio.Future[Turn]]] = {}
        # One timer watches the turn in flight: it is re-armed lazily, not per frame.
        self._watchdog: asyncio.TimerHandle | None = None
        self._last_frame = 0.0
        self._sending = False
        self._background: set[asyncio.Task[Any]] = set()
        self._token_refusals = 0
        self._forced = False
        self._head_missing = False

    # ---- public API ------------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def connected(self) -> bool:
        return self.state is State.CONNECTED

    @property
    def turn_in_flight(self) -> Turn | None:
        return self._inflight

    @property
    def pending(self) -> list[Turn]:
        """Messages queued but not yet sent, in order."""
        return [o.turn for o in self._outbox if o.turn is not None]

    async def connect(self) -> None:
        """One connection attempt (login, handshake, greeting); raises on failure.

        A :class:`SessionError` for what the network did; anything else (a strict-mode plugin
        error) is raised as it is, for the caller. The supervisor turns those into one line.
        """
        await self._connect_once()

    def start(self, *, connected: bool = False) -> None:
        """Run the supervisor: it connects (unless ``connected``) and reconnects as needed."""
        if self._supervisor is None or self._supervisor.done():
            self._supervisor = asyncio.get_running_loop().create_task(
                self._supervise(skip_first_connect=connected), name="unith-session"
            )

    async def send(self, text: str) -> Turn | None:
        """Queue a user message; returns its turn, or ``None`` if a plugin cancelled it.

        Messages are sent in order, one turn at a time (the SDK blocks input until the turn
        is idle [C-DK]; overlapping messages are [U] upstream). A message queued while
        disconnected goes out once connected.
        """
        message = UserMessage(
            id=-2,  # numbered when it is actually sent
            user_id=self.credentials.user_id if self.credentials else "",
            text=text,
            session_id=self.credentials.session_id if self.credentials else None,
        )
        await self.listener.before_send(self, message)
        if message.cancelled is not None:
            return None
        turn = Turn(
            message_id=None, prompt=message.text, input=text, max_parts=self.options.max_parts
        )
        self._outbox.append(_Outgoing(message, turn))
        ws = self._ws
        if ws is not None and self.state is State.CONNECTED and self._can_transmit():
            # Idle and connected: send now rather than wake the sender task (a loop pass
            # per message, which the message-path benchmark shows).
            await self._transmit(ws)
        else:
            self._outbox_changed.set()
        if self.ended and self.state is State.DISCONNECTED:
            self._reconnect_now.set()
        return turn

    async def keep_session(self) -> None:
        """Ask the server to keep the session after ``timeout_warning`` [C-V2]."""
        message = keep_session_message(-2, self.credentials.user_id if self.credentials else "")
        self._outbox.appendleft(_Outgoing(message, None))
        self._outbox_changed.set()

    async def wait(self, turn: Turn, timeout: float | None = None) -> Turn:
        """Wait until ``turn`` completes (or ``timeout`` passes; the turn then stays open)."""
        if turn.complete:
            return turn
        future: asyncio.Future[Turn] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(id(turn), [])
        waiters.append(future)
        try:
            async with asyncio.timeout(timeout):
                await future
        finally:
            if not future.done():
                future.cancel()
                with contextlib.suppress(ValueError):
                    waiters.remove(future)
        return turn

    async def interrupt(self) -> Turn | None:
        """Stop waiting for the turn in flight (Ctrl+C). Late parts of it are ignored."""
        turn = self._inflight
        if turn is not None:
            await self._end_turn(turn, "interrupted")
        return turn

    def cancel_pending(self) -> list[Turn]:
        """Drop every queued, unsent message; return their turns."""
        dropped = [o.turn for o in self._outbox if o.turn is not None]
        self._outbox.clear()
        for turn in dropped:
            turn.finish("cancelled")
            self._resolve(turn)
        return dropped

    def reconnect(self) -> None:
        """Reconnect now: close the socket if open and skip any backoff wait."""
        self.timed_out = False
        self.ended = False
        self.attempt = 0
        self._reconnect_now.set()
        ws, self._ws = self._ws, None  # nothing more goes out on the old socket
        if ws is not None:
            self._forced = True
            self.state = State.RECONNECTING
            task = asyncio.get_running_loop().create_task(ws.close())
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        self.start()

    async def switch(self, org: str, head: str) -> None:
        """Close this conversation and start one with another head.

        If the new head cannot be reached (or the switch is cancelled), the old head is
        restored and reconnected in the background, and the error is raised.
        """
        await self._stop_supervisor()
        await self._close_socket()
        await self._fail_inflight("disconnected", "switched heads")
        old = (self.options.org, self.options.head, self.head_info, self.connections)
        self.options.org, self.options.head = org, head
        self.connections = 0
        self.head_info = None
        self.timed_out = self.ended = False
        await self._set_state(State.DISCONNECTED)
        try:
            await self._connect_once()
        except BaseException:
            self.options.org, self.options.head, self.head_info, self.connections = old
            if not self.closing:
                self.start()
            raise
        self.start(connected=True)

    async def close(self) -> None:
        """Close the socket properly and stop reconnecting."""
        self._closing = True
        await self._stop_supervisor()
        await self._close_socket()
        # "closed", not "disconnected": the user ended it, so no "/retry" line.
        await self._fail_inflight("closed", "session closed")
        self.cancel_pending()
        await self._set_state(State.CLOSED)

    # ---- connection ------------------------------------------------------------------------

    async def _login(self) -> Credentials:
        creds = self.credentials
        if creds is None or creds.needs_refresh():
            creds = await self.api.login(self.options.username, self.options.password)
            self.credentials = creds
        return creds

    async def _fetch_head_info(self) -> None:
        # Optional [C-V2]: a head without this route still works, so failures are ignored;
        # a 404 only explains a refused socket later (it is not proof on its own).
        self._head_missing = False
        try:
            self.head_info = await self.api.head_info(
                self.options.org, self.options.head, self.options.api_key
            )
        except api_mod.NotFoundError:
            self._head_missing = True
        except APIError:
            pass

    async def _connect_once(self) -> None:
        await self._set_state(State.CONNECTING if self.attempt == 0 else State.RECONNECTING)
        opts = self.options
        # Fetched beside the login so that the greeting can carry the head's alias.
        info_task = (
            asyncio.get_running_loop().create_task(self._fetch_head_info())
            if self.head_info is None
            else None
        )
        try:
            creds = await self._login()
        except APIError as exc:
            retry = not isinstance(
                exc, api_mod.AuthError | api_mod.NotFoundError | api_mod.RedirectRefused
            )
            err = SessionError(str(exc)) if retry else FatalSessionError(str(exc))
            raise err from None
        # One overall deadline for the socket's opening and the whole greeting: a server that
        # drips a frame (or a byte) just inside each per-read limit must not hang the shell.
        try:
            async with asyncio.timeout(opts.handshake_timeout):
                await self._open_and_greet(creds, info_task)
        except TimeoutError:
            await self._close_socket()
            raise SessionError(
                f"handshake: not complete within {opts.handshake_timeout:g} s"
            ) from None
        self._token_refusals = 0
        self.attempt = 0
        self.next_attempt_at = None
        self.last_error = None
        self.connections += 1
        await self._set_state(State.CONNECTED)
        await self.listener.on_connect(self)

    async def _open_socket(self, url: str) -> ClientConnection:
        opts = self.options
        target = parse_uri(url)
        try:
            return await asyncio.wait_for(
                connect(
                    url,
                    # The app-level limit is max_frame_size (a bigger frame gets a notice and
                    # is dropped); the library limit above it closes the socket (1009).
                    # At most max_queue frames are buffered, so the socket holds 4 x 4 x
                    # max_frame_size bytes at worst (16 MiB with the defaults).
                    max_size=max(opts.max_frame_size * 4, 1 << 16),
                    max_queue=4,
                    open_timeout=None,
                    ping_interval=20,
                    ssl=_ssl_context(url, opts.insecure),
                    compression=None,
                    user_agent_header=f"unith-shell/{_version()}",
                    # An explicit host and port make websockets refuse a cross-origin redirect
                    # (it raises ValueError) while same-origin ones are still followed; https
                    # to http is refused anyway (SecurityError). No proxy from the environment:
                    # the REST client does not use one either (trust_env=False).
                    proxy=None,
                    host=target.host,
                    port=target.port,
                ),
                opts.connect_timeout,
            )
        except TimeoutError:
            raise SessionError(f"connect: no answer in {opts.connect_timeout:g} s") from None
        except InvalidURI:
            raise FatalSessionError(f"connect: invalid URL {display_url(url)}") from None
        except (InvalidHandshake, ValueError) as exc:
            refused = _redirect_refusal(exc, url)
            if refused is not None:
                raise FatalSessionError(refused) from None
            if isinstance(exc, ValueError):
                raise
            raise SessionError(
                f"connect: WebSocket handshake failed ({sanitize(str(exc))[:160]})"
            ) from None
        except OSError as exc:
            raise SessionError(
                f"connect: cannot reach {display_url(opts.base_url)} ({_oserror(exc)})"
            ) from None

    async def _open_and_greet(
        self, creds: Credentials, info_task: asyncio.Task[None] | None
    ) -> None:
        opts = self.options
        url = api_mod.switch_url(opts.base_url, opts.org, opts.head)
        ws = await self._open_socket(url)
        self._ws = ws
        if info_task is not None:
            await asyncio.wait([info_task], timeout=1.0)
        greeting = Turn(message_id=GREETING_ID, max_parts=opts.max_parts)
        self.turns[GREETING_ID] = greeting
        self.greeting = greeting
        try:
            await self._send_frame(
                Handshake(
                    token=creds.access_token,
                    api_key=opts.api_key,
                    text_only=True if opts.text_only else None,
                    data_tag=opts.data_tag,
                ).to_wire()
            )
            # Read until the greeting's is_last, with PY's per-frame limit [C-PY].
            while not greeting.complete:
                try:
                    async with asyncio.timeout(opts.timeout):
                        data = await ws.recv()
                except TimeoutError:
                    raise SessionError(
                        f"handshake: no greeting within {opts.timeout:g} s"
                    ) from None
                event = await self._dispatch(data, during_handshake=True)
                if isinstance(event, Join) and not event.granted:
                    raise JoinRefused("the server is at capacity (join refused)")
        except ConnectionClosed as exc:
            await self._close_socket()
            reason = _close_reason(exc)
            if self._head_missing:
                # The head route said 404 and the socket closed: say which, once, and stop.
                where = f"{opts.org}/{opts.head}"
                raise FatalSessionError(f"unknown head {where} ({reason})") from None
            if exc.rcvd is not None and exc.rcvd.code == CloseCode.POLICY_VIOLATION:
                # A refused token is [U] upstream; the local server closes 1008 [I].
                self.credentials = None  # log in afresh next time
                self._token_refusals += 1
                if self._token_refusals >= 2:
                    raise FatalSessionError(f"the server refused the session: {reason}") from None
                raise HandshakeRefused(
                    f"the server refused the session ({reason}); logging in again"
                ) from None
            raise SessionError(f"handshake: connection closed ({reason})") from None
        except BaseException:
            await self._close_socket()
            raise

    async def _attempt(self) -> None:
        """:meth:`_connect_once`, with anything unexpected turned into a one-line error."""
        try:
            await self._connect_once()
        except SessionError:
            raise
        except Exception as exc:
            await self._close_socket()
            raise SessionError(f"connect: unexpected {_what_failed(exc)}") from None

    async def _supervise(self, skip_first_connect: bool) -> None:
        """Run :meth:`_supervise_loop`; if it ever fails unexpectedly (a listener or a bug),
        say so in one line, mark the session disconnected and start over: it must never die
        silently while the state still says "connected"."""
        while not self._closing:
            try:
                await self._supervise_loop(skip_first_connect)
                return
            except Exception as exc:
                skip_first_connect = False
                await self._close_socket()
                self.state = State.RECONNECTING
                self.last_error = f"the connection supervisor failed ({_what_failed(exc)})"
                with contextlib.suppress(Exception):
                    await self._fail_inflight("disconnected", self.last_error)
                with contextlib.suppress(Exception):
                    await self.listener.on_notice(self, f"{self.last_error}; reconnecting")
                with contextlib.suppress(Exception):
                    await self.listener.on_state(self)
                self.attempt += 1
                delay = backoff(
                    self.attempt, self.options.reconnect_initial, self.options.reconnect_max
                )
                self.next_attempt_at = time.monotonic() + delay
                await self._wait_for_reconnect(delay)

    async def _supervise_loop(self, skip_first_connect: bool) -> None:
        first = True
        while not self._closing:
            if not (first and skip_first_connect):
                try:
                    await self._attempt()
                except SessionError as exc:
                    # Say it once; again only if the reason changes (the toolbar counts).
                    if str(exc) != self.last_error:
                        retrying = "" if not exc.retry or "again" in str(exc) else "; retrying"
                        await self.listener.on_notice(self, f"{exc}{retrying}")
                    self.last_error = str(exc)
                    if not exc.retry:
                        await self._set_state(State.DISCONNECTED)
                        await self._fail_pending(str(exc))
                        await self._wait_for_reconnect(None)
                        continue
                    self.attempt += 1
                    delay = backoff(
                        self.attempt, self.options.reconnect_initial, self.options.reconnect_max
                    )
                    self.next_attempt_at = time.monotonic() + delay
                    await self._set_state(State.RECONNECTING)
                    await self._wait_for_reconnect(delay)
                    continue
            first = False
            reason = await self._serve_connection()
            await self._close_socket()
            unexpected = not (self.closing or self._forced or self.timed_out or self.ended)
            lost = f"connection lost ({reason}); reconnecting"
            # One line for the user: a cut-off turn's error says it all, else a notice does.
            cut = self._inflight is not None
            await self._fail_inflight("disconnected", lost if unexpected else reason)
            await self.listener.on_disconnect(self, reason)
            if self.closing:
                break
            if self._forced:
                self._forced = False
                continue
            if self.timed_out:
                self.last_error = "the session timed out"  # what a pending message waits on
                await self._fail_pending("the session timed out; /reconnect starts a new one")
                await self._set_state(State.DISCONNECTED)
                await self._wait_for_reconnect(None)
                continue
            if self.ended:
                # After conversation_end, connect again only when there is something to say.
                await self._set_state(State.DISCONNECTED)
                if not self._outbox:
                    await self._wait_for_reconnect(None)
                continue
            if not cut:
                await self.listener.on_notice(self, lost)
            self.attempt = 1
            delay = backoff(1, self.options.reconnect_initial, self.options.reconnect_max)
            self.next_attempt_at = time.monotonic() + delay
            await self._set_state(State.RECONNECTING)
            await self._wait_for_reconnect(delay)

    async def _wait_for_reconnect(self, delay: float | None) -> None:
        # A /reconnect that came before this wait began is honoured at once.
        with contextlib.suppress(TimeoutError):
            if self.ended and delay is None:
                # Wake on a new message as well as on /reconnect.
                await self._wait_either()
            else:
                await asyncio.wait_for(self._reconnect_now.wait(), delay)
        self._reconnect_now.clear()

    async def _wait_either(self) -> None:
        while not self._outbox and not self._reconnect_now.is_set():
            self._outbox_changed.clear()
            waiters = [
                asyncio.ensure_future(self._outbox_changed.wait()),
                asyncio.ensure_future(self._reconnect_now.wait()),
            ]
            _, rest = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for task in rest:
                task.cancel()

    async def _serve_connection(self) -> str:
        """Run reader and sender until the socket ends; return why it ended."""
        ws = self._ws
        if ws is None:
            return "not connected"
        self.ended = False
        sender = asyncio.get_running_loop().create_task(self._sender(ws), name="unith-sender")
        try:
            return await self._reader(ws)
        except Exception as exc:
            # Whatever killed the reader (a listener, a hook, a bug), the socket is no longer
            # read: end it and let the supervisor say so and reconnect.
            return f"the reader failed: {_what_failed(exc)}"
        finally:
            await _cancel_and_wait(sender)

    async def _reader(self, ws: ClientConnection) -> str:
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await ws.recv()
            except ConnectionClosed as exc:
                return _close_reason(exc)
            self._last_frame = loop.time()
            await self._dispatch(data)
            if self.timed_out:
                with contextlib.suppress(Exception):
                    await ws.close()
                return "the session timed out"
            if self.ended:
                with contextlib.suppress(Exception):
                    await ws.close()
                return "the conversation ended"

    def _arm_watchdog(self, turn: Turn) -> None:
        """Time the turn in flight out: PY's per-frame limit [C-PY], or a short grace once
        the ``is_last`` part is in but an earlier part is missing."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        limit = self.options.gap_grace if turn.last_seen else self.options.timeout
        loop = asyncio.get_running_loop()
        self._watchdog = loop.call_at(self._last_frame + limit, self._on_watchdog, turn)

    def _on_watchdog(self, turn: Turn) -> None:
        self._watchdog = None
        if self._inflight is not turn or turn.complete:
            return
        loop = asyncio.get_running_loop()
        limit = self.options.gap_grace if turn.last_seen else self.options.timeout
        if loop.time() < self._last_frame + limit:
            self._arm_watchdog(turn)  # a frame came since: wait from that one
            return
        if turn.last_seen:
            shown, count = turn.missing, turn.missing_count
            more = f" and {count - len(shown)} more" if count > len(shown) else ""
            why = ("last", f"missing part(s) {', '.join(map(str, shown))}{more}")
        elif turn.first_part_at is None:
            why = ("timed out", f"no reply within {self.options.timeout:g} s")
        else:
            why = ("timed out", f"no further part within {self.options.timeout:g} s")
        task = loop.create_task(self._end_turn(turn, *why))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _can_transmit(self) -> bool:
        """The head of the outbox may go out now: nothing in flight (or it is a keep)."""
        return (
            bool(self._outbox)
            and not self._sending
            and (self._inflight is None or self._outbox[0].turn is None)
        )

    async def _sender(self, ws: ClientConnection) -> None:
        while True:
            while not self._can_transmit():
                self._outbox_changed.clear()
                await self._outbox_changed.wait()
            if ws is not self._ws or not await self._transmit(ws):
                return  # the socket closed; what is queued goes out after the reconnect

    async def _transmit(self, ws: ClientConnection) -> bool:
        """Send the head of the outbox; False if the socket closed (it then stays queued)."""
        # Off the queue before any await: a keep_session queued meanwhile goes to the front,
        # and must not be the one removed after the send.
        item = self._outbox.popleft()
        message, turn = item.message, item.turn
        creds = self.credentials
        message.id = self._next_id
        if creds is not None:
            message.user_id = creds.user_id
            message.session_id = creds.session_id or None
        self._sending = True
        try:
            await self._send_frame(message.to_wire(), ws)
        except ConnectionClosed:
            self._outbox.appendleft(item)  # not sent: it goes out after the reconnect
            return False
        finally:
            self._sending = False
        self._next_id += 1
        if turn is None:
            return True  # a keep_session: no turn to wait for
        turn.message_id = message.id
        turn.sent_at = time.monotonic()
        self.turns[message.id] = turn
        self._inflight = turn
        self.last_turn = turn
        self._last_frame = asyncio.get_running_loop().time()
        self._arm_watchdog(turn)
        await self.listener.on_state(self)
        return True

    async def _send_frame(self, obj: dict[str, Any], ws: ClientConnection | None = None) -> None:
        ws = ws or self._ws
        if ws is None:
            raise ConnectionClosed(None, None)
        data = encode(obj)
        await self.listener.on_frame(self, "out", data)
        await ws.send(data)

    # ---- receiving ---------------------------------------------------------------------------

    async def _dispatch(
        self, data: str | bytes, during_handshake: bool = False
    ) -> ServerEvent | None:
        size = len(data)
        if size > self.options.max_frame_size:
            # Transcripts and /raw get the frame's start, not megabytes of it.
            await self.listener.on_frame(self, "in", data[:2048])
            await self.listener.on_protocol_error(
                self,
                ProtocolError(
                    f"oversized frame dropped ({size} bytes > {self.options.max_frame_size})"
                ),
            )
            return None
        await self.listener.on_frame(self, "in", data)
        user_id = self.credentials.user_id if self.credentials else None
        try:
            event = parse_frame(data, user_id=user_id)
        except ProtocolError as exc:
            await self.listener.on_protocol_error(self, exc)
            return None
        await self.listener.on_event(self, event)
        if isinstance(event, ResponsePart):
            turn = self._turn_for(event.input_message_id, during_handshake)
            if turn is not None:
                had_last = turn.last_seen
                try:
                    ready = turn.add(event, size=size)  # the frame, raw dict and all
                except TurnOverflow as exc:
                    await self._end_turn(turn, "failed", f"protocol error: {exc.reason}")
                    return event
                if ready:
                    await self.listener.on_parts(self, turn, ready)
                if turn.complete:
                    await self._completed(turn)
                elif turn.last_seen and not had_last and turn is self._inflight:
                    self._arm_watchdog(turn)  # is_last is in, a part is not: a short grace
        elif isinstance(event, Choice):
            turn = self._turn_for(event.input_message_id, during_handshake)
            if turn is not None:
                # V2 shows the choice's text and options and ends "thinking" [C-V2].
                as_part = ResponsePart(
                    event=event.event,
                    raw=event.raw,
                    text=event.text,
                    input_message_id=event.input_message_id,
                    part_order=event.part_order,
                    suggestions=event.suggestions,
                )
                try:
                    ready = turn.add(as_part, size=size)
                except TurnOverflow as exc:
                    await self._end_turn(turn, "failed", f"protocol error: {exc.reason}")
                    return event
                if ready:
                    await self.listener.on_parts(self, turn, ready)
                await self._end_turn(turn, "choice")
        elif isinstance(event, NlpException):
            turn = self._turn_for(event.input_message_id, during_handshake)
            if turn is not None:
                level = f" (level {event.level})" if event.level is not None else ""
                await self._end_turn(
                    turn, event.event, (event.message or "the head could not answer") + level
                )
        elif isinstance(event, ConversationEnd):
            self.ended = True
            await self._fail_inflight(event.event, "the conversation ended")
        elif isinstance(event, SessionTimeout):
            if not event.granted:
                self.timed_out = True
                await self._fail_inflight(event.event, "the session timed out")
        elif isinstance(event, TimeoutWarning) and self.options.keep_alive:
            await self.keep_session()
        return event

    def _turn_for(self, message_id: int | None, during_handshake: bool) -> Turn | None:
        if message_id is not None:
            return self.turns.get(message_id)
        # No input_message_id: the part belongs to whatever we are waiting for [I].
        if during_handshake:
            return self.greeting
        return self._inflight

    async def _end_turn(self, turn: Turn, outcome: str, error: str | None = None) -> None:
        rest = turn.finish(outcome, error)
        if rest:
            await self.listener.on_parts(self, turn, rest)
        await self._completed(turn)

    async def _completed(self, turn: Turn) -> None:
        if self._inflight is turn:
            self._inflight = None
            if self._watchdog is not None:
                self._watchdog.cancel()
                self._watchdog = None
            if self._outbox:
                self._outbox_changed.set()
        if turn.message_id is not None and turn.message_id != GREETING_ID:
            # Keep memory flat over long sessions: finished turns are not looked up again.
            self.turns.pop(turn.message_id, None)
        await self.listener.on_turn_complete(self, turn)
        self._resolve(turn)
        await self.listener.on_state(self)

    def _resolve(self, turn: Turn) -> None:
        for future in self._waiters.pop(id(turn), ()):
            if not future.done():
                future.set_result(turn)

    async def _fail_inflight(self, outcome: str, error: str) -> None:
        turn = self._inflight
        if turn is not None:
            await self._end_turn(turn, outcome, error)

    async def _fail_pending(self, error: str) -> None:
        while self._outbox:
            item = self._outbox.popleft()
            if item.turn is not None:
                item.turn.finish("failed", error)
                await self.listener.on_turn_complete(self, item.turn)
                self._resolve(item.turn)

    async def _set_state(self, state: State) -> None:
        self.state = state
        await self.listener.on_state(self)

    async def _close_socket(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)

    async def _stop_supervisor(self) -> None:
        task, self._supervisor = self._supervisor, None
        if task is not None and task is not asyncio.current_task():
            await _cancel_and_wait(task)


async def _cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait for it, without swallowing a cancellation of our own."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    except Exception:
        pass  # the task's own failure was reported where it happened


def backoff(
    attempt: int, initial: float, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with jitter: ~initial * 2**(attempt-1), capped, +-25 %."""
    base = min(cap, initial * 2.0 ** max(0, attempt - 1))
    return max(0.0, min(cap, base * (0.75 + 0.5 * rand())))


def _close_reason(exc: ConnectionClosed) -> str:
    """The close in words, the server's reason kept exactly (bounded by the protocol to 123
    bytes): every sink passes it through the gate, and ``--json`` keeps it escaped."""
    frame = exc.rcvd
    if frame is None and exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG:
        # websockets refused a frame over max_size before buffering it, and closed.
        return f"closed with code 1009: {exc.sent.reason}"
    if frame is None:
        return "connection dropped without a close frame"
    text = f"closed by the server with code {int(frame.code)}"
    return f"{text}: {frame.reason}" if frame.reason else text


def _what_failed(exc: BaseException) -> str:
    """An unexpected exception in a few sanitised words (no traceback, one line)."""
    text = " ".join(str(exc).split())
    return sanitize(f"{type(exc).__name__}: {text[:100]}" if text else type(exc).__name__)


def _redirect_refusal(exc: BaseException, url: str) -> str | None:
    """The one-line error for a WebSocket redirect websockets refused, naming the target."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, InvalidStatus):
        cause = cause.__cause__
    if cause is None or not 300 <= cause.response.status_code < 400:
        return None
    location = cause.response.headers.get("Location")
    if location is None:
        return None  # not a redirect websockets could follow: a plain handshake failure
    try:
        target = urljoin(url, location)
    except ValueError:
        target = location
    down = url.startswith("wss://") and target.startswith("ws://")
    kind = "to plain ws://" if down else "to another origin"
    return (
        f"connect: refused a WebSocket redirect {kind} ({display_url(target)}); "
        "the session token is only sent to the base URL's origin"
    )


def _oserror(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return exc.strerror or type(exc).__name__


def _ssl_context(url: str, insecure: bool) -> Any:
    if not url.startswith("wss://"):
        return None
    import ssl

    context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _version() -> str:
    from unith_shell import __version__

    return __version__
