"""The slash-command registry: names, aliases, one-line help, argument completion.

Built-in and third-party commands register here, through the ``register_commands`` hook or
the :func:`command` decorator; ``/help`` and the completer are generated from it. Names and
aliases are case-insensitive: they are stored in lower case, as ``/NAME`` is looked up.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from unith_shell.context import Context as Context
from unith_shell.errors import UserError

Handler = Callable[[Context, str], Union[Awaitable[Any], Any]]  # noqa: UP007
Completer = Union[Sequence[str], Callable[[Context, str], Iterable[str]]]  # noqa: UP007

#: The attribute :func:`command` puts on a handler: (name, register keyword arguments).
MARK = "__unith_shell_command__"


@dataclass(slots=True)
class Command:
    name: str
    handler: Handler
    help: str = ""
    usage: str = ""
    aliases: tuple[str, ...] = ()
    complete: Completer | None = None
    plugin: str = ""
    #: Aliases asked for but not added, each with the command that has the name.
    dropped_aliases: tuple[tuple[str, str], ...] = ()

    async def run(self, ctx: Context, arg: str) -> None:
        result = self.handler(ctx, arg)
        if inspect.isawaitable(result):
            await result

    def completions(self, ctx: Context, text: str) -> list[str]:
        if self.complete is None:
            return []
        words = self.complete(ctx, text) if callable(self.complete) else self.complete
        return [w for w in words if w.startswith(text)]


def command(
    name: str,
    *,
    help: str = "",
    usage: str = "",
    aliases: Iterable[str] = (),
    complete: Completer | None = None,
) -> Callable[[Handler], Handler]:
    """Mark a handler as a slash command of the plugin it is defined in (litecli style)::

        @command("shout", help="Send a message in capitals", usage="TEXT")
        async def shout(ctx, arg): ...

    It is registered when the plugin is loaded, like ``register(...)`` in
    ``register_commands``, with the same rules. The handler itself is returned unchanged.
    """

    def mark(handler: Handler) -> Handler:
        meta = {"help": help, "usage": usage, "aliases": tuple(aliases), "complete": complete}
        setattr(handler, MARK, (name, meta))
        return handler

    return mark


def decorated_commands(plugin: object) -> Iterator[tuple[str, Handler, dict[str, Any]]]:
    """``(name, handler, register keyword arguments)`` of each ``@command`` in ``plugin``."""
    if plugin is None:
        return
    for value in list(vars(plugin).values()) if hasattr(plugin, "__dict__") else []:
        mark = getattr(value, MARK, None) if callable(value) else None
        if isinstance(mark, tuple) and len(mark) == 2:
            yield mark[0], value, dict(mark[1])


class CommandError(UserError):
    """Raised by a handler for a one-line usage error."""


@dataclass(slots=True)
class CommandRegistry:
    commands: dict[str, Command] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def register(
        self,
        name: str,
        handler: Handler,
        *,
        help: str = "",
        usage: str = "",
        aliases: Iterable[str] = (),
        complete: Completer | None = None,
        plugin: str = "",
    ) -> Command:
        """Add a command under its lower-case name. An invalid or taken name raises
        ``ValueError`` (the first one keeps it); a taken alias is left out, and listed in the
        command's ``dropped_aliases``."""
        name = _normal(name)
        if not callable(handler):
            raise ValueError(f"handler of /{name} is not callable")
        owner = self.get(name)
        if owner is not None:
            raise ValueError(f"/{name} is already registered by {owner.plugin or '?'}")
        alias_list: list[str] = []
        dropped: list[tuple[str, str]] = []
        for alias in dict.fromkeys(_normal(a) for a in aliases):
            taken = self.get(alias)
            if taken is not None or alias == name:
                dropped.append((alias, taken.name if taken else name))
            else:
                alias_list.append(alias)
        command = Command(
            name, handler, help, usage, tuple(alias_list), complete, plugin, tuple(dropped)
        )
        self.commands[name] = command
        for alias in alias_list:
            self.aliases[alias] = name
        return command

    def unregister_plugin(self, plugin: str) -> None:
        for name in [n for n, c in self.commands.items() if c.plugin == plugin]:
            command = self.commands.pop(name)
            for alias in command.aliases:
                self.aliases.pop(alias, None)

    def get(self, name: str) -> Command | None:
        name = name.lower()
        return self.commands.get(name) or self.commands.get(self.aliases.get(name, ""))

    def names(self) -> list[str]:
        return sorted(self.commands)

    def closest(self, name: str) -> str | None:
        candidates = list(self.commands) + list(self.aliases)
        import difflib  # only for a mistyped command

        match = difflib.get_close_matches(name.lower(), candidates, n=1, cutoff=0.5)
        if match:
            return match[0]
        prefixed = [c for c in candidates if c.startswith(name.lower()[:2])] if name else []
        return sorted(prefixed)[0] if prefixed else None


def _normal(name: str) -> str:
    """A command name as stored and looked up: no leading ``/``, lower case, one word."""
    text = name.strip().lstrip("/").lower() if isinstance(name, str) else ""
    if not text or any(c.isspace() or not c.isprintable() for c in text) or "/" in text:
        raise ValueError(f"invalid command name {name!r}")
    return text


def split_command(line: str) -> tuple[str, str] | None:
    """``"/name rest"`` -> ``("name", "rest")``; a plain line or ``//...`` -> ``None``."""
    if not line.startswith("/") or line.startswith("//"):
        return None
    head, _, rest = line[1:].partition(" ")
    if "\n" in head:
        head, _, more = head.partition("\n")
        rest = more + (" " + rest if rest else "")
    return head.strip(), rest.strip()


def literal_text(line: str) -> str:
    """A line starting with ``//`` sends a literal leading ``/``."""
    return line[1:] if line.startswith("//") else line
