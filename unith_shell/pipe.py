"""The non-terminal front end: lines in, replies (plain text or JSON Lines) out.

Every input line gets exactly one outcome, in input order: its reply, or one error line
naming it (a reply cut short prints what arrived, then its error line). Exit status: 0 ok,
3 authentication or connection failure (also a connection lost and not re-established
within the per-turn timeout: every line after that fails at once), 4 a turn failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import stat
import sys
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any, TextIO

from unith_shell.commands import CommandError, split_command
from unith_shell.context import BasicFrontEnd
from unith_shell.files import Paths
from unith_shell.protocol import (
    GREETING_ID,
    Echo,
    NlpException,
    ResponsePart,
    ServerEvent,
    SessionTimeout,
    redact,
)
from unith_shell.render import View, describe_event, escape_text, raw_line, reply_text
from unith_shell.sanitize import json_line, sanitize, sanitize_block
from unith_shell.session import (
    Session,
    SessionError,
    State,
    connect_retrying,
)
from unith_shell.settings import Settings
from unith_shell.shell import Shell
from unith_shell.turn import Turn

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_CONNECT = 3
EXIT_TURN = 4


class _PipeView(View):
    """Output to streams the reader may close (``| head``): then stop quietly, never crash."""

    out: TextIO
    #: Set when stdout was closed by the reader: the run stops at the next line.
    closed = False
    #: "line N" while a command from input line N runs, so that its errors name the line.
    context = ""

    #: A flush of ``out`` is scheduled (see :meth:`_put`).
    _flush_due = False

    def _put(self, stream: TextIO, text: str) -> None:
        if self.closed:
            return
        try:
            if stream is not self.out:
                # stderr: at once, after what stdout holds, so that ``2>&1`` keeps the order.
                self.flush()
                stream.write(text)
                stream.flush()
                return
            stream.write(text)
            if not self._flush_due:
                self._schedule_flush()
        except BrokenPipeError:
            self._closed_by_reader(stream)

    def _schedule_flush(self) -> None:
        # stdout is flushed two event-loop passes later, not per write: the pass that ends a
        # turn wakes the line loop, which sends the next line in the following pass; the
        # flush comes after that, so the next message is on the wire before this reply's
        # write system call, and a turn's lines (or --json's events) go out in one write.
        # Nothing waits longer than that: the loop is never idle with output held back.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a unit test, the exit path): at once
            self.flush()
            return
        self._flush_due = True
        loop.call_soon(loop.call_soon, self.flush)

    def flush(self) -> None:
        """Write out what stdout holds (also at the end of the run)."""
        self._flush_due = False
        if self.closed:
            return
        try:
            self.out.flush()
        except BrokenPipeError:
            self._closed_by_reader(self.out)

    def _closed_by_reader(self, stream: TextIO) -> None:
        self.closed = True
        _silence(stream)


def _silence(stream: TextIO) -> None:
    """Point a closed stdout at /dev/null, so that the flush at exit does not fail again."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


class PlainView(_PipeView):
    """Assembled replies on stdout, one block per turn; notices on stderr."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err

    def _put(self, stream: TextIO, text: str) -> None:
        # The gate for both streams: every line of plain output, server text or not.
        super()._put(stream, sanitize_block(text))

    def turn_end(self, turn: Turn) -> None:
        # A reply cut short keeps what arrived; its line's error (on stderr) says it was cut.
        if turn.message_id != GREETING_ID and (turn.ok or turn.first_part_at is not None):
            text = escape_text(reply_text(turn.parts))
            listed = "".join(f"{i}) {sanitize(s)}\n" for i, s in enumerate(turn.suggestions, 1))
            self._put(self.out, self.scrub((text + "\n" if text else "") + listed))

    def event(self, event: ServerEvent) -> None:
        # An NLP exception or a session timeout ends the line's turn, and the line's one
        # error line says so; no second line, and no REPL hints. Parts and echoes show as
        # the turn's block (turn_end), so they need no describing either.
        if isinstance(event, ResponsePart | Echo | NlpException | SessionTimeout):
            return
        described = describe_event(event, hints=False)
        if described is not None:
            self.notice(*described)

    def notice(self, level: str, text: str) -> None:
        prefix = "error: " if level == "error" else ""
        where = f"{self.context}: " if self.context else ""
        # One line per notice (one error line per failed message): a server's newline in a
        # close reason or a detail is made visible, never a line of its own.
        self._put(self.err, sanitize(self.scrub(prefix + where + text)) + "\n")

    def write(self, text: str) -> None:
        self._put(self.out, self.scrub(text) + "\n")

    def frame(self, direction: str, data: str | bytes) -> None:
        # ``/raw on``: the frames, redacted and escaped, as the REPL shows them.
        self.write(f"{'->' if direction == 'out' else '<-'} {raw_line(data)}")


class JsonView(_PipeView):
    """One JSON object per line: every server event, plus the shell's own ``unith_shell.*``."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def emit(self, obj: dict[str, Any]) -> None:
        if self.context and obj.get("event") == "unith_shell.notice":
            obj["line"] = self.context
        # json_line: controls, C1 and bidi characters as \uXXXX escapes, never raw.
        self._put(self.out, self.scrub(json_line(obj)) + "\n")

    def event(self, event: ServerEvent) -> None:
        obj = redact(event.raw)
        if isinstance(event, ResponsePart) and obj.get("text") != event.text:
            obj["text"] = event.text  # a plugin's after_receive change is what is shown
        self.emit(obj)

    def turn_end(self, turn: Turn) -> None:
        self.emit(
            {
                "event": "unith_shell.turn",
                "input_message_id": turn.message_id,
                "input": turn.input or turn.prompt,
                "sent": turn.prompt,
                "text": reply_text(turn.parts),
                "outcome": turn.outcome,
                "error": turn.error,
                "suggestions": turn.suggestions,
                "first_latency": turn.first_latency,
                "total_latency": turn.total_latency,
            }
        )

    def notice(self, level: str, text: str) -> None:
        self.emit({"event": "unith_shell.notice", "level": level, "text": text})

    def frame(self, direction: str, data: str | bytes) -> None:
        # ``/raw on``: each frame as one more object; the text is redacted and escaped.
        self.emit({"event": "unith_shell.frame", "direction": direction, "data": raw_line(data)})

    def write(self, text: str) -> None:
        self.emit({"event": "unith_shell.output", "text": text})


#: The longest input line (bytes); a longer one is skipped with its one error line.
MAX_LINE = 1 << 24


def _decode(raw: bytes) -> str:
    """One input line: UTF-8, invalid bytes as U+FFFD, the line ending dropped."""
    return raw.decode("utf-8", errors="replace").rstrip("\r\n")


async def _stdin_lines(stream: TextIO) -> AsyncIterator[str | None]:
    """Lines from stdin without blocking the loop (pipes); a regular file is read directly.

    Both read bytes and split them at ``\\n`` only, so a file gives the same lines as a pipe.
    A line longer than :data:`MAX_LINE` is read past in bounded pieces and yields ``None``.
    """
    loop = asyncio.get_running_loop()
    if not _watchable(stream):
        # A regular file (``< file``) or /dev/null cannot be watched; reading it never blocks
        # for long. Its bytes, not the text layer: that one would stop on invalid UTF-8.
        binary = getattr(stream, "buffer", None)
        if binary is None:  # an in-memory text stream
            for line in stream:
                yield line.rstrip("\r\n")
            return
        while raw := binary.readline(MAX_LINE + 1):
            if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
                while (rest := binary.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                    pass
                yield None
            else:
                yield _decode(raw)
        return
    reader = asyncio.StreamReader(limit=MAX_LINE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stream)
    while True:
        try:
            raw = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            raw = exc.partial  # the last line has no newline; b"" is the end
            if not raw:
                return
        except asyncio.LimitOverrunError:
            await _skip_line(reader)
            yield None
            continue
        yield _decode(raw)


async def _skip_line(reader: asyncio.StreamReader) -> None:
    """Read past the rest of an over-long line, at most ``limit`` bytes at a time."""
    while True:
        try:
            await reader.readuntil(b"\n")
            return
        except asyncio.IncompleteReadError:
            return
        except asyncio.LimitOverrunError as exc:
            await reader.readexactly(max(1, exc.consumed))


def _watchable(stream: TextIO) -> bool:
    """A pipe, socket or terminal: what ``connect_read_pipe`` can watch.

    Other character devices (``/dev/null`` under cron or ``ssh -n``) cannot be polled by
    epoll; they are read directly, like a file.
    """
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or (stat.S_ISCHR(mode) and stream.isatty())


async def _from_list(items: Iterable[str]) -> AsyncIterator[str | None]:
    for item in items:
        yield item


async def _connect(session: Session, view: View) -> bool:
    """The first connection (:func:`connect_retrying`); a failure is one error notice."""
    try:
        await connect_retrying(session)
    except SessionError as exc:
        view.notice("error", str(exc))
        return False
    return True


def _unanswered(session: Session) -> list[Turn]:
    return [t for t in (session.turn_in_flight, *session.pending) if t is not None]


def _gave_up(session: Session) -> bool:
    """The session will not connect again by itself: closed, or disconnected for good (the
    server ended the session, or refused the credentials). After ``conversation_end`` it
    reconnects for the next message, so that is not giving up."""
    state = session.state
    return state is State.CLOSED or (state is State.DISCONNECTED and not session.ended)


class _Link:
    """Waits for each line's reply, and notices when the connection is gone for good.

    Lost and not back within ``bound`` seconds (the per-turn timeout) while a line waits, or
    a session that gave up: the link is dead. The session is then closed (no more reconnect
    attempts) and every later line fails at once, each with its one error line.
    """

    #: How often a queued line checks the connection while it is down.
    POLL = 0.25

    def __init__(self, session: Session, bound: float, limit: float) -> None:
        self.session = session
        self.bound = bound
        self.limit = limit
        #: Why the connection is dead (set once); ``None`` while it is usable.
        self.dead: str | None = None

    async def settle(self, turn: Turn) -> str | None:
        """Wait until ``turn`` ends; return the error of a turn that got no full reply."""
        session = self.session
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limit
        down_since: float | None = None
        while not turn.complete:
            now = loop.time()
            if self.dead is not None:
                break
            if session.connected:
                down_since = None
            elif down_since is None:
                down_since = now
            if down_since is not None and (_gave_up(session) or now >= down_since + self.bound):
                why = session.last_error or "connection lost"
                if _gave_up(session):
                    self.dead = f"no connection ({why})"
                else:
                    within = f"not re-established in {self.bound:g} s"
                    self.dead = f"connection lost and {within} ({why})"
                break
            if now >= deadline:
                # A backstop: the session's own per-frame timeout normally ends the turn first.
                in_flight = session.turn_in_flight is turn
                turn.finish("timed out", f"no reply within {self.limit:g} s")
                session.cancel_pending()
                if in_flight:
                    await session.interrupt()  # the view shows what arrived, as for a cut
                break
            # In flight on a live socket, a loss ends the turn at once; otherwise check the
            # connection every POLL seconds.
            in_flight = session.connected and session.turn_in_flight is turn
            step = deadline - now if in_flight else min(self.POLL, deadline - now)
            with contextlib.suppress(TimeoutError):
                await session.wait(turn, timeout=step)
        if turn.complete and turn.ok:
            return None
        if self.dead is None and _gave_up(session) and not session.closing:
            # Failed because the session cannot go on (refused credentials on a reconnect,
            # the server's timeout): a connection failure, and the next lines need not wait.
            self.dead = f"no connection ({session.last_error or turn.error or 'closed'})"
        if self.dead is not None and not session.closing:
            await session.close()  # stop reconnecting: the remaining lines fail at once
        if turn.complete and turn.outcome != "cancelled":
            why = turn.error or turn.outcome or "failed"
            count = sum(1 for part in turn.parts if part.text)
            if not count:
                return why
            return f"{why}; reply cut short after {count} part{'s' if count > 1 else ''}"
        return f"not sent: {self.dead}" if self.dead is not None else "not sent"


async def run_pipe(
    settings: Settings,
    paths: Paths,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    record: str | None = None,
) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    view: _PipeView = JsonView(out) if settings.json else PlainView(out, err)
    # Not interactive: no REPL hints, /quit does not ask.
    shell = Shell(settings, paths, view=view, front_end=BasicFrontEnd(interactive=False))
    shell.load_plugins()
    await shell.start_plugins()
    session = shell.session
    try:
        if record is not None:
            # --record FILE: the /log recorder, on before the handshake so the greeting is in.
            from unith_shell.builtins.log import record_to

            try:
                record_to(shell.context("log"), Path(record).expanduser())
            except CommandError as exc:
                view.notice("error", str(exc))
                return EXIT_USAGE
        if not await _connect(session, view):
            return EXIT_CONNECT
        session.start(connected=True)
        lines = (
            _from_list(settings.messages)
            if settings.messages
            else _stdin_lines(stdin or sys.stdin or io.StringIO())
        )
        failed = False
        number = 0
        # A queued turn may wait through reconnects; past this it counts as failed.
        limit = settings.timeout * 2 + settings.connect_timeout
        link = _Link(session, bound=settings.timeout, limit=limit)
        async for line in lines:
            number += 1
            if view.closed:
                break  # nobody reads our output any more (``| head``): stop, quietly
            if line is None:
                view.notice("error", f"line {number}: longer than {MAX_LINE} bytes; not sent")
                failed = True
                continue
            if not line.strip():
                continue
            where = f"line {number} {line[:40]!r}"
            sent: list[Turn] = []
            if link.dead is not None and split_command(line) is None:
                view.notice("error", f"{where}: not sent: {link.dead}")
                failed = True
                continue
            if split_command(line) is not None:
                before = {id(t) for t in _unanswered(session)}
                view.context = f"line {number}"
                try:
                    await shell.handle_line(line)
                finally:
                    view.context = ""
                if shell.exit_requested:
                    break
                # A command may send (/send, /retry, a plugin's /shout): its replies, or its
                # errors, come before the next line.
                sent = [t for t in _unanswered(session) if id(t) not in before]
            else:
                turn = await shell.send(shell.message_text(line))
                if turn is None:
                    view.notice("error", f"{where}: not sent (cancelled by a plugin)")
                    failed = True
                    continue
                sent = [turn]
            for turn in sent:
                error = await link.settle(turn)
                if error is not None:
                    failed = True
                    view.notice("error", f"{where}: {error}")
        if link.dead is not None:
            return EXIT_CONNECT
        return EXIT_TURN if failed else EXIT_OK
    finally:
        try:
            await shell.stop()
        finally:
            view.flush()
