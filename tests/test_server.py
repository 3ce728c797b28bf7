"""The local Unith server, driven over real loopback sockets with real clients.

Clients are ``httpx.AsyncClient`` and ``websockets.asyncio.client.connect``; nothing is mocked.
Waits are for conditions with a timeout; a short timeout is only used to show that a frame
does *not* arrive (never-ends, slow, silent).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidStatus,
)

from unith_shell.protocol import GREETING_ID
from unith_shell.server import FAULTS, HEADS, LocalServer, ServerConfig, serve_forever
from unith_shell.server.faults import CONTROL_TEXT

Json = dict[str, Any]
ENDING = {"unith_nlp_exception", "conversation_end", "timeout", "choice"}
pytestmark = pytest.mark.timeout(30)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[LocalServer]:
    async with LocalServer() as srv:
        yield srv


async def get_token(srv: LocalServer, **form: str) -> Json:
    data = {"username": "anonymous", "password": "Password1", **form}
    async with httpx.AsyncClient(base_url=srv.base_url) as http:
        response = await http.post("/token", data=data)
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


class Client:
    """A PY-style client: JSON frames in, JSON frames out, read until ``is_last``."""

    def __init__(self, ws: ClientConnection, user_id: str) -> None:
        self.ws = ws
        self.user_id = user_id
        self.greeting: list[Json] = []

    async def recv_raw(self, timeout: float = 5.0) -> str | bytes:
        async with asyncio.timeout(timeout):
            return await self.ws.recv()

    async def recv(self, timeout: float = 5.0) -> Json:
        frame = json.loads(await self.recv_raw(timeout))
        assert isinstance(frame, dict)
        return frame

    async def until_last(self) -> list[Json]:
        """Frames up to and including the first with ``is_last: true`` or an ending event."""
        frames: list[Json] = []
        while True:
            frame = await self.recv()
            frames.append(frame)
            if frame.get("is_last") is True or frame.get("event") in ENDING:
                return frames

    async def say(self, text: str, msg_id: int = 0, **extra: Any) -> None:
        message = {"id": msg_id, "user_id": self.user_id, "event": "text", "text": text, **extra}
        await self.ws.send(json.dumps(message))

    async def turn(self, text: str, msg_id: int = 0) -> tuple[Json, list[Json]]:
        """Send a message; return its echo and the frames answering it."""
        await self.say(text, msg_id)
        echo = await self.recv()
        return echo, await self.until_last()


@contextlib.asynccontextmanager
async def session(
    srv: LocalServer,
    head: str = "unith/aiko",
    *,
    text_only: bool | None = None,
    greet: bool = True,
    **connect_kw: Any,
) -> AsyncIterator[Client]:
    creds = await get_token(srv)
    org, head_id = head.split("/")
    async with connect(srv.ws_url(org, head_id), **connect_kw) as ws:
        handshake: Json = {"token": creds["access_token"], "api_key": ""}
        if text_only is not None:
            handshake["text_only"] = text_only
        await ws.send(json.dumps(handshake))
        client = Client(ws, creds["user_id"])
        if greet:
            client.greeting = await client.until_last()
        yield client


async def closed_by_server(client: Client) -> ConnectionClosed:
    """Read until the socket closes; return the exception the client library raised."""
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await client.recv_raw()
    return info.value


def jwt_payload(token: str) -> Json:
    segment = token.split(".")[1]
    payload: Json = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return payload


def assert_turn(frames: list[Json], input_id: int, event: str = "text") -> None:
    """Parts 0..n-1 in order, answering ``input_id``, ``is_last`` only on the last."""
    assert [f["part_order"] for f in frames] == list(range(len(frames)))
    assert [f["is_last"] for f in frames] == [False] * (len(frames) - 1) + [True]
    assert all(f["event"] == event and f["input_message_id"] == input_id for f in frames)


# --------------------------------------------------------------------------------------------
# the public example client's flow
# --------------------------------------------------------------------------------------------


async def test_example_client_flow_end_to_end(server: LocalServer) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{server.base_url}/token", data={"username": "anonymous", "password": "Password1"}
        )
    assert response.headers["content-type"].startswith("application/json")
    creds = response.json()
    assert set(creds) == {"access_token", "token_type", "user_id", "session_id"}
    assert creds["token_type"] == "bearer"
    assert isinstance(creds["user_id"], str) and isinstance(creds["session_id"], str)

    async with connect(server.ws_url("unith", "aiko")) as ws:
        await ws.send(json.dumps({"token": creds["access_token"], "api_key": ""}))
        client = Client(ws, creds["user_id"])
        handshake = await client.until_last()
        assert handshake[0] == {"event": "join", "granted": True}
        greeting = handshake[1:]
        assert_turn(greeting, GREETING_ID)
        assert "Aiko" in greeting[0]["text"]

        for _ in range(2):  # PY reuses id 0 for every message
            echo, parts = await client.turn("What is the weather like?", msg_id=0)
            assert echo == {
                "event": "text",
                "id": 0,
                "user_id": creds["user_id"],
                "username": "user",
                "text": "What is the weather like?",
                "is_last": False,
            }
            assert len(parts) == 3
            assert_turn(parts, 0)
            ids = [p["id"] for p in parts]
            assert all(isinstance(i, int) for i in ids) and len(set(ids)) == 3
            assert {p["username"] for p in parts} == {"Aiko"}
            assert {p["user_id"] for p in parts} != {creds["user_id"]}
            assert all(p["video"].startswith(server.base_url) and p["stream_id"] for p in parts)
            assert all(isinstance(s, str) for s in parts[-1]["suggestions"])
            assert "What is the weather like?" in parts[0]["text"]
    assert server.logins == 1 and server.connections == 1


async def test_replies_are_deterministic_and_not_echoes(server: LocalServer) -> None:
    async with session(server) as a, session(server) as b:
        _, first = await a.turn("Tell me about octopuses")
        _, second = await b.turn("Tell me about octopuses")
        _, other = await a.turn("Something completely different", msg_id=1)
    texts = [p["text"] for p in first]
    assert texts == [p["text"] for p in second]
    assert texts != ["Tell me about octopuses"]
    assert first[-1]["suggestions"] == second[-1]["suggestions"]
    assert [p["input_message_id"] for p in other] == [1, 1, 1]


async def test_extra_fields_and_v2_message_shape_tolerated(server: LocalServer) -> None:
    async with session(server) as client:
        await client.say("hi", msg_id=7, session_id="s", speaker="user", isSent=False)
        echo = await client.recv()
        parts = await client.until_last()
    assert echo["id"] == 7
    assert_turn(parts, 7)


# --------------------------------------------------------------------------------------------
# POST /token
# --------------------------------------------------------------------------------------------


async def test_token_accepts_multipart(server: LocalServer) -> None:
    files = {"username": (None, "nserve"), "password": (None, "Password1")}
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        response = await http.post("/token", files=files)
    assert response.status_code == 200
    assert jwt_payload(response.json()["access_token"])["username"] == "nserve"


async def test_token_wrong_password_is_401_with_detail(server: LocalServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        response = await http.post("/token", data={"username": "a", "password": "nope"})
    assert response.status_code == 401
    assert response.json() == {"detail": "Incorrect username or password"}
    assert server.logins == 0


@pytest.mark.parametrize(
    ("form", "missing"),
    [({"username": "anonymous"}, ["password"]), ({}, ["username", "password"])],
)
async def test_token_missing_fields_is_422(
    server: LocalServer, form: dict[str, str], missing: list[str]
) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        response = await http.post("/token", data=form)
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {"loc": ["body", name], "msg": "field required", "type": "value_error.missing"}
            for name in missing
        ]
    }


async def test_jwt_payload_has_exp_and_username() -> None:
    async with LocalServer(ServerConfig(token_ttl=120)) as srv:
        before = int(time.time())
        creds = await get_token(srv, username="alice")
    header = json.loads(base64.urlsafe_b64decode(creds["access_token"].split(".")[0] + "=="))
    payload = jwt_payload(creds["access_token"])
    assert header == {"alg": "HS256", "typ": "JWT"}
    assert payload["username"] == payload["sub"] == "alice"
    assert payload["user_id"] == creds["user_id"]
    assert isinstance(payload["exp"], int) and isinstance(payload["iat"], int)
    assert before + 119 <= payload["exp"] <= int(time.time()) + 121
    assert "=" not in creds["access_token"]


# --------------------------------------------------------------------------------------------
# REST: head, videos, idle, media
# --------------------------------------------------------------------------------------------


async def test_head_config_with_and_without_api_key(server: LocalServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        plain = (await http.get("/api/v1/head/unith/aiko")).json()
        keyed = await http.get("/api/v1/head/unith/kai/some-public-key")
    assert plain["name"] == "aiko" and plain["alias"] == "Aiko"
    for key in ("language", "operation_mode", "phrases", "greetings", "streaming_enabled"):
        assert key in plain
    assert isinstance(plain["phrases"], list)
    assert isinstance(plain["allowed_iframe_origins"], list)
    assert keyed.status_code == 200 and keyed.json()["language"] == "de-DE"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/videos/nope/nobody",
        "/api/v1/idle/nope/nobody/x",
        "/api/v1/head/nope/nobody",
        "/api/v1/head/nope/nobody/key",
        "/media/nope/nobody/idle.mp4",
    ],
)
async def test_unknown_head_is_404_with_detail(server: LocalServer, path: str) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        response = await http.get(path)
    assert response.status_code == 404
    assert response.json() == {"detail": "Head not found: nope/nobody"}


async def test_unknown_route_is_json_404(server: LocalServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        response = await http.get("/api/v9/whatever")
    assert response.status_code == 404 and "detail" in response.json()


async def test_idle_video_url_serves_mp4_bytes(server: LocalServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        listing = (await http.get("/api/v1/videos/unith/aiko")).json()
        video_id = listing[0]["video_id"]
        url = (await http.get(f"/api/v1/idle/unith/aiko/{video_id}")).json()
        assert isinstance(url, str) and url.startswith(f"{server.base_url}/")
        got = await http.get(url)
        head = await http.head(url)
        again = await http.get(url)
        wrong = await http.get("/api/v1/idle/unith/aiko/not-a-video")
    assert got.status_code == 200 and got.headers["content-type"] == "video/mp4"
    assert got.content[4:8] == b"ftyp"
    assert len(got.content) > 100_000
    assert head.status_code == 200 and head.headers["content-type"] == "video/mp4"
    assert int(head.headers["content-length"]) == len(got.content)
    assert head.content == b""
    assert again.content == got.content  # deterministic
    assert wrong.status_code == 404


async def test_reply_video_urls_are_served(server: LocalServer) -> None:
    async with session(server) as client:
        _, parts = await client.turn("hello")
    async with httpx.AsyncClient() as http:
        responses = [await http.get(p["video"]) for p in parts]
        other = await http.get(f"{server.base_url}/media/unith/aiko/secret.txt")
    assert all(r.status_code == 200 and r.headers["content-type"] == "video/mp4" for r in responses)
    assert responses[0].content[4:8] == b"ftyp"
    assert responses[0].content != responses[1].content
    assert other.status_code == 404


# --------------------------------------------------------------------------------------------
# the switch socket
# --------------------------------------------------------------------------------------------


async def test_unknown_head_closes_the_socket(server: LocalServer) -> None:
    async with connect(server.ws_url("nope", "nobody")) as ws:
        closed = await closed_by_server(Client(ws, "u"))
    assert closed.rcvd is not None and closed.rcvd.code == 1008
    assert "nope/nobody" in closed.rcvd.reason


@pytest.mark.parametrize("token", ["garbage", None, "a.b.c"])
async def test_invalid_token_closes(server: LocalServer, token: str | None) -> None:
    async with connect(server.ws_url()) as ws:
        await ws.send(json.dumps({"token": token, "api_key": ""}))
        closed = await closed_by_server(Client(ws, "u"))
    assert closed.rcvd is not None and closed.rcvd.code == 1008
    assert closed.rcvd.reason == "invalid token"


async def test_token_from_another_server_or_expired_is_refused() -> None:
    async with LocalServer() as a, LocalServer(ServerConfig(token_ttl=0)) as b:
        foreign = (await get_token(a))["access_token"]
        expired = (await get_token(b))["access_token"]
        for srv, token in ((b, foreign), (b, expired)):
            async with connect(srv.ws_url()) as ws:
                await ws.send(json.dumps({"token": token, "api_key": "k"}))
                closed = await closed_by_server(Client(ws, "u"))
            assert closed.rcvd is not None and closed.rcvd.code == 1008


async def test_text_only_gets_response_events_without_video(server: LocalServer) -> None:
    async with session(server, text_only=True) as client:
        _, parts = await client.turn("hello")
    greeting = client.greeting[1:]
    assert {f["event"] for f in greeting} == {"response"}
    assert_turn(parts, 0, event="response")
    assert not any("video" in f or "stream_id" in f for f in [*greeting, *parts])


async def test_streaming_head_sends_response_events_with_stream_id(server: LocalServer) -> None:
    async with session(server, "unith/nova") as client:
        _, parts = await client.turn("tell me something")
    assert len(parts) > 1
    assert_turn(parts, 0, event="response")
    assert all(p["stream_id"] and "video" not in p for p in parts)


async def test_head_without_greeting_sends_one_empty_last_part(server: LocalServer) -> None:
    async with session(server, "unith/quiet") as client:
        assert client.greeting[1:] == [
            {
                "event": "text",
                "id": client.greeting[1]["id"],
                "user_id": "bot-unith-quiet",
                "username": "Quiet",
                "text": "",
                "input_message_id": GREETING_ID,
                "part_order": 0,
                "is_last": True,
                "video": client.greeting[1]["video"],
                "stream_id": client.greeting[1]["stream_id"],
            }
        ]
    config = ServerConfig(greeting=False, join_event=False)
    async with LocalServer(config) as srv, session(srv) as client:
        assert [(f["text"], f["is_last"]) for f in client.greeting] == [("", True)]


async def test_keep_session_is_answered(server: LocalServer) -> None:
    async with session(server) as client:
        await client.ws.send(
            json.dumps({"id": 1, "user_id": client.user_id, "event": "keep_session", "text": ""})
        )
        assert await client.recv() == {"event": "keep_session", "granted": True}
        echo, parts = await client.turn("still here?", msg_id=2)  # the socket is still usable
    assert echo["id"] == 2 and parts[-1]["is_last"] is True


async def test_other_client_events_are_ignored(server: LocalServer) -> None:
    async with session(server) as client:
        await client.ws.send(json.dumps({"event": "request_next_video"}))
        echo, _ = await client.turn("next")  # the first frame after it is our echo
    assert echo["text"] == "next"


async def test_idle_warning_then_timeout_and_close() -> None:
    config = ServerConfig(idle_warning=0.2, idle_grace=0.2)
    async with LocalServer(config) as srv, session(srv) as client:
        assert await client.recv() == {"event": "timeout_warning"}
        # keep_session resets the timer: the next warning comes, not a timeout
        await client.ws.send(json.dumps({"id": 1, "event": "keep_session", "text": ""}))
        assert await client.recv() == {"event": "keep_session", "granted": True}
        assert await client.recv() == {"event": "timeout_warning"}
        assert await client.recv() == {"event": "timeout", "granted": False}
        closed = await closed_by_server(client)
    assert isinstance(closed, ConnectionClosedOK)
    assert closed.rcvd is not None and closed.rcvd.code == 1000


@pytest.mark.parametrize(
    ("frame", "code"),
    [("not json at all", 1007), ("[1, 2]", 1007), (b"\x00\x01", 1003), ("x" * 2_000_000, 1009)],
)
async def test_bad_client_frames_close_the_socket(
    server: LocalServer, frame: str | bytes, code: int
) -> None:
    async with session(server) as client:
        await client.ws.send(frame)
        closed = await closed_by_server(client)
    assert closed.rcvd is not None and closed.rcvd.code == code


async def test_invalid_json_as_handshake_closes(server: LocalServer) -> None:
    async with connect(server.ws_url()) as ws:
        await ws.send("eyJhbGciOi.raw.jwt")  # the v1 handshake style: a bare token
        closed = await closed_by_server(Client(ws, "u"))
    assert closed.rcvd is not None and closed.rcvd.code == 1007


async def test_received_records_every_client_frame(server: LocalServer) -> None:
    async with session(server) as client:
        await client.turn("one", msg_id=0)
        await client.turn("two", msg_id=1)
    await server.wait_until(lambda: len(server.received) == 3)
    handshake, first, second = server.received
    assert set(handshake) == {"token", "api_key"}
    assert (first["text"], second["text"]) == ("one", "two")
    assert first["user_id"] == client.user_id


# --------------------------------------------------------------------------------------------
# keyword behaviours of the demo heads
# --------------------------------------------------------------------------------------------


async def test_keywords_show_every_event(server: LocalServer) -> None:
    async with session(server, "unith/kai") as client:
        _, menu = await client.turn("Zeig mir das Menü", msg_id=1)
        _, error = await client.turn("error please", msg_id=2)
        _, crash = await client.turn("crash", msg_id=3)
        _, surprise = await client.turn("surprise me", msg_id=4)
        _, feedback = await client.turn("feedback: great", msg_id=5)
        assert await client.recv() == {"event": "analytics-userFeedback"}
        _, bye = await client.turn("Tschüss!", msg_id=6)
        assert await client.recv() == {"event": "conversation_end"}
    assert [(f["event"], f["input_message_id"], f["is_last"]) for f in menu] == [
        ("choice", 1, True)
    ]
    assert menu[0]["suggestions"] and menu[0]["part_order"] == 0
    assert (error[0]["event"], error[0]["level"], error[0]["input_message_id"]) == (
        "unith_nlp_exception",
        400,
        2,
    )
    assert crash[0]["level"] == 500
    assert surprise[0]["event"] == "brand_new_thing"
    assert_turn(surprise[1:], 4)
    assert_turn(feedback, 5)
    assert_turn(bye, 6)


async def test_bye_is_a_whole_word(server: LocalServer) -> None:
    async with session(server) as client:
        _, parts = await client.turn("maybe a byproduct", msg_id=1)
        _, again = await client.turn("next", msg_id=2)  # no conversation_end came in between
    assert_turn(parts, 1)
    assert_turn(again, 2)


# --------------------------------------------------------------------------------------------
# fault scripts
# --------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def faulty(
    srv: LocalServer,
    name: str,
    *,
    greet: bool = True,
    connect_kw: dict[str, Any] | None = None,
    **params: Any,
) -> AsyncIterator[Client]:
    srv.set_fault(name, **params)
    async with session(srv, greet=greet, **(connect_kw or {})) as client:
        yield client


async def test_fault_heads_exist_for_every_fault(server: LocalServer) -> None:
    assert {key.split("/")[1] for key in HEADS if key.startswith("faults/")} == set(FAULTS)
    async with session(server, "faults/close-mid-turn") as client:
        await client.say("hi")
        await client.recv()  # echo
        assert (await client.recv())["part_order"] == 0
        closed = await closed_by_server(client)
    assert closed.rcvd is not None and closed.rcvd.code == 1011


async def test_set_fault_applies_to_later_sockets_only(server: LocalServer) -> None:
    async with session(server) as before:
        server.set_fault("nlp-exception")
        async with session(server) as after:
            _, ok = await before.turn("hi")
            _, failed = await after.turn("hi")
        server.set_fault(None)
        async with session(server) as cleared:
            _, ok_again = await cleared.turn("hi")
    assert_turn(ok, 0)
    assert failed[0]["event"] == "unith_nlp_exception"
    assert_turn(ok_again, 0)
    with pytest.raises(ValueError, match="unknown fault"):
        server.set_fault("no-such-fault")
    with pytest.raises(ValueError, match="takes no"):
        server.set_fault("slow", speed=3)


async def test_fault_slow_spaces_the_parts(server: LocalServer) -> None:
    async with faulty(server, "slow", delay=0.05) as client:
        await client.say("hi")
        await client.recv()  # echo
        stamps = []
        for _ in range(3):
            await client.recv()
            stamps.append(time.monotonic())
    assert stamps[2] - stamps[0] >= 0.1


async def test_fault_slow_can_outlast_a_client_timeout(server: LocalServer) -> None:
    async with faulty(server, "slow", delay=60) as client:
        await client.say("hi")
        assert (await client.recv())["username"] == "user"  # the echo comes at once
        with pytest.raises(TimeoutError):
            await client.recv(timeout=0.3)


async def test_fault_never_ends(server: LocalServer) -> None:
    async with faulty(server, "never-ends") as client:
        await client.say("hi")
        await client.recv()  # echo
        parts = [await client.recv() for _ in range(3)]
        with pytest.raises(TimeoutError):
            await client.recv(timeout=0.3)
    assert [p["part_order"] for p in parts] == [0, 1, 2]
    assert not any(p["is_last"] for p in parts)


@pytest.mark.parametrize("code", [None, 4000])
async def test_fault_close_mid_turn(server: LocalServer, code: int | None) -> None:
    params: dict[str, Any] = {} if code is None else {"code": code}
    async with faulty(server, "close-mid-turn", **params) as client:
        await client.say("hi")
        await client.recv()
        assert (await client.recv())["part_order"] == 0
        closed = await closed_by_server(client)
    assert isinstance(closed, ConnectionClosedError)
    assert closed.rcvd is not None and closed.rcvd.code == (code or 1011)


async def test_fault_drop_mid_turn_sends_no_close_frame(server: LocalServer) -> None:
    async with faulty(server, "drop-mid-turn") as client:
        await client.say("hi")
        await client.recv()
        assert (await client.recv())["part_order"] == 0
        closed = await closed_by_server(client)
    assert isinstance(closed, ConnectionClosedError)
    assert closed.rcvd is None


@pytest.mark.parametrize("name", ["malformed-json", "binary-frame", "non-object-json"])
async def test_fault_bad_frame_in_mid_turn(server: LocalServer, name: str) -> None:
    async with faulty(server, name) as client:
        await client.say("hi")
        raws = [await client.recv_raw() for _ in range(3)]
        extra = [await client.recv_raw() for _ in range(3)] if name == "non-object-json" else []
        rest = await client.until_last()
    echo, part0, bad = (json.loads(raws[0]), json.loads(raws[1]), raws[2])
    assert echo["username"] == "user" and part0["part_order"] == 0
    if name == "binary-frame":
        assert isinstance(bad, bytes)
    elif name == "malformed-json":
        assert isinstance(bad, str)
        with pytest.raises(ValueError):
            json.loads(bad)
    else:
        assert [json.loads(x) for x in (bad, *extra)] == [
            [1, 2, 3],
            "just a string",
            None,
            {"no_event": True},
        ]
    assert_turn([part0, *rest], 0)


async def test_fault_oversized_frame(server: LocalServer) -> None:
    async with faulty(server, "oversized-frame", connect_kw={"max_size": None}) as client:
        await client.say("hi")
        await client.recv()
        await client.recv()  # part 0
        huge = await client.recv_raw()
        rest = await client.until_last()
    assert isinstance(huge, str) and len(huge) == 2 * 1024 * 1024
    assert json.loads(huge)["event"] == "oversized_blob"
    assert [p["part_order"] for p in rest] == [1, 2]
    # A client with the library's default 1 MiB limit gives up on the socket instead.
    async with faulty(server, "oversized-frame", size=1_500_000) as client:
        await client.say("hi")
        closed = await closed_by_server(client)
    assert closed.sent is not None and closed.sent.code == 1009


async def test_fault_wrong_types(server: LocalServer) -> None:
    async with faulty(server, "wrong-types") as client:
        _, frames = await client.turn("hi")
    assert [f["part_order"] for f in frames] == [0, 1, "x", 0, 2]
    assert [f["is_last"] for f in frames] == [False, False, False, "yes", True]
    valid = [f for f in frames if isinstance(f["part_order"], int) and f["is_last"] != "yes"]
    assert_turn(valid, 0)


async def test_fault_control_chars(server: LocalServer) -> None:
    async with faulty(server, "control-chars") as client:
        _, parts = await client.turn("hi")
    assert parts[0]["text"] == CONTROL_TEXT
    for needle in ("\x1b[2J", "\x1b]0;pwned\x07", "\x00", "\x07"):
        assert needle in parts[0]["text"]
    assert "\x1b[1m" in parts[-1]["suggestions"][0]
    assert_turn(parts, 0)


async def test_fault_many_parts(server: LocalServer) -> None:
    async with faulty(server, "many-parts") as client:
        _, parts = await client.turn("hi")
    assert len(parts) == 10_000
    assert_turn(parts, 0)
    async with faulty(server, "many-parts", count=5) as client:
        _, few = await client.turn("hi")
    assert len(few) == 5


async def test_fault_out_of_order(server: LocalServer) -> None:
    async with faulty(server, "out-of-order") as client:
        await client.say("hi")
        await client.recv()
        frames = [await client.recv() for _ in range(4)]
    orders = [f["part_order"] for f in frames]
    assert orders == [2, 0, 0, 1]
    assert frames[0]["is_last"] is True and sorted(set(orders)) == [0, 1, 2]


@pytest.mark.parametrize("level", [None, 400])
async def test_fault_nlp_exception(server: LocalServer, level: int | None) -> None:
    params: dict[str, Any] = {} if level is None else {"level": level}
    async with faulty(server, "nlp-exception", **params) as client:
        _, frames = await client.turn("hi", msg_id=3)
    assert frames == [
        {
            "event": "unith_nlp_exception",
            "level": level or 500,
            "message": frames[0]["message"],
            "input_message_id": 3,
        }
    ]


async def test_fault_conversation_end_and_feedback(server: LocalServer) -> None:
    async with faulty(server, "conversation-end") as client:
        _, parts = await client.turn("hi")
        assert await client.recv() == {"event": "conversation_end"}
    assert_turn(parts, 0)
    async with faulty(server, "feedback") as client:
        _, parts = await client.turn("hi")
        assert await client.recv() == {"event": "analytics-userFeedback"}
    assert_turn(parts, 0)


async def test_fault_unknown_event(server: LocalServer) -> None:
    async with faulty(server, "unknown-event") as client:
        _, frames = await client.turn("hi")
    assert frames[0]["event"] == "brand_new_thing"
    assert_turn(frames[1:], 0)


async def test_fault_choice(server: LocalServer) -> None:
    async with faulty(server, "choice") as client:
        _, frames = await client.turn("hi", msg_id=4)
    (choice,) = frames
    assert choice["event"] == "choice" and choice["input_message_id"] == 4
    assert choice["part_order"] == 0 and choice["is_last"] is True
    assert choice["suggestions"] == ["Yes", "No", "Maybe"]


async def test_fault_join_refused(server: LocalServer) -> None:
    async with faulty(server, "join-refused", greet=False) as client:
        assert await client.recv() == {"event": "join", "granted": False}
        closed = await closed_by_server(client)
    assert closed.rcvd is not None and closed.rcvd.code == 1013


async def test_fault_token_refused(server: LocalServer) -> None:
    async with faulty(server, "token-refused", greet=False) as client:
        closed = await closed_by_server(client)
    assert closed.rcvd is not None and closed.rcvd.code == 1008
    assert server.logins == 1  # the token itself was fine


async def test_fault_idle_timeout(server: LocalServer) -> None:
    async with faulty(server, "idle-timeout", warning=0.1, grace=0.1) as client:
        assert await client.recv() == {"event": "timeout_warning"}
        assert await client.recv() == {"event": "timeout", "granted": False}
        closed = await closed_by_server(client)
    assert closed.rcvd is not None and closed.rcvd.code == 1000


async def test_fault_no_join_and_no_greeting(server: LocalServer) -> None:
    async with faulty(server, "no-join") as client:
        assert client.greeting[0]["event"] == "text"
        assert client.greeting[-1]["is_last"] is True
    async with faulty(server, "no-greeting") as client:
        assert [(f.get("text"), f.get("is_last")) for f in client.greeting[1:]] == [("", True)]


async def test_fault_silent(server: LocalServer) -> None:
    async with faulty(server, "silent") as client:
        await client.say("hi")
        assert (await client.recv())["username"] == "user"
        with pytest.raises(TimeoutError):
            await client.recv(timeout=0.3)


async def test_fault_no_echo(server: LocalServer) -> None:
    async with faulty(server, "no-echo") as client:
        await client.say("hi")
        parts = await client.until_last()
    assert_turn(parts, 0)


async def test_fault_string_ids(server: LocalServer) -> None:
    async with faulty(server, "string-ids") as client:
        _, parts = await client.turn("hi", msg_id=5)
    assert all(isinstance(p["id"], str) and p["input_message_id"] == "5" for p in parts)
    assert [p["part_order"] for p in parts] == [0, 1, 2]


async def test_fault_close_after_reply(server: LocalServer) -> None:
    async with faulty(server, "close-after-reply") as client:
        _, parts = await client.turn("hi")
        closed = await closed_by_server(client)
    assert_turn(parts, 0)
    assert isinstance(closed, ConnectionClosedOK)


def test_every_fault_is_tested() -> None:
    source = Path(__file__).read_text(encoding="utf-8")
    untested = [name for name in FAULTS if f'"{name}"' not in source]
    assert untested == []


# --------------------------------------------------------------------------------------------
# HTTP faults, dropping sockets, several servers, shutdown
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "status", "path"),
    [
        ("token", 500, "/token"),
        ("token", 401, "/token"),
        ("videos", 404, "/api/v1/videos/unith/aiko"),
        ("head", 404, "/api/v1/head/unith/aiko"),
        ("idle", 500, "/api/v1/idle/unith/aiko/aiko-idle-1"),
        ("media", 503, "/media/unith/aiko/idle.mp4"),
    ],
)
async def test_set_http_fault(server: LocalServer, route: str, status: int, path: str) -> None:
    server.set_http_fault(route, status)
    method = "POST" if route == "token" else "GET"
    form = {"username": "anonymous", "password": "Password1"} if route == "token" else None
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        failed = await http.request(method, path, data=form)
        server.set_http_fault(route, None)
        ok = await http.request(method, path, data=form)
    assert failed.status_code == status and isinstance(failed.json()["detail"], str)
    assert ok.status_code == 200
    with pytest.raises(ValueError):
        server.set_http_fault("nowhere", 500)


async def test_http_fault_on_switch_refuses_the_upgrade(server: LocalServer) -> None:
    server.set_http_fault("switch", 503)
    with pytest.raises(InvalidStatus) as info:
        async with connect(server.ws_url()):
            pass
    assert info.value.response.status_code == 503
    assert server.connections == 0


async def test_drop_all_abort_and_close_code(server: LocalServer) -> None:
    async with session(server) as a, session(server) as b:
        await server.wait_until(lambda: server.open_connections == 2)
        await server.drop_all()
        for client in (a, b):
            assert (await closed_by_server(client)).rcvd is None
    async with session(server) as c:
        await server.drop_all(1011)
        closed = await closed_by_server(c)
    assert closed.rcvd is not None and closed.rcvd.code == 1011
    await server.wait_until(lambda: server.open_connections == 0)


async def test_two_servers_at_once() -> None:
    async with LocalServer() as a, LocalServer() as b:
        assert a.port != b.port
        async with session(a) as ca, session(b, "unith/kai") as cb:
            _, pa = await ca.turn("hi")
            _, pb = await cb.turn("hi")
        assert (pa[0]["username"], pb[0]["username"]) == ("Aiko", "Kai")
        assert (a.connections, b.connections) == (1, 1)


async def test_stop_closes_open_sockets_promptly() -> None:
    srv = LocalServer()
    await srv.start()
    async with session(srv) as client:
        started = time.monotonic()
        await srv.stop()
        elapsed = time.monotonic() - started
        closed = await closed_by_server(client)
    assert elapsed < 1.0
    assert closed.rcvd is not None and closed.rcvd.code == 1001
    await srv.stop()  # idempotent


async def test_stop_does_not_wait_for_a_slow_turn() -> None:
    srv = LocalServer()
    await srv.start()
    srv.set_fault("slow", delay=60)
    async with session(srv) as client:
        await client.say("hi")
        await client.recv()
        started = time.monotonic()
        await srv.stop()
        assert time.monotonic() - started < 1.0


# --------------------------------------------------------------------------------------------
# serve_forever
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_serve_forever_in_a_subprocess() -> None:
    port = free_port()
    code = (
        "from unith_shell.server import serve_forever; "
        f"raise SystemExit(serve_forever(port={port}))"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode().strip()
        assert line == f"unith local server on http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{port}/api/v1/head/unith/aiko")
        assert response.json()["alias"] == "Aiko"
        proc.terminate()  # SIGTERM: a clean stop
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_serve_forever_reports_a_busy_port() -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        lines: list[str] = []
        result: list[int] = []
        worker = threading.Thread(
            target=lambda: result.append(serve_forever(port=port, print_url=lines.append))
        )
        worker.start()
        worker.join(10)
    assert result == [1] and lines == []


async def test_config_part_delay_applies_to_every_turn() -> None:
    async with LocalServer(ServerConfig(part_delay=0.03)) as srv, session(srv) as client:
        started = time.monotonic()
        _, parts = await client.turn("hi")
        elapsed = time.monotonic() - started
    assert_turn(parts, 0)
    assert elapsed >= 0.09


async def test_missing_handshake_times_out() -> None:
    async with (
        LocalServer(ServerConfig(handshake_timeout=0.1)) as srv,
        connect(srv.ws_url("unith", "kai")) as ws,
    ):
        closed = await closed_by_server(Client(ws, "u"))
    assert closed.rcvd is not None and closed.rcvd.code == 1008
    assert closed.rcvd.reason == "handshake timeout"


async def test_close_reason_stays_valid_utf8(server: LocalServer) -> None:
    async with connect(server.ws_url("ünïcødé" * 10, "head")) as ws:
        closed = await closed_by_server(Client(ws, "u"))
    assert closed.rcvd is not None and closed.rcvd.reason.startswith("Head not found: ünïcødé")


async def test_fault_scripted_sends_the_echo_then_the_frames_verbatim(server: LocalServer) -> None:
    frames = ['{"event": "text", "input_message_id": MID, "part_order": 0}', b"\x01\x02", "{bad"]
    async with faulty(server, "scripted", frames=frames) as client:
        await client.say("hi")
        echo = await client.recv()
        assert echo["text"] == "hi"
        assert (await client.recv())["input_message_id"] == echo["id"]
        assert await client.recv_raw() == b"\x01\x02"
        assert await client.recv_raw() == "{bad"


async def test_fault_flaky_alternates_wrong_replies(server: LocalServer) -> None:
    forgot = []
    for _ in range(2):
        async with faulty(server, "flaky") as client:
            _, parts = await client.turn("hi")
        assert_turn(parts, 0)
        forgot.append(parts[0]["text"] == "I forgot what I was saying.")
    assert sorted(forgot) == [False, True]  # every other reply, across sessions
    async with faulty(server, "flaky", every=1) as client:
        _, parts = await client.turn("hi")
    assert {p["text"] for p in parts} == {"I forgot what I was saying."}


async def test_demo_heads_remember_within_one_conversation(server: LocalServer) -> None:
    async with session(server) as client:
        await client.turn("my order number is 12345")
        _, parts = await client.turn("What was my order number?")
        assert parts[0]["text"] == "You told me your order number is 12345."
        assert len(parts) == 3
    async with session(server) as client:  # a new conversation knows nothing
        _, parts = await client.turn("what was my order number?")
    assert parts[0]["text"] == "You have not told me your order number yet."
