"""Shared fixtures: an isolated home, the real local server on a free loopback port, shells.

Helpers that test modules import live in tests/support.py, not here.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import SHELL_ENV_VARS, Harness, Make, start_shell
from unith_shell import api
from unith_shell.server import LocalServer, ServerConfig
from unith_shell.session import Session

# Plugin folders and config files the tests make must pass the StrictModes check (not
# writable by group or others). Under a umask of 002 (common for users with a group of their
# own) every file and folder a test creates would be group-writable and refused, so the suite
# would fail on such a machine for a reason unrelated to what it tests.
os.umask(0o022)


@pytest.fixture(autouse=True)
def shell_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own UNITH_SHELL_HOME; entry-point plugins are off unless asked;
    no other variable the shell reads (settings.py's metadata lists them) leaks in."""
    for name in SHELL_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("UNITH_SHELL_HOME", str(home))
    monkeypatch.setenv("UNITH_SHELL_PLUGINS", "")
    # The in-process REPL tests drive a real PromptSession: under TERM=dumb (set by some CI
    # runners and editors' shells) prompt-toolkit switches to its dumb-terminal prompt, which
    # these tests are not about. The pexpect tests set their own TERM (tests/support.py).
    monkeypatch.setenv("TERM", "xterm-256color")
    yield home


@pytest.fixture
async def make(server: LocalServer) -> AsyncIterator[Make]:
    """Start real shells against ``server`` (tests.support.start_shell); stop them after."""
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


@pytest.fixture
async def closing() -> AsyncIterator[list[Session]]:
    """Sessions a test opens itself: closed after it, with the shared HTTP clients."""
    sessions: list[Session] = []
    yield sessions
    for session in sessions:
        await session.close()
    await api.close_clients()
