"""Resilience: random frame sequences, a killed server process, pipe-mode outcomes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import UNITH_SHELL, Recorder, cli_env, free_port, start_server, wait_for
from unith_shell import api
from unith_shell.protocol import Echo
from unith_shell.server import LocalServer
from unith_shell.session import Session, SessionOptions, State

# ---- a session against random valid and invalid frame sequences -----------------------------

INVALID_FRAMES: list[str | bytes] = [
    "{not json",
    "[1, 2]",
    "null",
    '{"no_event": 1}',
    '{"event": "text", "input_message_id": MID, "part_order": "x"}',
    '{"event": "text", "input_message_id": MID, "part_order": 1, "is_last": "yes"}',
    '{"event": "text", "input_message_id": MID, "part_order": 0, "suggestions": [1]}',
    b"\x00\x01binary",
]
INVALID = st.sampled_from(INVALID_FRAMES)
INVALID_SET = set(INVALID_FRAMES)
HARMLESS = st.sampled_from(
    [
        '{"event": "brand_new_thing"}',
        '{"event": "analytics-userFeedback"}',
        '{"event": "join", "granted": true}',
        '{"event": "keep_session", "granted": true}',
        '{"event": "text", "input_message_id": 999, "part_order": 0, "text": "stray"}',
    ]
)


def part_frame(order: int, text: str, last: bool) -> str:
    return json.dumps(
        {
            "event": "text",
            "user_id": "bot",
            "input_message_id": 0,
            "part_order": order,
            "is_last": last,
            "text": text,
        }
    ).replace('"input_message_id": 0', '"input_message_id": MID')


@st.composite
def frame_sequences(draw: Any) -> tuple[list[str | bytes], list[str], int]:
    texts = draw(st.lists(st.text(max_size=8), min_size=1, max_size=6))
    valid: list[str | bytes] = [part_frame(i, t, i == len(texts) - 1) for i, t in enumerate(texts)]
    duplicates = draw(st.lists(st.sampled_from(valid), max_size=2))
    order = draw(st.permutations(valid + duplicates))
    noise = draw(st.lists(st.tuples(st.integers(0, 20), INVALID | HARMLESS), max_size=6))
    frames = list(order)
    invalid = 0
    for position, frame in noise:
        frames.insert(min(position, len(frames)), frame)
        if frame in INVALID_SET:
            invalid += 1
    return frames, texts, invalid


async def run_sequence(frames: list[str | bytes]) -> tuple[Session, Recorder, Any]:
    async with LocalServer() as server:
        server.set_fault("scripted", frames=frames)
        recorder = Recorder()
        session = Session(
            SessionOptions(base_url=server.base_url, org="unith", head="aiko", timeout=2.0),
            recorder,
        )
        try:
            await session.connect()
            session.start(connected=True)
            turn = await session.send("fuzz")
            assert turn is not None
            await session.wait(turn, timeout=10)
            return session, recorder, turn
        finally:
            await session.close()
            await api.close_clients()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(frame_sequences())
def test_session_survives_random_frame_sequences(
    sequence: tuple[list[str | bytes], list[str], int],
) -> None:
    frames, texts, invalid = sequence
    _, recorder, turn = asyncio.run(run_sequence(frames))
    assert turn.ok, (turn.outcome, turn.error)
    # The completed turn's text is its valid parts joined in part_order.
    assert turn.text == "\n".join(t for t in texts if t)
    # Parts were shown once each, in order; one notice per invalid frame.
    shown = [text for mid, text in recorder.shown if mid == turn.message_id]
    assert shown == texts
    # One notice per invalid frame; those after the completing part may arrive after the
    # session closed, so they set only the upper bound.
    assert invalid_before(frames, len(texts)) <= len(recorder.errors) <= invalid


def invalid_before(frames: list[str | bytes], parts: int) -> int:
    """Invalid frames sent before the one that completes the turn."""
    seen: set[str | bytes] = set()
    count = 0
    for frame in frames:
        if frame in INVALID_SET:
            count += 1
        elif isinstance(frame, str) and '"part_order"' in frame and "stray" not in frame:
            seen.add(frame.replace('"is_last": true', "").replace('"is_last": false', ""))
            if len(seen) == parts:
                return count
    return count


# ---- a real server process, killed and restarted ---------------------------------------------


@pytest.fixture
def port() -> Iterator[int]:
    yield free_port()


async def test_server_killed_mid_turn_then_restarted_delivers_queued_messages_once(
    port: int,
) -> None:
    server = start_server(port)
    recorder = Recorder()
    session = Session(
        SessionOptions(
            base_url=f"http://127.0.0.1:{port}",
            org="faults",
            head="slow",
            timeout=5.0,
            reconnect_initial=0.05,
            reconnect_max=0.3,
        ),
        recorder,
    )
    second: subprocess.Popen[str] | None = None
    try:
        await session.connect()
        session.start(connected=True)
        cut = await session.send("cut off")
        assert cut is not None
        await wait_for(lambda: cut.first_part_at is not None)  # mid-turn
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
        await session.wait(cut, timeout=5)
        assert cut.outcome == "disconnected" and cut.text  # part 0 is kept
        await wait_for(lambda: session.state is State.RECONNECTING)
        queued = [await session.send(f"queued {i}") for i in range(3)]
        assert len(session.pending) == 3
        session.options.org, session.options.head = "unith", "aiko"  # quick replies now
        second = start_server(port)
        for turn in queued:
            assert turn is not None
            await session.wait(turn, timeout=10)
            assert turn.ok, turn.error
        assert [t.prompt if t else None for t in queued] == [f"queued {i}" for i in range(3)]
        assert all(f"queued {i}" in (t.text if t else "") for i, t in enumerate(queued))
        assert "connection lost" in (cut.error or "") and "reconnecting" in (cut.error or "")
        # Exactly once each: the server echoes every message it gets.
        echoes = [e.text for e in recorder.events if isinstance(e, Echo)]
        assert [echoes.count(f"queued {i}") for i in range(3)] == [1, 1, 1]
    finally:
        await session.close()
        await api.close_clients()
        for proc in (server, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(5)


# ---- pipe mode: one outcome per line, in order ----------------------------------------------


def test_pipe_every_line_gets_one_outcome_in_order(tmp_path: Path) -> None:
    # A head whose every reply is an NLP error in between normal ones: use keywords of aiko.
    lines = ["first", "error", "third"]
    result = subprocess.run(
        [*UNITH_SHELL, "--local", "--json"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        env=cli_env(tmp_path / "home"),
        timeout=60,
    )
    events = [json.loads(line) for line in result.stdout.splitlines()]
    turns = [e for e in events if e["event"] == "unith_shell.turn" and e["input"]]
    assert [t["input"] for t in turns] == lines
    assert [t["outcome"] for t in turns] == ["last", "unith_nlp_exception", "last"]
    errors = [e for e in events if e["event"] == "unith_shell.notice" and e["level"] == "error"]
    assert len(errors) == 1 and "line 2" in errors[0]["text"]
    assert result.returncode == 4


def test_pipe_connection_refused_is_exit_3_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [*UNITH_SHELL, "--base-url", f"http://127.0.0.1:{free_port()}", "-m", "hi"],
        capture_output=True,
        text=True,
        env=cli_env(tmp_path / "home"),
        timeout=60,
    )
    assert result.returncode == 3
    assert result.stderr.strip().count("\n") == 0 and "connection refused" in result.stderr
    assert "Traceback" not in result.stderr


def test_insecure_flag_warns(tmp_path: Path) -> None:
    result = subprocess.run(
        [*UNITH_SHELL, "--local", "--insecure", "-m", "hi"],
        capture_output=True,
        text=True,
        env=cli_env(tmp_path / "home"),
        timeout=60,
    )
    assert result.returncode == 0
    assert "TLS certificate checks are OFF" in result.stderr
