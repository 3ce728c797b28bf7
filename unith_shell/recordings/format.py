"""The recording format (version 1): a ``/log`` transcript with a header line.

A recording is JSON Lines. The first line is the header::

    {"format": "unith-shell-recording", "version": 1, "client": "unith-shell 0.1.0",
     "head": "unith/aiko", "host": "chat-origin.api.unith.live",
     "started": "2026-01-01T12:00:00.000+00:00"}

then one line per frame (``direction`` ``"in"`` or ``"out"``, see
:func:`unith_shell.builtins.log.frame_record`) and one ``direction: "meta"`` line per
disconnect. Appending to a recording adds another header (a new segment). docs/recordings.md
is the reference; this module reads the file back as a greeting plus user turns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from unith_shell.protocol import (
    GREETING_ID,
    Choice,
    ConversationEnd,
    Echo,
    NlpException,
    ProtocolError,
    ResponsePart,
    SessionTimeout,
    loads_bounded,
    parse_object,
)
from unith_shell.turn import Turn

FORMAT_NAME = "unith-shell-recording"
FORMAT_VERSION = 1
#: A recording larger than this is refused before it is read (what a file holds is bounded).
MAX_BYTES = 64 * 1024 * 1024


class RecordingError(Exception):
    """A file that is not a readable recording; ``str()`` is one line naming the file."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def header_record(head: str, base_url: str) -> dict[str, Any]:
    """The first line of a recording. Only the base URL's host is kept: never credentials,
    paths or query strings that may carry them."""
    from unith_shell import __version__

    try:
        host = urlsplit(base_url).hostname or ""
    except ValueError:
        host = ""
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "client": f"unith-shell {__version__}",
        "head": head,
        "host": host,
        "started": _now(),
    }


def disconnect_record(reason: str, head: str) -> dict[str, Any]:
    """A ``meta`` line: the socket closed (a replayed or served turn is cut here too)."""
    return {
        "time": _now(),
        "direction": "meta",
        "head": head,
        "event": "disconnect",
        "payload": {"reason": reason},
    }


@dataclass(slots=True)
class Frame:
    """One line of a recording after the header."""

    time: float  # seconds since the epoch
    direction: str  # "in", "out" or "meta"
    event: str | None
    payload: Any
    line: int


@dataclass(slots=True)
class RecordedTurn:
    """One user message and everything received until the next one (or a reconnect)."""

    number: int  # 1-based
    message_id: Any
    user: str
    user_id: str | None
    sent: float
    #: Incoming frames (and a disconnect ``meta`` frame) of this turn, in arrival order.
    frames: list[Frame] = field(default_factory=list)
    #: The text was one of the previous turn's suggestions (a pick, or typed the same).
    picked: bool = False
    # Derived by analyse():
    text: str = ""
    parts: int = 0
    suggestions: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    outcome: str | None = None
    first_latency: float | None = None
    last_latency: float | None = None
    closed: bool = False  # a reconnect or disconnect ended the window

    @property
    def cut(self) -> bool:
        """The socket went away before the turn completed (or without a client-side reason)."""
        return "disconnect" in self.events and not (
            {"conversation_end", "timeout"} & set(self.events)
        )


@dataclass(slots=True)
class Recording:
    path: str
    header: dict[str, Any]
    frames: list[Frame]
    greeting: list[Frame]
    turns: list[RecordedTurn]

    @property
    def head(self) -> str:
        head = self.header.get("head")
        return head if isinstance(head, str) else ""

    @property
    def greeting_texts(self) -> list[str]:
        return [f.payload.get("text", "") for f in self.greeting if _is_part(f)]

    @property
    def greeting_suggestions(self) -> list[str]:
        found: list[str] = []
        for frame in self.greeting:
            chips = frame.payload.get("suggestions") if isinstance(frame.payload, dict) else None
            if isinstance(chips, list):
                found = [c for c in chips if isinstance(c, str)]
        return found


def _is_part(frame: Frame) -> bool:
    return (
        isinstance(frame.payload, dict)
        and frame.event in ("text", "response")
        and isinstance(frame.payload.get("text"), str)
    )


def _time(value: Any, fallback: float) -> float:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return fallback
    return fallback


def _check_header(obj: dict[str, Any], source: str, number: int) -> None:
    if obj.get("format") != FORMAT_NAME:
        raise RecordingError(f"{source}:{number}: not a unith-shell recording header")
    version = obj.get("version")
    if version != FORMAT_VERSION:
        raise RecordingError(
            f"{source}: recording format version {version!r} is not supported "
            f"(this unith-shell reads version {FORMAT_VERSION}); record it again"
        )


def parse_lines(lines: Iterable[str], source: str) -> Recording:
    """A recording from its lines; raises :class:`RecordingError` (one line) if unreadable."""
    header: dict[str, Any] | None = None
    frames: list[Frame] = []
    last_time = 0.0
    pending_error: str | None = None
    for number, line in enumerate(lines, 1):
        if pending_error is not None:
            raise RecordingError(pending_error)  # a bad line that was not the last one
        if not line.strip():
            continue
        try:
            # Bounded as frames are: a recording is a file someone may have handed over, and
            # a deeply nested line must be one error line, not a RecursionError traceback.
            obj = loads_bounded(line)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            # A torn last line (the recorder was killed mid-write) is skipped; elsewhere it is
            # an error.
            pending_error = f"{source}:{number}: not a JSON object"
            continue
        if header is None:
            if "format" not in obj:
                raise RecordingError(
                    f"{source}: no recording header (a transcript from before format version "
                    f"{FORMAT_VERSION}); this unith-shell reads version {FORMAT_VERSION}"
                )
            _check_header(obj, source, number)
            header = obj
            continue
        if "format" in obj:
            _check_header(obj, source, number)  # another segment appended to the file
            continue
        direction = obj.get("direction")
        if direction not in ("in", "out", "meta"):
            raise RecordingError(f"{source}:{number}: unknown direction {direction!r}")
        event = obj.get("event")
        last_time = _time(obj.get("time"), last_time)
        frames.append(
            Frame(
                last_time,
                direction,
                event if isinstance(event, str) else None,
                obj.get("payload"),
                number,
            )
        )
    if header is None:
        # Nothing but a bad line is not a torn recording: say what is wrong with that line.
        raise RecordingError(pending_error or f"{source}: empty file, not a recording")
    greeting, turns = split_turns(frames)
    return Recording(source, header, frames, greeting, turns)


def load(path: str | Path) -> Recording:
    """Read a recording file (at most :data:`MAX_BYTES`)."""
    source = str(path)
    if Path(path).exists() and not Path(path).is_file():
        raise RecordingError(f"{source}: not a regular file")
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            size = fh.seek(0, 2)
            if size > MAX_BYTES:
                raise RecordingError(
                    f"{source}: {size} bytes is larger than a recording may be ({MAX_BYTES})"
                )
            fh.seek(0)
            return parse_lines(fh, source)
    except OSError as exc:
        raise RecordingError(f"{source}: cannot read: {exc.strerror or exc}") from None


def split_turns(frames: list[Frame]) -> tuple[list[Frame], list[RecordedTurn]]:
    """The greeting (incoming frames after the last handshake before the first message) and
    the user turns."""
    greeting: list[Frame] = []
    turns: list[RecordedTurn] = []
    current: RecordedTurn | None = None
    ended = False  # conversation_end or timeout seen on this connection: the client closes
    for frame in frames:
        payload = frame.payload
        if frame.direction == "out":
            if frame.event == "handshake":
                ended = False
                if current is None:
                    greeting = []
                else:
                    current.closed = True  # a reconnect: later frames belong to no turn
            elif frame.event == "text" and isinstance(payload, dict):
                if current is not None and payload.get("id") == current.message_id:
                    # The same message again after a reconnect (it was queued when the
                    # connection ended): the same turn, timed from this send.
                    current.closed = False
                    current.sent = frame.time
                    continue
                text = payload.get("text")
                user_id = payload.get("user_id")
                if turns:
                    analyse(turns[-1])  # complete now: its suggestions tell a pick
                previous = turns[-1].suggestions if turns else []
                current = RecordedTurn(
                    number=len(turns) + 1,
                    message_id=payload.get("id"),
                    user=text if isinstance(text, str) else "",
                    user_id=user_id if isinstance(user_id, str) else None,
                    sent=frame.time,
                )
                turns.append(current)
                current.picked = current.user in previous
            continue  # keep_session and other client frames belong to no reply
        if frame.direction == "in" and frame.event in ("conversation_end", "timeout"):
            ended = True
        if frame.direction == "meta" and ended:
            continue  # the client closing after conversation_end/timeout, as it always does
        if current is None:
            if frame.direction == "in":
                greeting.append(frame)
        elif not current.closed:
            current.frames.append(frame)
            if frame.direction == "meta":
                current.closed = True
    if turns:
        analyse(turns[-1])
    return greeting, turns


def analyse(turn: RecordedTurn) -> None:
    """Fill in the derived fields (text, parts, suggestions, events, latencies)."""
    mid = turn.message_id if isinstance(turn.message_id, int) else None
    assembled = Turn(message_id=mid, sent_at=turn.sent)
    choice_text = ""
    events: list[str] = []
    for frame in turn.frames:
        if frame.direction == "meta":
            if frame.event == "disconnect":
                events.append("disconnect")
                assembled.finish("disconnected", now=frame.time)
            continue
        if not isinstance(frame.payload, dict):
            continue
        try:
            event = parse_object(frame.payload, user_id=turn.user_id)
        except ProtocolError:
            continue
        if isinstance(event, Echo):
            continue
        ours = getattr(event, "input_message_id", None) in (mid, None)
        if isinstance(event, ResponsePart):
            if ours and event.input_message_id != GREETING_ID:
                assembled.add(event, now=frame.time)
        elif isinstance(event, Choice):
            events.append("choice")
            if ours and not assembled.complete:
                choice_text = event.text
                assembled.suggestions = list(event.suggestions)
                if assembled.first_part_at is None:
                    assembled.first_part_at = frame.time
                assembled.finish("choice", now=frame.time)
        elif isinstance(event, NlpException):
            level = "" if event.level is None else f":{event.level}"
            events.append(f"unith_nlp_exception{level}")
            if assembled.first_part_at is None:
                assembled.first_part_at = frame.time
            assembled.finish(event.event, now=frame.time)
        elif isinstance(event, ConversationEnd):
            events.append("conversation_end")
            assembled.finish(event.event, now=frame.time)
        elif isinstance(event, SessionTimeout) and not event.granted:
            events.append("timeout")
            assembled.finish(event.event, now=frame.time)
    texts = [p.text for p in assembled.parts if p.text]
    if choice_text:
        texts.append(choice_text)
    turn.text = "\n".join(texts)
    turn.parts = len(assembled.parts)
    turn.suggestions = list(assembled.suggestions)
    turn.events = events
    turn.outcome = assembled.outcome
    turn.first_latency = assembled.first_latency
    turn.last_latency = assembled.total_latency if assembled.outcome is not None else None
