"""Real-terminal tests: the CLI under pexpect, with its own built-in local server.

The prompt token is matched without its trailing space; ``PROMPT_TOOLKIT_NO_CPR=1`` (from
``cli_env``) keeps prompt-toolkit from asking the terminal for the cursor position.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.support import UNITH_SHELL, cli_env, quit_with_ctrl_d, spawn

NAP_PLUGIN = """
import asyncio
from unith_shell import hookimpl


async def nap(ctx, arg):
    ctx.print("napping")
    await asyncio.sleep(60)
    ctx.print("woke up")


@hookimpl
def register_commands(register):
    register("nap", nap, help="Sleep a minute")
"""

UP = "\x1b[A"
CTRL_C = "\x03"
CTRL_D = "\x04"


@pytest.fixture
def children() -> Iterator[list[pexpect.spawn]]:
    spawned: list[pexpect.spawn] = []
    yield spawned
    for child in spawned:
        if child.isalive():
            child.terminate(force=True)


def test_greeting_reply_and_ctrl_d_exits_0(shell_home: Path, children: list) -> None:
    child = spawn(shell_home)
    children.append(child)
    child.expect_exact("Hi, I'm Aiko, a digital human on your local Unith server.")
    child.expect_exact("aiko>")
    child.send("hello\r")
    child.expect_exact("You said “hello”. Thanks for telling me!")
    child.expect_exact("(type a number or /pick N)")
    child.expect_exact("aiko>")
    quit_with_ctrl_d(child)


def test_half_typed_line_survives_server_output(shell_home: Path, children: list) -> None:
    child = spawn(shell_home, "--org", "faults", "--head", "slow")  # 1 s before each part
    children.append(child)
    child.expect_exact("slow>")
    child.send("first\r")
    child.expect_exact("Reply to “first”, part 1 of 3.")
    child.send("half typ")
    # A part arrives while the line is half typed ...
    child.expect_exact("Part 2 of 3.")
    child.expect_exact("slow> half typ")  # ... and the prompt is redrawn with it, below
    child.send("ed line\r")
    # ... and the whole line, as typed in two goes, is what went out (the head quotes it).
    child.expect_exact("Reply to “half typed line”, part 1 of 3.", timeout=15)
    child.expect_exact("(type a number or /pick N)", timeout=15)  # the reply is complete
    child.expect_exact("slow>")
    quit_with_ctrl_d(child)


def test_up_arrow_recalls_the_previous_run_and_history_is_private(
    shell_home: Path, children: list
) -> None:
    first = spawn(shell_home)
    children.append(first)
    first.expect_exact("aiko>")
    first.send("remember this line\r")
    first.expect_exact("You said “remember this line”")
    quit_with_ctrl_d(first)

    history = shell_home / "state" / "history"
    assert stat.S_IMODE(history.stat().st_mode) == 0o600
    assert "+remember this line" in history.read_text()

    second = spawn(shell_home)
    children.append(second)
    second.expect_exact("aiko>")
    second.send(UP)
    second.expect_exact("remember this line")
    second.send("\r")
    second.expect_exact("You said “remember this line”")
    quit_with_ctrl_d(second)
    assert stat.S_IMODE(history.stat().st_mode) == 0o600


def test_ctrl_c_during_a_slow_turn_keeps_the_shell(shell_home: Path, children: list) -> None:
    child = spawn(shell_home, "--org", "faults", "--head", "slow")
    children.append(child)
    child.expect_exact("slow>")
    child.send("wait for me\r")
    child.expect_exact("Reply to “wait for me”, part 1 of 3.")
    child.send(CTRL_C)
    child.expect_exact("stopped waiting for the reply")
    child.send("/status\r")
    child.expect(r"connection +connected")
    child.expect(r"turn +idle")
    child.expect_exact("slow>")
    assert child.isalive()
    quit_with_ctrl_d(child)


def test_ctrl_c_stops_a_running_command(shell_home: Path, tmp_path: Path, children: list) -> None:
    plugin = tmp_path / "nap_plugin.py"
    plugin.write_text(NAP_PLUGIN)
    child = spawn(shell_home, "--plugin", str(plugin))
    children.append(child)
    child.expect_exact("aiko>")
    child.send("/nap\r")
    child.expect_exact("napping")
    child.send(CTRL_C)  # no prompt is reading keys: this is a SIGINT
    child.expect_exact("interrupted")
    child.expect_exact("aiko>")
    child.send("still here\r")
    child.expect_exact("You said “still here”")
    quit_with_ctrl_d(child)
    assert "woke up" not in child.before


def test_ctrl_d_with_replies_due_asks_once(shell_home: Path, children: list) -> None:
    child = spawn(shell_home, "--org", "faults", "--head", "slow")  # 1 s before each part
    children.append(child)
    child.expect_exact("slow>")
    child.send("first\r")
    child.expect_exact("Reply to “first”, part 1 of 3.")
    child.send(CTRL_D)
    child.expect_exact("1 message is still waiting for a reply; Ctrl+D or /quit again to exit")
    child.expect_exact("slow>")
    assert child.isalive()
    child.send(CTRL_D)  # the second one exits, reply or not
    child.expect(pexpect.EOF, timeout=5)
    child.close()
    assert child.exitstatus == 0
    assert "Part 3 of 3." not in child.before  # it did not wait for the rest


def test_parts_after_a_line_the_user_sent_keep_the_speaker_label(
    shell_home: Path, children: list
) -> None:
    child = pexpect.spawn(
        UNITH_SHELL[0],
        [*UNITH_SHELL[1:], "--local", "--org", "faults", "--head", "slow"],
        env=cli_env(shell_home, NO_COLOR="1"),
        dimensions=(30, 100),
        encoding="utf-8",
        timeout=10,
    )
    children.append(child)
    child.expect_exact("slow>")
    child.send("first\r")
    child.expect_exact("Fault slow: Reply to “first”, part 1 of 3.")
    child.send("typed while it streams")
    child.expect_exact("Part 2 of 3.")  # above the half-typed line: under the label
    child.send("\r")  # the line stays on screen; what comes next is labelled again
    child.expect(r"\r\n([^\r\n]*)Part 3 of 3\.")
    assert child.match.group(1).endswith("Fault slow: "), repr(child.match.group(1))
    child.expect_exact("Fault slow: Reply to “typed while it streams”, part 1 of 3.")
    child.expect_exact("(type a number or /pick N)", timeout=15)
    child.expect_exact("slow>")
    quit_with_ctrl_d(child)
