"""The non-terminal front end: lines in, replies (plain text or JSON Lines) out.

Every input line gets exactly one outcome, in input order: its reply, or an error line
naming it. Exit status: 0 ok, 3 authentication or connection failure, 4 a turn failed.
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
from unith_shell.config import Paths, Settings
from unith_shell.protocol import GREETING_ID, ResponsePart, ServerEvent, Turn, redact
from unith_shell.render import View, escape_text, raw_line
from unith_shell.sanitize import json_line, sanitize_block
from unith_shell.session import HandshakeRefused, JoinRefused, Session, SessionError, backoff
from unith_shell.shell import Shell

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

    def _put(self, stream: TextIO, text: str) -> None:
        if self.closed:
            return
        try:
            stream.write(text)
            stream.flush()
        except BrokenPipeError:
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
        if turn.ok and turn.message_id != GREETING_ID:
            text = escape_text(turn.text)
            listed = "".join(f"{i}) {escape_text(s)}\n" for i, s in enumerate(turn.suggestions, 1))
            self._put(self.out, self.scrub((text + "\n" if text else "") + listed))

    def notice(self, level: str, text: str) -> None:
        prefix = "error: " if level == "error" else ""
        where = f"{self.context}: " if self.context else ""
        self._put(self.err, self.scrub(prefix + where + text) + "\n")

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
                "text": turn.text,
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


async def _stdin_lines(stream: TextIO) -> AsyncIterator[str]:
    """Lines from stdin without blocking the loop (pipes); a regular file is read directly."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    if not _watchable(stream):
        # A regular file (``< file``) or an in-memory stream cannot be watched; reading it
        # never blocks for long.
        for line in stream:
            yield line.rstrip("\r\n")
        return
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stream)
    while True:
        raw = await reader.readline()
        if not raw:
            return
        yield raw.decode("utf-8", errors="replace").rstrip("\r\n")


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


async def _from_list(items: Iterable[str]) -> AsyncIterator[str]:
    for item in items:
        yield item


async def _connect(session: Session, view: View, attempts: int = 3) -> bool:
    """The first connection, with a short retry for what a retry can fix.

    A refused token gets a fresh login and high demand a second chance, as in the REPL; a
    refused connection or bad credentials fail at once (scripts want a quick exit 3).
    """
    for attempt in range(1, attempts + 1):
        try:
            await session.connect()
            return True
        except (HandshakeRefused, JoinRefused) as exc:
            if attempt == attempts:
                view.notice("error", str(exc))
                return False
            await asyncio.sleep(backoff(attempt, 0.2, 2.0))
        except SessionError as exc:
            view.notice("error", str(exc))
            return False
    return False


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
    shell = Shell(settings, paths, view=view)
    shell.load_plugins()
    await shell.start_plugins()
    session = shell.session
    try:
        if record is not None:
            # --record FILE: the /log recorder, on before the handshake so the greeting is in.
            from unith_shell.builtins.log import record_to

            try:
                record_to(shell, Path(record).expanduser())
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
        status = EXIT_OK
        number = 0
        # A queued turn may wait through reconnects; past this it counts as failed.
        limit = settings.timeout * 2 + settings.connect_timeout
        async for line in lines:
            number += 1
            if view.closed:
                break  # nobody reads our output any more (``| head``): stop, quietly
            if not line.strip():
                continue
            if split_command(line) is not None:
                view.context = f"line {number}"
                try:
                    await shell.handle_line(line)
                finally:
                    view.context = ""
                if shell.exit_requested:
                    break
                # A command may send (a plugin's /shout): its replies come before the next line.
                for sent in [t for t in (session.turn_in_flight, *session.pending) if t]:
                    with contextlib.suppress(TimeoutError):
                        await session.wait(sent, timeout=limit)
                continue
            turn = await shell.send(line[1:] if line.startswith("//") else line)
            if turn is None:
                view.notice("error", f"line {number}: not sent (cancelled by a plugin)")
                status = EXIT_TURN
                continue
            try:
                await session.wait(turn, timeout=limit)
            except TimeoutError:
                session.cancel_pending()
                if session.turn_in_flight is turn:
                    await session.interrupt()
                turn.finish("timed out", f"no reply within {limit:g} s")
            if not turn.ok:
                status = EXIT_TURN
                view.notice(
                    "error",
                    f"line {number} {line[:40]!r}: {turn.error or turn.outcome}",
                )
        return status
    finally:
        await shell.stop()
