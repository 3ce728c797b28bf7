"""Shared fixtures: an isolated home, the real local server on a free loopback port."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.plugin_fixtures._harness import Harness, start_shell
from unith_shell.server import LocalServer, ServerConfig

REPO = Path(__file__).resolve().parent.parent

# Plugin folders and config files the tests make must pass the StrictModes check (not
# writable by group or others). Under a umask of 002 (common for users with a group of their
# own) every file and folder a test creates would be group-writable and refused, so the suite
# would fail on such a machine for a reason unrelated to what it tests.
os.umask(0o022)


@pytest.fixture(autouse=True)
def shell_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own UNITH_SHELL_HOME; entry-point plugins are off unless asked."""
    home = tmp_path / "home"
    monkeypatch.setenv("UNITH_SHELL_HOME", str(home))
    monkeypatch.setenv("UNITH_SHELL_PLUGINS", "")
    for name in ("UNITH_BASE_URL", "UNITH_ORG", "UNITH_HEAD", "UNITH_API_KEY", "UNITH_USERNAME",
                 "UNITH_PASSWORD", "UNITH_SHELL_PROFILE", "UNITH_SHELL_STRICT_PLUGINS",
                 "UNITH_SHELL_TRACE_PLUGINS", "UNITH_SHELL_TIMEOUT", "UNITH_SHELL_MAX_PARTS",
                 "NO_COLOR"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    yield home


Make = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make(server: LocalServer) -> AsyncIterator[Make]:
    """Start real shells against ``server`` (see plugin_fixtures/_harness.py); stop them after."""
    made: list[Harness] = []

    async def factory(**kwargs: Any) -> Harness:
        harness = await start_shell(server, **kwargs)
        made.append(harness)
        return harness

    yield factory
    for harness in made:
        await harness.shell.stop()


@pytest.fixture
async def server() -> AsyncIterator[LocalServer]:
    """The real local Unith server, in-process, on 127.0.0.1 and a free port."""
    async with LocalServer(ServerConfig(port=0)) as srv:
        yield srv


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


UNITH_SHELL = [sys.executable, "-m", "unith_shell"]
