"""The plugin contract: what a command handler or a hook implementation may use.

Every plugin, bundled or third-party, gets a :class:`Context`: as ``ctx`` in a command
handler ``handler(ctx, arg)``, and as the ``ctx`` argument of any hook (each plugin gets its
own, so ``ctx.state`` is private to it). Nothing else of the shell is part of the contract;
docs/plugins.md documents every public name here, and a test keeps the bundled plugins to it.

The front end (REPL, pipe mode, a test) is passed to the shell as a :class:`FrontEnd`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from unith_shell.api import UnithAPI
    from unith_shell.commands import Command, CommandRegistry
    from unith_shell.files import Paths
    from unith_shell.plugins import PluginInfo
    from unith_shell.session import Session, State
    from unith_shell.settings import Settings
    from unith_shell.shell import Shell
    from unith_shell.turn import Turn


class FrontEnd(Protocol):
    """What the shell needs from the program that drives it (REPL, pipe mode, tests).

    Output itself goes through the shell's ``View``; this is the rest.
    """

    #: False in pipe mode: no REPL-only hints, no quit confirmation.
    interactive: bool

    def refresh(self) -> None:
        """Something shown outside the scrolling output changed (toolbar, prompt)."""

    def clear_screen(self) -> None:
        """Clear the terminal (``/clear``)."""


class BasicFrontEnd:
    """A front end with no screen of its own: refresh and clear do nothing."""

    def __init__(self, interactive: bool = True) -> None:
        self.interactive = interactive

    def refresh(self) -> None:
        return None

    def clear_screen(self) -> None:
        return None


class SessionView:
    """A read-only view of the session, plus the few actions a command may take on it."""

    __slots__ = ("_shell",)

    def __init__(self, shell: Shell) -> None:
        self._shell = shell

    @property
    def _session(self) -> Session:
        return self._shell.session

    @property
    def state(self) -> State:
        """``State.CONNECTED``, ``DISCONNECTED``, ``CONNECTING``, ``RECONNECTING``, ``CLOSED``."""
        return self._session.state

    @property
    def connection(self) -> str:
        """The state in words: ``connected``, ``reconnecting (attempt N, next in T s)``, ..."""
        session = self._session
        if session.state.value == "reconnecting" and session.next_attempt_at is not None:
            wait = max(0.0, session.next_attempt_at - time.monotonic())
            return f"reconnecting (attempt {session.attempt}, next in {wait:.1f} s)"
        return session.state.value

    @property
    def connected(self) -> bool:
        return self._session.connected

    @property
    def turn(self) -> str:
        """``idle``, ``waiting`` (for a first part) or ``streaming``."""
        turn = self._session.turn_in_flight
        if turn is None:
            return "idle"
        return "streaming" if turn.first_part_at is not None else "waiting"

    @property
    def org(self) -> str:
        return self._session.options.org

    @property
    def head(self) -> str:
        return self._session.options.head

    @property
    def base_url(self) -> str:
        """The server's base URL as configured (may hold ``user:pass@``: use ``display_url``)."""
        return self._session.options.base_url

    @property
    def has_api_key(self) -> bool:
        return bool(self._session.options.api_key)

    @property
    def head_info(self) -> Mapping[str, Any] | None:
        """The head's configuration as the server sent it (server text: escape it)."""
        return self._session.head_info

    @property
    def user_id(self) -> str | None:
        creds = self._session.credentials
        return creds.user_id if creds else None

    @property
    def session_id(self) -> str | None:
        creds = self._session.credentials
        return (creds.session_id or None) if creds else None

    @property
    def token_expires_in(self) -> float | None:
        """Seconds until the login token expires (negative: expired), ``None`` if unknown."""
        creds = self._session.credentials
        return creds.expires_in() if creds else None

    @property
    def pending(self) -> int:
        """Messages queued for the socket, not yet sent."""
        return len(self._session.pending)

    @property
    def waiting(self) -> int:
        """Messages with no reply yet: the one in flight plus those queued."""
        return self._shell.waiting()

    @property
    def last_turn(self) -> Turn | None:
        """The turn of the message sent last (on the socket)."""
        return self._session.last_turn

    @property
    def last_message(self) -> Turn | None:
        """The turn of the most recent message given to the shell (sent, queued or failed),
        not counting one a plugin cancelled."""
        return self._shell.last_message

    @property
    def last_error(self) -> str | None:
        return self._session.last_error or None

    @property
    def api(self) -> UnithAPI:
        """The REST client: ``await ctx.session.api.head_info(org, head, api_key)``, ..."""
        return self._session.api

    async def send(self, text: str) -> Turn | None:
        """The same as ``ctx.send(text)`` (the docs' first example uses this spelling): one
        send path, ``before_send`` hooks included."""
        return await self._shell.send(text)

    def reconnect(self) -> None:
        """Drop the socket and connect again (a fresh handshake)."""
        self._session.reconnect()

    async def keep(self) -> None:
        """Ask the server to keep the session alive (after an inactivity warning)."""
        await self._session.keep_session()

    async def switch(self, org: str, head: str) -> None:
        """Close this conversation and connect to ``org/head``; on failure the session goes
        back to the old head and the error is raised."""
        await self._session.switch(org, head)
        self._shell.front_end.refresh()


class CommandsView:
    """The command registry, read-only: ``get``, ``names``, iteration."""

    __slots__ = ("_registry",)

    def __init__(self, registry: CommandRegistry) -> None:
        self._registry = registry

    def get(self, name: str) -> Command | None:
        """The command called ``name`` (or an alias of it), case-insensitive."""
        return self._registry.get(name)

    def names(self) -> list[str]:
        return self._registry.names()

    def __iter__(self) -> Iterator[Command]:
        return iter([self._registry.commands[n] for n in self._registry.names()])

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._registry.get(name) is not None


class PluginsView:
    """The plugin manager as far as a plugin may use it."""

    __slots__ = ("_owner", "_shell")

    def __init__(self, shell: Shell, owner: str) -> None:
        self._shell = shell
        self._owner = owner

    @property
    def infos(self) -> tuple[PluginInfo, ...]:
        """Every loaded plugin: name, source, version, path, hooks, disabled hooks."""
        return tuple(self._shell.plugins.infos.values())

    @property
    def load_errors(self) -> tuple[str, ...]:
        return tuple(self._shell.plugins.load_errors)

    @property
    def trace(self) -> bool:
        return self._shell.plugins.trace

    @trace.setter
    def trace(self, on: bool) -> None:
        self._shell.plugins.trace = on

    def add(self, plugin: object, name: str) -> bool:
        """Register an object with ``@hookimpl`` methods while the shell runs; False (and a
        one-line notice) if it is refused."""
        return self._shell.plugins.add(plugin, name, source=f"added by {self._owner}")

    def remove(self, name: str) -> None:
        """Unregister a plugin added with :meth:`add` (its hooks stop at once)."""
        self._shell.plugins.unregister(name)

    async def reload(self) -> list[str]:
        """Reload plugin files (folders and ``--plugin`` files); return the names loaded."""
        return await self._shell.reload_plugins()


class Context:
    """What a plugin gets, as ``ctx``: see docs/plugins.md for the contract."""

    __slots__ = ("_shell", "command", "plugin", "state")

    def __init__(self, shell: Shell, plugin: str, state: dict[str, Any], command: str = "") -> None:
        self._shell = shell
        #: The plugin this context belongs to.
        self.plugin = plugin
        #: The command being run (without ``/``), or ``""`` in a hook.
        self.command = command
        #: A dict private to this plugin, living as long as the shell.
        self.state = state

    def for_command(self, command: str) -> Context:
        """The same plugin's context, naming the command being run."""
        return Context(self._shell, self.plugin, self.state, command)

    # ---- what the shell is --------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        """The resolved settings (base URL, org, head, timeouts, ...). Do not change them."""
        return self._shell.settings

    @property
    def paths(self) -> Paths:
        """The shell's folders: ``config_dir``, ``data_dir``, ``state_dir``, ``plugins_dir``,
        ``transcripts_dir``, ``config_file``, ``history_file``."""
        return self._shell.paths

    @property
    def env(self) -> Mapping[str, str]:
        """The environment the shell was started with (read-only)."""
        return self._shell.env

    @property
    def session(self) -> SessionView:
        return SessionView(self._shell)

    @property
    def commands(self) -> CommandsView:
        return CommandsView(self._shell.registry)

    @property
    def plugins(self) -> PluginsView:
        return PluginsView(self._shell, self.plugin)

    @property
    def interactive(self) -> bool:
        """False in pipe mode: no keys, no prompt, no hints that name them."""
        return self._shell.front_end.interactive

    @property
    def suggestions(self) -> tuple[str, ...]:
        """The suggestions of the last reply, while they are shown (a bare N picks one)."""
        return tuple(self._shell.suggestions)

    # ---- what a plugin may do -----------------------------------------------------------------

    async def send(self, text: str) -> Turn | None:
        """Send ``text`` as the user would (``before_send`` hooks run); the turn, or
        ``None`` if a plugin cancelled it."""
        return await self._shell.send(text)

    def print(self, *parts: object, sep: str = " ") -> None:
        """Print a line above the prompt (to stdout in pipe mode), through the output gate."""
        self._shell.print(sep.join(str(p) for p in parts))

    def notice(self, text: str, level: str = "info") -> None:
        """A one-line notice (``info``, ``warn`` or ``error``), escaped and secrets masked."""
        self._shell.notice(text, level=level)

    def error(self, text: str) -> None:
        """A one-line error."""
        self._shell.notice(text, level="error")

    def scrub(self, text: str) -> str:
        """``text`` with every known secret value (api key, password, token) as ``***``."""
        return self._shell.scrub(text)

    def request_exit(self) -> bool:
        """Ask the shell to exit after this command. With messages still waiting for a reply
        in the REPL, the first request only says so and returns False; the next one exits."""
        if self._shell.confirm_quit():
            self._shell.exit_requested = True
            return True
        return False

    def clear_screen(self) -> None:
        """Clear the terminal; the last reply's suggestions are no longer shown."""
        self._shell.front_end.clear_screen()
        self._shell.suggestions = []

    @property
    def raw_frames(self) -> bool:
        """Whether raw frames are shown (``/raw``); settable."""
        return self._shell.view.raw

    @raw_frames.setter
    def raw_frames(self, on: bool) -> None:
        self._shell.view.raw = on


#: The names the contract offers, for the docs check and the bundled-plugin check.
PUBLIC = tuple(sorted(name for name in vars(Context) if not name.startswith("_")))
