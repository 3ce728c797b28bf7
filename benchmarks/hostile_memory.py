"""Peak memory of pipe mode against a hostile server (issue 9: "under 100 MiB whatever the
server sends").

    python benchmarks/hostile_memory.py            # a million-part flood and the rest
    python benchmarks/hostile_memory.py --parts 100000

Each scenario runs the real CLI (``python -m unith_shell --base-url ... -m ...``) in its own
process against tests/hostile_network.py, then reads that process's VmHWM (peak resident set)
from ``/proc/self/status`` just before it exits. The baseline is the same client sending one
ordinary message. Every scenario ends with an ordinary ``hello``, so the client has read the
whole flood (the server sends it all before the next reply) and must still answer.

Linux only (``/proc``). Not part of ``benchmarks/run.py``: a million frames take a while.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.hostile_network import HostileServer  # noqa: E402

LIMIT_MIB = 100.0
WRAPPER = """
import sys
from unith_shell.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as status:
    peak = next(line for line in status if line.startswith("VmHWM:"))
sys.stderr.write("BENCH " + peak)
sys.stderr.flush()
sys.exit(code)
"""


async def run_one(base: str, messages: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(peak MiB, seconds, last stdout line) of one pipe-mode run."""
    args = [sys.executable, "-c", WRAPPER, "--base-url", base, "--timeout", "120"]
    for message in messages:
        args += ["-m", message]
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await proc.communicate()
    seconds = time.perf_counter() - start
    peak = None
    for line in err.decode().splitlines():
        if line.startswith("BENCH VmHWM:"):
            peak = int(line.split()[2]) / 1024  # kB -> MiB
    if peak is None:
        raise RuntimeError(f"no VmHWM reported: {err.decode()[-500:]}")
    lines = out.decode().strip().splitlines()
    return peak, seconds, lines[-1] if lines else ""


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, default=1_000_000, help="flood size (1000000)")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNITH")}
    home = Path(os.environ.get("TMPDIR", "/tmp")) / f"hostile-memory-{os.getpid()}"
    env.update(UNITH_SHELL_HOME=str(home), UNITH_SHELL_PLUGINS="")
    n = args.parts
    scenarios = [
        ("baseline: one ordinary message", ["hello"]),
        (f"flood of {n} numbered parts", [f"flood:{n}", "hello"]),
        (f"flood of {n} unnumbered parts", [f"unnumbered:{n}", "hello"]),
        ("part_order 10**12", ["huge-order", "hello"]),
        ("400-digit part_order", ["bigint", "hello"]),
        ("900-deep frame", ["deep", "hello"]),
    ]
    worst = 0.0
    async with HostileServer() as server:
        base = server.base("ok")
        baseline = None
        print(f"{'scenario':<38}{'peak RSS':>12}{'vs baseline':>13}{'time':>9}  last line")
        for name, messages in scenarios:
            peak, seconds, last = await run_one(base, messages, env)
            baseline = baseline or peak
            worst = max(worst, peak)
            print(f"{name:<38}{peak:>8.1f} MiB{peak / baseline:>12.2f}x{seconds:>8.1f}s  {last}")
    verdict = "under" if worst < LIMIT_MIB else "OVER"
    print(f"worst peak {worst:.1f} MiB: {verdict} the {LIMIT_MIB:g} MiB limit")
    return 0 if worst < LIMIT_MIB else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
