"""``serve_forever``: run the local server in the foreground until Ctrl+C or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from dataclasses import replace

from unith_shell.sanitize import sanitize
from unith_shell.urls import is_loopback_host

from .app import LocalServer
from .config import ServerConfig
from .rest import PASSWORD


def serve_forever(
    host: str = "127.0.0.1",
    port: int = 8765,
    config: ServerConfig | None = None,
    print_url: Callable[[str], None] = print,
) -> int:
    """Serve on ``host:port`` (these override ``config``'s) until interrupted.

    Calls ``print_url("unith local server on http://HOST:PORT")`` once listening. Returns the
    exit status: 0 after a clean stop, 1 if the address could not be bound.
    """
    settings = replace(config if config is not None else ServerConfig(), host=host, port=port)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        async with LocalServer(settings) as server:
            if not is_loopback_host(host):  # said once listening: a failed bind is one line only
                print(
                    sanitize(
                        f"unith local server: warning: listening on {host}, reachable from "
                        f"other machines; the demo password ({PASSWORD}) is public, so anyone "
                        "who can reach this port can log in"
                    ),
                    file=sys.stderr,
                    flush=True,
                )
            for problem in server.recording_problems:  # --recordings DIR: files not served
                print(sanitize(f"unith local server: not serving {problem}"), file=sys.stderr)
            print_url(sanitize(f"unith local server on {server.base_url}"))
            sys.stdout.flush()  # a parent process may be waiting for this line on a pipe
            await stop.wait()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        why = sanitize(f"cannot listen on {host}:{port}: {exc}")
        print(f"unith local server: {why}", file=sys.stderr)
        return 1
    return 0
