"""Scale: per-part time of a 1,000- vs a 10,000-part turn (through Shell + Session, with the
``/log`` transcript on), Turn assembly alone, and per-turn time over a long session."""

from __future__ import annotations

import asyncio
import io
import json
import time
from pathlib import Path
from typing import Any

from _common import Figure, Result, interleave, isolated_env, median, server_process, temp_dir


class _Null(io.StringIO):
    def write(self, text: str) -> int:
        return len(text)


async def _shell(base_url: str, home: Path, transcript: Path | None) -> Any:
    from unith_shell.config_file import load_settings
    from unith_shell.files import paths
    from unith_shell.pipe import PlainView
    from unith_shell.shell import Shell

    env = isolated_env(home)
    settings = load_settings({"base_url": base_url, "history": False}, env=env).settings
    shell = Shell(settings, paths(env), view=PlainView(_Null(), _Null()), env=env)
    shell.load_plugins()
    await shell.start_plugins()
    await shell.session.connect()
    shell.session.start(connected=True)
    if transcript is not None:
        await shell.handle_line(f"/log on {transcript}")
    return shell


async def _turns(shell: Any, count: int, expect_parts: int | None = None) -> list[float]:
    """Send ``count`` messages one after another; seconds per turn."""
    times = []
    clock = time.perf_counter
    for _ in range(count):
        started = clock()
        turn = await shell.send("hello")
        await shell.session.wait(turn, timeout=120)
        times.append(clock() - started)
        if not turn.ok or (expect_parts is not None and len(turn.parts) != expect_parts):
            raise RuntimeError(f"turn not as expected: {turn.outcome} {turn.error}")
    return times


def big_turns(parts: int, turns: int, home: Path) -> list[float]:
    """Seconds per part, for each of ``turns`` turns of ``parts`` parts each."""

    async def go() -> list[float]:
        shell = await _shell(base_url, home, home / "transcript.jsonl")
        try:
            await _turns(shell, 1)  # warm-up
            return [t / parts for t in await _turns(shell, turns, parts)]
        finally:
            await shell.stop()

    with server_process(fault="many-parts", count=parts) as base_url:
        return asyncio.run(go())


def assembly_per_part(parts: int, reps: int) -> float:
    """Turn.add of ``parts`` parts (arriving in order) plus the turn's text: seconds per part."""
    from unith_shell.protocol import ResponsePart
    from unith_shell.turn import Turn

    made = [
        ResponsePart(
            event="text",
            raw={},
            text=f"Part {i + 1} of {parts}.",
            input_message_id=0,
            part_order=i,
            is_last=i == parts - 1,
        )
        for i in range(parts)
    ]

    def once() -> float:
        started = time.perf_counter()
        turn = Turn(message_id=0)
        for part in made:
            turn.add(part)
        if not turn.complete or not turn.text:
            raise RuntimeError("assembly failed")
        return (time.perf_counter() - started) / parts

    return median([once() for _ in range(reps)])


def long_session(turns: int, window: int, home: Path) -> tuple[float, float, float]:
    """Per-turn seconds (median) over the first and the last ``window`` turns, and the mean."""

    async def go() -> list[float]:
        shell = await _shell(base_url, home, home / "long.jsonl")
        try:
            return await _turns(shell, turns)
        finally:
            await shell.stop()

    with server_process() as base_url:
        times = asyncio.run(go())
    return median(times[:window]), median(times[-window:]), sum(times) / len(times)


def run(quick: bool = False) -> list[Result]:
    small, big = (100, 1_000) if quick else (1_000, 10_000)
    long_turns, window = (200, 50) if quick else (10_000, 1_000)
    out: list[Result] = []
    with temp_dir() as home:
        per_small = median(big_turns(small, 3 if quick else 10, home / "s"))
        per_big = median(big_turns(big, 1 if quick else 3, home / "b"))
        out.append(
            Figure(
                "scale",
                f"per part, {big:,}-part turn",
                per_big * 1e6,
                "us",
                f"per part, {small:,}-part turn",
                per_small * 1e6,
                target="linear: <= 1.25x",
                limit=1.25,
                note="Shell + Session in-process, /log transcript on, server in "
                "its own process; medians",
            )
        )
        reps = 3 if quick else 15
        times = interleave(
            {
                "small": lambda: assembly_per_part(small, 1),
                "big": lambda: assembly_per_part(big, 1),
            },
            reps,
        )
        out.append(
            Figure(
                "scale",
                f"Turn assembly + text, per part, {big:,} parts",
                median(times["big"]) * 1e6,
                "us",
                f"the same, {small:,} parts",
                median(times["small"]) * 1e6,
                target="linear: <= 1.25x",
                limit=1.25,
            )
        )
        first, last, mean = long_session(long_turns, window, home / "l")
        out.append(
            Figure(
                "scale",
                f"long session: per turn, last {window:,} of {long_turns:,}",
                last * 1e6,
                "us",
                f"per turn, first {window:,}",
                first * 1e6,
                target="flat: <= 1.25x",
                limit=1.25,
                note=f"mean {mean * 1e6:.0f} us per turn; /log transcript on",
            )
        )
    return out


if __name__ == "__main__":
    for result in run():
        print(json.dumps(result.as_dict()))
