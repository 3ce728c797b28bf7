"""An in-process shell against the local server, with everything it prints collected.

Not a plugin (the leading underscore keeps folder loading away from it).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unith_shell.config import Settings, paths
from unith_shell.server import LocalServer
from unith_shell.shell import Shell
from unith_shell.turn import Turn

FIXTURES = Path(__file__).resolve().parent


def fixture(name: str) -> str:
    return str(FIXTURES / f"{name}.py")


class Harness:
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
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.01)


async def start_shell(
    server: LocalServer,
    *,
    plugins: tuple[str, ...] = (),
    env: dict[str, str | None] | None = None,
    connect: bool = True,
    **settings: Any,
) -> Harness:
    """A Shell like the front ends build it: plugins loaded and started, connected."""
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
    shell = Shell(
        Settings(base_url=server.base_url, plugins=list(plugins), **settings),
        paths(full_env),
        env=full_env,
        write=lines.append,
    )
    shell.load_plugins()
    await shell.start_plugins()
    if connect:
        await shell.session.connect()
        shell.session.start(connected=True)
    return Harness(shell, lines, server)
