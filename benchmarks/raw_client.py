"""The baseline: a bare ``websockets`` asyncio client doing the shell's exchange.

Login with ``POST /token`` (stdlib urllib: no httpx), open the switch socket, send the
handshake, read the greeting up to ``is_last``; then per message: send it and read the echo and
the parts until ``is_last``. Uses uvloop when it is installed, as ``unith-shell`` does (the
benchmarks block it for both sides in the asyncio rows).

``python raw_client.py BASE_URL rtt N WARMUP`` prints ``{"n", "elapsed", "latencies"}`` as JSON;
each latency is the same window as the shell's ``total_latency``: from the frame written to
the socket to the ``is_last`` part parsed.
``python raw_client.py BASE_URL stdio`` reads messages from stdin, one a line, sends each after
the previous reply is complete and writes each reply's ``is_last`` frame to stdout, flushed
(the lock-step driver runs it like pipe mode and wscat).
``python raw_client.py BASE_URL idle`` does one round trip, prints ``ready`` and then waits
for stdin to close (for the memory benchmark).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.parse
import urllib.request
from typing import Any

from websockets.asyncio.client import connect


def login(base_url: str) -> dict[str, Any]:
    body = urllib.parse.urlencode({"username": "anonymous", "password": "Password1"}).encode()
    with urllib.request.urlopen(base_url + "/token", data=body, timeout=10) as response:
        result: dict[str, Any] = json.load(response)
    return result


async def run(base_url: str, mode: str, n: int, warmup: int) -> None:
    creds = login(base_url)
    url = base_url.replace("http", "ws", 1) + "/api/v2/switch/unith/aiko"
    user_id = creds["user_id"]
    async with connect(url, compression=None, max_size=8 << 20) as ws:
        await ws.send(json.dumps({"token": creds["access_token"], "api_key": ""}))
        while not json.loads(await ws.recv()).get("is_last"):
            pass
        next_id = 0
        clock = time.perf_counter

        async def round_trip(text: str = "hello") -> tuple[float, str]:
            """Send one message; (seconds from sent to is_last parsed, the is_last frame)."""
            nonlocal next_id
            message = {"id": next_id, "user_id": user_id, "event": "text", "text": text}
            next_id += 1
            await ws.send(json.dumps(message))
            sent = clock()
            while True:
                data = await ws.recv()
                frame = json.loads(data)
                if frame.get("is_last") and frame.get("input_message_id") is not None:
                    return clock() - sent, str(data)

        if mode == "stdio":
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader()
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
            out = sys.stdout.buffer
            while line := await reader.readline():
                _, last = await round_trip(line.decode().rstrip("\n"))
                out.write(last.encode() + b"\n")
                out.flush()
            return

        if mode == "idle":
            await round_trip()
            print("ready", flush=True)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, sys.stdin.read)
            return
        for _ in range(warmup):
            await round_trip()
        latencies = []
        started = clock()
        for _ in range(n):
            latency, _ = await round_trip()
            latencies.append(latency)
        elapsed = clock() - started
        print(json.dumps({"n": n, "elapsed": elapsed, "latencies": latencies}), flush=True)


def main() -> None:
    base_url, mode = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    warmup = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    coro = run(base_url, mode, n, warmup)
    try:
        import uvloop  # the same choice unith-shell makes (the 'speed' extra)
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


if __name__ == "__main__":
    main()
