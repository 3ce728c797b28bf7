"""Issue 9 review: hostile input on paths the first round of tests did not drive.

Each test drives the real CLI (a subprocess) or the real module against
tests/hostile_network.py or a hostile file, and fails on the code before its fix.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.hostile_network import HostileServer
from tests.test_hostile_network import run_cli
from unith_shell import api
from unith_shell.recordings.format import load


@pytest.fixture
async def hostile() -> AsyncIterator[HostileServer]:
    async with HostileServer() as srv:
        yield srv
    await api.close_clients()


# ---- a deeply nested frame on the secondary paths (/raw, the transcript recorder) ----------


async def test_raw_frames_on_survive_a_900_deep_frame(
    hostile: HostileServer, tmp_path: Path
) -> None:
    """/raw on redacted the frame with unbounded json.loads: RecursionError killed the reader
    and the turn was cut."""
    code, out, err = await run_cli(
        tmp_path, "--base-url", hostile.base("ok"), "-m", "/raw on", "-m", "deep", "-m", "hello"
    )
    assert "RecursionError" not in err and "reader failed" not in err, err
    assert code == 0, err
    assert "nested more than 32 levels deep" in err  # the session's one protocol-error line
    assert out.splitlines()[-1].endswith("two")


async def test_the_transcript_recorder_survives_a_900_deep_frame(
    hostile: HostileServer, tmp_path: Path
) -> None:
    """The recorder decoded frames with unbounded json.loads: a deep frame disabled it and
    the rest of the conversation was never written."""
    record = tmp_path / "deep.jsonl"
    code, _, err = await run_cli(
        tmp_path,
        "--base-url",
        hostile.base("ok"),
        "--record",
        str(record),
        "-m",
        "deep",
        "-m",
        "hello",
    )
    assert code == 0, err
    assert "log-recorder" not in err and "RecursionError" not in err, err
    assert [t.user for t in load(record).turns] == ["deep", "hello"]
    texts = [f.payload for f in load(record).frames if f.direction == "in"]
    assert any(isinstance(p, dict) and p.get("text") == "two" for p in texts)
