"""Server events -> what a person sees: the human view, the raw JSON view, and escaping.

Nothing here writes to a terminal itself; views call a ``write(line)`` function they are given.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from unith_shell.protocol import (
    ConversationEnd,
    FeedbackAck,
    Join,
    KeepSessionReply,
    NlpException,
    ResponsePart,
    ServerEvent,
    SessionTimeout,
    TimeoutWarning,
    Turn,
    UnknownEvent,
    redact,
)
from unith_shell.sanitize import sanitize, sanitize_block

Write = Callable[[str], None]

# V2 escapes HTML but re-allows <br />; we turn it into a line break [C-V2].
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)


def escape_text(text: str) -> str:
    """Server text for a person: ``<br />`` as a line break, then through the one gate
    (:func:`unith_shell.sanitize.sanitize_block`): newlines stay, every control, ESC, C1 and
    bidi/zero-width character becomes visible."""
    return sanitize_block(_BR.sub("\n", text))


@dataclass(slots=True)
class Style:
    """ANSI styles, or nothing when colour is off (pipes, NO_COLOR)."""

    color: bool = True

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def speaker(self, text: str) -> str:
        return self._wrap("1;36", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def warn(self, text: str) -> str:
        return self._wrap("33", text)

    def error(self, text: str) -> str:
        return self._wrap("31", text)

    def ok(self, text: str) -> str:
        return self._wrap("32", text)


def describe_event(event: ServerEvent) -> tuple[str, str] | None:
    """A one-line notice for a non-part event: (level, text), or ``None`` if silent."""
    if isinstance(event, Join):
        if event.granted:
            return None
        return "warn", "the head is busy (high demand): join refused"
    if isinstance(event, TimeoutWarning):
        return "warn", "inactivity warning: the session will time out soon"
    if isinstance(event, KeepSessionReply):
        return ("info", "session kept alive") if event.granted else ("warn", "keep_session refused")
    if isinstance(event, SessionTimeout):
        if event.granted:
            return None
        return "error", "the session timed out (the server will not continue it); /reconnect"
    if isinstance(event, ConversationEnd):
        return "warn", "the conversation ended; your next message starts a new one"
    if isinstance(event, NlpException):
        level = f" (level {event.level})" if event.level is not None else ""
        detail = f": {escape_text(event.message)}" if event.message else ""
        return "error", f"the head could not answer{level}{detail}; /retry"
    if isinstance(event, FeedbackAck):
        return None
    if isinstance(event, UnknownEvent):
        return "info", f"unknown event '{sanitize(event.event)}' ignored"
    return None


def _same(text: str) -> str:
    return text


class View:
    """What the shell shows. The REPL uses :class:`HumanView`; pipe mode has its own views.

    A view is the sink of its output channel, so it is where the gate sits: every text a view
    writes (``write``, ``notice``, parts, frames) passes :mod:`unith_shell.sanitize` there, and
    no caller can forget it. ``scrub`` is set by the shell: it masks known secret values (a key
    pasted into a message comes back in the echo and in the reply). Every view sends its
    output through it.
    """

    raw = False
    scrub: Callable[[str], str] = staticmethod(_same)

    def parts(self, turn: Turn, parts: list[ResponsePart], first: bool) -> None: ...

    def turn_end(self, turn: Turn) -> None: ...

    def notice(self, level: str, text: str) -> None: ...

    def frame(self, direction: str, data: str | bytes) -> None: ...

    def event(self, event: ServerEvent) -> None:
        described = describe_event(event)
        if described is not None:
            self.notice(*described)

    def write(self, text: str) -> None: ...


class HumanView(View):
    """The REPL's view: speaker-labelled parts as they arrive, numbered suggestions."""

    def __init__(self, write: Write, style: Style, speaker: Callable[[], str]) -> None:
        self._out = write
        self.style = style
        self.speaker = speaker

    def write(self, text: str) -> None:
        """The sink for plain text (command output, ``shell.print``): through the gate."""
        self._emit(sanitize_block(self.scrub(text)))

    def _emit(self, line: str) -> None:
        # Only for lines built here from gated pieces plus the shell's own styles: the
        # styles are added after the gate, so they are the only ESC sequences that pass.
        self._out(self.scrub(line))

    def parts(self, turn: Turn, parts: list[ResponsePart], first: bool) -> None:
        label = sanitize(self.speaker())
        pad = " " * (len(label) + 2)
        for index, part in enumerate(parts):
            text = escape_text(part.text)
            if not text:
                continue
            lines = text.split("\n")
            if first and index == 0:
                head = self.style.speaker(f"{label}: ") + lines[0]
            else:
                head = pad + lines[0]
            self._emit("\n".join([head, *(pad + line for line in lines[1:])]))
            first = False
            for url in part.media:
                self._emit(pad + self.style.dim(f"[image] {escape_text(url)}"))

    def suggestions(self, suggestions: list[str]) -> None:
        if suggestions:
            items = "  ".join(f"{i}) {escape_text(s)}" for i, s in enumerate(suggestions, 1))
            self._emit(self.style.dim(f"  {items}   (type a number or /pick N)"))

    def turn_end(self, turn: Turn) -> None:
        if turn.outcome in ("last", "choice"):
            if turn.error:
                self.notice("warn", f"reply incomplete: {turn.error}")
            self.suggestions(turn.suggestions)
        elif turn.outcome == "interrupted":
            self.notice("warn", "stopped waiting for the reply")
        elif turn.outcome in ("timed out", "disconnected", "failed"):
            said = turn.input or turn.prompt
            what = f" to {said[:40]!r}" if said else ""
            why = turn.error or turn.outcome or ""
            if turn.first_part_at is None:
                self.notice("error", f"no reply{what}: {why}; /retry")
            else:
                self.notice("error", f"the reply{what} was cut short: {why}; /retry")

    def notice(self, level: str, text: str) -> None:
        marker = {"error": self.style.error("error:"), "warn": self.style.warn("!")}.get(
            level, self.style.dim("*")
        )
        self._emit(f"{marker} {sanitize_block(self.scrub(text))}")

    def frame(self, direction: str, data: str | bytes) -> None:
        arrow = "->" if direction == "out" else "<-"
        self._emit(self.style.dim(f"{arrow} {raw_line(data)}"))


def raw_line(data: str | bytes, limit: int = 2000) -> str:
    """A frame for display or logging: secrets redacted, escaped, and cut to ``limit``."""
    if isinstance(data, bytes):
        return f"<binary frame, {len(data)} bytes>"
    try:
        obj = json.loads(data)
    except ValueError:
        text = data
    else:
        text = json.dumps(redact(obj), ensure_ascii=False)
    if len(text) > limit:
        text = text[:limit] + f"... ({len(text)} chars)"
    return sanitize(text)
