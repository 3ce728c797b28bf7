"""A hostile Unith server for tests: it speaks the protocol, with hostile strings everywhere.

Any host a user points ``--base-url`` at (or anyone on the path of a plain ``http://`` URL)
controls what this server controls: reply texts, suggestions, media and video URLs, the head's
name, alias and phrases, user and session ids, error ``detail``s, nlp exception messages, event
names and close reasons. Each of them here carries :data:`HOSTILE`: terminal escape sequences
(set the title, clear the screen, write the clipboard with OSC 52), a one-byte C1 CSI, bidi
overrides, zero-width characters, a BOM, and a lone surrogate (escaped in the JSON, as the
protocol allows).

One behaviour per message text (``MESSAGES``) and per head (``HEADS``), so that a test picks
what to provoke. Every hostile string starts with a tag naming its field (``reply``, ``alias``,
...): a test can check that the field was shown, made visible, rather than dropped.

Run it in the test's loop (``async with HostileServer() as server``) or, for subprocess and
pseudo-terminal tests, in a thread of its own (``with serve_in_thread() as server``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import WSMsgType, web

TITLE = "\x1b]0;pwned\x07"  # OSC 0: set the window title
CLEAR = "\x1b[2J"  # CSI 2 J: clear the screen
CLIPBOARD = "\x1b]52;c;" + base64.b64encode(b"rm -rf ~").decode() + "\x07"  # OSC 52
C1_CSI = "\x9b31m"  # U+009B is a one-byte CSI on some terminals
BIDI = "\u202e"  # right-to-left override
ISOLATE = "\u2066"  # left-to-right isolate
ZERO_WIDTH = "\u200b"
BOM = "\ufeff"
SURROGATE = "\ud800"  # sent as the JSON escape "\ud800"; printed raw it cannot be encoded

#: What a close reason can carry (valid UTF-8, so no lone surrogate).
HOSTILE_TEXT = TITLE + CLEAR + CLIPBOARD + C1_CSI + BIDI + ISOLATE + ZERO_WIDTH + BOM
HOSTILE = HOSTILE_TEXT + SURROGATE

#: Raw forms that must never reach an output or a file (as UTF-8 bytes). ESC itself is not
#: listed, because a terminal application writes its own escape sequences.
FORBIDDEN_BYTES = (
    b"\x1b]0;pwned",
    b"\x1b[2J",
    b"\x1b]52;",
    "\x9b".encode(),
    BIDI.encode(),
    ISOLATE.encode(),
    ZERO_WIDTH.encode(),
    BOM.encode(),
    b"\x07",
    b"\xed\xa0\x80",  # a lone surrogate, had it been encoded with surrogatepass
)
#: Every character of HOSTILE a plain (non-terminal) output must never contain.
FORBIDDEN_CHARS = "\x1b\x07\x9b" + BIDI + ISOLATE + ZERO_WIDTH + BOM + SURROGATE


def hostile(tag: str) -> str:
    """A field's hostile value: ``tag`` (to find it in the output) then the payload."""
    return f"{tag}:{HOSTILE}"


def hostile_reason(tag: str) -> str:
    """A close reason: at most 123 bytes of valid UTF-8."""
    return f"{tag}:{HOSTILE_TEXT}"


#: Message texts and what the server answers (after the echo).
MESSAGES = {
    "hello": "a reply part: hostile text, username, suggestions, media, video URL",
    "menu": "a choice event with hostile text and suggestions",
    "nlp": "unith_nlp_exception with a hostile message",
    "unknown": "an event with a hostile name, then a reply",
    "junk": "a text frame that is not JSON, full of control characters, then a reply",
    "badpart": "a part whose part_order is a hostile string, then a reply",
    "close": "close the socket with a hostile reason",
}
#: Heads (of any org) and how the server treats them.
HEADS = {
    "h": "normal; its idle video URL has escape sequences",
    "media": "its idle video URL has C1/bidi characters only; the media has a hostile type",
    "badhead": "REST 404 with a hostile detail; the socket closes 1008 with a hostile reason",
    "refuse": "the socket closes 4000 with a hostile reason after the handshake",
}
#: A username whose login is refused (401) with a hostile detail.
BAD_LOGIN = "hostile-login"


def _dumps(obj: Any) -> str:
    # ensure_ascii: every hostile character travels as a \uXXXX escape (the surrogate can
    # travel no other way); the client's JSON decoder turns them back into characters.
    return json.dumps(obj)


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(text=_dumps(obj), status=status, content_type="application/json")


def _token() -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    claims = {"exp": int(time.time()) + 3600, "username": "anonymous"}
    return f"{part({'alg': 'none'})}.{part(claims)}.c2ln"


class HostileServer:
    """The hostile server on 127.0.0.1 and a free port; ``base_url`` is live once started."""

    def __init__(self) -> None:
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self.token)
        app.router.add_get("/api/v1/head/{org}/{head}", self.head)
        app.router.add_get("/api/v1/head/{org}/{head}/{key}", self.head)
        app.router.add_get("/api/v1/videos/{org}/{head}", self.videos)
        app.router.add_get("/api/v1/idle/{org}/{head}/{video}", self.idle)
        app.router.add_get("/media/{name}", self.media)  # aiohttp answers HEAD from GET
        app.router.add_get("/api/v2/switch/{org}/{head}", self.switch)
        return app

    async def start(self) -> None:
        sock = socket.create_server(("127.0.0.1", 0))
        sock.setblocking(False)
        runner = web.AppRunner(
            self.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> HostileServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- REST -------------------------------------------------------------------------------

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("username") == BAD_LOGIN:
            return _json({"detail": hostile("login")}, status=401)
        return _json(
            {
                "access_token": _token(),
                "token_type": "bearer",
                "user_id": hostile("user"),
                "session_id": hostile("session"),
            }
        )

    async def head(self, request: web.Request) -> web.Response:
        if request.match_info["head"] == "badhead":
            return _json({"detail": hostile("detail")}, status=404)
        return _json(
            {
                "name": hostile("name"),
                "alias": hostile("alias"),
                "language": hostile("language"),
                "operation_mode": hostile("mode"),
                "phrases": [hostile("phrase"), "plain phrase"],
                "streaming_enabled": False,
            }
        )

    async def videos(self, request: web.Request) -> web.Response:
        if request.match_info["head"] == "badhead":
            return _json({"detail": hostile("detail")}, status=404)
        return _json([{"video_id": "v1", "type": hostile("type")}])

    async def idle(self, request: web.Request) -> web.Response:
        origin = f"{request.scheme}://{request.host}"
        if request.match_info["head"] == "media":
            # httpx accepts (and percent-encodes) non-ASCII, so --check gets to the headers.
            return _json(f"{origin}/media/idle.mp4?v={C1_CSI[0]}{BIDI}{ZERO_WIDTH}{BOM}")
        return _json(f"{origin}/media/idle.mp4#url:{HOSTILE_TEXT}")

    async def media(self, request: web.Request) -> web.Response:
        # A header value is UTF-8 on the wire here; httpx decodes it back.
        headers = {"Content-Type": f"video/mp4; x={BIDI}{C1_CSI[0]}{ZERO_WIDTH}"}
        return web.Response(body=b"\x00\x00\x00\x18ftypmp42", headers=headers)

    # -- the switch socket -------------------------------------------------------------------

    async def switch(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            await self._converse(ws, request.match_info["head"])
        finally:
            self._sockets.discard(ws)
        return ws

    async def _converse(self, ws: web.WebSocketResponse, head: str) -> None:
        first = await ws.receive(timeout=10)
        if first.type is not WSMsgType.TEXT:
            return
        if head == "badhead":
            await ws.close(code=1008, message=hostile_reason("unknown").encode())
            return
        if head == "refuse":
            await ws.close(code=4000, message=hostile_reason("refused").encode())
            return
        await ws.send_str(_dumps({"event": "join", "granted": True}))
        await ws.send_str(self._part(-1, 0, True, hostile("greeting")))
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            if frame.get("event") != "text":
                continue
            await self._answer(ws, frame)

    def _part(self, input_id: int, order: int | str, last: bool, text: str) -> str:
        return _dumps(
            {
                "event": "text",
                "id": f"p{order}",
                "user_id": hostile("sender"),
                "username": hostile("username"),
                "input_message_id": input_id,
                "part_order": order,
                "is_last": last,
                "text": text,
                "video": hostile("video"),
                "stream_id": hostile("stream"),
                "suggestions": [hostile("suggestion"), "plain suggestion"] if last else [],
                "media": [hostile("media")],
            }
        )

    async def _answer(self, ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        msg_id, text = frame.get("id"), str(frame.get("text", "")).strip()
        echo = {"event": "text", "id": msg_id, "user_id": frame.get("user_id")}
        await ws.send_str(_dumps({**echo, "username": "user", "text": frame.get("text")}))
        if text == "menu":
            choice = {
                "event": "choice",
                "input_message_id": msg_id,
                "part_order": 0,
                "text": hostile("choice-text"),
                "suggestions": [hostile("choice"), "plain choice"],
            }
            await ws.send_str(_dumps(choice))
            return
        if text == "nlp":
            nlp = {"event": "unith_nlp_exception", "level": 500, "message": hostile("nlp")}
            await ws.send_str(_dumps({**nlp, "input_message_id": msg_id}))
            return
        if text == "close":
            await ws.close(code=4000, message=hostile_reason("close").encode())
            return
        if text == "unknown":
            await ws.send_str(_dumps({"event": hostile("event"), "detail": hostile("extra")}))
        elif text == "junk":
            await ws.send_str(f"junk:{HOSTILE_TEXT} is not JSON")
        elif text == "badpart":
            await ws.send_str(self._part(msg_id, hostile("order"), False, "bad part"))
        # Two parts: the second (is_last) carries the suggestions.
        await ws.send_str(self._part(msg_id, 0, False, hostile("reply") + "<br />line two"))
        await ws.send_str(self._part(msg_id, 1, True, hostile("end") + "\r\noverwrite\rme"))


@contextmanager
def serve_in_thread() -> Iterator[HostileServer]:
    """The hostile server in a thread with its own event loop, for blocking tests
    (subprocesses, pexpect). Stopped when the block ends."""
    server = HostileServer()
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="hostile-server", daemon=True)
    thread.start()
    if not started.wait(30):
        raise RuntimeError("the hostile server did not start")
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
