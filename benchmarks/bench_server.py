"""The local server with a fault on every socket, for the scale benchmark.

``python benchmarks/bench_server.py many-parts 1000`` prints the URL line as ``unith-shell
serve`` does and serves until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from unith_shell.server import LocalServer, ServerConfig


async def main(fault: str, count: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with LocalServer(ServerConfig(port=0)) as server:
        server.set_fault(fault, count=count)
        print(f"unith local server on {server.base_url}", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
