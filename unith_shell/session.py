"""One conversation with one Unith head over the v2 switch socket: the I/O around
:class:`~unith_shell.conversation.Conversation`.

The session's whole state is :class:`State` (disconnected -> connecting -> connected,
reconnecting, closed) plus, once a connection ends, an :class:`EndReason`. A supervisor task
owns the socket: it logs in, fetches the head's info, opens the socket, handshakes and reads
the greeting (each a small named step), then runs a reader (and a sender for what is queued
while disconnected) until the socket ends, and ``match``es the end reason: reconnect, log in
again, stop, or wait. :func:`classify` turns a failed attempt into its reason, in one place.
The bookkeeping (outbox, turn in flight, assembly) is sans-I/O in ``conversation.py``. The
session knows nothing of terminals: what it sees goes to a :class:`SessionListener`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import heapq
import itertools
import random
import time
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
from unith_shell.conversation import (
    Action,
    Complete,
    Conversation,
    Deliver,
    EndConnection,
    EndReason,
    Grace,
    KeepAlive,
    Outgoing,
)
from unith_shell.errors import UserError
from unith_shell.protocol import (
    Handshake,
    Join,
    ProtocolError,
    ResponsePart,
    ServerEvent,
    UserMessage,
    encode,
    parse_frame,
)
from unith_shell.sanitize import sanitize
from unith_shell.turn import DEFAULT_MAX_PARTS, Turn
from unith_shell.urls import display_url

__all__ = [
    "EndReason",
    "FatalSessionError",
    "HandshakeRefused",
    "JoinRefused",
    "Session",
    "SessionError",
    "SessionListener",
    "SessionOptions",
    "State",
    "backoff",
    "classify",
]


class State(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class SessionError(UserError):
    """A connection attempt failed. ``str()`` is one line; :func:`classify` says what next."""

    @property
    def retry(self) -> bool:
        """Whether backing off and trying again can help."""
        return classify(self) is not EndReason.FATAL


class HandshakeRefused(SessionError):
    """The socket closed during the handshake (a refused token, most likely [I])."""


class JoinRefused(SessionError):
    """``join`` with ``granted: false``: high demand [C-V2]."""


class FatalSessionError(SessionError):
    """No retry fixes this (bad credentials, an unknown head, a refused redirect)."""


def classify(exc: BaseException) -> EndReason:
    """Why a connection attempt failed, as the supervisor acts on it. Pure."""
    match exc:
        case FatalSessionError():
            return EndReason.FATAL
        case HandshakeRefused():
            return EndReason.RELOGIN
        case _:
            # JoinRefused (high demand), timeouts, refused or dropped connections, and
            # anything unexpected: a retry after a backoff may fix them.
            return EndReason.RETRY


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


class _Deadlines:
    """One timer for every deadline a session keeps: the turn in flight, timed waits.

    It is re-armed only when a deadline comes earlier than the armed one. When it fires, the
    owner checks what is due and asks again for the next one; so the turn's deadline, which
    moves with every frame, costs no timer operation per frame or per turn.
    """

    __slots__ = ("_at", "_fire", "_handle")

    def __init__(self, fire: Callable[[], None]) -> None:
        self._fire = fire
        self._handle: asyncio.TimerHandle | None = None
        self._at = float("inf")

    def at_most(self, when: float) -> None:
        """Make sure the timer fires no later than ``when`` (loop time)."""
        if when < self._at:
            if self._handle is not None:
                self._handle.cancel()
            self._at = when
            self._handle = asyncio.get_running_loop().call_at(when, self._fired)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._at = float("inf")

    def _fired(self) -> None:
        self._handle = None
        self._at = float("inf")
        self._fire()


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
        #: Why the current connection ends (or the last one ended); ``None`` while it runs.
        #: With :attr:`state` this is the session's whole state.
        self.end: EndReason | None = None
        self.conversation = Conversation()
        self.credentials: Credentials | None = None
        #: The head's configuration (``alias``, ``language``, ...), fetched while connecting.
        self.head_info: dict[str, Any] | None = None
        self.last_error: str | None = None
        self.attempt = 0
        #: Successful connections to this head so far (a reconnect makes it > 1).
        self.connections = 0
        self.next_attempt_at: float | None = None
        self._ws: ClientConnection | None = None
        self._outbox_changed = asyncio.Event()
        self._reconnect_now = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._waiters: dict[int, list[asyncio.Future[Turn]]] = {}
        #: Timed waits as (deadline, sequence, future), a heap; done ones are dropped lazily.
        self._timed: list[tuple[float, int, asyncio.Future[Turn]]] = []
        self._timed_seq = itertools.count()
        self._compact_at = 64
        self._deadlines = _Deadlines(self._on_deadline)
        self._last_frame = 0.0
        self._background: set[asyncio.Task[Any]] = set()
        self._token_refusals = 0

    # ---- public API ------------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        return self.end is EndReason.CLOSED

    @property
    def timed_out(self) -> bool:
        """The server said ``timeout`` (granted false): no reconnect until asked [C-V2]."""
        return self.end is EndReason.TIMED_OUT

    @property
    def ended(self) -> bool:
        """After ``conversation_end``: the next message starts a new conversation."""
        return self.end is EndReason.ENDED

    @property
    def connected(self) -> bool:
        return self.state is State.CONNECTED

    @property
    def turn_in_flight(self) -> Turn | None:
        return self.conversation.inflight

    @property
    def pending(self) -> list[Turn]:
        """Messages queued but not yet sent, in order."""
        return self.conversation.pending

    @property
    def turns(self) -> dict[int, Turn]:
        return self.conversation.turns

    @property
    def greeting(self) -> Turn | None:
        return self.conversation.greeting

    @property
    def last_turn(self) -> Turn | None:
        return self.conversation.last_turn

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
        creds = self.credentials
        message = UserMessage(
            id=-2,  # numbered when it is actually sent
            user_id=creds.user_id if creds else "",
            text=text,
            session_id=creds.session_id if creds else None,
        )
        await self.listener.before_send(self, message)
        if message.cancelled is not None:
            return None
        turn = self.conversation.queue(message, text, self.options.max_parts)
        ws = self._ws
        if ws is not None and self.state is State.CONNECTED:
            # Connected: send now if idle; else the end of the turn in flight sends it, from
            # the reader. Either way no other task is woken (a loop pass per message).
            await self._send_queued(ws)
        else:
            self._outbox_changed.set()
        if self.ended and self.state is State.DISCONNECTED:
            self._reconnect_now.set()
        return turn

    async def keep_session(self) -> None:
        """Ask the server to keep the session after ``timeout_warning`` [C-V2]."""
        self.conversation.queue_keep(self.credentials.user_id if self.credentials else "")
        self._outbox_changed.set()

    async def wait(self, turn: Turn, timeout: float | None = None) -> Turn:
        """Wait until ``turn`` completes (or ``timeout`` passes: TimeoutError; the turn then
        stays open)."""
        if turn.complete:
            return turn
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Turn] = loop.create_future()
        waiters = self._waiters.setdefault(id(turn), [])
        waiters.append(future)
        if timeout is not None:
            self._time_wait(future, loop.time() + timeout)
        try:
            await future
        finally:
            if not future.done():
                future.cancel()
            if not turn.complete:  # timed out or cancelled: stop waiting for it
                with contextlib.suppress(ValueError):
                    waiters.remove(future)
                if not waiters and self._waiters.get(id(turn)) is waiters:
                    del self._waiters[id(turn)]
        return turn

    async def interrupt(self) -> Turn | None:
        """Stop waiting for the turn in flight (Ctrl+C). Late parts of it are ignored."""
        turn = self.conversation.inflight
        if turn is not None:
            await self._apply(self.conversation.end_turn(turn, "interrupted"))
        return turn

    def cancel_pending(self) -> list[Turn]:
        """Drop every queued, unsent message; return their turns."""
        dropped = self.conversation.cancel_pending()
        for turn in dropped:
            self._resolve(turn)
        return dropped

    def reconnect(self) -> None:
        """Reconnect now: close the socket if open and skip any backoff wait."""
        ws, self._ws = self._ws, None  # nothing more goes out on the old socket
        if not self.closing:
            self.end = EndReason.FORCED if ws is not None else None
        self.attempt = 0
        self._reconnect_now.set()
        if ws is not None:
            self.state = State.RECONNECTING
            self._spawn(ws.close())
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
        if not self.closing:
            self.end = None
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
        self.end = EndReason.CLOSED
        await self._stop_supervisor()
        await self._close_socket()
        # "closed", not "disconnected": the user ended it, so no "/retry" line.
        await self._fail_inflight("closed", "session closed")
        self.cancel_pending()
        self._deadlines.cancel()
        await self._set_state(State.CLOSED)

    # ---- connecting: small steps -------------------------------------------------------------

    async def _connect_once(self) -> None:
        await self._set_state(State.CONNECTING if self.attempt == 0 else State.RECONNECTING)
        info = self._start_head_info()
        creds = await self._log_in()
        await self._handshake(creds, info)
        await self._connected()

    def _start_head_info(self) -> asyncio.Task[bool] | None:
        """Fetch the head's info beside the login, so the greeting can carry its alias."""
        if self.head_info is not None:
            return None
        return asyncio.get_running_loop().create_task(self._fetch_head_info())

    async def _fetch_head_info(self) -> bool:
        """Fetch the head's info; True if the route said 404.

        Optional [C-V2]: a head without this route still works, so failures are ignored; a
        404 only explains a refused socket later (it is not proof on its own).
        """
        try:
            self.head_info = await self.api.head_info(
                self.options.org, self.options.head, self.options.api_key
            )
        except api_mod.NotFoundError:
            return True
        except APIError:
            pass
        return False

    async def _log_in(self) -> Credentials:
        """Reuse the credentials while fresh; a REST failure becomes a :class:`SessionError`."""
        creds = self.credentials
        if creds is not None and not creds.needs_refresh():
            return creds
        try:
            creds = await self.api.login(self.options.username, self.options.password)
        except APIError as exc:
            final = isinstance(
                exc, api_mod.AuthError | api_mod.NotFoundError | api_mod.RedirectRefused
            )
            raise (FatalSessionError if final else SessionError)(str(exc)) from None
        self.credentials = creds
        return creds

    async def _handshake(self, creds: Credentials, info: asyncio.Task[bool] | None) -> None:
        """Open the socket, handshake and read the greeting, within one overall deadline: a
        server that drips a frame (or a byte) just inside each per-read limit must not hang
        the shell."""
        limit = self.options.handshake_timeout
        try:
            async with asyncio.timeout(limit):
                await self._open_and_greet(creds, info)
        except TimeoutError:
            await self._close_socket()
            raise SessionError(f"handshake: not complete within {limit:g} s") from None

    async def _connected(self) -> None:
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

    async def _open_and_greet(self, creds: Credentials, info: asyncio.Task[bool] | None) -> None:
        opts = self.options
        ws = await self._open_socket(api_mod.switch_url(opts.base_url, opts.org, opts.head))
        self._ws = ws
        if info is not None:
            await asyncio.wait([info], timeout=1.0)
        greeting = self.conversation.start_greeting(opts.max_parts)
        try:
            await self._send_frame(
                Handshake(
                    token=creds.access_token,
                    api_key=opts.api_key,
                    text_only=True if opts.text_only else None,
                    data_tag=opts.data_tag,
                ).to_wire(),
                ws,
            )
            await self._read_greeting(ws, greeting)
        except ConnectionClosed as exc:
            await self._close_socket()
            raise self._refusal(exc, head_missing=_said_missing(info)) from None
        except BaseException:
            await self._close_socket()
            raise

    async def _read_greeting(self, ws: ClientConnection, greeting: Turn) -> None:
        """Read until the greeting's ``is_last``, with PY's per-frame limit [C-PY]."""
        limit = self.options.timeout
        while not greeting.complete:
            try:
                async with asyncio.timeout(limit):
                    data = await ws.recv()
            except TimeoutError:
                raise SessionError(f"handshake: no greeting within {limit:g} s") from None
            event = await self._dispatch(data, during_handshake=True)
            if isinstance(event, Join) and not event.granted:
                raise JoinRefused("the server is at capacity (join refused)")

    def _refusal(self, exc: ConnectionClosed, *, head_missing: bool) -> SessionError:
        """The error for a socket closed during the handshake."""
        reason = _close_reason(exc)
        if head_missing:
            # The head route said 404 and the socket closed: say which, once, and stop.
            where = f"{self.options.org}/{self.options.head}"
            return FatalSessionError(f"unknown head {where} ({reason})")
        if exc.rcvd is not None and exc.rcvd.code == CloseCode.POLICY_VIOLATION:
            # A refused token is [U] upstream; the local server closes 1008 [I].
            self.credentials = None  # log in afresh next time
            self._token_refusals += 1
            if self._token_refusals >= 2:
                return FatalSessionError(f"the server refused the session: {reason}")
            return HandshakeRefused(f"the server refused the session ({reason}); logging in again")
        return SessionError(f"handshake: connection closed ({reason})")

    async def _attempt(self) -> None:
        """:meth:`_connect_once`, with anything unexpected turned into a one-line error."""
        try:
            await self._connect_once()
        except SessionError:
            raise
        except Exception as exc:
            await self._close_socket()
            raise SessionError(f"connect: unexpected {_what_failed(exc)}") from None

    # ---- the supervisor ----------------------------------------------------------------------

    async def _supervise(self, skip_first_connect: bool) -> None:
        """Run :meth:`_supervise_loop`; if it ever fails unexpectedly (a listener or a bug),
        say so in one line, mark the session disconnected and start over: it must never die
        silently while the state still says "connected"."""
        while not self.closing:
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
        while not self.closing:
            if not (first and skip_first_connect):
                try:
                    await self._attempt()
                except SessionError as exc:
                    await self._attempt_failed(exc, classify(exc))
                    continue
            first = False
            reason = await self._serve_connection()
            match await self._connection_ended(reason):
                case EndReason.CLOSED:
                    break
                case EndReason.FORCED:
                    self.end = None  # /reconnect: at once
                case EndReason.TIMED_OUT:
                    self.last_error = "the session timed out"  # what a pending message waits on
                    await self._fail_pending("the session timed out; /reconnect starts a new one")
                    await self._set_state(State.DISCONNECTED)
                    await self._wait_for_reconnect(None)
                case EndReason.ENDED:
                    # After conversation_end, connect again only when there is something to say.
                    await self._set_state(State.DISCONNECTED)
                    if not self.conversation.outbox:
                        await self._wait_for_reconnect(None)
                case _:
                    self.attempt = 1
                    await self._back_off()

    async def _attempt_failed(self, exc: SessionError, why: EndReason) -> None:
        if self.end is EndReason.FORCED:
            self.end = None  # a /reconnect during the attempt: it is being retried now
        text = str(exc)
        # Say it once; again only if the reason changes (the toolbar counts).
        if text != self.last_error:
            # A refused handshake already says it logs in again.
            retrying = "; retrying" if why is EndReason.RETRY else ""
            await self.listener.on_notice(self, f"{text}{retrying}")
        self.last_error = text
        match why:
            case EndReason.FATAL:
                await self._set_state(State.DISCONNECTED)
                await self._fail_pending(text)
                await self._wait_for_reconnect(None)
            case _:  # RETRY, RELOGIN (the credentials were dropped: the next login is fresh)
                self.attempt += 1
                await self._back_off()

    async def _back_off(self) -> None:
        delay = backoff(self.attempt, self.options.reconnect_initial, self.options.reconnect_max)
        self.next_attempt_at = time.monotonic() + delay
        await self._set_state(State.RECONNECTING)
        await self._wait_for_reconnect(delay)

    async def _connection_ended(self, reason: str) -> EndReason:
        """Clean up after a connection ended for ``reason``; return why it ended."""
        await self._close_socket()
        lost = f"connection lost ({reason}); reconnecting"
        unexpected = self.end is None
        # One line for the user: a cut-off turn's error says it all, else a notice does.
        cut = self.conversation.inflight is not None
        await self._fail_inflight("disconnected", lost if unexpected else reason)
        await self.listener.on_disconnect(self, reason)
        end = self.end or EndReason.LOST
        if end is EndReason.LOST and not cut:
            await self.listener.on_notice(self, lost)
        return end

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
        while not self.conversation.outbox and not self._reconnect_now.is_set():
            self._outbox_changed.clear()
            waiters = [
                asyncio.ensure_future(self._outbox_changed.wait()),
                asyncio.ensure_future(self._reconnect_now.wait()),
            ]
            _, rest = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for task in rest:
                task.cancel()

    # ---- one connection: reader and sender ---------------------------------------------------

    async def _serve_connection(self) -> str:
        """Run reader and sender until the socket ends; return why it ended, in words."""
        ws = self._ws
        if ws is None:
            return "not connected"
        if self.end is EndReason.ENDED:
            self.end = None  # a new conversation on this socket
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
            # FORCED closed the socket already: recv() says so. CLOSED is checked too: a
            # close() that came while a hook ran may find its cancellation swallowed (3.11's
            # wait_for), and the reader must not read on.
            end = self.end
            if end is not None and end is not EndReason.FORCED:
                with contextlib.suppress(Exception):
                    await ws.close()
                return _END_WORDS.get(end, str(end.value))

    async def _sender(self, ws: ClientConnection) -> None:
        """Sends what was queued while there was no socket (and ``keep_session``)."""
        while True:
            while not self.conversation.can_send():
                self._outbox_changed.clear()
                await self._outbox_changed.wait()
            if ws is not self._ws or not await self._send_queued(ws):
                return  # the socket closed; what is queued goes out after the reconnect

    async def _send_queued(self, ws: ClientConnection) -> bool:
        """Send what may go out now; False if the socket closed (it then stays queued)."""
        conversation = self.conversation
        while conversation.can_send():
            if not await self._transmit(ws):
                return False
        return True

    async def _transmit(self, ws: ClientConnection) -> bool:
        """Send the head of the outbox; False if the socket closed (it then stays queued)."""
        creds = self.credentials
        conversation = self.conversation
        item: Outgoing = conversation.take(
            creds.user_id if creds else None, creds.session_id if creds else None
        )
        try:
            await self._send_frame(item.message.to_wire(), ws)
        except ConnectionClosed:
            conversation.not_sent(item)  # it goes out after the reconnect
            return False
        except BaseException:
            conversation.on_the_wire = None
            raise
        turn = conversation.sent(item, time.monotonic())
        if turn is None:
            return True  # a keep_session: no turn to wait for
        self._last_frame = now = asyncio.get_running_loop().time()
        self._deadlines.at_most(now + self.options.timeout)
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
        """One frame in: size check, parse, ``on_event``, then the conversation's actions."""
        listener = self.listener
        size = len(data)
        if size > self.options.max_frame_size:
            # Transcripts and /raw get the frame's start, not megabytes of it.
            await listener.on_frame(self, "in", data[:2048])
            await listener.on_protocol_error(
                self,
                ProtocolError(
                    f"oversized frame dropped ({size} bytes > {self.options.max_frame_size})"
                ),
            )
            return None
        await listener.on_frame(self, "in", data)
        user_id = self.credentials.user_id if self.credentials else None
        try:
            event = parse_frame(data, user_id=user_id)
        except ProtocolError as exc:
            await listener.on_protocol_error(self, exc)
            return None
        await listener.on_event(self, event)
        actions = self.conversation.receive(event, during_handshake=during_handshake, size=size)
        if actions:
            await self._apply(actions)
        return event

    async def _apply(self, actions: list[Action]) -> None:
        """Carry out what the conversation said to do, in order."""
        for action in actions:
            match action:
                case Deliver(turn=turn, parts=parts):
                    await self.listener.on_parts(self, turn, parts)
                case Complete(turn=turn):
                    await self._complete(turn)
                case Grace():
                    # is_last is in, a part is not: a short grace from the last frame.
                    self._deadlines.at_most(self._last_frame + self.options.gap_grace)
                case KeepAlive():
                    if self.options.keep_alive:
                        await self.keep_session()
                case EndConnection(reason=reason):
                    if self.end is None:
                        self.end = reason

    async def _complete(self, turn: Turn) -> None:
        await self.listener.on_turn_complete(self, turn)
        self._resolve(turn)
        await self.listener.on_state(self)
        if self.conversation.outbox:
            ws = self._ws
            if ws is not None and self.state is State.CONNECTED:
                # The next queued line goes out from here (the reader, mostly), without
                # waking another task.
                await self._send_queued(ws)
            else:
                self._outbox_changed.set()

    def _resolve(self, turn: Turn) -> None:
        for future in self._waiters.pop(id(turn), ()):
            if not future.done():
                future.set_result(turn)

    async def _fail_inflight(self, outcome: str, error: str) -> None:
        actions = self.conversation.fail_inflight(outcome, error)
        if actions:
            await self._apply(actions)

    async def _fail_pending(self, error: str) -> None:
        for turn in self.conversation.fail_pending(error):
            await self.listener.on_turn_complete(self, turn)
            self._resolve(turn)

    # ---- deadlines -----------------------------------------------------------------------------

    def _time_wait(self, future: asyncio.Future[Turn], when: float) -> None:
        timed = self._timed
        if len(timed) >= self._compact_at:
            # Waits that ended before their deadline leave entries: drop them now and then,
            # so memory stays flat however many turns are waited for.
            timed[:] = [entry for entry in timed if not entry[2].done()]
            heapq.heapify(timed)
            self._compact_at = max(64, 2 * len(timed))
        heapq.heappush(timed, (when, next(self._timed_seq), future))
        self._deadlines.at_most(when)

    def _on_deadline(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        conversation = self.conversation
        opts = self.options
        turn = conversation.inflight
        due = conversation.deadline(self._last_frame, opts.timeout, opts.gap_grace)
        if turn is not None and due is not None:
            if now >= due:
                self._spawn(self._apply(conversation.expired(turn, opts.timeout)))
            else:
                self._deadlines.at_most(due)  # a frame came since: wait from that one
        timed = self._timed
        while timed and (timed[0][0] <= now or timed[0][2].done()):
            _, _, future = heapq.heappop(timed)
            if not future.done():
                future.set_exception(TimeoutError())
        if timed:
            self._deadlines.at_most(timed[0][0])

    # ---- small helpers -----------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

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


_END_WORDS = {
    EndReason.TIMED_OUT: "the session timed out",
    EndReason.ENDED: "the conversation ended",
    EndReason.CLOSED: "session closed",
}


def _said_missing(info: asyncio.Task[bool] | None) -> bool:
    """The head-info lookup of this attempt said 404 (it may still be running)."""
    return (
        info is not None
        and info.done()
        and not info.cancelled()
        and info.exception() is None
        and info.result()
    )


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


async def connect_retrying(session: Session, attempts: int = 3, initial: float = 0.2) -> None:
    """The first connection of a run that has nobody to ask (pipe mode, ``test``, ``replay``).

    A refused token (a fresh login) and high demand get ``attempts`` tries with backoff; any
    other :class:`SessionError` (a refused connection, bad credentials) is raised at once, so
    a script gets its exit 3 quickly. The last refusal is raised when every try failed.
    """
    for attempt in range(1, attempts + 1):
        try:
            await session.connect()
            return
        except (HandshakeRefused, JoinRefused):
            if attempt == attempts:
                raise
            await asyncio.sleep(backoff(attempt, initial, 2.0))


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
