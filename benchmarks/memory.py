"""Memory: peak RSS (VmHWM) of a connected idle shell, and after ``/video`` (REST calls
through httpx), vs a connected raw websockets client (and wscat, for reference); and whether
it stays flat over a long session (20,000 turns: the peak after the last turn vs after the
first 1,000)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from _common import (
    HERE,
    PYTHON,
    TARGET,
    Figure,
    LineReader,
    Result,
    child_env,
    isolated_env,
    median,
    proc_memory,
    server_process,
    start_wscat,
    temp_dir,
    write_all,
)

REPLY = b"Thanks for telling me"
#: Used when the shell has no ``/video`` yet: the same REST calls (videos -> idle URL).
REST_PLUGIN = '''"""Benchmark helper: /bench-rest makes the REST calls /video makes."""

from unith_shell import hookimpl


async def _bench_rest(ctx, arg):
    opts = ctx.session.options
    url = await ctx.shell.api.idle_video_url(opts.org, opts.head)
    ctx.print("bench-rest: " + url)


@hookimpl
def register_commands(register):
    register("bench-rest", _bench_rest, help="benchmark helper")
'''
SETTLE = 0.3  # seconds to let a reply's output and any deferred work finish
#: Targets (issue 10), MiB.
REPL_LIMIT, PIPE_LIMIT = 38.0, 32.0
#: Lines typed ahead at once in the long sessions (the reader waits for their replies).
BLOCK = 50


def _rest_plugin(folder: Path) -> Path:
    path = folder / "bench_rest.py"
    path.write_text(REST_PLUGIN)
    return path


def pipe_shell(base_url: str, home: Path, plugin: Path) -> dict[str, float]:
    """Pipe mode, stdin kept open: idle after one reply, then after ``/video``."""
    proc = subprocess.Popen(
        [*TARGET.cmd, "--base-url", base_url, "--no-history", "--plugin", str(plugin)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=isolated_env(home, loop="asyncio"),
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        reader = LineReader(proc.stdout.fileno())
        write_all(proc.stdin.fileno(), b"hello\n")
        reader.read_until(REPLY, 1)
        time.sleep(SETTLE)
        idle = proc_memory(proc.pid)["VmHWM"]
        rest = _after_video(proc.stdin.fileno(), reader)
        time.sleep(SETTLE)
        after = proc_memory(proc.pid)["VmHWM"]
    finally:
        proc.kill()
        proc.wait()
    return {"idle": idle, "rest": after, "video": float(rest == "/video")}


def _after_video(stdin: int, reader: LineReader) -> str:
    """Send ``/video``; if the shell has no such command, the same calls via /bench-rest."""
    before = len(reader.data)
    write_all(stdin, b"/video\n")
    reader.seen = 0
    reader.read_until(b"\n", 1, timeout=30)
    if b"unknown command" not in reader.data[before:]:
        return "/video"
    reader.seen = 0
    write_all(stdin, b"/bench-rest\n")
    reader.read_until(b"bench-rest: ", 1, timeout=30)
    return "/bench-rest"


def repl_shell(base_url: str, home: Path, plugin: Path) -> dict[str, float]:
    """The REPL in a pseudo-terminal: idle after one reply, then after ``/video``."""
    import pexpect

    child = pexpect.spawn(
        TARGET.cmd[0],
        [*TARGET.cmd[1:], "--base-url", base_url, "--no-history", "--plugin", str(plugin)],
        env=isolated_env(home, loop="asyncio"),
        encoding="utf-8",
        dimensions=(30, 100),
        timeout=30,
    )
    child.delaybeforesend = None
    try:
        child.sendline("hello")
        child.expect_exact(REPLY.decode())
        time.sleep(SETTLE)
        idle = proc_memory(child.pid)["VmHWM"]
        child.sendline("/video")
        used = "/video"
        if child.expect(["unknown command", r"https?://\S+idle"]) == 0:
            used = "/bench-rest"
            child.sendline("/bench-rest")
            child.expect_exact("bench-rest: ")
        time.sleep(SETTLE)
        after = proc_memory(child.pid)["VmHWM"]
    finally:
        child.close(force=True)
    return {"idle": idle, "rest": after, "video": float(used == "/video")}


def _long(
    pid: int, stdin: int, reader: LineReader, marker: bytes, turns: int, checkpoint: int
) -> tuple[float, float, float]:
    """Type ``turns`` lines, ``BLOCK`` at a time, each block after the last one's replies.

    Returns (VmHWM after ``checkpoint`` turns, VmHWM after all, VmRSS after all) in MiB.
    """
    done = 0
    first = 0.0
    while done < turns:
        block = min(BLOCK, turns - done)
        write_all(stdin, b"hello\n" * block)
        reader.read_until(marker, reader.seen + block, timeout=120)
        reader.chunks.clear()  # the count is all that matters; keep this process small
        done += block
        if done == checkpoint:
            first = proc_memory(pid)["VmHWM"]
    last = proc_memory(pid)
    return first, last["VmHWM"], last["VmRSS"]


def long_pipe(base_url: str, home: Path, turns: int, checkpoint: int) -> tuple[float, ...]:
    proc = subprocess.Popen(
        [*TARGET.cmd, "--base-url", base_url, "--no-history"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=isolated_env(home, loop="asyncio"),
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        reader = LineReader(proc.stdout.fileno())
        return _long(proc.pid, proc.stdin.fileno(), reader, REPLY, turns, checkpoint)
    finally:
        proc.kill()
        proc.wait()


def long_repl(base_url: str, home: Path, turns: int, checkpoint: int) -> tuple[float, ...]:
    import pexpect

    child = pexpect.spawn(
        TARGET.cmd[0],
        [*TARGET.cmd[1:], "--base-url", base_url, "--no-history"],
        env=isolated_env(home, loop="asyncio"),
        dimensions=(30, 100),
        timeout=30,
    )
    try:
        reader = LineReader(child.child_fd)
        return _long(child.pid, child.child_fd, reader, REPLY, turns, checkpoint)
    finally:
        child.close(force=True)


def raw_client(base_url: str) -> float:
    proc = subprocess.Popen(
        [PYTHON, str(HERE / "raw_client.py"), base_url, "idle"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=child_env(loop="asyncio"),
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        LineReader(proc.stdout.fileno()).read_until(b"ready", 1)
        time.sleep(SETTLE)
        return proc_memory(proc.pid)["VmHWM"]
    finally:
        proc.kill()
        proc.wait()


def wscat(base_url: str) -> float:
    creds, proc = start_wscat(base_url)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        reader = LineReader(proc.stdout.fileno())
        handshake = json.dumps({"token": creds["access_token"], "api_key": ""}).encode() + b"\n"
        for _ in range(120):  # wscat drops lines sent before its socket is open
            write_all(proc.stdin.fileno(), handshake)
            try:
                reader.read_until(b'"is_last":true', 1, timeout=0.25)
                break
            except TimeoutError:
                continue
        time.sleep(SETTLE)
        return proc_memory(proc.pid)["VmHWM"]
    finally:
        proc.kill()
        proc.wait()


def bare_import() -> float:
    """Peak RSS of a process that only imports prompt-toolkit + websockets + pluggy + httpx.

    Read from /proc (VmHWM starts afresh at exec), not ru_maxrss, which on Linux also counts
    the forked copy of this (bigger) process before the exec.
    """
    code = (
        "import prompt_toolkit, websockets.asyncio.client, pluggy, httpx; "
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
    )
    out = subprocess.run(
        [PYTHON, "-c", code],
        capture_output=True,
        check=True,
        text=True,
        env=child_env(loop="asyncio"),
    )
    return int(out.stdout) / 1024  # KiB -> MiB


def run(quick: bool = False) -> list[Result]:
    reps = 1 if quick else 3
    turns, checkpoint = (200, 50) if quick else (20_000, 1_000)
    samples: dict[str, list[Any]] = {"pipe": [], "repl": [], "raw": [], "wscat": [], "bare": []}
    has_wscat = shutil.which("wscat") is not None
    with temp_dir() as tmp, server_process() as base_url:
        plugin = _rest_plugin(tmp)
        for rep in range(reps):
            samples["raw"].append(raw_client(base_url))
            samples["bare"].append(bare_import())
            samples["pipe"].append(pipe_shell(base_url, tmp / f"p{rep}", plugin))
            samples["repl"].append(repl_shell(base_url, tmp / f"r{rep}", plugin))
            if has_wscat:
                samples["wscat"].append(wscat(base_url))
        long = {
            "pipe": long_pipe(base_url, tmp / "lp", turns, checkpoint),
            "repl": long_repl(base_url, tmp / "lr", turns, checkpoint),
        }
    raw = median(samples["raw"])
    base = "connected raw websockets client"
    via = "/video" if all(s["video"] for s in samples["repl"]) else "/bench-rest (no /video yet)"
    note = f"VmHWM, {reps} runs, medians; the REST call went through {via}"
    out: list[Result] = []
    for mode, label, limit in (
        ("repl", "REPL (pexpect)", REPL_LIMIT),
        ("pipe", "pipe mode", PIPE_LIMIT),
    ):
        idle = median([s["idle"] for s in samples[mode]])
        rest = median([s["rest"] for s in samples[mode]])
        out.append(
            Figure(
                "memory",
                f"{label}: connected, idle",
                idle,
                "MiB",
                base,
                raw,
                target=f"<= {limit:g} MiB",
                abs_limit=limit,
                note=note if mode == "repl" else "",
            )
        )
        out.append(
            Figure(
                "memory",
                f"{label}: after {via.split()[0]}",
                rest,
                "MiB",
                base,
                raw,
                target=f"<= {limit:g} MiB",
                abs_limit=limit,
            )
        )
        first, last, rss = long[mode]
        out.append(
            Figure(
                "memory",
                f"{label}: peak after {turns:,} turns",
                last,
                "MiB",
                f"peak after {checkpoint:,} turns",
                first,
                target="flat: <= 1.05x",
                limit=1.05,
                note=f"VmRSS at the end {rss:.1f} MiB; lines typed {BLOCK} at a time",
            )
        )
    out.append(
        Figure(
            "memory",
            "bare import of prompt-toolkit + websockets + pluggy + httpx (reference)",
            median(samples["bare"]),
            "MiB",
            base,
            raw,
        )
    )
    if has_wscat:
        out.append(
            Figure(
                "memory", "wscat, connected (reference)", median(samples["wscat"]), "MiB", base, raw
            )
        )
    return out


if __name__ == "__main__":
    for result in run():
        print(json.dumps(result.as_dict()))
