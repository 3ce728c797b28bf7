"""Shared pieces of the benchmarks: figures, medians, the server process, isolated envs."""

from __future__ import annotations

import contextlib
import math
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent
#: The console script as installed; ``python -m unith_shell`` when it is missing.
UNITH_SHELL: list[str] = (
    [str(BIN / "unith-shell")] if (BIN / "unith-shell").exists() else [PYTHON, "-m", "unith_shell"]
)
MIB = 1024 * 1024


@dataclass(slots=True)
class Figure:
    """One measured figure next to its baseline from the same run."""

    area: str
    name: str
    value: float
    unit: str
    baseline_name: str
    baseline: float
    #: "lower" if a smaller value is better (times, memory), "higher" for rates.
    better: str = "lower"
    target: str = ""
    #: ratio bound for the target: value/baseline must be <= (lower) or >= (higher) this.
    limit: float | None = None
    #: an absolute bound on ``value`` instead of (or as well as) the ratio
    abs_limit: float | None = None
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else math.inf

    @property
    def met(self) -> bool | None:
        if self.limit is None and self.abs_limit is None:
            return None
        ok = True
        if self.limit is not None:
            ok = self.ratio <= self.limit if self.better == "lower" else self.ratio >= self.limit
        if self.abs_limit is not None:
            within = (
                self.value <= self.abs_limit
                if self.better == "lower"
                else (self.value >= self.abs_limit)
            )
            ok = ok and within
        return ok

    def as_dict(self) -> dict[str, Any]:
        return {
            "area": self.area,
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "baseline_name": self.baseline_name,
            "baseline": self.baseline,
            "ratio": self.ratio,
            "better": self.better,
            "target": self.target,
            "met": self.met,
            "note": self.note,
            "extra": dict(self.extra),
        }


@dataclass(slots=True)
class Skipped:
    area: str
    name: str
    why: str

    def as_dict(self) -> dict[str, Any]:
        return {"area": self.area, "name": self.name, "skipped": self.why}


Result = Figure | Skipped


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def interleave(variants: dict[str, Callable[[], float]], reps: int) -> dict[str, list[float]]:
    """Run every variant ``reps`` times, alternating them (the order rotates each round)."""
    names = list(variants)
    out: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            out[name].append(variants[name]())
    return out


def isolated_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for a measured ``unith-shell``: its own home, bundled plugins only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNITH")}
    env.update(
        UNITH_SHELL_HOME=str(home),
        UNITH_SHELL_PLUGINS="",
        PROMPT_TOOLKIT_NO_CPR="1",
        TERM="xterm",
        COLUMNS="100",
        LINES="30",
        NO_COLOR="1",
    )
    env.pop("PYTHONDEVMODE", None)
    env.pop("PYTHONTRACEMALLOC", None)
    env.update(extra)
    return env


@contextlib.contextmanager
def temp_dir(prefix: str = "unith-bench-") -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def server_process(*extra_args: str, fault: str | None = None, count: int = 0) -> Iterator[str]:
    """The local server in its own process on a free loopback port; yields its base URL.

    Without ``fault`` this is ``python -m unith_shell serve --port 0``; with one, the
    benchmarks' own launcher applies ``set_fault(fault, count=count)`` to every socket.
    """
    if fault is None:
        cmd = [PYTHON, "-m", "unith_shell", "serve", "--port", "0", *extra_args]
    else:
        cmd = [PYTHON, str(HERE / "bench_server.py"), fault, str(count)]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=isolated_env(Path("/nonexistent")),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if "http://" not in line:
            raise RuntimeError(f"the server did not start: {line!r}")
        yield line[line.index("http://") :].strip()
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ws_url(base_url: str, org: str = "unith", head: str = "aiko") -> str:
    return f"{base_url.replace('http', 'ws', 1)}/api/v2/switch/{org}/{head}"


def start_wscat(base_url: str) -> tuple[dict[str, Any], subprocess.Popen[bytes]]:
    """Log in over plain urllib (as the raw client does) and start wscat on the switch socket.

    Returns the ``/token`` answer (wscat cannot log in itself) and the process, its stdin and
    stdout pipes open. The caller sends the handshake and stops the process.
    """
    import json
    import urllib.parse
    import urllib.request

    body = urllib.parse.urlencode({"username": "anonymous", "password": "Password1"}).encode()
    with urllib.request.urlopen(base_url + "/token", data=body, timeout=10) as response:
        creds: dict[str, Any] = json.load(response)
    exe = shutil.which("wscat")
    assert exe is not None
    proc = subprocess.Popen(
        [exe, "--no-color", "-c", ws_url(base_url)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None
    return creds, proc


def proc_memory(pid: int) -> dict[str, float]:
    """VmHWM (peak RSS) and VmRSS of a live process, in MiB (Linux /proc)."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(rest.split()[0]) * 1024 / MIB
    return out


class LineReader:
    """Non-blocking reads from a child's stdout, counting a marker as the bytes come in."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.chunks: list[bytes] = []
        self.seen = 0  # markers counted so far (one marker per reader)
        self._tail = b""

    def read_until(self, marker: bytes, count: int, timeout: float = 60.0) -> int:
        """Read until ``marker`` has been seen ``count`` times in total; return the total."""
        deadline = time.monotonic() + timeout
        seen = self.seen
        while seen < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"saw {marker!r} {seen} of {count} times")
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                raise EOFError(f"the process ended after {seen} of {count} {marker!r}")
            seen += (self._tail + chunk).count(marker)
            self._tail = (self._tail + chunk)[-(len(marker) - 1) :] if len(marker) > 1 else b""
            self.chunks.append(chunk)
            self.seen = seen
        return seen

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"
