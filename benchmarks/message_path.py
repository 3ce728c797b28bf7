"""Message path: pipe mode vs a raw websockets client vs wscat, and the REPL's print path.

Every variant runs in its own process against one local server process, interleaved, and
does the same exchange: one message out; the echo and the reply parts back until ``is_last``.
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
    HERE,
    PYTHON,
    UNITH_SHELL,
    Figure,
    LineReader,
    Result,
    Skipped,
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


def raw_run(base_url: str, n: int, warmup: int) -> Run:
    out = subprocess.run(
        [PYTHON, str(HERE / "raw_client.py"), base_url, "rtt", str(n), str(warmup)],
        capture_output=True,
        check=True,
        timeout=300,
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


def pipe_run(
    base_url: str,
    home: Path,
    n: int,
    warmup: int,
    plugins: list[str],
    plugins_dir: Path,
    json_mode: bool = False,
) -> Run:
    """``unith-shell`` with stdin a pipe: every line a message, each waits for its turn.

    The clock runs from writing the ``n`` lines (after the greeting and ``warmup`` turns)
    until the last reply is out: in plain mode, the output of a ``/status`` line sent after
    them (pipe mode runs it once the turn before it is complete); with ``--json``, the
    ``n``-th ``unith_shell.turn`` line. Latencies (``--json`` only) are the shell's own
    ``total_latency``: message sent -> last part in.
    """
    env = isolated_env(home, UNITH_SHELL_PLUGINS=",".join(plugins))
    cmd = [*UNITH_SHELL, "--base-url", base_url, "--no-history"]
    if json_mode:
        cmd.append("--json")
    if plugins:
        cmd += ["--plugins-dir", str(plugins_dir)]
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


def wscat_run(base_url: str, n: int, warmup: int) -> Run:
    """wscat on pipes, driven line by line: write a message, read until its ``is_last``.

    The driver's own reads and writes are in the measured time (wscat cannot run the exchange
    by itself), so this slightly favours the other variants.
    """
    creds, proc = start_wscat(base_url)
    assert proc.stdin is not None and proc.stdout is not None
    marker = b'"is_last":true'
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
                reader.read_until(marker, 1, timeout=0.25)
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
        for line in lines[:warmup]:
            write_all(stdin, line)
            reader.read_until(marker, reader.seen + 1)
        latencies = []
        clock = time.perf_counter
        started = clock()
        for line in lines[warmup:]:
            t0 = clock()
            write_all(stdin, line)
            reader.read_until(marker, reader.seen + 1)
            latencies.append(clock() - t0)
        elapsed = clock() - started
    finally:
        proc.kill()
        proc.wait()
    return Run(n, elapsed, latencies)


def render_per_part(parts: int, reps: int) -> tuple[float, float]:
    """The REPL's print path: ``Shell.on_parts`` -> ``HumanView`` for ``parts`` parts into a
    null writer, vs the least a printer must do (an f-string per part into the same writer).
    Returns seconds per part (shell, baseline)."""
    from unith_shell.config import load_settings, paths
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


def run(quick: bool = False) -> list[Result]:
    n, warmup, reps = (30, 5, 1) if quick else (2000, 200, 5)
    out: list[Result] = []
    has_wscat = shutil.which("wscat") is not None
    runs: dict[str, list[Run]] = {}
    with temp_dir() as tmp, server_process() as base_url:
        plugins_dir = tmp / "plugins"
        names = write_noop_plugins(plugins_dir, 10)
        variants: dict[str, Callable[[], Run]] = {
            "raw": lambda: raw_run(base_url, n, warmup),
            "pipe0": lambda: pipe_run(base_url, tmp / "h0", n, warmup, [], plugins_dir),
            "pipe10": lambda: pipe_run(base_url, tmp / "h10", n, warmup, names, plugins_dir),
            "json0": lambda: pipe_run(base_url, tmp / "j0", n, warmup, [], plugins_dir, True),
        }
        if has_wscat:
            variants["wscat"] = lambda: wscat_run(base_url, n, warmup)

        def recorder(name: str, fn: Callable[[], Run]) -> Callable[[], float]:
            def call() -> float:
                result = fn()
                runs.setdefault(name, []).append(result)
                return result.rate

            return call

        rates = interleave({k: recorder(k, v) for k, v in variants.items()}, reps)
    rate = {k: median(v) for k, v in rates.items()}
    lat = {k: [x for r in v for x in r.latencies] for k, v in runs.items()}
    raw_base = "raw websockets client"
    note = f"{n} round trips x {reps} interleaved runs, medians; echo + 3 parts per message"
    out.append(
        Figure(
            "message path",
            "pipe mode, 0 plugins: round trips/s",
            rate["pipe0"],
            "/s",
            raw_base,
            rate["raw"],
            better="higher",
            target=">= 0.93x",
            limit=0.93,
            note=note,
        )
    )
    out.append(
        Figure(
            "message path",
            "pipe mode, 10 no-op plugins: round trips/s",
            rate["pipe10"],
            "/s",
            raw_base,
            rate["raw"],
            better="higher",
            target=">= 0.80x",
            limit=0.80,
        )
    )
    out.append(
        Figure(
            "message path",
            "pipe mode --json, 0 plugins: round trips/s",
            rate["json0"],
            "/s",
            raw_base,
            rate["raw"],
            better="higher",
            note="--json prints every event (echo, 3 parts, the turn) as a JSON line",
        )
    )
    for q in (50, 99):
        out.append(
            Figure(
                "message path",
                f"pipe mode --json, 0 plugins: p{q} latency",
                percentile(lat["json0"], q) * 1e6,
                "us",
                raw_base,
                percentile(lat["raw"], q) * 1e6,
                note="the shell's own total_latency vs the raw client's send -> is_last"
                if q == 50
                else "",
            )
        )
    if has_wscat:
        out.append(
            Figure(
                "message path",
                "pipe mode, 0 plugins vs wscat: round trips/s",
                rate["pipe0"],
                "/s",
                "wscat (driven over pipes)",
                rate["wscat"],
                better="higher",
                target="> 1.0x",
                limit=1.0,
            )
        )
        out.append(
            Figure(
                "message path",
                "wscat: round trips/s (reference)",
                rate["wscat"],
                "/s",
                raw_base,
                rate["raw"],
                better="higher",
            )
        )
        out.append(
            Figure(
                "message path",
                "wscat: p50 latency (reference)",
                percentile(lat["wscat"], 50) * 1e6,
                "us",
                raw_base,
                percentile(lat["raw"], 50) * 1e6,
            )
        )
    else:
        out.append(
            Skipped(
                "message path",
                "pipe mode vs wscat",
                "wscat is not installed (npm install -g wscat)",
            )
        )
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
