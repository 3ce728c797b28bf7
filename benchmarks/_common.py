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
MIB = 1024 * 1024


@dataclass(slots=True)
class Target:
    """Which unith-shell the measured processes run.

    By default the console script of the environment running the benchmarks (an editable
    install runs the work tree). :func:`install_target` replaces it with a regular
    (non-editable) install of the tree with its byte code compiled, as users run it; the
    copy goes first on ``PYTHONPATH`` of every measured process (the dependencies stay those
    of this environment, which the baselines use too).
    """

    cmd: list[str]
    pythonpath: list[str] = field(default_factory=list)
    how: str = "in place (this environment's console script)"


#: The measured unith-shell (set once per run by ``run.py``; modules read it at call time).
TARGET = Target(
    [str(BIN / "unith-shell")] if (BIN / "unith-shell").exists() else [PYTHON, "-m", "unith_shell"]
)


def install_target(dest: Path, source: Path = REPO) -> None:
    """``pip install --no-deps --target dest source`` and compile its byte code; use it.

    pip builds a wheel from ``source`` (hatchling, as for any user) and writes the console
    script ``dest/bin/unith-shell`` the way it does in a virtual environment.
    """
    subprocess.run(
        [PYTHON, "-m", "pip", "install", "-q", "--no-deps", "--target", str(dest), str(source)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=600,
    )
    subprocess.run(
        [PYTHON, "-m", "compileall", "-q", str(dest / "unith_shell")],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=600,
    )
    script = dest / "bin" / "unith-shell"
    if not script.exists():
        raise RuntimeError(f"pip wrote no console script at {script}")
    TARGET.cmd = [str(script)]
    TARGET.pythonpath = [str(dest)]
    TARGET.how = f"installed copy of {source} (pip install --target, byte code compiled)"
    # In-process benchmarks (hooks, scale, scenario runner) import this copy too.
    sys.path.insert(0, str(dest))


#: ``asyncio``: block uvloop in the child (the shell and the raw client then use asyncio);
#: ``uvloop``: leave it importable (both use it); the two sides always get the same choice.
LOOPS = ("asyncio", "uvloop")
_no_uvloop: list[Path] = []


def _no_uvloop_dir() -> Path:
    """A folder whose ``uvloop.py`` fails to import (made once, removed at exit)."""
    if not _no_uvloop:
        import atexit

        folder = Path(tempfile.mkdtemp(prefix="unith-bench-no-uvloop-"))
        (folder / "uvloop.py").write_text(
            '"""Written by benchmarks/_common.py: makes ``import uvloop`` fail."""\n'
            'raise ImportError("uvloop blocked by the benchmark (an asyncio row)")\n'
        )
        atexit.register(shutil.rmtree, folder, True)
        _no_uvloop.append(folder)
    return _no_uvloop[0]


def has_uvloop() -> bool:
    import importlib.util

    return importlib.util.find_spec("uvloop") is not None


#: glibc malloc settings the message path is measured under, besides the default. A socket
#: read allocates a 256 KiB bytes object (asyncio's read size) and frees it at once; glibc
#: serves it with mmap + munmap (two system calls and fresh zeroed pages per read) while the
#: mmap threshold is below 256 KiB. By default the threshold starts at 128 KiB and adapts
#: upwards after the first such free, so reads then come from the heap; setting the
#: threshold pins it.
ALLOCATORS: dict[str, dict[str, str]] = {
    "default": {},
    "mmap per read": {"MALLOC_MMAP_THRESHOLD_": str(128 * 1024)},
    "heap": {
        "MALLOC_MMAP_THRESHOLD_": str(4 * MIB),
        "MALLOC_TRIM_THRESHOLD_": str(16 * MIB),
        "MALLOC_TOP_PAD_": str(1 * MIB),
    },
}


def child_env(
    base: dict[str, str] | None = None, *, loop: str = "asyncio", allocator: str = "default"
) -> dict[str, str]:
    """The environment of a measured process (unith-shell or a baseline): the measured
    install first on ``PYTHONPATH``, the event loop and the allocator settings chosen."""
    env = dict(os.environ if base is None else base)
    # PYTHONUNBUFFERED (set in some CI and container images) makes every write to stdout a
    # system call: measured processes run with Python's default buffering, as users run them.
    for key in (
        "MALLOC_MMAP_THRESHOLD_",
        "MALLOC_TRIM_THRESHOLD_",
        "MALLOC_TOP_PAD_",
        "PYTHONUNBUFFERED",
    ):
        env.pop(key, None)
    env.update(ALLOCATORS[allocator])
    paths = list(TARGET.pythonpath)
    if loop == "asyncio":
        paths.insert(0, str(_no_uvloop_dir()))
    elif loop != "uvloop":
        raise ValueError(f"unknown loop {loop!r}")
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    else:
        env.pop("PYTHONPATH", None)
    return env


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


def isolated_env(
    home: Path, *, loop: str = "asyncio", allocator: str = "default", **extra: str
) -> dict[str, str]:
    """The environment for a measured ``unith-shell``: its own home, bundled plugins only,
    the measured install, event loop and allocator (see :func:`child_env`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNITH")}
    env = child_env(env, loop=loop, allocator=allocator)
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
