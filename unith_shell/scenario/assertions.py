"""The assertion registry: what a step's ``expect:`` keys mean.

Every kind, built-in or not, comes from the ``register_assertions(register)`` hook (the
built-in ones from the bundled plugin :mod:`unith_shell.scenario.builtin`). A kind is a
``check(reply, expected)`` function returning an :class:`Outcome` (or a bool), plus an
optional ``parse(value)`` that validates and normalises the value written in the file when
the file is loaded, before any connection (raise ``ValueError`` with a one-line reason).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from unith_shell.scenario.model import MatchOptions

if TYPE_CHECKING:
    from unith_shell.files import Paths
    from unith_shell.plugins import Plugins
    from unith_shell.protocol import ResponsePart, ServerEvent
    from unith_shell.settings import Settings


@dataclass(slots=True)
class Outcome:
    """What one assertion found. ``expected`` and ``actual`` are shown on a failure."""

    passed: bool
    expected: str = ""
    actual: str = ""


@dataclass(slots=True)
class Reply:
    """What a step saw, for assertions: the turn's reply (if the step had one) and events.

    ``text`` is the parts joined with newlines, in ``part_order``; ``parts`` the part texts;
    ``spoken`` the parts themselves (``video``, ``media``); ``events`` every server event
    received since the step began; latencies are in seconds (``None`` if no part came).
    """

    text: str = ""
    parts: list[str] = field(default_factory=list)
    spoken: list[ResponsePart] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    events: list[ServerEvent] = field(default_factory=list)
    outcome: str | None = None
    error: str | None = None
    first_latency: float | None = None
    total_latency: float | None = None
    options: MatchOptions = field(default_factory=MatchOptions)

    def fold(self, text: str) -> str:
        """``text`` as the step's options compare it (case, whitespace)."""
        return self.options.fold(text)


Check = Callable[[Reply, Any], "Outcome | bool"]
Parse = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class AssertionKind:
    name: str
    check: Check
    help: str = ""
    parse: Parse | None = None
    #: Checks that need a turn's reply (false for ``event``, usable on ``wait``/``keep``).
    needs_turn: bool = True
    #: Re-checked as events arrive, until it passes or the step's time is up (``event``).
    waits: bool = False
    #: ``{name}`` references in its value are regex-escaped (``regex``).
    regex: bool = False
    plugin: str = ""


class AssertionRegistry:
    def __init__(self) -> None:
        self.kinds: dict[str, AssertionKind] = {}
        self.problems: list[str] = []

    def register_for(self, plugin: str) -> Callable[..., None]:
        """The ``register`` function handed to one plugin's ``register_assertions``."""

        def register(
            name: str,
            check: Check,
            *,
            help: str = "",
            parse: Parse | None = None,
            needs_turn: bool = True,
            waits: bool = False,
            regex: bool = False,
        ) -> None:
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"assertion name {name!r} is not an identifier")
            if name in self.kinds:
                raise ValueError(f"assertion {name!r} is taken (by {self.kinds[name].plugin!r})")
            if not callable(check):
                raise TypeError(f"assertion {name!r}: check is not callable")
            self.kinds[name] = AssertionKind(
                name, check, help, parse, needs_turn, waits, regex, plugin
            )

        return register

    def get(self, name: str) -> AssertionKind | None:
        return self.kinds.get(name)


def collect(plugins: Plugins, notify: Callable[[str], None]) -> AssertionRegistry:
    """Call every ``register_assertions`` implementation (bundled first); a kind that cannot
    be added, or a plugin that fails, is reported in one line and the others keep theirs."""
    registry = AssertionRegistry()
    # pluggy calls the last registered first; the bundled kinds should win a name clash.
    impls = plugins.pm.hook.register_assertions.get_hookimpls()
    names = [impl.plugin_name for impl in reversed(impls)]
    names.sort(key=lambda name: name != "assertions")
    for name in dict.fromkeys(names):
        register = registry.register_for(name)

        def checked(
            *args: Any, _register: Callable[..., None] = register, _name: str = name, **kwargs: Any
        ) -> None:
            try:
                _register(*args, **kwargs)
            except (ValueError, TypeError) as exc:
                line = f"plugin {_name!r} failed in register_assertions: {exc}"
                registry.problems.append(line)
                if plugins.strict:
                    raise
                notify(line)

        plugins.call_now("register_assertions", only=name, register=checked)
    return registry


def run_check(kind: AssertionKind, reply: Reply, argument: Any) -> Outcome:
    """Run one check; a check that raises is a failed assertion naming the exception."""
    try:
        result = kind.check(reply, argument)
    except Exception as exc:
        return Outcome(False, f"{kind.name}: {argument!r}", f"{type(exc).__name__}: {exc}")
    if isinstance(result, Outcome):
        return result
    return Outcome(bool(result), repr(argument), reply.text)


def load_registry(
    settings: Settings, paths: Paths, env: Mapping[str, str], notify: Callable[[str], None]
) -> AssertionRegistry:
    """The assertion kinds of a run: the bundled ones plus those of the plugins the shell
    would load with these settings (``--no-plugins``: bundled only)."""
    from pathlib import Path

    from unith_shell.plugins import Plugins
    from unith_shell.scenario import builtin

    plugins = Plugins(strict=settings.strict_plugins, notify=notify)
    plugins.load_all(
        env=env,
        plugins_dirs=[paths.plugins_dir, *(Path(d).expanduser() for d in settings.plugins_dirs)],
        extra=settings.plugins,
        no_plugins=settings.no_plugins,
    )
    plugins.add(builtin, "assertions", source="bundled")
    return collect(plugins, notify)


def builtin_registry() -> AssertionRegistry:
    """Only the bundled assertion kinds: for checking a scenario this package wrote itself."""
    from unith_shell.plugins import Plugins
    from unith_shell.scenario import builtin

    def refuse(line: str) -> None:  # the bundled kinds never fail to register
        raise RuntimeError(line)

    plugins = Plugins(strict=True, notify=refuse)
    plugins.add(builtin, "assertions", source="bundled")
    return collect(plugins, refuse)
