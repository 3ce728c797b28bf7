"""The host that joins session, plugins, commands and a view; front ends drive it.

Plugins see it only through :class:`~unith_shell.context.Context`; the front end (REPL, pipe
mode, a test) is passed in as a :class:`~unith_shell.context.FrontEnd`.

In: a line -> a command, or ``before_send`` hooks -> the session's queue -> the socket.
Out: the socket -> parse -> ``after_receive`` hooks -> turn assembly -> the view.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from unith_shell import api
from unith_shell.commands import (
    Command,
    CommandError,
    CommandRegistry,
    decorated_commands,
    literal_text,
    split_command,
)
from unith_shell.context import BasicFrontEnd, Context, FrontEnd, SessionView
from unith_shell.files import Paths
from unith_shell.plugins import PluginError, Plugins, allowlist
from unith_shell.protocol import (
    GREETING_ID,
    Join,
    ProtocolError,
    ResponsePart,
    ServerEvent,
    TimeoutWarning,
    UserMessage,
)
from unith_shell.render import HumanView, Style, View, escape_text
from unith_shell.sanitize import sanitize
from unith_shell.session import Session, SessionListener, State
from unith_shell.settings import Settings, session_options
from unith_shell.turn import Turn


def color_enabled(stream: Any, env: Mapping[str, str]) -> bool:
    if env.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and env.get("TERM") != "dumb"


class Shell(SessionListener):
    """One running shell: settings, session, plugins, command registry and a view."""

    def __init__(
        self,
        settings: Settings,
        paths: Paths,
        *,
        view: View | None = None,
        env: Mapping[str, str] | None = None,
        write: Callable[[str], None] | None = None,
        front_end: FrontEnd | None = None,
    ) -> None:
        self.settings = settings
        self.paths = paths
        self.env = dict(os.environ if env is None else env)
        self._write = write or (lambda text: print(text, flush=True))
        self.style = Style(color=color_enabled(sys.stdout, self.env))
        self._secrets: list[str] = []
        self._secrets_of: object = object()  # the credentials _secrets was computed for
        self.view: View = view or HumanView(self._write, self.style, self.speaker)
        self.view.scrub = self.scrub
        self.front_end: FrontEnd = front_end or BasicFrontEnd()
        self.registry = CommandRegistry()
        #: Each plugin's ``ctx`` (and so its ``ctx.state``), made on first use.
        self._contexts: dict[str, Context] = {}
        self.plugins = Plugins(
            strict=settings.strict_plugins,
            trace=settings.trace_plugins,
            notify=lambda text: self.notice(text, level="warn"),
            context=self.context,
        )
        self.session = Session(session_options(settings), self)
        self.api = self.session.api
        #: The last reply's suggestions while they are shown: a bare number picks one.
        self.suggestions: list[str] = []
        #: Set by ``ctx.request_exit()`` (``/quit``): the front end exits after the command.
        self.exit_requested = False
        #: The turn of the most recent message given to :meth:`send` (what ``/retry`` checks).
        self.last_message: Turn | None = None
        self._labelled: set[int] = set()
        #: Set by a first ``/quit`` or Ctrl+D while messages wait for a reply; the next exits.
        self.quit_asked = False

    @property
    def interactive(self) -> bool:
        """False in pipe mode: no REPL-only hints (``/retry``, Ctrl+D), no quit confirmation."""
        return self.front_end.interactive

    def attach_front_end(self, front_end: FrontEnd) -> None:
        """The front end that drives this shell from now on (the REPL, once its prompt
        exists)."""
        self.front_end = front_end
        front_end.refresh()

    def context(self, plugin: str) -> Context:
        """The ``ctx`` of ``plugin``: the same object (and ``state``) for the shell's life."""
        ctx = self._contexts.get(plugin)
        if ctx is None:
            ctx = self._contexts[plugin] = Context(self, plugin, {})
        return ctx

    # ---- start and stop -----------------------------------------------------------------------

    def load_plugins(self) -> None:
        given = [Path(d).expanduser() for d in self.settings.plugins_dirs]
        for folder in given:
            if not folder.is_dir():  # a folder asked for by name should exist
                self.notice(f"--plugins-dir {folder}: no such folder", level="warn")
        dirs = [self.paths.plugins_dir, *given]
        self.plugins.load_all(
            env=self.env,
            plugins_dirs=dirs,
            extra=self.settings.plugins,
            no_plugins=self.settings.no_plugins,
        )
        for name in list(self.plugins.infos):
            self.register_commands_of(name)

    def register_commands_of(self, plugin: str) -> None:
        """Add ``plugin``'s commands: its ``@command`` functions and its ``register_commands``."""

        def register(name: str, handler: Any, **kwargs: Any) -> Command | None:
            try:
                command = self.registry.register(name, handler, plugin=plugin, **kwargs)
            except (ValueError, TypeError) as exc:
                self.notice(f"plugin {plugin!r}: command not added: {exc}", level="warn")
                return None
            for alias, owner in command.dropped_aliases:
                self.notice(
                    f"plugin {plugin!r}: alias /{alias} of /{command.name} not added: "
                    f"/{alias} is taken by /{owner}",
                    level="warn",
                )
            return command

        module = self.plugins.pm.get_plugin(plugin)
        for name, handler, meta in decorated_commands(module):
            register(name, handler, **meta)
        self.plugins.call_now("register_commands", only=plugin, register=register)

    async def start_plugins(self, only: str | None = None) -> None:
        await self.plugins.call("shell_start", only=only, shell=self)

    async def stop(self) -> None:
        await self.session.close()
        await self.plugins.call("shell_exit", shell=self)
        await api.close_clients()

    async def reload_plugins(self) -> list[str]:
        """Forget every plugin loaded from a file, then load the plugin folders and files
        again; return the names loaded. New files are picked up, removed ones are gone;
        entry points and bundled plugins stay as they are (a changed package needs a new
        shell)."""
        plugins = self.plugins
        files = [info for info in plugins.infos.values() if info.path]
        for info in files:
            self.registry.unregister_plugin(info.name)
            plugins.unregister(info.name)
            self._contexts.pop(info.name, None)  # a fresh start: a new ctx.state
        plugins.load_errors.clear()
        before = set(plugins.infos)
        if not self.settings.no_plugins:
            allow = allowlist(self.env)
            dirs = [
                self.paths.plugins_dir,
                *(Path(d).expanduser() for d in self.settings.plugins_dirs),
            ]
            for folder in dirs:
                plugins.load_folder(folder, allow)
            for info in files:
                if info.source == "command line":
                    plugins.load_file(Path(info.path), source="command line")
        loaded = [name for name in plugins.infos if name not in before]
        for name in loaded:
            self.register_commands_of(name)
            await self.start_plugins(only=name)
        return loaded

    # ---- lines --------------------------------------------------------------------------------

    async def handle_line(self, line: str) -> None:
        """Route one line: a ``/command``, a suggestion number, or a message."""
        if not line.strip():
            return
        parsed = split_command(line)
        if parsed is not None:
            await self.run_command(*parsed)
            return
        await self.send(self.message_text(line))

    def message_text(self, line: str) -> str:
        """What a plain line sends: a bare number picks a suggestion of the last reply while
        they are shown and it is in range; anything else (``//text`` as ``/text``) is text.

        Pipe mode and the REPL both route through here, so they agree. ``/send`` skips it.
        """
        stripped = line.strip()
        if stripped.isascii() and stripped.isdigit() and len(stripped) < 6:
            number = int(stripped)
            if 1 <= number <= len(self.suggestions):
                return self.suggestions[number - 1]
        return literal_text(line)

    def waiting(self) -> int:
        """Messages with no reply yet: the one in flight plus those queued."""
        session = self.session
        return len(session.pending) + (session.turn_in_flight is not None)

    def confirm_quit(self) -> bool:
        """True if the shell may exit now. With messages still waiting for a reply, the first
        ``/quit`` or Ctrl+D says how many and returns False; the next one exits."""
        waiting = self.waiting()
        if not self.interactive or self.exit_requested or self.quit_asked or not waiting:
            return True
        self.quit_asked = True
        what = "message is" if waiting == 1 else "messages are"
        self.notice(
            f"{waiting} {what} still waiting for a reply; Ctrl+D or /quit again to exit",
            level="warn",
        )
        return False

    async def run_command(self, name: str, arg: str) -> None:
        command = self.registry.get(name)
        if command is None:
            close = self.registry.closest(name)
            hint = f"; did you mean /{close}?" if close else "; /help lists commands"
            self.notice(f"unknown command /{name}{hint}", level="error")
            return
        try:
            await command.run(self.context(command.plugin).for_command(command.name), arg)
        except CommandError as exc:
            self.notice(f"/{command.name}: {exc}", level="error")
        except PluginError:
            raise
        except api.APIError as exc:
            self.notice(f"/{command.name}: {exc}", level="error")
        except Exception as exc:
            if self.plugins.strict:
                raise
            owner = f" (plugin {command.plugin!r})" if command.plugin else ""
            self.notice(
                f"/{command.name}{owner} failed: {type(exc).__name__}: {exc}", level="error"
            )

    async def send(self, text: str) -> Turn | None:
        self.suggestions = []
        self.quit_asked = False  # one more message waits: the next /quit or Ctrl+D asks again
        turn = await self.session.send(text)
        if turn is not None:
            self.last_message = turn
        state = self.session.state
        # Pipe mode reports every line's outcome itself: no "pending" notes there.
        if turn is not None and state is not State.CONNECTED and self.interactive:
            if state is State.DISCONNECTED and self.session.last_error:
                why = f"not connected ({self.session.last_error}); /reconnect to try again"
                self.notice(f"pending: {text[:40]!r}: {why}", level="warn")
            else:
                self.notice(f"pending: {text[:40]!r} goes out once connected", level="info")
        self.front_end.refresh()
        return turn

    # ---- output -------------------------------------------------------------------------------

    def print(self, text: str) -> None:
        self.view.write(text)

    def notice(self, text: str, level: str = "info") -> None:
        """A one-line message. Notices quote server text (close reasons, ``detail``, URLs),
        so they are escaped here, in one place, and known secret values are masked."""
        self.view.notice(level, escape_text(self.scrub(text)))

    def secret_values(self) -> list[str]:
        """The values that must never be shown: api key, a non-default password, the token."""
        values = [self.settings.api_key]
        if self.settings.password != api.DEFAULT_PASSWORD:
            values.append(self.settings.password)
        creds = self.session.credentials
        if creds is not None:
            values.append(creds.access_token)
        return [v for v in values if len(v) >= 4]

    def scrub(self, text: str) -> str:
        """``text`` with every known secret value replaced by ``***``."""
        creds = self.session.credentials
        if creds is not self._secrets_of:  # recomputed only after a new login
            self._secrets = self.secret_values()
            self._secrets_of = creds
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def speaker(self) -> str:
        info = self.session.head_info or {}
        alias = info.get("alias") or info.get("name")
        # One line: the label of each reply and the prompt's {alias} (server text, gated).
        return sanitize(str(alias) if alias else self.session.options.head)

    @property
    def connection_state(self) -> str:
        """``connected``, ``disconnected``, ... or ``reconnecting (attempt N, next in T s)``."""
        return SessionView(self).connection

    @property
    def turn_state(self) -> str:
        """``idle``, ``waiting`` or ``streaming``."""
        return SessionView(self).turn

    # ---- SessionListener -------------------------------------------------------------------

    async def on_state(self, session: Session) -> None:
        self.front_end.refresh()

    async def on_frame(self, session: Session, direction: str, data: str | bytes) -> None:
        if self.view.raw:
            # Key-based redaction happens in the view; a secret typed into a message is
            # masked by value here.
            self.view.frame(direction, self.scrub(data) if isinstance(data, str) else data)
        if (hook := self.plugins.hook.on_frame) is not None and (
            pending := hook(direction=direction, data=data, session=session)
        ) is not None:
            await pending

    async def before_send(self, session: Session, message: UserMessage) -> None:
        if (hook := self.plugins.hook.before_send) is not None and (
            pending := hook(message=message, session=session)
        ) is not None:
            await pending
        if message.cancelled is not None:
            self.notice(f"not sent: {message.cancelled}", level="warn")

    async def on_event(self, session: Session, event: ServerEvent) -> None:
        if (hook := self.plugins.hook.after_receive) is not None and (
            pending := hook(event=event, session=session)
        ) is not None:
            await pending
        if isinstance(event, Join) and session.state is not State.CONNECTED:
            return  # a join refused during the handshake is reported once, as the error
        if isinstance(event, TimeoutWarning):
            if session.options.keep_alive:
                action = "; keeping the session alive"
            else:
                action = "; /keep to stay" if self.interactive else ""
            self.notice(f"inactivity warning: the session will time out soon{action}", "warn")
            return
        self.view.event(event)

    def _repeat_greeting(self, session: Session, turn: Turn) -> bool:
        # After a reconnect the server greets again; one "reconnected" line says enough.
        return turn.message_id == GREETING_ID and session.connections > 0

    async def on_parts(self, session: Session, turn: Turn, parts: list[ResponsePart]) -> None:
        if self._repeat_greeting(session, turn):
            return
        key = id(turn)
        first = key not in self._labelled and any(p.text for p in parts)
        if first:
            self._labelled.add(key)
        self.view.parts(turn, parts, first)
        self.front_end.refresh()

    async def on_turn_complete(self, session: Session, turn: Turn) -> None:
        self._labelled.discard(id(turn))
        if self._repeat_greeting(session, turn):
            pass  # not shown, so its suggestions must not replace the ones on screen
        elif turn.outcome in ("last", "choice"):
            self.suggestions = list(turn.suggestions)
        if not self._repeat_greeting(session, turn):
            self.view.turn_end(turn)
        if (hook := self.plugins.hook.turn_complete) is not None and (
            pending := hook(turn=turn, session=session)
        ) is not None:
            await pending
        self.front_end.refresh()

    async def on_protocol_error(self, session: Session, error: ProtocolError) -> None:
        self.notice(f"bad frame from the server: {error.reason}", level="warn")

    async def on_notice(self, session: Session, text: str) -> None:
        self.notice(text, level="warn")

    async def on_connect(self, session: Session) -> None:
        if session.connections > 1:
            self.notice(f"reconnected to {session.options.org}/{session.options.head}")
        if (hook := self.plugins.hook.on_connect) is not None and (
            pending := hook(session=session)
        ) is not None:
            await pending
        self.front_end.refresh()

    async def on_disconnect(self, session: Session, reason: str) -> None:
        if (hook := self.plugins.hook.on_disconnect) is not None and (
            pending := hook(session=session, reason=reason)
        ) is not None:
            await pending
        self.front_end.refresh()
