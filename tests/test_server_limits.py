"""The local server under hostile or careless clients: bounded memory, bounded connections,
4xx for bad bodies, no traceback for odd tokens, a warning when it listens beyond loopback.

Real sockets only: raw TCP for the slow and idle clients, httpx and websockets otherwise.
"""

from __future__ import annotations

import asyncio
import json
import subprocess

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support import UNITH_SHELL
from unith_shell.server import LocalServer, ServerConfig
from unith_shell.server.jwt import InvalidToken, TokenSigner

pytestmark = pytest.mark.timeout(60)


async def _closed_by_server(reader: asyncio.StreamReader, within: float = 20.0) -> bytes:
    """Everything the server sends until it closes the connection (fails if it never does)."""
    data = b""
    async with asyncio.timeout(within):
        while chunk := await reader.read(4096):
            data += chunk
    return data


async def test_received_keeps_a_bounded_window_of_the_newest_frames() -> None:
    async with LocalServer(ServerConfig(received_limit=5)) as server:
        async with httpx.AsyncClient() as http:
            token = (
                await http.post(
                    f"{server.base_url}/token",
                    data={"username": "anonymous", "password": "Password1"},
                )
            ).json()["access_token"]
        async with connect(server.ws_url()) as ws:
            await ws.send(json.dumps({"token": token}))
            for n in range(40):  # an event the server ignores: no replies pile up unread
                await ws.send(json.dumps({"event": "noop", "n": n}))
            await server.wait_until(
                lambda: bool(server.received) and server.received[-1].get("n") == 39, timeout=10
            )
        assert [f["n"] for f in server.received] == [35, 36, 37, 38, 39]


async def test_connections_over_the_cap_get_a_503_with_detail() -> None:
    async with LocalServer(ServerConfig(max_connections=2)) as server:
        idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
        await server.wait_until(lambda: server.open_tcp_connections == 2, timeout=10)
        async with httpx.AsyncClient() as http:
            refused = await http.get(f"{server.base_url}/")
            assert refused.status_code == 503
            assert "Too many connections" in refused.json()["detail"]
            # A slot that frees up is usable again.
            idle[0][1].close()
            await server.wait_until(lambda: server.open_tcp_connections == 1, timeout=10)
            ok = await http.get(f"{server.base_url}/", headers={"Connection": "close"})
            assert ok.status_code == 200
        for _, writer in idle[1:]:
            writer.close()


@pytest.mark.parametrize(
    "sent", [b"", b"GET / HTTP/1.1\r\nHost: x\r\n"], ids=["silent", "half-headers"]
)
async def test_a_client_that_never_finishes_its_request_is_closed(sent: bytes) -> None:
    async with LocalServer(ServerConfig(header_timeout=0.5)) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(sent)
        await writer.drain()
        assert await _closed_by_server(reader) == b""  # closed, no answer
        await server.wait_until(lambda: server.open_tcp_connections == 0, timeout=10)
        writer.close()


async def test_a_request_in_time_is_not_cut_by_the_header_deadline() -> None:
    async with (
        LocalServer(ServerConfig(header_timeout=0.5, part_delay=0.3)) as server,
        httpx.AsyncClient() as http,
    ):
        token = (
            await http.post(
                f"{server.base_url}/token", data={"username": "a", "password": "Password1"}
            )
        ).json()["access_token"]
        # A socket that lives well past the header deadline keeps working.
        async with connect(server.ws_url()) as ws:
            await ws.send(json.dumps({"token": token}))
            await asyncio.sleep(1.0)
            await ws.send(json.dumps({"event": "keep_session"}))
            async with asyncio.timeout(10):
                while json.loads(await ws.recv()).get("event") != "keep_session":
                    pass


BAD_BODIES = {
    "multipart without boundary": (b"\x00\xffgarbage", "multipart/form-data"),
    "broken multipart": (b"--x\r\nbroken", "multipart/form-data; boundary=x"),
    "json instead of a form": (b'{"username": "a", "password": "b"}', "application/json"),
    "invalid utf-8": (b"username=%ff%fe&password=\xff", "application/x-www-form-urlencoded"),
    "unknown charset": (b"username=a", "application/x-www-form-urlencoded; charset=bogus"),
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
async def test_malformed_token_bodies_get_400_with_detail(name: str) -> None:
    body, content_type = BAD_BODIES[name]
    async with LocalServer() as server, httpx.AsyncClient() as http:
        response = await http.post(
            f"{server.base_url}/token", content=body, headers={"content-type": content_type}
        )
    assert response.status_code == 400, response.text
    assert isinstance(response.json()["detail"], str)


async def test_a_huge_token_body_is_413_not_500() -> None:
    async with LocalServer() as server, httpx.AsyncClient() as http:
        response = await http.post(f"{server.base_url}/token", data={"a": "x" * 3_000_000})
    assert response.status_code == 413
    assert "detail" in response.json()


@pytest.mark.parametrize("token", ["é.é.é", "aé.b.c", "a.b.\u202e"])
async def test_non_ascii_tokens_are_invalid_not_a_server_error(token: str) -> None:
    with pytest.raises(InvalidToken):
        TokenSigner().verify(token)
    async with LocalServer() as server, connect(server.ws_url()) as ws:
        await ws.send(json.dumps({"token": token}, ensure_ascii=False))
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                while True:
                    await ws.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "invalid token")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
     ("::", False), ("192.168.1.5", False), ("example.org", False), ("[::1]", True),
     ("LOCALHOST.", True), ("127.9.9.9", True)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    from unith_shell.urls import is_loopback_host

    # One rule for `serve --host` (the demo-password warning) and for base URLs.
    assert is_loopback_host(host) is loopback


def _serve_first_lines(host: str) -> tuple[str, str]:
    proc = subprocess.Popen(
        [*UNITH_SHELL, "serve", "--host", host, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        out = proc.stdout.readline()  # printed once listening, after any warning
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    return out, err


def test_serving_beyond_loopback_warns_that_the_demo_password_is_public() -> None:
    out, err = _serve_first_lines("0.0.0.0")
    assert out.startswith("unith local server on http://0.0.0.0:")
    [warning] = [line for line in err.splitlines() if "warning" in line]
    assert "0.0.0.0" in warning and "password" in warning and "public" in warning
    out, err = _serve_first_lines("127.0.0.1")
    assert out.startswith("unith local server on http://127.0.0.1:")
    assert "warning" not in err


async def test_a_deeply_nested_client_frame_is_invalid_json_not_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """json.loads raised RecursionError: aiohttp logged a traceback and closed with 1011."""
    async with LocalServer() as server, connect(server.ws_url()) as ws:
        await ws.send("[" * 100_000 + "]" * 100_000)
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                while True:
                    await ws.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1007, "invalid JSON")
    assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text
