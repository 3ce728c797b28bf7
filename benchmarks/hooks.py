"""Hook dispatch: the shell's ``plugins.hook.NAME(...)`` cost per plugin per call (0, 1, 10
no-op plugins), pluggy's own dispatch as the reference, and the dispatch of a hook nobody
implements (a function returning ``None``) vs a bare function call."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from _common import Figure, Result, interleave, median, temp_dir
from message_path import write_noop_plugins


def make_plugins(count: int) -> Any:
    from unith_shell.plugins import Plugins

    plugins = Plugins(notify=lambda text: None)
    with temp_dir() as folder:
        for name in write_noop_plugins(folder, count):
            if not plugins.load_file(folder / f"{name}.py"):
                raise RuntimeError(f"cannot load {name}: {plugins.load_errors}")
    return plugins


def per_call_shell(plugins: Any, calls: int) -> Callable[[], float]:
    """Seconds per ``after_receive`` dispatch as the shell does it: call, await if needed."""
    event, session = object(), object()

    async def loop() -> float:
        hooks = plugins.hook
        started = time.perf_counter()
        for _ in range(calls):
            if (hook := hooks.after_receive) is not None and (
                pending := hook(event=event, session=session)
            ) is not None:
                await pending
        return (time.perf_counter() - started) / calls

    return lambda: asyncio.run(loop())


def per_call_pluggy(plugins: Any, calls: int) -> Callable[[], float]:
    """Seconds per plain pluggy call of the same hook on the same plugin manager."""
    hook = plugins.pm.hook.after_receive
    event, session = object(), object()

    def loop() -> float:
        started = time.perf_counter()
        for _ in range(calls):
            hook(event=event, session=session, ctx=None)
        return (time.perf_counter() - started) / calls

    return loop


def per_iteration(body: Callable[[], Any] | None, calls: int) -> Callable[[], float]:
    """Seconds per ``body()`` in a loop; ``None`` times the empty loop itself."""

    def loop() -> float:
        started = time.perf_counter()
        if body is None:
            for _ in range(calls):
                pass
        else:
            for _ in range(calls):
                body()
        return (time.perf_counter() - started) / calls

    return loop


def _nothing() -> None:
    return None


def run(quick: bool = False) -> list[Result]:
    calls, reps = (2_000, 1) if quick else (200_000, 7)
    p0, p1, p10 = make_plugins(0), make_plugins(1), make_plugins(10)
    times = interleave(
        {
            "shell0": per_call_shell(p0, calls),
            "shell1": per_call_shell(p1, calls),
            "shell10": per_call_shell(p10, calls),
            "pluggy0": per_call_pluggy(p0, calls),
            "pluggy1": per_call_pluggy(p1, calls),
            "pluggy10": per_call_pluggy(p10, calls),
        },
        reps,
    )
    us = {k: median(v) * 1e6 for k, v in times.items()}
    shell_per = (us["shell10"] - us["shell0"]) / 10
    pluggy_per = (us["pluggy10"] - us["pluggy0"]) / 10
    note = f"{calls:,} calls x {reps} interleaved runs, medians; (10 plugins - 0 plugins) / 10"
    out: list[Result] = [
        Figure(
            "hook dispatch",
            "plugins.hook dispatch: cost per plugin per call",
            shell_per,
            "us",
            "pluggy hook call, per plugin",
            pluggy_per,
            target="<= 0.3 us",
            abs_limit=0.3,
            note=note,
        ),
        Figure(
            "hook dispatch",
            "plugins.hook dispatch with 1 plugin, per call",
            us["shell1"],
            "us",
            "pluggy hook call with 1 plugin",
            us["pluggy1"],
        ),
        Figure(
            "hook dispatch",
            "plugins.hook dispatch with 0 plugins, per call",
            us["shell0"],
            "us",
            "pluggy hook call with 0 plugins",
            us["pluggy0"],
        ),
    ]

    # A hook nobody implements: its dispatch is None (the shell checks that, nothing else);
    # compare with a bare function call, minus the empty loop.
    hooks = p0.hook
    event, session = object(), object()

    def has_guard() -> None:
        if (hook := hooks.turn_complete) is not None and hook(turn=event, session=session):
            raise AssertionError

    checks = interleave(
        {
            "empty": per_iteration(None, calls * 5),
            "bare": per_iteration(_nothing, calls * 5),
            "has": per_iteration(has_guard, calls * 5),
        },
        reps,
    )
    ns = {k: median(v) * 1e9 for k, v in checks.items()}
    out.append(
        Figure(
            "hook dispatch",
            "unimplemented hook: its dispatch",
            max(ns["has"] - ns["empty"], 0.01),
            "ns",
            "a bare function call",
            max(ns["bare"] - ns["empty"], 0.01),
            target="~0: <= 3x a bare call",
            limit=3.0,
            note="loop overhead subtracted from both",
        )
    )
    return out


if __name__ == "__main__":
    for result in run():
        print(json.dumps(result.as_dict()))
