"""The baseline: a bare ``websockets`` asyncio client doing the shell's exchange.

Login with ``POST /token`` (stdlib urllib: no httpx), open the switch socket, send the
handshake, read the greeting up to ``is_last``; then per message: send it and read the echo and
the parts until ``is_last``. Uses uvloop when it is installed, as ``unith-shell`` does.

``python raw_client.py BASE_URL rtt N WARMUP`` prints ``{"n", "elapsed", "latencies"}`` as JSON;
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

        async def round_trip() -> None:
            nonlocal next_id
            message = {"id": next_id, "user_id": user_id, "event": "text", "text": "hello"}
            next_id += 1
            await ws.send(json.dumps(message))
            while True:
                frame = json.loads(await ws.recv())
                if frame.get("is_last") and frame.get("input_message_id") is not None:
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
        clock = time.perf_counter
        started = clock()
        for _ in range(n):
            t0 = clock()
            await round_trip()
            latencies.append(clock() - t0)
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
