"""What the tests share: the one shell factory, the CLI's environment, small helpers.

Test modules import from here (and from the server fixtures ``hostile_*.py``), never from
one another or from conftest.py (tests/test_layout.py checks that). Every in-process
:class:`Shell` a test uses is made by :func:`new_shell`, so that a change to how a shell is
built is made in this one place.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pexpect

from unith_shell.files import paths
from unith_shell.protocol import ProtocolError, ResponsePart, ServerEvent
from unith_shell.server import LocalServer
from unith_shell.session import Session, SessionListener, State
from unith_shell.settings import OTHER_ENV_VARS, Settings, env_vars
from unith_shell.shell import Shell
from unith_shell.turn import Turn

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "plugin_fixtures"
UNITH_SHELL = [sys.executable, "-m", "unith_shell"]
CTRL_D = "\x04"

#: Every variable that changes what the shell does: the tests start without any of them.
SHELL_ENV_VARS = (*env_vars(), *OTHER_ENV_VARS)


# --------------------------------------------------------------------------- the shell factory


def new_shell(
    settings: Settings,
    *,
    env: Mapping[str, str] | None = None,
    write: Callable[[str], None] | None = None,
) -> Shell:
    """A :class:`Shell` as the front ends build one, its folders taken from ``env``
    (``os.environ`` by default). Plugins are neither loaded nor started here."""
    env = dict(os.environ if env is None else env)
    return Shell(settings, paths(env), env=env, write=write)


def fixture(name: str) -> str:
    """The path of a plugin in tests/plugin_fixtures."""
    return str(FIXTURES / f"{name}.py")


class Harness:
    """An in-process shell against a server, with everything it prints collected."""

    def __init__(self, shell: Shell, lines: list[str], server: LocalServer) -> None:
        self.shell = shell
        self.lines = lines
        self.server = server

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def sent_texts(self) -> list[str]:
        """Texts of the user messages the server received, in order."""
        return [f["text"] for f in self.server.received if f.get("event") == "text"]

    async def say(self, text: str, timeout: float = 5.0) -> Turn:
        turn = await self.shell.send(text)
        assert turn is not None, f"{text!r} was not sent"
        await self.shell.session.wait(turn, timeout=timeout)
        return turn

    async def run(self, line: str) -> list[str]:
        """Run one line; return what it printed."""
        start = len(self.lines)
        await self.shell.handle_line(line)
        return self.lines[start:]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        await wait_for(predicate, timeout)


async def start_shell(
    server: LocalServer,
    *,
    plugins: tuple[str, ...] = (),
    env: dict[str, str | None] | None = None,
    connect: bool = True,
    **settings: Any,
) -> Harness:
    """A shell against ``server``: plugins loaded and started, connected unless told not."""
    full_env = {
        "UNITH_SHELL_HOME": os.environ["UNITH_SHELL_HOME"],
        "UNITH_SHELL_PLUGINS": "",
        "NO_COLOR": "1",
    }
    for key, value in (env or {}).items():  # None removes a variable
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    lines: list[str] = []
    shell = new_shell(
        Settings(base_url=server.base_url, plugins=list(plugins), **settings),
        env=full_env,
        write=lines.append,
    )
    shell.load_plugins()
    await shell.start_plugins()
    if connect:
        await shell.session.connect()
        shell.session.start(connected=True)
    return Harness(shell, lines, server)


#: The ``make`` fixture (conftest.py): ``await make(**start_shell_arguments)``.
Make = Callable[..., Awaitable[Harness]]


# --------------------------------------------------------------------------- small helpers


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` holds (a generous deadline: the machine may be loaded)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """Environment for running the real ``unith-shell`` in a subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNITH")}
    env.update(
        UNITH_SHELL_HOME=str(home),
        UNITH_SHELL_PLUGINS="",
        PROMPT_TOOLKIT_NO_CPR="1",
        TERM="xterm",
        COLUMNS="100",
        LINES="30",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def run_cli(args: list[str], home: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real CLI as a subprocess (stdin closed), text output."""
    return subprocess.run(
        [*UNITH_SHELL, *args],
        env=cli_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


async def run_cli_async(
    tmp_path: Path, *args: str, home: Path | None = None
) -> tuple[int, str, str]:
    """The real CLI in pipe mode, without blocking the loop a test's server runs in."""
    proc = await asyncio.create_subprocess_exec(
        *UNITH_SHELL,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(home or tmp_path / "home"),
    )
    try:
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def start_server(port: int) -> subprocess.Popen[str]:
    """``unith-shell serve`` in a subprocess on ``port``, returned once it listens."""
    proc = subprocess.Popen(
        [*UNITH_SHELL, "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert f":{port}" in line, line + (proc.stderr.read() if proc.stderr else "")
    return proc


class Recorder(SessionListener):
    """Keeps everything a session reports, for assertions."""

    def __init__(self) -> None:
        self.events: list[ServerEvent] = []
        self.shown: list[tuple[int | None, str]] = []
        self.completed: list[Turn] = []
        self.errors: list[str] = []
        self.notices: list[str] = []
        self.frames: list[tuple[str, str | bytes]] = []
        self.states: list[State] = []
        self.connects = 0
        self.disconnects: list[str] = []

    async def on_state(self, session: Session) -> None:
        if not self.states or self.states[-1] is not session.state:
            self.states.append(session.state)

    async def on_frame(self, session: Session, direction: str, data: str | bytes) -> None:
        self.frames.append((direction, data))

    async def on_event(self, session: Session, event: ServerEvent) -> None:
        self.events.append(event)

    async def on_parts(self, session: Session, turn: Turn, parts: list[ResponsePart]) -> None:
        self.shown.extend((turn.message_id, p.text) for p in parts)

    async def on_turn_complete(self, session: Session, turn: Turn) -> None:
        self.completed.append(turn)

    async def on_protocol_error(self, session: Session, error: ProtocolError) -> None:
        self.errors.append(error.reason)

    async def on_notice(self, session: Session, text: str) -> None:
        self.notices.append(text)

    async def on_connect(self, session: Session) -> None:
        self.connects += 1

    async def on_disconnect(self, session: Session, reason: str) -> None:
        self.disconnects.append(reason)


def spawn(home: Path, *args: str) -> pexpect.spawn:
    """The real CLI with its built-in local server (``--local``), in a pseudo-terminal."""
    child = pexpect.spawn(
        UNITH_SHELL[0],
        [*UNITH_SHELL[1:], "--local", *args],
        env=cli_env(home),
        dimensions=(30, 100),
        encoding="utf-8",
        timeout=10,
    )
    return child


def quit_with_ctrl_d(child: pexpect.spawn) -> None:
    child.send(CTRL_D)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
