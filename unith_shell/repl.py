"""The interactive front end: one reused prompt-toolkit ``PromptSession``.

Replies are printed above the prompt (:class:`AbovePrompt`) while the user types; the socket is
read by the session's own task. Ctrl+C clears the line, or stops waiting for the reply in
flight; Ctrl+D on an empty line (or ``/quit``) closes the socket and exits 0, after asking
once if messages are still waiting for a reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import errno
import os
import signal
import stat
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO, cast

from prompt_toolkit import PromptSession
from prompt_toolkit.application import get_app_or_none, get_app_session, run_in_terminal
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import HTML, to_formatted_text
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.shortcuts import clear

from unith_shell.files import ensure_private_dir, open_private
from unith_shell.shell import Shell


class PrivateHistory(FileHistory):
    """``FileHistory`` in a 0600 file that never stores a line carrying a secret.

    A line that starts with a space is not stored either (as with bash's ignorespace). A file
    that cannot be read or written (read-only folder, a folder in its place, a symbolic link,
    a full disk) gives one warning; the session then keeps its history in memory only.
    """

    def __init__(self, path: Path, shell: Shell) -> None:
        super().__init__(str(path))
        self.path = path
        self.shell = shell
        self.failed = False
        try:
            ensure_private_dir(path.parent)
            open_private(path, "a").close()
        except OSError as exc:
            self._give_up(exc)

    def _give_up(self, exc: OSError) -> None:
        if self.failed:
            return
        self.failed = True
        why = exc.strerror or type(exc).__name__
        self.shell.notice(
            f"history file {self.path}: {why}; history is kept in memory for this session",
            level="warn",
        )

    def load_history_strings(self) -> Iterable[str]:
        if self.failed:
            return []
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(self.path, flags | getattr(os, "O_CLOEXEC", 0))
            with os.fdopen(fd, "rb") as fh:
                # Only a regular file: a link to /dev/zero or a FIFO would never end.
                if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                    raise OSError(errno.EINVAL, "not a regular file")
                data = fh.read()
        except FileNotFoundError:
            return []
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                exc = OSError(errno.ELOOP, "is a symbolic link (not followed)")
            self._give_up(exc)
            return []
        return _parse_history(data.decode("utf-8", errors="replace"))

    def store_string(self, string: str) -> None:
        if self.failed or string.startswith(" ") or _carries_secret(string, self.shell):
            return
        # FileHistory's format ("# time" then "+line" per line), written without following a
        # symbolic link planted at the path and without touching the file's mode.
        text = string.encode("utf-8", errors="replace").decode("utf-8")  # lone surrogates
        lines = "".join(f"+{line}\n" for line in text.split("\n"))
        try:
            with open_private(self.path, "a", tighten_existing=False) as fh:
                fh.write(f"\n# {datetime.datetime.now()}\n{lines}")
        except OSError as exc:
            self._give_up(exc)


def _parse_history(text: str) -> list[str]:
    """FileHistory's format, newest first: entries of "+"-prefixed lines between comments."""
    entries: list[str] = []
    lines: list[str] = []
    for line in text.splitlines(keepends=True):
        if line.startswith("+"):
            lines.append(line[1:])
        elif lines:
            entries.append("".join(lines)[:-1])
            lines = []
    if lines:
        entries.append("".join(lines)[:-1])
    entries.reverse()
    return entries


def _carries_secret(line: str, shell: Shell) -> bool:
    return any(secret in line for secret in shell.secret_values())


class ShellCompleter(Completer):
    """Slash commands and their arguments, straight from the command registry."""

    def __init__(self, shell: Shell) -> None:
        self.shell = shell

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        text = document.text_before_cursor
        if not text.startswith("/") or text.startswith("//") or "\n" in text:
            return
        registry = self.shell.registry
        if " " not in text:
            word = text[1:].lower()
            for name in registry.names():
                if name.startswith(word):
                    yield Completion(
                        "/" + name,
                        start_position=-len(text),
                        display_meta=registry.commands[name].help,
                    )
            return
        name, _, rest = text[1:].partition(" ")
        command = registry.get(name)
        if command is None:
            return
        current = rest.rsplit(" ", 1)[-1]
        ctx = self.shell.context(command.plugin).for_command(command.name)
        try:
            words = command.completions(ctx, current)
        except Exception:  # a plugin's completer must not break typing
            return
        for word in words:
            yield Completion(word, start_position=-len(current))


class ReplFrontEnd:
    """The REPL as the shell's front end: a repaint of the toolbar, the screen to clear."""

    interactive = True

    def __init__(self, prompt: PromptSession[str]) -> None:
        self.prompt = prompt

    def refresh(self) -> None:
        app = self.prompt.app
        if app.is_running:
            app.invalidate()

    def clear_screen(self) -> None:
        clear()


async def _interrupt_turn(shell: Shell) -> None:
    await shell.session.interrupt()


def build_key_bindings(shell: Shell) -> KeyBindings:
    bindings = KeyBindings()

    @bindings.add("c-c")
    def _interrupt(event: KeyPressEvent) -> None:
        # Stop waiting for a reply if one is in flight (keep what is typed); else clear.
        if shell.session.turn_in_flight is not None:
            event.app.create_background_task(_interrupt_turn(shell))
        else:
            event.app.current_buffer.reset()

    @bindings.add("escape", "enter")
    def _newline(event: KeyPressEvent) -> None:
        event.app.current_buffer.insert_text("\n")

    @bindings.add("c-d")
    def _eof(event: KeyPressEvent) -> None:
        buffer = event.app.current_buffer
        if buffer.text:
            buffer.delete()
        elif shell.confirm_quit():  # with replies still due, it asks once first
            event.app.exit(exception=EOFError)

    return bindings


def toolbar_text(shell: Shell) -> str:
    session = shell.session
    opts = session.options
    parts = [f"{opts.org}/{opts.head}", shell.connection_state, shell.turn_state]
    pending = len(session.pending)
    if pending:
        parts.append(f"{pending} pending")
    turn = session.last_turn
    if turn is not None and turn.first_latency is not None:
        latency = f"first {turn.first_latency * 1000:.0f} ms"
        if turn.ok and turn.total_latency is not None:
            latency += f", all {turn.total_latency * 1000:.0f} ms"
        elif turn.complete:
            latency += f", {turn.outcome}"
        parts.append(latency)
    return " " + " | ".join(parts) + "   /help "


class AbovePrompt:
    """``sys.stdout``/``sys.stderr`` while the REPL runs: text is printed above the prompt.

    prompt-toolkit's ``StdoutProxy`` hands lines to a thread that repaints and then sleeps
    (0.2 s by default; 20 ms here before) to batch the next ones, so a reply's last part
    showed up that late. This batches by event-loop pass instead: the complete lines written
    during one pass (every frame of a socket read: the whole reply when it came in one read)
    go out together at the end of that pass, with one repaint; while a repaint runs, lines
    collect for the next. A reply appears as soon as it is complete, and a flood of parts
    costs one repaint per pass, never one per line. A partial line waits for its newline or
    an explicit ``flush()``. No thread: writes from another thread are handed to the loop.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.get_ident()
        self._output = get_app_session().output
        self._pending: list[str] = []
        self._flush_partial = False
        self._scheduled = False
        self._painting = False
        self.closed = False

    # -- the TextIO subset print() and plugins use -------------------------------------------

    def write(self, text: str) -> int:
        if not text:
            return 0
        if self.closed:  # the prompt is gone (a thread's late write): straight out
            self._write_now(text)
            return len(text)
        if threading.get_ident() != self._thread:
            try:
                self._loop.call_soon_threadsafe(self.write, text)
            except RuntimeError:  # the loop is closed: nothing is drawn any more
                self._write_now(text)
            return len(text)
        self._pending.append(text)
        if "\n" in text:
            self._schedule()
        return len(text)

    def flush(self) -> None:
        if threading.get_ident() != self._thread:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self.flush)
            return
        if self._pending:
            self._flush_partial = True
            self._schedule()

    def fileno(self) -> int:
        return self._output.fileno()

    def isatty(self) -> bool:
        stdout = self._output.stdout
        return stdout is not None and stdout.isatty()

    @property
    def encoding(self) -> str:
        return self._output.encoding()

    @property
    def errors(self) -> str:
        return "strict"

    # -- painting ---------------------------------------------------------------------------

    def _schedule(self) -> None:
        if not self._scheduled and not self._painting:
            self._scheduled = True
            self._loop.call_soon(self._paint)  # runs after this pass's callbacks

    def _take(self) -> str:
        text = "".join(self._pending)
        self._pending.clear()
        if not self._flush_partial:
            text, newline, tail = text.rpartition("\n")
            text += newline
            if tail:
                self._pending.append(tail)
        self._flush_partial = False
        return text

    def _paint(self) -> None:
        self._scheduled = False
        text = self._take()
        if not text:
            return
        app = get_app_or_none()
        if app is None or not app.is_running:
            self._write_now(text)
            return
        self._painting = True
        done = run_in_terminal(lambda: self._write_now(text))
        cast("asyncio.Future[None]", done).add_done_callback(self._painted)

    def _painted(self, future: asyncio.Future[None]) -> None:
        self._painting = False
        if not future.cancelled():
            future.exception()  # retrieved: a failed repaint must not be logged at exit
        if self._flush_partial or any("\n" in text for text in self._pending):
            self._schedule()

    def _write_now(self, text: str) -> None:
        output = self._output
        output.enable_autowrap()
        output.write_raw(text)
        output.flush()

    def close(self) -> None:
        """Write what is left at once (the prompt is gone by now)."""
        if self.closed:
            return
        self.closed = True
        self._flush_partial = True
        text = self._take()
        if text:
            self._write_now(text)


@contextlib.contextmanager
def _above_prompt() -> Iterator[None]:
    """Route ``print`` (and plugins' writes) through :class:`AbovePrompt` while it lasts."""
    proxy = AbovePrompt(asyncio.get_running_loop())
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = cast(TextIO, proxy)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = stdout, stderr
        proxy.close()


def prompt_text(shell: Shell) -> str:
    opts = shell.session.options
    try:
        return shell.settings.prompt.format(head=opts.head, org=opts.org, alias=shell.speaker())
    except (KeyError, IndexError, ValueError):
        return f"{opts.head}> "


async def run_repl(shell: Shell) -> int:
    settings = shell.settings
    history: History
    if settings.history:
        history = PrivateHistory(shell.paths.history_file, shell)
    else:
        history = InMemoryHistory()
    prompt: PromptSession[str] = PromptSession(
        history=history,
        auto_suggest=AutoSuggestFromHistory(),
        completer=ShellCompleter(shell),
        complete_while_typing=True,
        key_bindings=build_key_bindings(shell),
        bottom_toolbar=lambda: to_formatted_text(HTML("<b>{}</b>").format(toolbar_text(shell))),
        refresh_interval=0.5,
        enable_history_search=False,
        mouse_support=False,
    )

    shell.attach_front_end(ReplFrontEnd(prompt))
    try:
        settings.prompt.format(head="", org="", alias="")
    except (KeyError, IndexError, ValueError) as exc:
        shell.notice(f"prompt template {settings.prompt!r} is invalid ({exc!r}); using the default")
    with _above_prompt():
        shell.load_plugins()
        # Connect while the prompt is being built: the greeting arrives above it.
        shell.session.start()
        try:
            await shell.start_plugins()
            await _loop(shell, prompt)
        finally:
            # Also on an unexpected error: the socket is closed properly, plugins told.
            await shell.stop()
    return 0


async def _loop(shell: Shell, prompt: PromptSession[str]) -> None:
    loop = asyncio.get_running_loop()
    while not shell.exit_requested:
        try:
            line = await prompt.prompt_async(prompt_text(shell))
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        # The line just accepted stays on screen: a reply's next part is labelled again.
        shell.view.break_flow()
        task = loop.create_task(shell.handle_line(line))
        # Ctrl+C while a command runs (no prompt to catch it) cancels that command.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not task.cancelled() or (current is not None and current.cancelling()):
                raise  # run_repl itself is being cancelled, not just the command
            shell.notice("interrupted", level="warn")
        except Exception as exc:
            if shell.plugins.strict:
                raise
            # A bug of ours must not end a shell someone keeps open all day: one line, go on.
            shell.notice(f"internal error: {type(exc).__name__}: {exc}", level="error")
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGINT)
