"""Message path: pipe mode vs a raw websockets client vs wscat, and the REPL's print path.

Every variant runs in its own process against one local server process, interleaved, and
does the same exchange: one message out; the echo and the reply parts back until ``is_last``.

Three kinds of rows:

- *self-driven*: pipe mode gets all its lines at once and sends each after the previous turn
  ends; the raw client loops in-process. Both sides on the same event loop: asyncio (uvloop
  blocked in both) and, when it is installed, uvloop.
- *driven lock-step*: one driver writes a line to the child's stdin and waits for the end of
  its reply on the child's stdout before the next, for pipe mode, wscat and the raw client's
  ``stdio`` mode alike (the same driver and latency window for all three).
- *allocator*: the raw client and pipe mode again with glibc's mmap threshold pinned (see
  ``_common.ALLOCATORS``), both sides under the same setting.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from _common import (
    ALLOCATORS,
    HERE,
    PYTHON,
    TARGET,
    Figure,
    LineReader,
    Result,
    Skipped,
    child_env,
    has_uvloop,
    interleave,
    isolated_env,
    median,
    percentile,
    server_process,
    start_wscat,
    temp_dir,
    write_all,
)

TURN_MARKER = b'"event": "unith_shell.turn"'
#: The end of one reply in plain pipe mode (the last suggestion line of the aiko head).
PLAIN_END = b"3) Goodbye\n"
#: The end of one reply in the raw client's stdio mode and in wscat (the is_last frame).
FRAME_END = b'"is_last":true'
NOOP_PLUGIN = '''"""A benchmark plugin: implements the per-frame hooks and does nothing."""

from unith_shell import hookimpl


@hookimpl
def after_receive(event, session):
    pass


@hookimpl
def on_frame(direction, data, session):
    pass


@hookimpl
def before_send(message, session):
    pass
'''


def write_noop_plugins(folder: Path, count: int) -> list[str]:
    """``count`` no-op plugin files in ``folder``; returns their names (for the allowlist)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"bench_noop{i}" for i in range(count)]
    for name in names:
        (folder / f"{name}.py").write_text(NOOP_PLUGIN)
    return names


class Run:
    """What one variant's run gives: round trips per second and per-message latencies."""

    def __init__(self, n: int, elapsed: float, latencies: list[float]) -> None:
        self.rate = n / elapsed
        self.latencies = latencies


def raw_run(base_url: str, n: int, warmup: int, loop: str, allocator: str = "default") -> Run:
    out = subprocess.run(
        [PYTHON, str(HERE / "raw_client.py"), base_url, "rtt", str(n), str(warmup)],
        capture_output=True,
        check=True,
        timeout=300,
        env=child_env(loop=loop, allocator=allocator),
    )
    data = json.loads(out.stdout)
    return Run(data["n"], data["elapsed"], data["latencies"])


class FileWatcher:
    """Counts a marker in a file a child writes its stdout to, polling every ``poll`` s.

    Reading the child's stdout from a pipe would wake this process for every line the child
    writes, on the same two cores as the client and the server; polling a file does not.
    """

    def __init__(self, path: Path, marker: bytes, poll: float = 0.002) -> None:
        self.path = path
        self.marker = marker
        self.poll = poll
        self.seen = 0
        self._offset = 0
        self._tail = b""

    def wait(self, count: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        with self.path.open("rb") as fh:
            while self.seen < count:
                fh.seek(self._offset)
                chunk = fh.read()
                if chunk:
                    self._offset += len(chunk)
                    data = self._tail + chunk
                    self.seen += data.count(self.marker)
                    self._tail = data[-(len(self.marker) - 1) :]
                    continue
                if time.monotonic() > deadline:
                    raise TimeoutError(f"saw {self.marker!r} {self.seen} of {count} times")
                time.sleep(self.poll)


def pipe_cmd(base_url: str, plugins: list[str], plugins_dir: Path, json_mode: bool) -> list[str]:
    cmd = [*TARGET.cmd, "--base-url", base_url, "--no-history"]
    if json_mode:
        cmd.append("--json")
    if plugins:
        cmd += ["--plugins-dir", str(plugins_dir)]
    return cmd


def pipe_run(
    base_url: str,
    home: Path,
    n: int,
    warmup: int,
    plugins: list[str],
    plugins_dir: Path,
    json_mode: bool = False,
    *,
    loop: str = "asyncio",
    allocator: str = "default",
) -> Run:
    """``unith-shell`` with stdin a pipe: every line a message, each waits for its turn.

    The clock runs from writing the ``n`` lines (after the greeting and ``warmup`` turns)
    until the last reply is out: in plain mode, the output of a ``/status`` line sent after
    them (pipe mode runs it once the turn before it is complete); with ``--json``, the
    ``n``-th ``unith_shell.turn`` line. Latencies (``--json`` only) are the shell's own
    ``total_latency``: message sent -> last part in.
    """
    env = isolated_env(home, loop=loop, allocator=allocator, UNITH_SHELL_PLUGINS=",".join(plugins))
    cmd = pipe_cmd(base_url, plugins, plugins_dir, json_mode)
    out = home / "stdout.txt"
    home.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=sink, stderr=subprocess.DEVNULL, env=env
        )
    assert proc.stdin is not None
    # plain mode: one "/status" (its "base url" row) marks the end of each block of lines
    marker, tail, per_block = (TURN_MARKER, b"", 0) if json_mode else (b"base url", b"/status\n", 1)
    try:
        stdin = proc.stdin.fileno()
        watcher = FileWatcher(out, marker)
        if json_mode:
            watcher.wait(1)  # the greeting's turn
        write_all(stdin, b"hello\n" * warmup + tail)
        watcher.wait(watcher.seen + (per_block or warmup))
        skip = watcher._offset
        started = time.perf_counter()
        write_all(stdin, b"hello\n" * n + tail)
        watcher.wait(watcher.seen + (per_block or n))
        elapsed = time.perf_counter() - started
        proc.stdin.close()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    latencies = []
    if json_mode:
        for line in out.read_bytes()[skip:].splitlines():
            if TURN_MARKER in line:
                event = json.loads(line)
                if event.get("outcome") != "last":
                    raise RuntimeError(f"a turn failed in pipe mode: {event}")
                latencies.append(float(event["total_latency"]))
    else:
        replies = out.read_bytes()[skip:].count("You said “hello”".encode())
        if replies != n:
            raise RuntimeError(f"pipe mode printed {replies} replies for {n} messages")
    return Run(n, elapsed, latencies)


def drive(stdin: int, reader: LineReader, lines: list[bytes], end: bytes, warmup: int) -> Run:
    """The lock-step driver: write one line, read until its reply's ``end`` marker, repeat.

    The first ``warmup`` lines are not timed; each latency is write -> marker read, so it
    includes the driver's pipe round trip for every variant alike.
    """
    for line in lines[:warmup]:
        write_all(stdin, line)
        reader.read_until(end, reader.seen + 1)
    latencies = []
    clock = time.perf_counter
    started = clock()
    for line in lines[warmup:]:
        t0 = clock()
        write_all(stdin, line)
        reader.read_until(end, reader.seen + 1)
        latencies.append(clock() - t0)
    return Run(len(lines) - warmup, clock() - started, latencies)


def driven_pipe(base_url: str, home: Path, n: int, warmup: int) -> Run:
    """Plain pipe mode (no plugins) on pipes, driven one line at a time."""
    env = isolated_env(home, UNITH_SHELL_PLUGINS="")
    proc = subprocess.Popen(
        pipe_cmd(base_url, [], home, False),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        reader = LineReader(proc.stdout.fileno())
        return drive(proc.stdin.fileno(), reader, [b"hello\n"] * (warmup + n), PLAIN_END, warmup)
    finally:
        proc.kill()
        proc.wait()


def driven_raw(base_url: str, n: int, warmup: int) -> Run:
    """The raw client's stdio mode, driven one line at a time."""
    proc = subprocess.Popen(
        [PYTHON, str(HERE / "raw_client.py"), base_url, "stdio"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=child_env(loop="asyncio"),
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        reader = LineReader(proc.stdout.fileno())
        return drive(proc.stdin.fileno(), reader, [b"hello\n"] * (warmup + n), FRAME_END, warmup)
    finally:
        proc.kill()
        proc.wait()


def driven_wscat(base_url: str, n: int, warmup: int) -> Run:
    """wscat on pipes, driven one line at a time (wscat cannot log in: the driver does it
    over urllib first, as the raw client does, and writes the handshake and messages as JSON)."""
    creds, proc = start_wscat(base_url)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        reader = LineReader(proc.stdout.fileno())
        stdin = proc.stdin.fileno()
        # wscat drops lines typed before its socket opens and says nothing on a pipe when it
        # opens: repeat the handshake until the greeting comes (the server ignores a repeat).
        handshake = json.dumps({"token": creds["access_token"], "api_key": ""}).encode()
        deadline = time.monotonic() + 30
        while True:
            write_all(stdin, handshake + b"\n")
            try:
                reader.read_until(FRAME_END, 1, timeout=0.25)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
        lines = [
            json.dumps(
                {"id": i, "user_id": creds["user_id"], "event": "text", "text": "hello"}
            ).encode()
            + b"\n"
            for i in range(warmup + n)
        ]
        return drive(stdin, reader, lines, FRAME_END, warmup)
    finally:
        proc.kill()
        proc.wait()


def render_per_part(parts: int, reps: int) -> tuple[float, float]:
    """The REPL's print path: ``Shell.on_parts`` -> ``HumanView`` for ``parts`` parts into a
    null writer, vs the least a printer must do (an f-string per part into the same writer).
    Returns seconds per part (shell, baseline)."""
    from unith_shell.config_file import load_settings
    from unith_shell.files import paths
    from unith_shell.protocol import ResponsePart
    from unith_shell.shell import Shell
    from unith_shell.turn import Turn

    with temp_dir() as home:
        env = isolated_env(home)
        shell = Shell(load_settings({}, env=env).settings, paths(env), env=env, write=_null)
    texts = [
        f"Part {i}: Fun fact: bananas are berries, but strawberries are not." for i in range(3)
    ]
    replies = []
    for _ in range(parts // 3):
        ready = [
            ResponsePart(
                event="text",
                raw={"event": "text", "text": text, "part_order": i, "is_last": i == 2},
                text=text,
                input_message_id=0,
                part_order=i,
                is_last=i == 2,
            )
            for i, text in enumerate(texts)
        ]
        replies.append((Turn(message_id=0), ready))
    session = shell.session
    total = 3 * len(replies)

    def shell_path() -> float:
        async def go() -> None:
            for turn, ready in replies:
                await shell.on_parts(session, turn, ready)

        started = time.perf_counter()
        asyncio.run(go())
        return (time.perf_counter() - started) / total

    def baseline() -> float:
        async def go() -> None:
            for _turn, ready in replies:
                for part in ready:
                    _null(f"Aiko: {part.text}")

        started = time.perf_counter()
        asyncio.run(go())
        return (time.perf_counter() - started) / total

    results = interleave({"shell": shell_path, "baseline": baseline}, reps)
    return median(results["shell"]), median(results["baseline"])


def _null(text: str) -> None:
    pass


MEMORY_CALLS = ("mmap", "munmap", "mremap", "brk")


def memory_syscalls(cmd: list[str], env: dict[str, str], stdin: bytes, n: int) -> float:
    """Memory-management system calls (mmap, munmap, mremap, brk) per round trip, counted by
    ``strace -f -c`` over a whole run of ``n`` round trips (start-up included, so a few
    hundred calls are fixed cost). Deterministic where timings are noisy: it shows whether
    each socket read's 256 KiB buffer is an mmap + mremap + munmap or comes from the heap."""
    with temp_dir() as tmp:
        summary = tmp / "strace.txt"
        subprocess.run(
            [
                "strace",
                "-f",
                "-c",
                "-e",
                "trace=" + ",".join(MEMORY_CALLS),
                "-o",
                str(summary),
                *cmd,
            ],
            input=stdin,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            check=True,
            timeout=300,
        )
        calls = 0
        for line in summary.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 5 and fields[-1] in MEMORY_CALLS and fields[3].isdigit():
                calls += int(fields[3])
    return calls / n


def allocator_calls(base_url: str, home: Path, n: int) -> list[Result]:
    """Per-round-trip memory system calls of both sides under each allocator setting."""
    if shutil.which("strace") is None:
        return [
            Skipped(
                "message path",
                "allocator: memory system calls per round trip",
                "strace is not installed",
            )
        ]
    out: list[Result] = []
    raw_cmd = [PYTHON, str(HERE / "raw_client.py"), base_url, "rtt", str(n), "0"]
    pipe = pipe_cmd(base_url, [], home, False)
    for alloc in ALLOCATORS:
        raw = memory_syscalls(raw_cmd, child_env(allocator=alloc), b"", n)
        shell = memory_syscalls(
            pipe, isolated_env(home, allocator=alloc, UNITH_SHELL_PLUGINS=""), b"hello\n" * n, n
        )
        out.append(
            Figure(
                "message path",
                f"allocator '{alloc}': memory system calls per round trip, pipe mode",
                max(shell, 1e-3),  # a figure must be positive; 0 calls shows as 0.001
                "calls",
                f"raw client, '{alloc}'",
                max(raw, 1e-3),
                note=f"strace -f -c over {n} round trips, start-up included (asyncio)"
                if alloc == "default"
                else "",
            )
        )
    return out


def _rate_figure(
    name: str,
    value: float,
    baseline_name: str,
    baseline: float,
    limit: float | None = None,
    note: str = "",
) -> Figure:
    return Figure(
        "message path",
        name,
        value,
        "/s",
        baseline_name,
        baseline,
        better="higher",
        target="" if limit is None else (f"> {limit:.1f}x" if limit == 1.0 else f">= {limit:.2f}x"),
        limit=limit,
        note=note,
    )


def run(quick: bool = False) -> list[Result]:
    n, warmup, reps = (30, 5, 1) if quick else (2000, 200, 5)
    out: list[Result] = []
    has_wscat = shutil.which("wscat") is not None
    loops = ["asyncio", "uvloop"] if has_uvloop() else ["asyncio"]
    runs: dict[str, list[Run]] = {}
    with temp_dir() as tmp, server_process() as base_url:
        plugins_dir = tmp / "plugins"
        names = write_noop_plugins(plugins_dir, 10)
        variants: dict[str, Callable[[], Run]] = {}
        for loop in loops:
            variants[f"raw/{loop}"] = lambda loop=loop: raw_run(base_url, n, warmup, loop)
            variants[f"pipe0/{loop}"] = lambda loop=loop: pipe_run(
                base_url, tmp / f"h0{loop}", n, warmup, [], plugins_dir, loop=loop
            )
            variants[f"pipe10/{loop}"] = lambda loop=loop: pipe_run(
                base_url, tmp / f"h10{loop}", n, warmup, names, plugins_dir, loop=loop
            )
            variants[f"json0/{loop}"] = lambda loop=loop: pipe_run(
                base_url, tmp / f"j0{loop}", n, warmup, [], plugins_dir, True, loop=loop
            )
        variants["driven/raw"] = lambda: driven_raw(base_url, n, warmup)
        variants["driven/pipe0"] = lambda: driven_pipe(base_url, tmp / "d0", n, warmup)
        if has_wscat:
            variants["driven/wscat"] = lambda: driven_wscat(base_url, n, warmup)
        for alloc in ("mmap per read", "heap"):
            variants[f"raw/{alloc}"] = lambda a=alloc: raw_run(base_url, n, warmup, "asyncio", a)
            variants[f"pipe0/{alloc}"] = lambda a=alloc: pipe_run(
                base_url, tmp / f"a{a[0]}", n, warmup, [], plugins_dir, allocator=a
            )

        def recorder(name: str, fn: Callable[[], Run]) -> Callable[[], float]:
            def call() -> float:
                result = fn()
                runs.setdefault(name, []).append(result)
                return result.rate

            return call

        rates = interleave({k: recorder(k, v) for k, v in variants.items()}, reps)
    rate = {k: median(v) for k, v in rates.items()}
    lat = {k: [x for r in v for x in r.latencies] for k, v in runs.items()}
    note = (
        f"{n} round trips x {reps} interleaved runs, medians; echo + 3 parts per message; "
        f"unith-shell: {TARGET.how}"
    )
    for loop in loops:
        raw_base = f"raw websockets client ({loop})"
        raw = rate[f"raw/{loop}"]
        on = f" [{loop}]"
        out.append(
            _rate_figure(
                "pipe mode, 0 plugins: round trips/s" + on,
                rate[f"pipe0/{loop}"],
                raw_base,
                raw,
                0.90,
                note if loop == "asyncio" else "both sides on uvloop",
            )
        )
        out.append(
            _rate_figure(
                "pipe mode, 10 no-op plugins: round trips/s" + on,
                rate[f"pipe10/{loop}"],
                raw_base,
                raw,
                0.80,
            )
        )
        out.append(
            _rate_figure(
                "pipe mode --json, 0 plugins: round trips/s" + on,
                rate[f"json0/{loop}"],
                raw_base,
                raw,
                0.75,
                "--json prints every event (echo, 3 parts, the turn) as a JSON line"
                if loop == "asyncio"
                else "",
            )
        )
        for q in (50, 99):
            out.append(
                Figure(
                    "message path",
                    f"pipe mode --json, 0 plugins: p{q} latency" + on,
                    percentile(lat[f"json0/{loop}"], q) * 1e6,
                    "us",
                    raw_base,
                    percentile(lat[f"raw/{loop}"], q) * 1e6,
                    note="the same window on both sides: frame written -> is_last part in "
                    "(the shell's total_latency)"
                    if q == 50 and loop == "asyncio"
                    else "",
                )
            )
    if "uvloop" not in loops:
        out.append(
            Skipped(
                "message path",
                "uvloop rows (pipe mode vs raw client, both on uvloop)",
                "uvloop is not installed (pip install '.[speed]')",
            )
        )
    driven = "one line at a time through the same driver (write -> end of reply read)"
    out.append(
        _rate_figure(
            "driven lock-step: pipe mode, 0 plugins: round trips/s",
            rate["driven/pipe0"],
            "raw client stdio mode, same driver",
            rate["driven/raw"],
            note=driven,
        )
    )
    out.append(
        Figure(
            "message path",
            "driven lock-step: pipe mode p50 latency",
            percentile(lat["driven/pipe0"], 50) * 1e6,
            "us",
            "raw client stdio mode, same driver",
            percentile(lat["driven/raw"], 50) * 1e6,
        )
    )
    if has_wscat:
        out.append(
            _rate_figure(
                "driven lock-step: pipe mode vs wscat: round trips/s",
                rate["driven/pipe0"],
                "wscat, same driver",
                rate["driven/wscat"],
                1.0,
            )
        )
        out.append(
            _rate_figure(
                "driven lock-step: wscat: round trips/s (reference)",
                rate["driven/wscat"],
                "raw client stdio mode, same driver",
                rate["driven/raw"],
            )
        )
        out.append(
            Figure(
                "message path",
                "driven lock-step: wscat p50 latency (reference)",
                percentile(lat["driven/wscat"], 50) * 1e6,
                "us",
                "raw client stdio mode, same driver",
                percentile(lat["driven/raw"], 50) * 1e6,
            )
        )
    else:
        out.append(
            Skipped(
                "message path",
                "driven lock-step: pipe mode vs wscat",
                "wscat is not installed (npm install wscat, then put it on PATH)",
            )
        )
    for alloc in ("mmap per read", "heap"):
        out.append(
            _rate_figure(
                f"allocator '{alloc}': pipe mode, 0 plugins: round trips/s",
                rate[f"pipe0/{alloc}"],
                f"raw client, '{alloc}'",
                rate[f"raw/{alloc}"],
                note="asyncio; both sides under "
                + (" ".join(f"{k}={v}" for k, v in ALLOCATORS[alloc].items())),
            )
        )
        out.append(
            _rate_figure(
                f"allocator '{alloc}': raw client: round trips/s",
                rate[f"raw/{alloc}"],
                "raw client, glibc default (asyncio)",
                rate["raw/asyncio"],
            )
        )
    with temp_dir() as tmp, server_process() as base_url:
        out.extend(allocator_calls(base_url, tmp / "strace-home", 200 if quick else 2000))
    shell_s, base_s = render_per_part(300 if quick else 30_000, 1 if quick else 5)
    out.append(
        Figure(
            "message path",
            "REPL print path (Shell.on_parts -> HumanView), per part",
            shell_s * 1e6,
            "us",
            "f-string + write per part",
            base_s * 1e6,
            note="into a null writer; terminal I/O excluded",
        )
    )
    return out


def _main() -> None:
    for result in run():
        print(json.dumps(result.as_dict()))


if __name__ == "__main__":
    _main()
