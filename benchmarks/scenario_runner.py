"""Scenario runner: ``unith-shell test``'s cost per turn against pipe mode's, in one process.

Both variants run in this process (one after the other, interleaved, medians) against one
local server process, with the same settings and no plugins: pipe mode sends ``n`` lines
(``run_pipe`` with ``-m`` messages, output into memory); the runner runs a scenario of ``n``
``user`` steps, each with one ``contains`` assertion. Each figure is the whole run (login,
handshake, greeting, ``n`` turns, close) divided by ``n``; reading the file is not timed.
"""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

from _common import Figure, Result, interleave, isolated_env, median, server_process, temp_dir


def run(quick: bool = False) -> list[Result]:
    n, reps = (30, 1) if quick else (1000, 5)
    from unith_shell import api
    from unith_shell.config_file import load_settings
    from unith_shell.files import paths
    from unith_shell.pipe import run_pipe
    from unith_shell.scenario.assertions import load_registry
    from unith_shell.scenario.loader import load_file
    from unith_shell.scenario.runner import RunConfig, make_jobs, run_job

    with temp_dir() as tmp, server_process() as base_url:
        env = isolated_env(tmp / "home")
        home = paths(env)
        settings = load_settings({"base_url": base_url}, env=env).settings
        registry = load_registry(settings, home, env, print)
        path = Path(tmp) / "turns.yaml"
        steps = "".join("  - user: hello\n    expect: {contains: hello}\n" for _ in range(n))
        path.write_text(f"head: unith/aiko\nsteps:\n{steps}", encoding="utf-8")
        [job] = make_jobs([load_file(path, registry)], [], settings, 1)
        config = RunConfig(settings, home, env, registry, "bench")

        def runner() -> float:
            async def go() -> float:
                started = time.perf_counter()
                result = await run_job(job, config)
                elapsed = time.perf_counter() - started
                await api.close_clients()
                if result.status != "passed":
                    raise RuntimeError(f"the benchmark scenario failed: {result.status}")
                return elapsed / n

            return asyncio.run(go())

        def pipe() -> float:
            piped = load_settings({"base_url": base_url, "messages": ["hello"] * n}, env=env)

            async def go() -> float:
                out, err = io.StringIO(), io.StringIO()
                started = time.perf_counter()
                status = await run_pipe(piped.settings, home, stdout=out, stderr=err)
                elapsed = time.perf_counter() - started
                if status != 0 or out.getvalue().count("You said “hello”") != n:
                    raise RuntimeError(f"pipe mode failed: {status} {err.getvalue()[:200]}")
                return elapsed / n

            return asyncio.run(go())

        runner()  # warm up both: imports, first connection
        pipe()
        times = interleave({"runner": runner, "pipe": pipe}, reps)
    return [
        Figure(
            "scenario runner",
            "unith-shell test: time per turn",
            median(times["runner"]) * 1e6,
            "us",
            "pipe mode, same turns",
            median(times["pipe"]) * 1e6,
            target="<= 1.10x",
            limit=1.10,
            note=f"{n} turns per run, one contains assertion each; {reps} interleaved runs, "
            "medians; both in-process, session setup included",
        )
    ]
