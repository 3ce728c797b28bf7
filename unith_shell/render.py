"""Server events -> what a person sees: the human view, the raw JSON view, and escaping.

Nothing here writes to a terminal itself; views call a ``write(line)`` function they are given.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterable
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
    UnknownEvent,
    loads_bounded,
    redact,
)
from unith_shell.sanitize import sanitize, sanitize_block
from unith_shell.turn import Turn

Write = Callable[[str], None]

# V2 escapes HTML but re-allows <br />; we turn it into a line break [C-V2].
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)


def escape_text(text: str) -> str:
    """Server text for a person: ``<br />`` as a line break, then through the one gate
    (:func:`unith_shell.sanitize.sanitize_block`): newlines stay, every control, ESC, C1 and
    bidi/zero-width character becomes visible."""
    return sanitize_block(_BR.sub("\n", text))


def is_chunk(part: ResponsePart) -> bool:
    """A streamed chunk (a ``response`` event): a piece of a paragraph, not a paragraph."""
    return part.event == "response"


# Where a streamed chunk ends is [U] upstream: token streams usually carry their own spaces,
# while the local server's streaming head sends word groups without the space between them.
# So a chunk is joined as is when either side has the whitespace, else with one space.
def join_chunk(paragraph: str, chunk: str) -> str:
    if not paragraph or not chunk or paragraph[-1].isspace() or chunk[0].isspace():
        return paragraph + chunk
    return f"{paragraph} {chunk}"


def reply_text(parts: Iterable[ResponsePart]) -> str:
    """A reply's text as shown: parts on their own lines, a run of streamed chunks as one
    paragraph (what the REPL shows, pipe mode prints and ``--json``'s turn line carries)."""
    lines: list[str] = []
    chunked = False
    for part in parts:
        if not part.text:
            continue
        if is_chunk(part) and chunked:
            lines[-1] = join_chunk(lines[-1], part.text)
        else:
            lines.append(part.text)
        chunked = is_chunk(part)
    return "\n".join(lines)


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


def describe_event(event: ServerEvent, hints: bool = True) -> tuple[str, str] | None:
    """A one-line notice for a non-part event: (level, text), or ``None`` if silent.

    ``hints=False`` (pipe mode) leaves out what to type next (``/retry``, ``/reconnect``)."""
    if isinstance(event, Join):
        if event.granted:
            return None
        return "warn", "the head is busy (high demand): join refused"
    if isinstance(event, KeepSessionReply):
        return ("info", "session kept alive") if event.granted else ("warn", "keep_session refused")
    if isinstance(event, SessionTimeout):
        if event.granted:
            return None
        hint = "; /reconnect" if hints else ""
        return "error", f"the session timed out (the server will not continue it){hint}"
    if isinstance(event, ConversationEnd):
        return "warn", "the conversation ended; your next message starts a new one"
    if isinstance(event, NlpException):
        level = f" (level {event.level})" if event.level is not None else ""
        detail = f": {escape_text(event.message)}" if event.message else ""
        hint = "; /retry" if hints else ""
        return "error", f"the head could not answer{level}{detail}{hint}"
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

    def break_flow(self) -> None:
        """Something else reached the screen (a line the user sent): label the next part."""


def _terminal_width() -> int:
    return shutil.get_terminal_size().columns


class HumanView(View):
    """The REPL's view: speaker-labelled parts as they arrive, numbered suggestions.

    A part is labelled with the speaker whenever the line above it is not its own turn's
    (the first part, or after a notice, a command's output or a line the user sent). Streamed
    chunks (``response`` events) flow into one paragraph, wrapped to the terminal width: each
    line is printed once it is full, the rest when anything else is printed or the turn ends.
    """

    def __init__(
        self,
        write: Write,
        style: Style,
        speaker: Callable[[], str],
        width: Callable[[], int] = _terminal_width,
    ) -> None:
        self._out = write
        self.style = style
        self.speaker = speaker
        self.width = width
        #: The turn whose text is the last thing on screen (its next part is not labelled).
        self._flow: Turn | None = None
        #: Streamed text of ``_paragraph_turn`` not printed yet (less than a line).
        self._paragraph = ""
        self._paragraph_turn: Turn | None = None
        self._paragraph_labelled = False

    def _emit(self, line: str) -> None:
        # Only for lines built here from gated pieces plus the shell's own styles: the
        # styles are added after the gate, so they are the only ESC sequences that pass.
        self._out(self.scrub(line))

    def write(self, text: str) -> None:
        """The sink for plain text (command output, ``shell.print``): through the gate."""
        self._flush_paragraph()
        self._flow = None
        self._emit(sanitize_block(self.scrub(text)))

    def break_flow(self) -> None:
        self._flow = None
        if self._paragraph:
            self._paragraph_labelled = True  # its next line comes below the user's line

    def _lead(self, turn: Turn, label: str) -> str:
        """The start of a part's first line: the speaker label, or the indent under it."""
        if self._flow is turn:
            return " " * (len(label) + 2)
        self._flow = turn
        return self.style.speaker(f"{label}: ")

    def parts(self, turn: Turn, parts: list[ResponsePart], first: bool) -> None:
        if self._paragraph and self._paragraph_turn is not turn:
            self._flush_paragraph()
        label = sanitize(self.speaker())
        pad = " " * (len(label) + 2)
        for part in parts:
            text = escape_text(part.text)
            if text and is_chunk(part) and "\n" not in text:
                self._add_chunk(turn, label, text)
            elif text:
                self._flush_paragraph()
                lines = text.split("\n")
                head = self._lead(turn, label) + lines[0]
                self._emit("\n".join([head, *(pad + line for line in lines[1:])]))
            for url in part.media:
                self._flush_paragraph()
                self._emit(pad + self.style.dim(f"[image] {escape_text(url)}"))

    def _add_chunk(self, turn: Turn, label: str, text: str) -> None:
        if not self._paragraph:
            self._paragraph_turn = turn
            self._paragraph_labelled = self._flow is not turn
        self._flow = turn
        self._paragraph = join_chunk(self._paragraph, text)
        room = max(20, self.width() - 1 - (len(label) + 2))
        # Print every full line now; keep the last, still growing one.
        while len(self._paragraph) > room:
            cut = self._paragraph.rfind(" ", 0, room + 1)
            if cut <= 0:
                cut = room  # one word longer than a line: break it
            line, self._paragraph = self._paragraph[:cut], self._paragraph[cut:].lstrip(" ")
            self._emit_paragraph_line(label, line)

    def _emit_paragraph_line(self, label: str, line: str) -> None:
        if self._paragraph_labelled:
            head = self.style.speaker(f"{label}: ")
            self._paragraph_labelled = False
        else:
            head = " " * (len(label) + 2)
        self._emit(head + line)

    def _flush_paragraph(self) -> None:
        if self._paragraph:
            line, self._paragraph = self._paragraph, ""
            self._emit_paragraph_line(sanitize(self.speaker()), line)
            self._paragraph_turn = None

    def suggestions(self, suggestions: list[str]) -> None:
        if suggestions:
            items = "  ".join(f"{i}) {sanitize(s)}" for i, s in enumerate(suggestions, 1))
            self._emit(self.style.dim(f"  {items}   (type a number or /pick N)"))

    def turn_end(self, turn: Turn) -> None:
        self._flush_paragraph()
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
        # One line: a newline from a server (a close reason, a detail) is made visible, so it
        # cannot start a line that looks like the shell's own.
        self._emit(f"{marker} {sanitize(self.scrub(text))}")

    def frame(self, direction: str, data: str | bytes) -> None:
        arrow = "->" if direction == "out" else "<-"
        self._emit(self.style.dim(f"{arrow} {raw_line(data)}"))


def raw_line(data: str | bytes, limit: int = 2000) -> str:
    """A frame for display or logging: secrets redacted, escaped, and cut to ``limit``."""
    if isinstance(data, bytes):
        return f"<binary frame, {len(data)} bytes>"
    try:
        # Bounded like every frame the session parses: a 900-deep frame (which the session
        # rejects) must not make redact() recurse until the reader task dies.
        obj = loads_bounded(data)
    except ValueError:
        text = data
    else:
        text = json.dumps(redact(obj), ensure_ascii=False)
    if len(text) > limit:
        text = text[:limit] + f"... ({len(text)} chars)"
    return sanitize(text)
