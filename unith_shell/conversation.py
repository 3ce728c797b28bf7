"""The bookkeeping of one conversation, without I/O: plain methods that take events and
return what to do.

:class:`Conversation` holds the outbox, the turn in flight and the turns by message id. It
never touches a socket, a clock or a listener: :class:`~unith_shell.session.Session` feeds it
what happened (a message queued, a frame sent, an event parsed, a deadline passed) and carries
out the actions it returns (:class:`Deliver`, :class:`Complete`, :class:`Grace`,
:class:`KeepAlive`, :class:`EndConnection`). That is what makes it testable without sockets.

:class:`EndReason` names why a connection (or an attempt at one) ended; the session's
supervisor ``match``es it to decide what comes next.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from unith_shell.protocol import (
    GREETING_ID,
    Choice,
    ConversationEnd,
    NlpException,
    ResponsePart,
    ServerEvent,
    SessionTimeout,
    TimeoutWarning,
    UserMessage,
    keep_session_message,
)
from unith_shell.turn import DEFAULT_MAX_PARTS, Turn, TurnOverflow


class EndReason(enum.Enum):
    """Why a connection, or an attempt to open one, ended; the supervisor acts on it."""

    #: The user closed the session: stop for good.
    CLOSED = "closed"
    #: ``/reconnect`` (or a switch) closed the socket: connect again at once.
    FORCED = "forced"
    #: The server said ``timeout`` (granted false): never reconnect by itself [C-V2].
    TIMED_OUT = "timed out"
    #: ``conversation_end``: connect again once there is something to say.
    ENDED = "ended"
    #: The socket dropped (or its reader failed): back off and reconnect.
    LOST = "lost"
    #: An attempt failed in a way a retry may fix: back off and try again.
    RETRY = "retry"
    #: The handshake was refused (a token, most likely): log in afresh and try again.
    RELOGIN = "relogin"
    #: An attempt failed in a way no retry fixes: wait for ``/reconnect``.
    FATAL = "fatal"


# ---- actions: what the session is to do ------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Deliver:
    """Show ``parts`` of ``turn`` (they became showable, in ``part_order``)."""

    turn: Turn
    parts: list[ResponsePart]


@dataclass(slots=True, frozen=True)
class Complete:
    """``turn`` ended (see ``turn.outcome``): tell the listener, wake its waiters, and send
    the next queued message if there is one."""

    turn: Turn


@dataclass(slots=True, frozen=True)
class Grace:
    """The ``is_last`` part of the turn in flight is in but an earlier one is not: time it out
    after the short grace rather than the per-frame limit."""

    turn: Turn


@dataclass(slots=True, frozen=True)
class KeepAlive:
    """The server warned of a timeout: ask it to keep the session (if the settings say so)."""


@dataclass(slots=True, frozen=True)
class EndConnection:
    """The server ended the conversation or the session: close the socket for ``reason``."""

    reason: EndReason


Action = Deliver | Complete | Grace | KeepAlive | EndConnection


@dataclass(slots=True)
class Outgoing:
    """A queued frame: a user message with its turn, or a ``keep_session`` (``turn`` None)."""

    message: UserMessage
    turn: Turn | None


class Conversation:
    """Outbox, turn in flight, turns by id: what the session knows about the conversation.

    One message is answered at a time (the SDK blocks input until the turn is idle [C-DK]);
    a ``keep_session`` may go out while a turn is in flight.
    """

    def __init__(self) -> None:
        self.outbox: deque[Outgoing] = deque()
        #: The turn whose reply is awaited (sent, not complete).
        self.inflight: Turn | None = None
        #: The frame being written right now (taken off the outbox, not yet confirmed sent).
        self.on_the_wire: Outgoing | None = None
        #: Turns awaiting a reply, by message id (finished ones are dropped: memory stays flat).
        self.turns: dict[int, Turn] = {}
        self.greeting: Turn | None = None
        self.last_turn: Turn | None = None
        #: The id the next frame gets.
        self.next_id = 0

    # ---- out ---------------------------------------------------------------------------------

    @property
    def pending(self) -> list[Turn]:
        """Messages queued but not yet sent, in order."""
        return [o.turn for o in self.outbox if o.turn is not None]

    def queue(self, message: UserMessage, typed: str, max_parts: int = DEFAULT_MAX_PARTS) -> Turn:
        """Queue a user message (its text as ``before_send`` left it; ``typed`` is what the
        user typed, which ``/retry`` sends again); return its turn, holding ``max_parts``."""
        turn = Turn(message_id=None, prompt=message.text, input=typed, max_parts=max_parts)
        self.outbox.append(Outgoing(message, turn))
        return turn

    def queue_keep(self, user_id: str) -> None:
        """Queue a ``keep_session`` request ahead of every message."""
        self.outbox.appendleft(Outgoing(keep_session_message(-2, user_id), None))

    def can_send(self) -> bool:
        """The head of the outbox may go out now: nothing on the wire, and nothing in flight
        (unless the head is a ``keep_session``)."""
        return (
            bool(self.outbox)
            and self.on_the_wire is None
            and (self.inflight is None or self.outbox[0].turn is None)
        )

    def take(self, user_id: str | None, session_id: str | None) -> Outgoing:
        """Take the head of the outbox to send it, numbered and addressed.

        Off the queue before the caller awaits anything: a ``keep_session`` queued meanwhile
        goes to the front and must not be the one removed after the send.
        """
        item = self.outbox.popleft()
        message = item.message
        message.id = self.next_id
        if user_id is not None:
            message.user_id = user_id
            message.session_id = session_id or None
        self.on_the_wire = item
        return item

    def sent(self, item: Outgoing, now: float) -> Turn | None:
        """``item`` went out; return its turn, now in flight (None for a ``keep_session``)."""
        self.on_the_wire = None
        self.next_id += 1
        turn = item.turn
        if turn is None:
            return None
        turn.message_id = item.message.id
        turn.sent_at = now
        self.turns[item.message.id] = turn
        self.inflight = turn
        self.last_turn = turn
        return turn

    def not_sent(self, item: Outgoing) -> None:
        """The socket closed under ``item``: it goes out again after the reconnect."""
        self.on_the_wire = None
        self.outbox.appendleft(item)

    def cancel_pending(self) -> list[Turn]:
        """Drop every queued message; return their turns, finished ``cancelled``."""
        dropped = self.pending
        self.outbox.clear()
        for turn in dropped:
            turn.finish("cancelled")
        return dropped

    def fail_pending(self, error: str) -> list[Turn]:
        """Drop every queued message; return their turns, finished ``failed`` with ``error``."""
        dropped = self.pending
        self.outbox.clear()
        for turn in dropped:
            turn.finish("failed", error)
        return dropped

    # ---- in ----------------------------------------------------------------------------------

    def start_greeting(self, max_parts: int = DEFAULT_MAX_PARTS) -> Turn:
        """A new connection: the greeting's turn, which the parts before any message join."""
        greeting = Turn(message_id=GREETING_ID, max_parts=max_parts)
        self.turns[GREETING_ID] = greeting
        self.greeting = greeting
        return greeting

    def turn_for(self, message_id: int | None, during_handshake: bool = False) -> Turn | None:
        """The turn an event answers: by ``input_message_id``, else what is awaited."""
        if message_id is not None:
            return self.turns.get(message_id)
        # No input_message_id: the part belongs to whatever we are waiting for [I].
        return self.greeting if during_handshake else self.inflight

    def receive(
        self, event: ServerEvent, *, during_handshake: bool = False, size: int | None = None
    ) -> list[Action]:
        """Take one parsed server event; return what to do about it.

        ``size`` is the frame's length on the wire: a turn keeps each part's whole frame, so
        its byte cap counts that (the part's text when not given).
        """
        if isinstance(event, ResponsePart):
            turn = self.turn_for(event.input_message_id, during_handshake)
            return [] if turn is None else self._add_part(turn, event, size)
        if isinstance(event, Choice):
            turn = self.turn_for(event.input_message_id, during_handshake)
            if turn is None:
                return []
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
                return self.end_turn(turn, "failed", f"protocol error: {exc.reason}")
            shown: list[Action] = [Deliver(turn, ready)] if ready else []
            return [*shown, *self.end_turn(turn, "choice")]
        if isinstance(event, NlpException):
            turn = self.turn_for(event.input_message_id, during_handshake)
            if turn is None:
                return []
            level = f" (level {event.level})" if event.level is not None else ""
            why = (event.message or "the head could not answer") + level
            return self.end_turn(turn, event.event, why)
        if isinstance(event, ConversationEnd):
            ending = self.fail_inflight(event.event, "the conversation ended")
            return [EndConnection(EndReason.ENDED), *ending]
        if isinstance(event, SessionTimeout):
            if event.granted:
                return []
            ending = self.fail_inflight(event.event, "the session timed out")
            return [EndConnection(EndReason.TIMED_OUT), *ending]
        if isinstance(event, TimeoutWarning):
            return [KeepAlive()]  # the session's keep_alive setting decides
        return []

    def _add_part(self, turn: Turn, part: ResponsePart, size: int | None) -> list[Action]:
        had_last = turn.last_seen
        try:
            ready = turn.add(part, size=size)
        except TurnOverflow as exc:
            return self.end_turn(turn, "failed", f"protocol error: {exc.reason}")
        actions: list[Action] = [Deliver(turn, ready)] if ready else []
        if turn.complete:
            actions.append(self._completed(turn))
        elif turn.last_seen and not had_last and turn is self.inflight:
            actions.append(Grace(turn))
        return actions

    # ---- ending turns ------------------------------------------------------------------------

    def end_turn(self, turn: Turn, outcome: str, error: str | None = None) -> list[Action]:
        """End ``turn`` for ``outcome``: its held-back parts are delivered, then it completes.

        A turn that already ended (a front end may finish it itself) still completes here:
        it stops being the turn in flight.
        """
        rest = turn.finish(outcome, error)
        actions: list[Action] = [Deliver(turn, rest)] if rest else []
        actions.append(self._completed(turn))
        return actions

    def fail_inflight(self, outcome: str, error: str) -> list[Action]:
        """End the turn in flight, if any (a lost socket, the server's end, a close)."""
        turn = self.inflight
        return [] if turn is None else self.end_turn(turn, outcome, error)

    def expired(self, turn: Turn, timeout: float) -> list[Action]:
        """The deadline of the turn in flight passed with no frame: end it, saying why."""
        if turn is not self.inflight or turn.complete:
            return []
        if turn.last_seen:
            shown, count = turn.missing, turn.missing_count
            more = f" and {count - len(shown)} more" if count > len(shown) else ""
            return self.end_turn(
                turn, "last", f"missing part(s) {', '.join(map(str, shown))}{more}"
            )
        if turn.first_part_at is None:
            return self.end_turn(turn, "timed out", f"no reply within {timeout:g} s")
        return self.end_turn(turn, "timed out", f"no further part within {timeout:g} s")

    def deadline(self, last_frame: float, timeout: float, gap_grace: float) -> float | None:
        """When the turn in flight times out: PY's per-frame limit after the last frame
        [C-PY], or a short grace once its ``is_last`` part is in but an earlier one is not."""
        turn = self.inflight
        if turn is None:
            return None
        return last_frame + (gap_grace if turn.last_seen else timeout)

    def _completed(self, turn: Turn) -> Complete:
        if self.inflight is turn:
            self.inflight = None
        if turn.message_id is not None and turn.message_id != GREETING_ID:
            # Keep memory flat over long sessions: finished turns are not looked up again.
            self.turns.pop(turn.message_id, None)
        return Complete(turn)
