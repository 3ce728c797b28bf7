"""Start-up: ``--version``/``--help`` vs ``python -c pass``; a connected, ready REPL vs the bare
import of prompt-toolkit + websockets + pluggy + httpx."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from _common import (
    PYTHON,
    TARGET,
    Figure,
    Result,
    interleave,
    isolated_env,
    median,
    server_process,
    temp_dir,
)

BARE_IMPORT = "import prompt_toolkit, websockets.asyncio.client, pluggy, httpx"
#: Targets (issue 10): ratios to ``python -c pass`` and to the bare import.
LIMITS = {"version": 1.5, "help": 1.8, "ready": 1.30}
#: The last part of the aiko head's answer to any message: the typed-ahead line was accepted,
#: sent and answered in full (the clock stops when the whole reply is on the screen).
REPLY_MARK = "What would you like to talk about next?"


def wall(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    return time.perf_counter() - started


def ready_prompt(base_url: str, home: Path) -> float:
    """Spawn the REPL in a pseudo-terminal, type a line at once (before the prompt exists)
    and time until the whole reply to it is on the screen: start-up, login, connect,
    greeting, one round trip and the output batching."""
    import pexpect

    env = isolated_env(home, loop="asyncio")
    started = time.perf_counter()
    child = pexpect.spawn(
        TARGET.cmd[0],
        [*TARGET.cmd[1:], "--base-url", base_url, "--no-history"],
        env=env,
        encoding="utf-8",
        dimensions=(30, 100),
        timeout=30,
    )
    child.delaybeforesend = None
    try:
        child.sendline("hello")
        child.expect_exact(REPLY_MARK)
        elapsed = time.perf_counter() - started
        child.sendcontrol("d")
        child.expect(pexpect.EOF, timeout=10)
    finally:
        child.close(force=True)
    return elapsed


def bare_import(env: dict[str, str]) -> float:
    """The baseline, spawned the same way (a pseudo-terminal) and timed to its exit."""
    import pexpect

    started = time.perf_counter()
    child = pexpect.spawn(PYTHON, ["-c", BARE_IMPORT], env=env, timeout=30)
    child.expect(pexpect.EOF)
    elapsed = time.perf_counter() - started
    child.close()
    return elapsed


def run(quick: bool = False) -> list[Result]:
    reps_cli, reps_prompt = (2, 1) if quick else (30, 10)
    out: list[Result] = []
    with temp_dir() as home:
        env = isolated_env(home, loop="asyncio")  # the default install (no speed extra)
        times = interleave(
            {
                "pass": lambda: wall([PYTHON, "-c", "pass"], env),
                "version": lambda: wall([*TARGET.cmd, "--version"], env),
                "help": lambda: wall([*TARGET.cmd, "--help"], env),
            },
            reps_cli,
        )
        base = median(times["pass"]) * 1000
        note = f"{reps_cli} interleaved runs each, medians (console script {TARGET.cmd[0]})"
        for flag in ("version", "help"):
            out.append(
                Figure(
                    "start-up",
                    f"unith-shell --{flag}",
                    median(times[flag]) * 1000,
                    "ms",
                    "python -c pass",
                    base,
                    target=f"<= {LIMITS[flag]}x",
                    limit=LIMITS[flag],
                    note=note if flag == "version" else "",
                )
            )
        with server_process() as base_url:
            ready_prompt(base_url, home)  # warm the OS caches and the history/state folders
            times = interleave(
                {
                    "bare": lambda: bare_import(env),
                    "ready": lambda: ready_prompt(base_url, home),
                },
                reps_prompt,
            )
        out.append(
            Figure(
                "start-up",
                "connected ready prompt (typed-ahead line answered)",
                median(times["ready"]) * 1000,
                "ms",
                f"python -c '{BARE_IMPORT}'",
                median(times["bare"]) * 1000,
                target=f"<= {LIMITS['ready']:.2f}x",
                limit=LIMITS["ready"],
                note=f"pexpect, {reps_prompt} interleaved runs, medians; includes "
                "login, WebSocket handshake, greeting and one round trip",
            )
        )
    return out


if __name__ == "__main__":
    for result in run():
        print(json.dumps(result.as_dict()))
