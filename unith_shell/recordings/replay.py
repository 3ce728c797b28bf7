"""``unith-shell replay FILE``: send a recording's user turns again and compare the replies.

Each user turn goes out after the previous reply is complete, through the same
:class:`~unith_shell.shell.Shell` and session as pipe mode (plugins' hooks run as in the
shell). The new conversation is recorded by the ``/log`` recorder; after each turn the new
recording is read back and the turn compared with the original (:mod:`.diff`). A turn that was
a picked suggestion is picked again by its text when the new reply offers it.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TextIO

from unith_shell.builtins.log import record_to
from unith_shell.commands import CommandError
from unith_shell.files import Paths
from unith_shell.pipe import _connect
from unith_shell.protocol import ServerEvent
from unith_shell.recordings.diff import (
    EXIT_DIFFERENT,
    EXIT_SAME,
    EXIT_TROUBLE,
    DiffOptions,
    compare,
    compare_turns,
    greeting_diff,
    painter,
    render_turn,
    summary_line,
)
from unith_shell.recordings.format import Recording, RecordingError, load
from unith_shell.render import View, describe_event
from unith_shell.sanitize import sanitize
from unith_shell.settings import Settings
from unith_shell.shell import Shell

EXIT_CONNECT = 3


class ReplayView(View):
    """Replies are not shown (the comparison is); notices go to stderr, sanitised."""

    def __init__(self, err: TextIO) -> None:
        self.err = err

    def notice(self, level: str, text: str) -> None:
        prefix = "error: " if level == "error" else ""
        self.err.write(sanitize(self.scrub(prefix + text)) + "\n")
        self.err.flush()

    def write(self, text: str) -> None:
        self.notice("info", text)

    def event(self, event: ServerEvent) -> None:
        # No REPL hints (/retry, /reconnect): nobody can type them during a replay.
        described = describe_event(event, hints=False)
        if described is not None:
            self.notice(*described)


async def _settle() -> None:
    """Let frames already read off the socket (a conversation_end right after the last part)
    be dispatched and recorded before the new recording is read back."""
    for _ in range(5):
        await asyncio.sleep(0)


def _find_offered(text: str, offered: list[str]) -> str | None:
    for suggestion in offered:
        if suggestion == text:
            return suggestion
    folded = text.casefold().strip()
    return next((s for s in offered if s.casefold().strip() == folded), None)


async def replay(
    original: Recording,
    settings: Settings,
    paths: Paths,
    record_path: Path,
    opts: DiffOptions,
    out: TextIO,
    err: TextIO,
    color: bool = False,
) -> int:
    """Replay ``original`` to the head in ``settings``; 0 same, 1 different, 3 no connection."""
    paint = painter(color)

    def say(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    view = ReplayView(err)
    shell = Shell(settings, paths, view=view)
    shell.load_plugins()
    await shell.start_plugins()
    session = shell.session
    try:
        try:
            record_to(shell.context("log"), record_path)
        except CommandError as exc:
            view.notice("error", str(exc))
            return EXIT_TROUBLE
        if not await _connect(session, view):
            return EXIT_CONNECT
        session.start(connected=True)
        await _settle()
        with contextlib.suppress(RecordingError):
            greeting = greeting_diff(original, load(record_path), opts)
            if greeting is not None:
                for line in render_turn(greeting, opts, paint):
                    say(line)
        limit = settings.timeout * 2 + settings.connect_timeout
        for index, recorded in enumerate(original.turns):
            text = recorded.user
            if recorded.picked:
                offered = list(shell.suggestions)
                chosen = _find_offered(text, offered)
                if chosen is None:
                    say(
                        f"turn {index + 1}: suggestion {sanitize(repr(text))} is not offered "
                        "now; sending it as text"
                    )
                else:
                    text = chosen
            turn = await shell.send(text)
            if turn is None:
                say(f"turn {index + 1}: not sent (cancelled by a plugin)")
                continue
            try:
                await session.wait(turn, timeout=limit)
            except TimeoutError:
                session.cancel_pending()
                if session.turn_in_flight is turn:
                    await session.interrupt()
                turn.finish("timed out", f"no reply within {limit:g} s")
            await _settle()
            with contextlib.suppress(RecordingError):
                so_far = load(record_path)
                new = so_far.turns[index] if index < len(so_far.turns) else None
                for line in render_turn(compare_turns(index + 1, recorded, new, opts), opts, paint):
                    say(line)
    finally:
        await shell.stop()
    try:
        diffs = compare(original, load(record_path), opts)
    except RecordingError as exc:
        view.notice("error", str(exc))
        return EXIT_TROUBLE
    say(summary_line(diffs))
    return EXIT_SAME if all(d.equal for d in diffs) else EXIT_DIFFERENT
