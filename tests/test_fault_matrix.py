"""The fault-injection matrix at the shell level: for each fault the shell stays responsive,
the user sees one clear line, and no queued message is lost or sent twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support import free_port, new_shell, wait_for
from unith_shell import api
from unith_shell.server import LocalServer, ServerConfig
from unith_shell.session import State
from unith_shell.settings import Settings
from unith_shell.shell import Shell
from unith_shell.turn import Turn


@dataclass
class Screen:
    lines: list[str] = field(default_factory=list)

    def write(self, text: str) -> None:
        self.lines.extend(text.splitlines())

    def matching(self, *words: str) -> list[str]:
        return [line for line in self.lines if any(w in line for w in words)]


async def make_shell(base_url: str, tmp_path: Path, **overrides: Any) -> tuple[Shell, Screen]:
    screen = Screen()
    settings = Settings(
        base_url=base_url,
        timeout=2.0,
        reconnect_initial=0.05,
        reconnect_max=0.3,
        history=False,
    )
    for key, value in overrides.items():
        setattr(settings, key, value)
    env = {"UNITH_SHELL_HOME": str(tmp_path / "home"), "UNITH_SHELL_PLUGINS": "", "NO_COLOR": "1"}
    shell = new_shell(settings, env=env, write=screen.write)
    shell.load_plugins()
    await shell.start_plugins()
    return shell, screen


@pytest.fixture
async def shells() -> AsyncIterator[list[Shell]]:
    made: list[Shell] = []
    yield made
    for shell in made:
        await shell.stop()
    await api.close_clients()


def sent_texts(server: LocalServer) -> list[str]:
    return [f["text"] for f in server.received if f.get("event") == "text"]


async def responsive(shell: Shell, screen: Screen) -> None:
    """The shell still answers a command at once."""
    before = len(screen.lines)
    await asyncio.wait_for(shell.handle_line("/status"), 2)
    assert any("connection" in line for line in screen.lines[before:])


async def send_and_wait(shell: Shell, text: str, timeout: float = 10) -> Turn:
    turn = await shell.send(text)
    assert turn is not None
    await shell.session.wait(turn, timeout=timeout)
    return turn


# Faults that cut a turn short: (fault, params, words of the one line the user sees).
CUT_SHORT: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("close-mid-turn", {"code": 1011}, ("1011",)),
    ("drop-mid-turn", {}, ("without a close frame",)),
    ("slow", {"delay": 5.0}, ("no reply within 2 s",)),
    ("never-ends", {}, ("no further part within 2 s",)),
    ("nlp-exception", {"level": 500}, ("could not answer",)),
]


@pytest.mark.parametrize(("fault", "params", "words"), CUT_SHORT)
async def test_turn_cut_short(
    server: LocalServer,
    tmp_path: Path,
    shells: list[Shell],
    fault: str,
    params: dict[str, Any],
    words: tuple[str, ...],
) -> None:
    server.set_fault(fault, **params)
    shell, screen = await make_shell(server.base_url, tmp_path)
    shells.append(shell)
    await shell.session.connect()
    shell.session.start(connected=True)
    turn = await send_and_wait(shell, "hello")
    assert not turn.ok
    assert len(screen.matching(*words)) == 1, screen.lines
    # /retry resends the message that got no reply, once.
    server.set_fault(None)
    if fault not in ("close-mid-turn", "drop-mid-turn"):
        await shell.handle_line("/reconnect")  # the fault stays with the old socket
    await wait_for(lambda: shell.session.state is State.CONNECTED and server.connections == 2)
    # A reconnect says so in one line instead of printing the greeting again.
    await wait_for(lambda: bool(screen.matching("reconnected to unith/aiko")))
    assert len(screen.matching("reconnected to")) == 1
    assert len(screen.matching("Hi, I'm Aiko")) == 1
    await responsive(shell, screen)
    # /status reports how the last turn ended, not a latency it never had.
    [last] = [line for line in screen.lines if "last reply" in line]
    assert turn.outcome is not None and turn.outcome in last
    await shell.handle_line("/retry")
    await wait_for(lambda: sent_texts(server).count("hello") == 2)
    await wait_for(lambda: shell.session.turn_in_flight is None and not shell.session.pending)
    assert shell.session.last_turn is not None and shell.session.last_turn.ok


async def test_token_refused_on_the_socket(
    server: LocalServer, tmp_path: Path, shells: list[Shell]
) -> None:
    server.set_fault("token-refused")
    shell, screen = await make_shell(server.base_url, tmp_path)
    shells.append(shell)
    shell.session.start()
    await wait_for(lambda: shell.session.state is State.DISCONNECTED and shell.session.last_error)
    refusals = screen.matching("refused the session")
    assert 1 <= len(refusals) <= 2 and all("1008" in line for line in refusals)
    await responsive(shell, screen)


@pytest.mark.parametrize(("status", "retries"), [(401, False), (500, True)])
async def test_token_endpoint_errors(
    server: LocalServer, tmp_path: Path, shells: list[Shell], status: int, retries: bool
) -> None:
    server.set_http_fault("token", status)
    shell, screen = await make_shell(server.base_url, tmp_path)
    shells.append(shell)
    shell.session.start()
    await wait_for(lambda: bool(screen.matching(str(status))))
    turn = await shell.send("queued while failing")
    assert turn is not None
    if retries:
        await wait_for(lambda: shell.session.attempt >= 2)
        assert shell.session.state is State.RECONNECTING
        server.set_http_fault("token", None)
        await shell.session.wait(turn, timeout=10)
        assert turn.ok and sent_texts(server) == ["queued while failing"]
    else:
        # Credentials are refused: no retry loop; the message waits for /reconnect.
        await asyncio.sleep(0.3)  # several backoff periods: a wrong retry would show here
        assert shell.session.state is State.DISCONNECTED and server.logins == 0
        assert len(screen.matching("! login:")) == 1 and not turn.complete  # reported once
        assert screen.matching("/reconnect")
        server.set_http_fault("token", None)
        await shell.handle_line("/reconnect")
        await shell.session.wait(turn, timeout=10)
        assert turn.ok and sent_texts(server) == ["queued while failing"]
    await responsive(shell, screen)


async def test_videos_404(server: LocalServer, tmp_path: Path, shells: list[Shell]) -> None:
    server.set_http_fault("videos", 404)
    shell, screen = await make_shell(server.base_url, tmp_path)
    shells.append(shell)
    await shell.session.connect()
    await shell.handle_line("/video")
    errors = screen.matching("404")
    assert len(errors) == 1 and "Traceback" not in "\n".join(screen.lines)
    await responsive(shell, screen)


async def test_connection_refused_then_server_appears(tmp_path: Path, shells: list[Shell]) -> None:
    port = free_port()
    shell, screen = await make_shell(f"http://127.0.0.1:{port}", tmp_path)
    shells.append(shell)
    shell.session.start()
    await wait_for(lambda: bool(screen.matching("connection refused")))
    queued = [await shell.send(f"m{i}") for i in range(3)]
    await responsive(shell, screen)
    async with LocalServer(ServerConfig(port=port)) as server:
        for turn in queued:
            assert turn is not None
            await shell.session.wait(turn, timeout=10)
        assert sent_texts(server) == ["m0", "m1", "m2"]
        await shell.session.close()


async def test_token_near_expiry_logs_in_again_on_reconnect(
    tmp_path: Path, shells: list[Shell]
) -> None:
    # A token valid for 10 minutes is inside the 15-minute refresh margin.
    async with LocalServer(ServerConfig(token_ttl=600)) as short:
        shell, _ = await make_shell(short.base_url, tmp_path)
        shells.append(shell)
        await shell.session.connect()
        shell.session.start(connected=True)
        shell.session.reconnect()
        await wait_for(lambda: short.connections == 2 and shell.session.connected)
        assert short.logins == 2
        await shell.session.close()
    async with LocalServer() as long:
        shell2, _ = await make_shell(long.base_url, tmp_path)
        shells.append(shell2)
        await shell2.session.connect()
        shell2.session.start(connected=True)
        shell2.session.reconnect()
        await wait_for(lambda: long.connections == 2 and shell2.session.connected)
        assert long.logins == 1  # a token with an hour left is reused
        await shell2.session.close()


async def test_server_text_outside_replies_is_escaped(
    server: LocalServer, tmp_path: Path, shells: list[Shell]
) -> None:
    shell, screen = await make_shell(server.base_url, tmp_path)
    shells.append(shell)
    # A hostile alias and close reason: both are server text that is not a reply part.
    shell.session.head_info = {"alias": "\x1b[41mEVIL\x07"}
    shell.notice("closed by the server with code 1008: \x1b]0;pwned\x07")
    await shell.session.connect()
    assert all("\x1b" not in line and "\x07" not in line for line in screen.lines)
    assert any(line.startswith("\\x1b[41mEVIL\\x07: Hi") for line in screen.lines)
    assert any("\\x1b]0;pwned\\x07" in line for line in screen.lines)


async def test_a_secret_typed_into_a_message_is_masked_everywhere_shown(
    server: LocalServer, tmp_path: Path, shells: list[Shell]
) -> None:
    shell, screen = await make_shell(server.base_url, tmp_path, api_key="ak-typed-9931")
    shells.append(shell)
    await shell.session.connect()
    shell.session.start(connected=True)
    await shell.handle_line("/raw on")
    turn = await send_and_wait(shell, "my key is ak-typed-9931")
    assert turn.ok and "ak-typed-9931" in turn.text  # the head did quote it back
    shown = "\n".join(screen.lines)
    assert "ak-typed-9931" not in shown
    assert "my key is ***" in shown  # the out frame, the echo and the reply, masked


async def test_a_reconnect_keeps_the_suggestions_on_screen(
    server: LocalServer, tmp_path: Path, shells: list[Shell]
) -> None:
    shell, screen = await make_shell(server.base_url, tmp_path)
    shells.append(shell)
    await shell.session.connect()
    shell.session.start(connected=True)
    turn = await send_and_wait(shell, "hello")
    shown = list(turn.suggestions)
    assert shell.suggestions == shown
    await shell.handle_line("/reconnect")
    await wait_for(lambda: bool(screen.matching("reconnected to")))
    # The repeated greeting was not shown, so "1" still means what the screen says.
    assert shell.suggestions == shown


@pytest.mark.parametrize(("keep_alive", "words"), [(True, "keeping"), (False, "/keep to stay")])
async def test_the_inactivity_warning_says_what_happens_next(
    server: LocalServer, tmp_path: Path, shells: list[Shell], keep_alive: bool, words: str
) -> None:
    server.set_fault("idle-timeout", warning=0.1, grace=5.0)
    shell, screen = await make_shell(server.base_url, tmp_path, keep_alive=keep_alive)
    shells.append(shell)
    await shell.session.connect()
    shell.session.start(connected=True)
    await wait_for(lambda: bool(screen.matching("inactivity warning")))
    [line] = screen.matching("inactivity warning")
    assert words in line
