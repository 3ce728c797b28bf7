"""A hostile Unith server for the network-bounds tests: one behaviour per URL prefix or message.

Not the faithful local server: an aiohttp app that does what a malicious or broken server on
the other end of ``--base-url`` could do. The client under test is the real one (Session,
UnithAPI, the CLI), talking over real sockets on 127.0.0.1.

REST behaviours, chosen by the base URL's first path segment (``{origin}/{prefix}``):

- ``ok``: a small well-behaved server (token, head, videos, idle URL, a short file).
- ``drip``: every body is sent one byte per ``drip`` seconds (the token, the file).
- ``drip-file``: only the idle video file drips; ``chunked``: it is 100 kB without a length.
- ``bomb``: ``POST /token`` answers a gzip body that inflates to 64 MiB of zeros.
- ``redirect-other``: ``POST /token`` answers 307 to ``other`` (another origin), set by the test.
- ``redirect-same``: ``POST /token`` answers 307 to ``/ok/token`` on the same origin.
- ``bigexp``: the JWT's ``exp`` is a 400-digit integer.
- ``deepjwt``: the JWT's payload is nested 5000 levels deep.
- ``deepbody``: the ``/token`` answer carries an array nested 900 levels deep.
- ``ws-redirect``: the WebSocket upgrade answers 302 to ``other`` (another origin).
- ``drip-greeting``: the greeting never ends: a part without ``is_last`` every ``drip`` s.

WebSocket replies, chosen by the user message's text (any prefix but ``drip-greeting``):

- ``hello``: two parts.
- ``flood:N``: N parts, ``part_order`` 0..N-1, as fast as the socket takes them.
- ``unnumbered:N``: N parts without ``part_order`` (and no ``is_last``).
- ``huge-order``: part 0, then a part with ``part_order`` 10**12 and ``is_last``.
- ``bigint``: part 0, a part whose ``part_order`` has 400 digits, then part 1 (``is_last``).
- ``deep``: part 0, a part nested 900 levels deep, then part 1 (``is_last``).
- ``giant:N``: one frame of about N bytes.
- ``explode``: an ``{"event": "explode"}`` frame (a test's listener raises on it).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import ssl
import time
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

TLS_PEM = Path(__file__).resolve().parent / "hostile_tls.pem"

_BOMB: bytes | None = None


def gzip_bomb() -> bytes:
    """64 MiB of zeros, gzipped (about 64 KiB on the wire)."""
    global _BOMB
    if _BOMB is None:
        _BOMB = gzip.compress(bytes(64 * 1024 * 1024), compresslevel=9)
    return _BOMB


def jwt_with_payload(payload_json: str) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(b'{"alg":"none"}')
    return f"{header}.{b64(payload_json.encode())}.sig"


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


class HostileServer:
    """Start with ``await HostileServer().start()``; ``base(prefix)`` gives a base URL."""

    def __init__(self, *, tls: bool = False, drip: float = 0.3) -> None:
        self.tls = tls
        self.drip = drip
        #: Where the redirecting prefixes send the client (set by the test).
        self.other = ""
        #: Every request seen: (method, path, form or first WebSocket frame).
        self.hits: list[tuple[str, str, Any]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def origin(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def base(self, prefix: str) -> str:
        return f"{self.origin}/{prefix}"

    async def start(self) -> HostileServer:
        app = web.Application()
        app.router.add_post("/{prefix}/token", self._token)
        app.router.add_get("/{prefix}/api/v1/head/{org}/{head}", self._head)
        app.router.add_get("/{prefix}/api/v1/head/{org}/{head}/{key}", self._head)
        app.router.add_get("/{prefix}/api/v1/videos/{org}/{head}", self._videos)
        app.router.add_get("/{prefix}/api/v1/idle/{org}/{head}/{vid}", self._idle)
        app.router.add_get("/{prefix}/file.mp4", self._file)
        app.router.add_get("/{prefix}/api/v2/switch/{org}/{head}", self._switch)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        context = None
        if self.tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(TLS_PEM)
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> HostileServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- REST ------------------------------------------------------------------------------

    async def _drip_body(self, request: web.Request, body: bytes) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            for i in range(len(body)):
                await response.write(body[i : i + 1])
                await asyncio.sleep(self.drip)
            await response.write_eof()
        except ConnectionError:
            pass  # the client gave up, as it should
        return response

    async def _token(self, request: web.Request) -> web.StreamResponse:
        prefix = request.match_info["prefix"]
        form = dict(await request.post())
        self.hits.append(("POST", request.path, form))
        if prefix == "redirect-other":
            raise web.HTTPTemporaryRedirect(self.other)
        if prefix == "redirect-same":
            raise web.HTTPTemporaryRedirect("/ok/token")
        exp = str(int(time.time()) + 3600)
        payload = f'{{"username":"anonymous","exp":{exp}}}'
        if prefix == "bigexp":
            payload = '{"username":"anonymous","exp":1' + "0" * 399 + "}"
        elif prefix == "deepjwt":
            payload = '{"exp":' + deep(5000) + "}"
        fields = {
            "access_token": jwt_with_payload(payload),
            "user_id": "u-1",
            "session_id": "s-1",
            "token_type": "bearer",
        }
        body = json.dumps(fields).encode()
        if prefix == "deepbody":
            body = body[:-1] + b',"extra":' + deep(900).encode() + b"}"
        if prefix == "bomb":
            return web.Response(
                body=gzip_bomb(),
                headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
            )
        if prefix == "drip":
            return await self._drip_body(request, body)
        return web.Response(body=body, content_type="application/json")

    async def _head(self, request: web.Request) -> web.Response:
        return web.json_response({"name": "hostile", "alias": "Hostile"})

    async def _videos(self, request: web.Request) -> web.Response:
        return web.json_response([{"video_id": "v1"}])

    async def _idle(self, request: web.Request) -> web.Response:
        return web.json_response(f"{self.origin}/{request.match_info['prefix']}/file.mp4")

    async def _file(self, request: web.Request) -> web.StreamResponse:
        prefix = request.match_info["prefix"]
        if prefix in ("drip", "drip-file"):
            return await self._drip_body(request, b"\0" * 10_000)
        if prefix == "chunked":  # no Content-Length: only counting the bytes can stop it
            response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
            await response.prepare(request)
            try:
                for _ in range(100):
                    await response.write(b"\0" * 1000)
                await response.write_eof()
            except ConnectionError:
                pass
            return response
        return web.Response(body=b"\0" * 1000, content_type="video/mp4")

    # ---- WebSocket -------------------------------------------------------------------------

    async def _switch(self, request: web.Request) -> web.StreamResponse:
        prefix = request.match_info["prefix"]
        if prefix == "ws-redirect":
            self.hits.append(("GET", request.path, None))
            raise web.HTTPFound(self.other)
        ws = web.WebSocketResponse(max_msg_size=1 << 20, compress=False)
        await ws.prepare(request)
        first = await ws.receive()
        self.hits.append(("WS", request.path, first.data))
        if prefix == "drip-greeting":
            order = 0
            while not ws.closed:
                await ws.send_str(_part(-1, order, f"greeting {order}", last=False))
                order += 1
                await asyncio.sleep(self.drip)
            return ws
        await ws.send_str(_part(-1, 0, "hi", last=True))
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            if frame.get("event") != "text":
                continue
            mid, text = frame["id"], frame["text"]
            await ws.send_str(
                json.dumps({"event": "text", "id": mid, "user_id": "u-1", "text": text})
            )
            await self._reply(ws, mid, text)
        return ws

    async def _reply(self, ws: web.WebSocketResponse, mid: int, text: str) -> None:
        if text.startswith("unnumbered:"):
            count = int(text.split(":", 1)[1])
            part = f'{{"event":"text","input_message_id":{mid},"text":"p"}}'
            for _ in range(count):
                await ws.send_str(part)
        elif text.startswith("flood:"):
            count = int(text.split(":", 1)[1])
            # Built once: the server must outpace the client, not measure itself.
            head = (
                f'{{"event":"text","user_id":"bot","input_message_id":{mid},'
                '"text":"p","part_order":'
            )
            for order in range(count):
                last = "true" if order == count - 1 else "false"
                await ws.send_str(f'{head}{order},"is_last":{last}}}')
        elif text == "huge-order":
            await ws.send_str(_part(mid, 0, "zero", last=False))
            await ws.send_str(_part(mid, 10**12, "far", last=True))
        elif text == "bigint":
            await ws.send_str(_part(mid, 0, "zero", last=False))
            big = "1" + "0" * 399
            await ws.send_str(
                f'{{"event":"text","input_message_id":{mid},"part_order":{big},'
                f'"is_last":true,"text":"bogus"}}'
            )
            await ws.send_str(_part(mid, 1, "one", last=True))
        elif text == "deep":
            await ws.send_str(_part(mid, 0, "zero", last=False))
            await ws.send_str(
                f'{{"event":"text","input_message_id":{mid},"part_order":1,'
                f'"is_last":true,"text":"deep","extra":{deep(900)}}}'
            )
            await ws.send_str(_part(mid, 1, "one", last=True))
        elif text.startswith("giant:"):
            size = int(text.split(":", 1)[1])
            await ws.send_str('{"event":"giant","data":"' + "x" * size + '"}')
        elif text == "explode":
            await ws.send_str('{"event":"explode"}')
        else:
            await ws.send_str(_part(mid, 0, "one", last=False))
            await ws.send_str(_part(mid, 1, "two", last=True))


def _part(mid: int, order: int, text: str, *, last: bool) -> str:
    return json.dumps(
        {
            "event": "text",
            "user_id": "bot",
            "input_message_id": mid,
            "part_order": order,
            "is_last": last,
            "text": text,
        }
    )
