"""unith-shell-stats: the arithmetic, and the hooks in a real shell against the local server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import unith_shell_stats as stats

from unith_shell.config import Settings, paths
from unith_shell.server import LocalServer, ServerConfig
from unith_shell.shell import Shell
from unith_shell.turn import Turn


def test_percentile_and_summary() -> None:
    values = [float(v) for v in range(1, 101)]
    assert stats.percentile(values, 95) == 95.0
    assert stats.percentile([3.0], 95) == 3.0
    assert stats.summarize([]) == "-"
    assert stats.summarize([0.001, 0.003]).startswith("min 1.0 ms, median 2.0 ms")


def test_counts_answered_and_failed_turns() -> None:
    s = stats.Stats()
    ok = Turn(message_id=1, sent_at=10.0)
    ok.first_part_at, ok.completed_at, ok.outcome = 10.5, 11.0, "last"
    bad = Turn(message_id=2)
    bad.finish("timed out", "no reply")
    s.add(ok)
    s.add(bad)
    assert (s.answered, s.failed, s.first, s.total) == (1, {"timed out": 1}, [0.5], [1.0])
    assert s.report()[0] == "turns: 2 (1 answered, 1 failed)"


@pytest.fixture
async def server() -> AsyncIterator[LocalServer]:
    async with LocalServer(ServerConfig(port=0)) as srv:
        yield srv


async def test_in_a_real_shell(server: LocalServer, tmp_path: Path) -> None:
    env = {"UNITH_SHELL_HOME": str(tmp_path), "UNITH_SHELL_PLUGINS": "", "NO_COLOR": "1"}
    lines: list[str] = []
    shell = Shell(
        Settings(base_url=server.base_url, plugins=["unith_shell_stats"]),
        paths(env),
        env=env,
        write=lines.append,
    )
    shell.load_plugins()
    await shell.start_plugins()
    try:
        await shell.session.connect()
        shell.session.start(connected=True)
        for text in ("one", "two"):
            turn = await shell.send(text)
            assert turn is not None
            await shell.session.wait(turn, timeout=5)
        lines.clear()
        await shell.handle_line("/stats")
        assert lines[0] == "turns: 2 (2 answered, 0 failed)"
        assert "(n=2)" in lines[1] and "(n=2)" in lines[2]
        assert lines[3] == "connects: 1, disconnects: 0"
        await shell.handle_line("/stats reset")
        lines.clear()
        await shell.handle_line("/stats")
        assert lines[0] == "turns: 0 (0 answered, 0 failed)"
    finally:
        await shell.stop()
