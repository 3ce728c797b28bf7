"""The plugin contract: pluggy's own semantics in a real shell, what is refused, ``Context``.

Shells run in-process against the real local server (``make`` fixture), as in
tests/test_plugins.py. The contract checks read the bundled plugins' source (AST): they may
use ``ctx`` only through the names docs/plugins.md documents.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO, Make
from unith_shell import command, hookimpl
from unith_shell.context import PUBLIC, CommandsView, Context, PluginsView, SessionView
from unith_shell.protocol import ResponsePart, UserMessage
from unith_shell.server import LocalServer

pytestmark = pytest.mark.timeout(60)

PACKAGE = REPO / "unith_shell"
BUNDLED_FILES = [*sorted((PACKAGE / "builtins").glob("*.py")), PACKAGE / "scenario/builtin.py"]
DOCS = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")


def public(cls: type) -> set[str]:
    return {name for name in vars(cls) if not name.startswith("_")}


# ---- pluggy's semantics in a real shell -----------------------------------------------------


class ThirdParty:
    """A plugin as a pluggy user writes one: a wrapper, tryfirst, an optional hook."""

    def __init__(self) -> None:
        self.log: list[str] = []

    @hookimpl(wrapper=True)
    def before_send(self, message: UserMessage) -> Generator[None, Any, Any]:
        self.log.append(f"wrapper before: {message.text}")
        results = yield  # every other implementation runs here
        self.log.append(f"wrapper after: {message.text} results={results!r}")
        message.text += " (wrapped)"
        return results

    @hookimpl(wrapper=True)
    def after_receive(self, event: Any) -> Generator[None, Any, Any]:
        result = yield
        if isinstance(event, ResponsePart) and event.text:
            event.text = "<" + event.text + ">"  # after every inner implementation
        return result

    @hookimpl(optionalhook=True)
    def on_something_a_later_version_adds(self, session: Any) -> None:
        raise AssertionError("never called: this shell has no such hook")


class Plain:
    def __init__(self, tag: str, log: list[str]) -> None:
        self.tag = tag
        self.log = log

    @hookimpl
    def before_send(self, message: UserMessage) -> str:
        self.log.append(f"{self.tag}: {message.text}")
        message.text += f" {self.tag}"
        return self.tag


class First(Plain):
    @hookimpl(tryfirst=True)
    def before_send(self, message: UserMessage) -> str:
        return super().before_send(message)


class Upper:
    @hookimpl
    def after_receive(self, event: Any) -> None:
        if isinstance(event, ResponsePart) and event.text:
            event.text = event.text.upper()


async def test_wrapper_tryfirst_and_optionalhook_behave_as_pluggy_documents(
    make: Make, server: LocalServer
) -> None:
    h = await make()
    plugins = h.shell.plugins
    third = ThirdParty()
    assert plugins.add(third, "third")
    assert "on_something_a_later_version_adds" not in plugins.infos["third"].hooks
    assert plugins.add(First("first", third.log), "first")
    assert plugins.add(Plain("plain", third.log), "plain")
    assert plugins.add(Upper(), "upper")
    assert not plugins.load_errors and not any("failed" in line for line in h.lines)

    turn = await h.say("m")
    # The wrapper runs around the others and sees their results (pluggy: the list of the
    # non-None results, in call order); tryfirst runs before the plain one registered later.
    assert third.log == [
        "wrapper before: m",
        "first: m",
        "plain: m first",
        "wrapper after: m first plain results=['first', 'plain']",
    ]
    assert h.sent_texts() == ["m first plain (wrapped)"]
    assert turn.prompt == "m first plain (wrapped)"
    # after_receive: the wrapper's teardown runs after the inner (upper-casing) one.
    reply = [line for line in h.lines if "YOU SAID" in line]
    assert reply and all("<YOU SAID" in line for line in reply), h.lines[-5:]


async def test_a_raising_wrapper_is_disabled_and_the_message_goes_out(make: Make) -> None:
    h = await make()

    class Broken:
        calls = 0

        @hookimpl(wrapper=True)
        def before_send(self, message: UserMessage) -> Generator[None, Any, Any]:
            Broken.calls += 1
            result = yield
            raise RuntimeError("wrapper teardown broke")
            return result  # pragma: no cover

    assert h.shell.plugins.add(Broken(), "broken")
    await h.say("one")
    await h.say("two")
    assert h.sent_texts() == ["one", "two"]
    assert Broken.calls == 1  # disabled after the first failure
    [line] = [x for x in h.lines if "failed in before_send" in x]
    assert line == (
        "! plugin 'broken' failed in before_send: RuntimeError: wrapper teardown broke; "
        "before_send disabled for it"
    )


@pytest.mark.parametrize(
    ("marks", "hook", "why"),
    [
        ({"hookwrapper": True}, "before_send", "old-style hookwrapper=True is not supported"),
        ({"wrapper": True}, "on_connect", "wrapper=True is not supported here"),
        ({}, "before_sned", "no such hook (mark it optionalhook=True if optional)"),
    ],
)
async def test_unsupported_markers_are_refused_in_one_line(
    make: Make, marks: dict[str, bool], hook: str, why: str
) -> None:
    h = await make(connect=False)

    def impl(self: Any, session: Any = None, message: Any = None) -> Generator[None, Any, Any]:
        yield

    plugin = type("Odd", (), {hook: hookimpl(**marks)(impl)})()
    assert not h.shell.plugins.add(plugin, "odd")
    assert "odd" not in h.shell.plugins.infos
    assert h.shell.plugins.pm.get_plugin("odd") is None
    [line] = [x for x in h.lines if "odd" in x]
    assert line.startswith(f"! plugin 'odd' failed to load: {hook}: {why}")
    assert "\n" not in line


# ---- ctx in hooks and commands --------------------------------------------------------------


async def test_ctx_state_is_private_to_each_plugin_and_lives_with_the_shell(
    make: Make, tmp_path: Path
) -> None:
    source = (
        "from unith_shell import hookimpl, command\n\n"
        "@hookimpl\n"
        "def turn_complete(turn, ctx):\n"
        "    ctx.state['turns'] = ctx.state.get('turns', 0) + 1\n\n"
        "@command('Count', help='How many turns {name} saw', aliases=('c', 'help'))\n"
        "def count(ctx, arg):\n"
        "    ctx.print(f'{name} saw', ctx.state.get('turns', 0), 'as', ctx.plugin)\n"
    )
    for name in ("alpha", "beta"):
        (tmp_path / f"{name}.py").write_text(
            source.replace("{name}", name).replace("'Count'", f"'{name.title()}Count'")
        )
    h = await make(plugins=(str(tmp_path / "alpha.py"), str(tmp_path / "beta.py")))
    await h.say("one")
    await h.say("two")
    # The greeting is a turn too: three each, in each plugin's own state.
    assert await h.run("/alphacount") == ["alpha saw 3 as alpha"]
    assert await h.run("/BetaCount") == ["beta saw 3 as beta"]
    assert h.shell.context("alpha").state == {"turns": 3}
    assert h.shell.context("alpha") is h.shell.context("alpha")
    # The decorator registered the lower-cased name; a taken alias was reported in one line.
    assert h.shell.registry.get("alphacount") is not None
    assert "! plugin 'alpha': alias /help of /alphacount not added: /help is taken by /help" in (
        h.lines
    )
    # "c" went to the first plugin; the second one's "c" is reported.
    assert h.shell.registry.get("c").name == "alphacount"  # type: ignore[union-attr]
    assert any("alias /c of /betacount not added" in line for line in h.lines)


async def test_a_mixed_case_name_is_runnable_and_listed_once(make: Make) -> None:
    h = await make(connect=False)

    class Shouty:
        @hookimpl
        def register_commands(self, register: Any) -> None:
            register("Shout", lambda ctx, arg: ctx.print("SHOUT " + arg), help="Shout it")

    assert h.shell.plugins.add(Shouty(), "shouty")
    h.shell.register_commands_of("shouty")
    assert await h.run("/shout hi") == ["SHOUT hi"]
    assert await h.run("/SHOUT hi") == ["SHOUT hi"]
    listing = await h.run("/help")
    assert sum("/shout" in line for line in listing) == 1
    assert not any("/Shout" in line for line in listing)


def test_the_command_decorator_returns_the_handler() -> None:
    def handler(ctx: Context, arg: str) -> None:
        return None

    assert command("x", help="h")(handler) is handler


# ---- the contract: bundled plugins use only Context's documented names ----------------------


def _ctx_uses(path: Path) -> list[tuple[int, str]]:
    """``(line, "name")`` for ``ctx.name`` and ``(line, "session.name")`` etc. in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        if isinstance(node.value, ast.Name) and node.value.id == "ctx":
            found.append((node.lineno, node.attr))
        elif (
            isinstance(node.value, ast.Attribute)
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == "ctx"
        ):
            found.append((node.lineno, f"{node.value.attr}.{node.attr}"))
    return found


VIEWS = {"session": SessionView, "commands": CommandsView, "plugins": PluginsView}


@pytest.mark.parametrize("path", BUNDLED_FILES, ids=lambda p: p.name)
def test_bundled_plugins_use_only_the_documented_contract(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    problems = []
    for line, used in _ctx_uses(path):
        first, _, second = used.partition(".")
        if first not in PUBLIC:
            problems.append(f"{path.name}:{line}: ctx.{used} is not part of Context")
        elif second and first in VIEWS and second not in public(VIEWS[first]):
            problems.append(f"{path.name}:{line}: ctx.{used} is not part of the {first} view")
    # Nothing reaches the shell itself: no attribute called shell, no import of it.
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("shell", "_shell"):
            problems.append(f"{path.name}:{node.lineno}: .{node.attr}")
        if isinstance(node, ast.ImportFrom) and node.module == "unith_shell.shell":
            problems.append(f"{path.name}:{node.lineno}: imports unith_shell.shell")
        if isinstance(node, ast.arg) and node.arg == "shell":
            problems.append(f"{path.name}:{node.lineno}: takes the shell as an argument")
    assert not problems, "\n".join(problems)


def test_the_contract_check_catches_a_reach_into_the_shell(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f(ctx):\n    ctx.shell.registry\n    ctx.session.options\n")
    uses = {used for _, used in _ctx_uses(bad)}
    assert uses == {"shell.registry", "shell", "session.options", "session"}
    assert "shell" not in PUBLIC and "options" not in public(SessionView)


def test_every_public_name_of_the_contract_is_documented() -> None:
    section = DOCS[DOCS.index("## The plugin contract: `Context`") :]
    section = section[: section.index("\n## ", 5)]
    missing = [f"ctx.{name}" for name in PUBLIC if f"`ctx.{name}" not in section]
    for prefix, view in VIEWS.items():
        missing += [
            f"ctx.{prefix}.{name}"
            for name in public(view)
            if not re.search(rf"`ctx\.{prefix}\.{name}\b", section)
        ]
    assert not missing, missing


async def test_an_async_register_commands_is_refused_in_one_line(
    make: Make, recwarn: pytest.WarningsRecorder
) -> None:
    h = await make(connect=False)

    class Late:
        @hookimpl
        async def register_commands(self, register: Any) -> None:
            register("late", lambda ctx, arg: None)  # pragma: no cover - never awaited

    assert h.shell.plugins.add(Late(), "late")
    h.shell.register_commands_of("late")
    assert h.shell.registry.get("late") is None
    assert (
        "! plugin 'late': register_commands must be a plain function; its awaitable was discarded"
    ) in h.lines
    assert not [w for w in recwarn if "never awaited" in str(w.message)]


async def test_a_wrapper_that_names_no_argument_and_one_that_names_ctx(make: Make) -> None:
    h = await make()
    seen: list[str] = []

    class Bare:
        @hookimpl(wrapper=True)
        def before_send(self) -> Generator[None, Any, Any]:
            seen.append("bare")
            return (yield)

    class WithCtx:
        @hookimpl(wrapper=True)
        def turn_complete(self, ctx: Context) -> Generator[None, Any, Any]:
            ctx.state["turns"] = ctx.state.get("turns", 0) + 1
            return (yield)

    assert h.shell.plugins.add(Bare(), "bare")
    assert h.shell.plugins.add(WithCtx(), "withctx")
    await h.say("hi")
    assert h.sent_texts() == ["hi"] and seen == ["bare"]
    assert h.shell.context("withctx").state == {"turns": 1}
    assert not any("failed" in line for line in h.lines)


class RecordingFrontEnd:
    """A front end that counts what the shell asks of it."""

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive
        self.refreshed = 0
        self.cleared = 0

    def refresh(self) -> None:
        self.refreshed += 1

    def clear_screen(self) -> None:
        self.cleared += 1


async def test_the_front_end_is_passed_in_and_used_through_its_protocol(make: Make) -> None:
    h = await make()
    front = RecordingFrontEnd(interactive=True)
    h.shell.attach_front_end(front)
    await h.say("hello")
    assert front.refreshed > 0  # state, parts and turn changes repaint the toolbar
    h.shell.suggestions = ["one", "two"]
    await h.run("/clear")
    assert front.cleared == 1
    assert h.shell.message_text("1") == "1"  # no longer shown: a bare number is text


@pytest.mark.parametrize("interactive", [True, False])
async def test_request_exit_asks_once_while_a_reply_is_due(make: Make, interactive: bool) -> None:
    h = await make(connect=False)
    h.shell.attach_front_end(RecordingFrontEnd(interactive=interactive))
    assert await h.shell.send("hello") is not None  # not connected: it waits in the queue
    assert h.shell.session.pending
    if interactive:
        assert await h.run("/quit") == [
            "! 1 message is still waiting for a reply; Ctrl+D or /quit again to exit"
        ]
        assert not h.shell.exit_requested
    await h.run("/quit")  # pipe mode (not interactive) exits at once
    assert h.shell.exit_requested
