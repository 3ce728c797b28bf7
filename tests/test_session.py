"""The REST client and the session against the real local server, over real sockets."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.support import Recorder, free_port, wait_for
from unith_shell import api
from unith_shell.api import (
    APIConnectionError,
    APITimeout,
    AuthError,
    BadResponse,
    NotFoundError,
    ServerError,
    UnithAPI,
    jwt_payload,
)
from unith_shell.protocol import ResponsePart, UserMessage
from unith_shell.server import LocalServer
from unith_shell.session import Session, SessionError, SessionOptions, State
from unith_shell.turn import Turn


def options(server: LocalServer, **kw: Any) -> SessionOptions:
    base: dict[str, Any] = {
        "base_url": server.base_url,
        "org": "unith",
        "head": "aiko",
        "reconnect_initial": 0.05,
        "reconnect_max": 0.2,
        "timeout": 5.0,
    }
    base.update(kw)
    return SessionOptions(**base)


async def open_session(
    server: LocalServer, closing: list[Session], **kw: Any
) -> tuple[Session, Recorder]:
    recorder = Recorder()
    session = Session(options(server, **kw), recorder)
    closing.append(session)
    await session.connect()
    session.start(connected=True)
    return session, recorder


def client_messages(server: LocalServer) -> list[dict[str, Any]]:
    return [f for f in server.received if f.get("event") in ("text", "keep_session")]


# ---- REST ------------------------------------------------------------------------------------


async def test_login_returns_credentials_with_expiry(server: LocalServer) -> None:
    creds = await UnithAPI(server.base_url).login()
    assert creds.user_id and creds.session_id
    assert creds.expires_at == jwt_payload(creds.access_token)["exp"]
    assert 3500 < (creds.expires_in() or 0) <= 3600
    assert not creds.needs_refresh()
    assert creds.needs_refresh(margin=4000)
    assert creds.access_token not in repr(creds)
    await api.close_clients()


async def test_wrong_password_is_a_one_line_auth_error(server: LocalServer) -> None:
    with pytest.raises(AuthError) as info:
        await UnithAPI(server.base_url).login(password="wrong-secret")
    message = str(info.value)
    assert "401" in message and "\n" not in message and "wrong-secret" not in message
    await api.close_clients()


async def test_unknown_head_is_not_found(server: LocalServer) -> None:
    rest = UnithAPI(server.base_url)
    with pytest.raises(NotFoundError, match="404"):
        await rest.head_info("unith", "nobody", api_key="k-secret-1")
    with pytest.raises(NotFoundError) as info:
        await rest.head_info("unith", "nobody", api_key="k-secret-1")
    assert "k-secret-1" not in str(info.value)  # the key is in the URL path, not the message
    info_ok = await rest.head_info("unith", "aiko")
    assert info_ok["alias"] and isinstance(info_ok["phrases"], list)
    await api.close_clients()


async def test_idle_video_url_is_served_by_the_server(server: LocalServer) -> None:
    url = await UnithAPI(server.base_url).idle_video_url("unith", "aiko")
    assert url.startswith(server.base_url)
    response = await api.shared_client().get(url)
    assert response.headers["content-type"].startswith("video/")
    await api.close_clients()


@pytest.mark.parametrize(
    ("route", "status", "call", "error"),
    [
        ("token", 500, "login", ServerError),
        ("token", 401, "login", AuthError),
        ("videos", 404, "idle", NotFoundError),
        ("idle", 500, "idle", ServerError),
    ],
)
async def test_http_faults_map_to_typed_errors(
    server: LocalServer, route: str, status: int, call: str, error: type[Exception]
) -> None:
    server.set_http_fault(route, status)
    rest = UnithAPI(server.base_url)
    with pytest.raises(error) as info:
        if call == "login":
            await rest.login()
        else:
            await rest.idle_video_url("unith", "aiko")
    assert str(status) in str(info.value) and "\n" not in str(info.value)
    await api.close_clients()


async def test_connection_refused_is_one_line() -> None:
    with pytest.raises(APIConnectionError, match="connection refused"):
        await UnithAPI(f"http://127.0.0.1:{free_port()}").login()
    await api.close_clients()


async def test_rest_timeout_is_one_line() -> None:
    # A server that accepts the connection and never answers.
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    silent = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        with pytest.raises(APITimeout) as info:
            await UnithAPI(f"http://127.0.0.1:{port}", timeout=0.3).login()
        assert str(info.value) == f"login: no answer from http://127.0.0.1:{port} in 0.3 s"
    finally:
        for writer in held:
            writer.close()
        silent.close()
        await silent.wait_closed()
        await api.close_clients()


async def test_malformed_json_answer_is_bad_response() -> None:
    # A unit test of the JSON check alone: the local server never answers like this.
    with pytest.raises(BadResponse, match="not valid JSON"):
        UnithAPI._json(api.Reply(200, b"<html>not json</html>"), "login")


# ---- a whole session -------------------------------------------------------------------------


async def test_session_greeting_then_a_multi_part_reply(
    server: LocalServer, closing: list[Session]
) -> None:
    session, rec = await open_session(server, closing, api_key="pub-key")
    assert session.state is State.CONNECTED and rec.connects == 1
    greeting = session.greeting
    assert greeting is not None and greeting.ok and greeting.text
    handshake = server.received[0]
    assert handshake["api_key"] == "pub-key" and handshake["token"]
    assert "text_only" not in handshake  # the example client's minimal handshake

    turn = await session.send("hello")
    assert turn is not None
    await session.wait(turn, timeout=5)
    assert turn.ok and len(turn.parts) >= 2
    assert [p.part_order for p in turn.parts] == list(range(len(turn.parts)))
    assert "hello" in turn.text
    assert turn.first_latency is not None and turn.total_latency is not None

    turn2 = await session.send("again")
    assert turn2 is not None
    await session.wait(turn2, timeout=5)
    sent = client_messages(server)
    assert [m["id"] for m in sent] == [0, 1]  # a per-session counter
    assert sent[0]["user_id"] == session.credentials.user_id if session.credentials else False
    assert sent[0]["text"] == "hello" and sent[0]["event"] == "text"


async def test_text_only_session_gets_response_events(
    server: LocalServer, closing: list[Session]
) -> None:
    session, rec = await open_session(server, closing, text_only=True, data_tag="t1")
    assert server.received[0]["text_only"] is True and server.received[0]["data_tag"] == "t1"
    turn = await session.send("hi")
    assert turn is not None
    await session.wait(turn, timeout=5)
    parts = [e for e in rec.events if isinstance(e, ResponsePart) and e.input_message_id == 0]
    assert parts and all(p.event == "response" and p.video is None for p in parts)


async def test_messages_are_sent_one_turn_at_a_time_in_order(
    server: LocalServer, closing: list[Session]
) -> None:
    server.set_fault("slow", delay=0.05)
    session, _ = await open_session(server, closing)
    turns = [await session.send(f"m{i}") for i in range(3)]
    for turn in turns:
        assert turn is not None
        await session.wait(turn, timeout=5)
    assert [m["text"] for m in client_messages(server)] == ["m0", "m1", "m2"]
    assert all(t is not None and t.ok for t in turns)


async def test_close_is_clean(server: LocalServer, closing: list[Session]) -> None:
    session, _ = await open_session(server, closing)
    await session.close()
    assert session.state is State.CLOSED
    await server.wait_until(lambda: server.open_connections == 0)


# ---- faults, one per server script ----------------------------------------------------------


async def run_fault(
    server: LocalServer, closing: list[Session], fault: str, text: str = "hello", **kw: Any
) -> tuple[Session, Recorder, Turn]:
    server.set_fault(fault, **kw.pop("params", {}))
    session, rec = await open_session(server, closing, **kw)
    turn = await session.send(text)
    assert turn is not None
    await session.wait(turn, timeout=10)
    return session, rec, turn


async def test_fault_out_of_order_is_shown_in_part_order(
    server: LocalServer, closing: list[Session]
) -> None:
    _, rec, turn = await run_fault(server, closing, "out-of-order")
    assert turn.ok
    orders = [p.part_order for p in turn.parts]
    assert orders == sorted(orders) == list(range(len(orders)))
    shown = [text for mid, text in rec.shown if mid == turn.message_id]
    assert shown == [p.text for p in turn.parts]  # each once, in order


@pytest.mark.parametrize(
    ("fault", "bad_frames"), [("malformed-json", 1), ("binary-frame", 1), ("non-object-json", 4)]
)
async def test_fault_bad_frame_mid_turn_gives_a_notice_and_the_turn(
    server: LocalServer, closing: list[Session], fault: str, bad_frames: int
) -> None:
    _, rec, turn = await run_fault(server, closing, fault)
    assert turn.ok and len(turn.parts) >= 2
    assert len(rec.errors) == bad_frames  # one notice per bad frame


async def test_fault_oversized_frame_is_dropped_with_a_notice(
    server: LocalServer, closing: list[Session]
) -> None:
    session, rec, turn = await run_fault(
        server, closing, "oversized-frame", params={"size": 300_000}, max_frame_size=100_000
    )
    assert turn.ok and session.state is State.CONNECTED
    assert any("oversized" in e for e in rec.errors)


async def test_fault_wrong_types_keep_the_valid_parts(
    server: LocalServer, closing: list[Session]
) -> None:
    _, rec, turn = await run_fault(server, closing, "wrong-types")
    assert turn.complete and turn.text
    assert any("part_order" in e for e in rec.errors)
    assert any("is_last" in e for e in rec.errors)


async def test_fault_control_chars_arrive_intact_for_the_renderer(
    server: LocalServer, closing: list[Session]
) -> None:
    _, _, turn = await run_fault(server, closing, "control-chars")
    assert "\x1b[2J" in turn.text  # escaping is the renderer's job (tested there)


async def test_fault_many_parts(server: LocalServer, closing: list[Session]) -> None:
    _, rec, turn = await run_fault(server, closing, "many-parts", params={"count": 10_000})
    assert turn.ok and len(turn.parts) == 10_000
    assert len([1 for mid, _ in rec.shown if mid == turn.message_id]) == 10_000


@pytest.mark.parametrize(("level"), [400, 500])
async def test_fault_nlp_exception_ends_the_turn(
    server: LocalServer, closing: list[Session], level: int
) -> None:
    session, _, turn = await run_fault(server, closing, "nlp-exception", params={"level": level})
    assert turn.outcome == "unith_nlp_exception" and f"level {level}" in (turn.error or "")
    assert session.turn_in_flight is None


async def test_fault_choice_ends_the_turn_with_suggestions(
    server: LocalServer, closing: list[Session]
) -> None:
    _, _, turn = await run_fault(server, closing, "choice")
    assert turn.ok and turn.outcome == "choice" and turn.suggestions


async def test_fault_unknown_event_and_feedback_are_tolerated(
    server: LocalServer, closing: list[Session]
) -> None:
    _, rec, turn = await run_fault(server, closing, "unknown-event")
    assert turn.ok
    assert any(e.event == "brand_new_thing" for e in rec.events)


async def test_fault_string_ids_and_no_echo(server: LocalServer, closing: list[Session]) -> None:
    _, _, turn = await run_fault(server, closing, "string-ids")
    assert turn.ok
    await api.close_clients()


async def test_fault_never_ends_times_out_and_the_session_stays_usable(
    server: LocalServer, closing: list[Session]
) -> None:
    session, _, turn = await run_fault(server, closing, "never-ends", timeout=0.5)
    assert turn.outcome == "timed out" and "0.5" in (turn.error or "")
    assert session.state is State.CONNECTED and session.turn_in_flight is None
    server.set_fault(None)
    nxt = await session.send("still there?")
    assert nxt is not None
    await session.wait(nxt, timeout=5)
    # The fault stays on this connection: the next turn times out the same way, but it ran.
    assert nxt.complete


async def test_fault_slow_reply_beyond_the_timeout(
    server: LocalServer, closing: list[Session]
) -> None:
    _, _, turn = await run_fault(server, closing, "slow", params={"delay": 2.0}, timeout=0.3)
    assert turn.outcome == "timed out"


async def test_fault_conversation_end_then_next_message_starts_a_new_one(
    server: LocalServer, closing: list[Session]
) -> None:
    session, _, turn = await run_fault(server, closing, "conversation-end")
    assert turn.ok
    await wait_for(lambda: session.state is State.DISCONNECTED)
    assert server.connections == 1
    server.set_fault(None)
    nxt = await session.send("new conversation")
    assert nxt is not None
    await session.wait(nxt, timeout=5)
    assert nxt.ok and server.connections == 2


async def test_fault_idle_timeout_with_keep_alive_sends_keep_session(
    server: LocalServer, closing: list[Session]
) -> None:
    server.set_fault("idle-timeout", warning=0.2, grace=0.5)
    session, rec = await open_session(server, closing, keep_alive=True)
    await wait_for(lambda: any(e.event == "keep_session" for e in rec.events))
    assert any(m["event"] == "keep_session" for m in client_messages(server))
    assert session.state is State.CONNECTED


async def test_fault_idle_timeout_without_keep_alive_ends_and_never_reconnects(
    server: LocalServer, closing: list[Session]
) -> None:
    server.set_fault("idle-timeout", warning=0.1, grace=0.2)
    session, rec = await open_session(server, closing, keep_alive=False)
    await wait_for(lambda: session.timed_out and session.state is State.DISCONNECTED)
    assert any(e.event == "timeout_warning" for e in rec.events)
    await asyncio.sleep(0.3)  # longer than the backoff: give a wrong reconnect the chance
    assert server.connections == 1
    queued = await session.send("after timeout")
    assert queued is not None and session.pending  # held until /reconnect, not lost
    server.set_fault(None)
    session.reconnect()
    await session.wait(queued, timeout=5)
    assert queued.ok and server.connections == 2


async def test_fault_join_refused_retries_with_backoff(
    server: LocalServer, closing: list[Session]
) -> None:
    server.set_fault("join-refused")
    rec = Recorder()
    session = Session(options(server), rec)
    closing.append(session)
    with pytest.raises(SessionError, match="join refused"):
        await session.connect()
    session.start()
    await wait_for(lambda: server.connections >= 2)
    assert any("join refused" in n for n in rec.notices)
    server.set_fault(None)
    await wait_for(lambda: session.state is State.CONNECTED)


async def test_fault_token_refused_logs_in_again_then_gives_up(
    server: LocalServer, closing: list[Session]
) -> None:
    server.set_fault("token-refused")
    rec = Recorder()
    session = Session(options(server), rec)
    closing.append(session)
    session.start()
    await wait_for(lambda: session.state is State.DISCONNECTED and session.last_error is not None)
    assert "refused" in (session.last_error or "")
    assert server.logins == 2  # a fresh login after the first refusal
    token = session.credentials.access_token if session.credentials else "none"
    assert all(token not in n for n in rec.notices)


@pytest.mark.parametrize("fault", ["close-mid-turn", "drop-mid-turn"])
async def test_fault_connection_lost_mid_turn_reconnects(
    server: LocalServer, closing: list[Session], fault: str
) -> None:
    session, rec, turn = await run_fault(server, closing, fault)
    assert turn.outcome == "disconnected" and turn.text  # part 0 arrived and is kept
    server.set_fault(None)
    await wait_for(lambda: session.state is State.CONNECTED and rec.connects == 2)
    await wait_for(lambda: server.connections == 2)
    nxt = await session.send("after the drop")
    assert nxt is not None
    await session.wait(nxt, timeout=5)
    assert nxt.ok
    reason = rec.disconnects[0]
    assert ("1011" in reason) if fault == "close-mid-turn" else ("without a close" in reason)


async def test_login_failure_is_fatal_and_not_retried(server: LocalServer) -> None:
    session = Session(options(server, password="not-it"), Recorder())
    with pytest.raises(SessionError) as info:
        await session.connect()
    assert not info.value.retry and "401" in str(info.value)
    assert "not-it" not in str(info.value)
    await session.close()
    await api.close_clients()


async def test_unknown_head_socket_is_refused(server: LocalServer) -> None:
    session = Session(options(server, head="nobody"), Recorder())
    with pytest.raises(SessionError):
        await session.connect()
    await session.close()
    await api.close_clients()


async def test_queued_messages_survive_a_server_restart_in_order(
    closing: list[Session],
) -> None:
    from unith_shell.server import ServerConfig

    port = free_port()
    first = LocalServer(ServerConfig(port=port))
    await first.start()
    rec = Recorder()
    session = Session(options(first), rec)
    closing.append(session)
    await session.connect()
    session.start(connected=True)
    await first.stop()
    await wait_for(lambda: session.state is not State.CONNECTED)
    turns = [await session.send(f"queued {i}") for i in range(3)]
    assert len(session.pending) == 3
    second = LocalServer(ServerConfig(port=port))
    await second.start()
    try:
        for turn in turns:
            assert turn is not None
            await session.wait(turn, timeout=10)
            assert turn.ok
        texts = [m["text"] for m in client_messages(second)]
        assert texts == ["queued 0", "queued 1", "queued 2"]  # once each, in order
    finally:
        await session.close()
        await second.stop()


async def test_no_secret_in_frames_repr_or_notices(
    server: LocalServer, closing: list[Session]
) -> None:
    session, rec = await open_session(server, closing, api_key="sk-live-abcdef")
    assert "sk-live-abcdef" not in repr(session.options)
    handshake = json.loads(rec.frames[0][1])
    assert handshake["api_key"] == "sk-live-abcdef"  # it does go to the server, nowhere else
    assert all("sk-live-abcdef" not in n for n in rec.notices)


def test_user_message_cancel_and_ids() -> None:
    message = UserMessage(id=1, user_id="u", text="x")
    assert message.cancelled is None


# ---- regressions found in review -------------------------------------------------------------


class SlowFrames(Recorder):
    """An ``on_frame`` listener that takes its time on outgoing messages (a slow log plugin)."""

    async def on_frame(self, session: Session, direction: str, data: str | bytes) -> None:
        await super().on_frame(session, direction, data)
        if direction == "out" and '"event":"text"' in str(data):
            await asyncio.sleep(0.4)


async def test_keep_session_queued_during_a_send_is_sent_and_the_message_only_once(
    server: LocalServer, closing: list[Session]
) -> None:
    # The inactivity warning arrives while the message is still being sent.
    server.set_fault("idle-timeout", warning=0.2, grace=5.0)
    rec = SlowFrames()
    session = Session(options(server), rec)
    closing.append(session)
    await session.connect()
    session.start(connected=True)
    turn = await session.send("hello once")
    assert turn is not None
    await session.wait(turn, timeout=5)
    await server.wait_until(
        lambda: any(m["event"] == "keep_session" for m in client_messages(server))
    )
    texts = [m["text"] for m in client_messages(server) if m["event"] == "text"]
    assert texts == ["hello once"]
    assert turn.ok


class CancelOnConnecting(Recorder):
    """Cancels a task the moment the session starts connecting (a Ctrl+C during /head)."""

    def __init__(self) -> None:
        super().__init__()
        self.target: asyncio.Task[None] | None = None

    async def on_state(self, session: Session) -> None:
        await super().on_state(session)
        if self.target is not None and session.state is State.CONNECTING:
            self.target.cancel()
            self.target = None


async def test_a_cancelled_switch_goes_back_to_the_old_head(
    server: LocalServer, closing: list[Session]
) -> None:
    rec = CancelOnConnecting()
    session = Session(options(server), rec)
    closing.append(session)
    await session.connect()
    session.start(connected=True)
    switching = asyncio.create_task(session.switch("unith", "kai"))
    rec.target = switching
    with pytest.raises(asyncio.CancelledError):
        await switching
    assert (session.options.org, session.options.head) == ("unith", "aiko")
    await wait_for(lambda: session.state is State.CONNECTED)
    turn = await session.send("still here")
    assert turn is not None
    await session.wait(turn, timeout=5)
    assert turn.ok and "still here" in turn.text
    assert server.received[-1]["text"] == "still here"


async def test_a_failed_switch_keeps_the_old_head_and_its_name(
    server: LocalServer, closing: list[Session]
) -> None:
    session, _ = await open_session(server, closing)
    old_info = session.head_info
    assert old_info is not None and old_info["alias"] == "Aiko"
    with pytest.raises(SessionError):
        await session.switch("faults", "token-refused")
    assert (session.options.org, session.options.head) == ("unith", "aiko")
    assert session.head_info == old_info
    await wait_for(lambda: session.state is State.CONNECTED)


async def test_retrying_a_refused_connection_says_so_once(closing: list[Session]) -> None:
    rec = Recorder()
    port = free_port()
    session = Session(
        SessionOptions(
            base_url=f"http://127.0.0.1:{port}",
            org="unith",
            head="aiko",
            reconnect_initial=0.02,
            reconnect_max=0.05,
        ),
        rec,
    )
    closing.append(session)
    session.start()
    await wait_for(lambda: session.attempt >= 4)
    assert len([n for n in rec.notices if "connection refused" in n]) == 1
