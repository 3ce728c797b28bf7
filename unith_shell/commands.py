"""The slash-command registry: names, aliases, one-line help, argument completion.

Built-in and third-party commands register here through the ``register_commands`` hook;
``/help`` and the completer are generated from it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

from unith_shell.errors import UserError

if TYPE_CHECKING:
    from unith_shell.config import Settings
    from unith_shell.session import Session
    from unith_shell.shell import Shell

Handler = Callable[["Context", str], Union[Awaitable[Any], Any]]  # noqa: UP007
Completer = Union[Sequence[str], Callable[["Context", str], Iterable[str]]]  # noqa: UP007


@dataclass(slots=True)
class Context:
    """What a command handler gets: the shell, its session and settings, and ``print``."""

    shell: Shell
    command: str = ""

    @property
    def session(self) -> Session:
        return self.shell.session

    @property
    def settings(self) -> Settings:
        return self.shell.settings

    def print(self, *parts: object, sep: str = " ") -> None:
        """Print a line above the prompt (or to stdout in pipe mode)."""
        self.shell.print(sep.join(str(p) for p in parts))

    def error(self, text: str) -> None:
        """Print a one-line error."""
        self.shell.notice(text, level="error")


@dataclass(slots=True)
class Command:
    name: str
    handler: Handler
    help: str = ""
    usage: str = ""
    aliases: tuple[str, ...] = ()
    complete: Completer | None = None
    plugin: str = ""

    async def run(self, ctx: Context, arg: str) -> None:
        result = self.handler(ctx, arg)
        if inspect.isawaitable(result):
            await result

    def completions(self, ctx: Context, text: str) -> list[str]:
        if self.complete is None:
            return []
        words = self.complete(ctx, text) if callable(self.complete) else self.complete
        return [w for w in words if w.startswith(text)]


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
        """Add a command. A taken name raises ``ValueError`` (the first one keeps it)."""
        name = name.lstrip("/").strip()
        if not name or any(c.isspace() for c in name):
            raise ValueError(f"invalid command name {name!r}")
        if not callable(handler):
            raise ValueError(f"handler of /{name} is not callable")
        if self.get(name) is not None:
            owner = self.get(name)
            raise ValueError(f"/{name} is already registered by {owner.plugin if owner else '?'}")
        alias_list = tuple(a.lstrip("/") for a in aliases if self.get(a.lstrip("/")) is None)
        command = Command(name, handler, help, usage, alias_list, complete, plugin)
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
