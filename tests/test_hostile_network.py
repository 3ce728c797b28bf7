"""Issue 9, items 2 and 5: what a hostile server can make the client hold, wait for or leak.

Every test drives the real client (Session, UnithAPI, the CLI in pipe mode) over real sockets
against tests/hostile_network.py on 127.0.0.1. Bounds are asserted as outcomes (an error, a
reconnect, a refusal), never as timings; the guards around them only stop a hang.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.hostile_network import HostileServer
from tests.support import Recorder, wait_for
from tests.support import run_cli_async as run_cli
from unith_shell import api
from unith_shell.api import APITimeout, BadResponse, DownloadError, RedirectRefused, UnithAPI
from unith_shell.protocol import ServerEvent
from unith_shell.session import Session, SessionError, SessionOptions, State
from unith_shell.turn import Turn
from unith_shell.urls import display_url, is_loopback, plain_http_warning, same_origin

#: Only a guard against a hang on broken code; the bounds under test are far shorter.
GUARD = 30.0


@pytest.fixture
async def hostile() -> AsyncIterator[HostileServer]:
    async with HostileServer() as srv:
        yield srv
    await api.close_clients()


@pytest.fixture
async def other() -> AsyncIterator[HostileServer]:
    """A second origin (another port) that records whether anything reached it."""
    async with HostileServer() as srv:
        yield srv


def options(base_url: str, **kw: Any) -> SessionOptions:
    values: dict[str, Any] = {
        "base_url": base_url,
        "org": "o",
        "head": "h",
        "timeout": 5.0,
        "reconnect_initial": 0.05,
        "reconnect_max": 0.2,
    }
    values.update(kw)
    return SessionOptions(**values)


async def open_session(
    base_url: str, closing: list[Session], listener: Recorder | None = None, **kw: Any
) -> tuple[Session, Recorder]:
    recorder = listener or Recorder()
    session = Session(options(base_url, **kw), recorder)
    closing.append(session)
    async with asyncio.timeout(GUARD):
        await session.connect()
    session.start(connected=True)
    return session, recorder


async def say(session: Session, text: str, timeout: float = GUARD) -> Turn:
    turn = await session.send(text)
    assert turn is not None
    await session.wait(turn, timeout=timeout)
    return turn


# ---- item 2: parts per turn and part_order --------------------------------------------------


async def test_a_flood_past_the_parts_cap_ends_the_turn_and_the_session_goes_on(
    hostile: HostileServer, closing: list[Session]
) -> None:
    session, _ = await open_session(hostile.base("ok"), closing)
    turn = await say(session, "flood:20000")  # twice the default cap of 10,000
    assert turn.complete and not turn.ok
    assert turn.error == "protocol error: part_order 10000 is beyond the cap of 10000 parts"
    assert len(turn.parts) == 10_000  # what arrived within the cap is kept
    nxt = await say(session, "hello")  # the rest of the flood is dropped, the shell goes on
    assert nxt.ok and nxt.text == "one\ntwo"
    assert session.state is State.CONNECTED


async def test_the_parts_cap_is_a_setting(hostile: HostileServer, closing: list[Session]) -> None:
    session, _ = await open_session(hostile.base("ok"), closing, max_parts=50)
    turn = await say(session, "flood:60")
    assert turn.error == "protocol error: part_order 50 is beyond the cap of 50 parts"
    assert (await say(session, "flood:50")).ok


async def test_unnumbered_parts_are_counted_against_the_cap(
    hostile: HostileServer, closing: list[Session]
) -> None:
    session, _ = await open_session(hostile.base("ok"), closing)
    turn = await say(session, "unnumbered:10001")
    assert turn.error == "protocol error: more than 10000 parts in one reply"
    assert len(turn.parts) == 10_000


async def test_a_huge_part_order_is_a_protocol_error_not_a_hang(
    hostile: HostileServer, closing: list[Session]
) -> None:
    # On the old code the gap watchdog listed range(10**12) missing parts: the loop hung.
    session, _ = await open_session(hostile.base("ok"), closing, gap_grace=0.05)
    turn = await say(session, "huge-order")
    assert turn.outcome == "failed"
    assert turn.error == "protocol error: part_order 1000000000000 is beyond the cap of 10000 parts"
    assert [p.text for p in turn.parts] == ["zero"]  # what arrived is kept
    assert (await say(session, "hello")).ok


def test_missing_parts_are_counted_from_what_arrived_not_from_part_numbers() -> None:
    from unith_shell.protocol import ResponsePart

    turn = Turn(message_id=1, max_parts=10**9)
    turn.add(ResponsePart(event="text", raw={}, part_order=3))
    turn.add(ResponsePart(event="text", raw={}, part_order=10**8, is_last=True))
    assert turn.missing[:4] == [0, 1, 2, 4] and len(turn.missing) == 20
    assert turn.missing_count == 10**8 - 1


# ---- item 2: nesting depth and number sizes ------------------------------------------------


async def test_a_400_digit_int_in_a_frame_is_one_protocol_error(
    hostile: HostileServer, closing: list[Session]
) -> None:
    session, rec = await open_session(hostile.base("ok"), closing)
    turn = await say(session, "bigint")
    assert turn.ok and turn.text == "zero\none"  # the bogus part never joined the turn
    assert rec.errors == ["malformed JSON: a number with 400 digits"]
    assert session.state is State.CONNECTED


async def test_a_900_deep_frame_is_one_protocol_error(
    hostile: HostileServer, closing: list[Session]
) -> None:
    session, rec = await open_session(hostile.base("ok"), closing)
    turn = await say(session, "deep")
    assert turn.ok and turn.text == "zero\none"
    assert rec.errors == ["malformed JSON: nested more than 32 levels deep"]
    assert (await say(session, "hello")).ok


async def test_a_900_deep_rest_body_is_one_line(hostile: HostileServer) -> None:
    with pytest.raises(BadResponse) as info:
        await UnithAPI(hostile.base("deepbody")).login()
    assert str(info.value) == (
        "login: the server's answer is not valid JSON (nested more than 32 levels deep)"
    )


async def test_a_frame_over_the_socket_limit_closes_and_reconnects(
    hostile: HostileServer, closing: list[Session]
) -> None:
    # 5 MiB: over 4 x max_frame_size (1 MiB), so websockets refuses it (1009) before
    # buffering it; the old limit of 8 MiB let it in.
    session, rec = await open_session(hostile.base("ok"), closing)
    turn = await say(session, f"giant:{5 * 1024 * 1024}")
    assert turn.outcome == "disconnected" and turn.error is not None
    assert turn.error.startswith("connection lost (closed with code 1009: frame with ")
    await wait_for(lambda: rec.connects == 2, timeout=GUARD)
    assert (await say(session, "hello")).ok


async def test_a_flood_in_pipe_mode_is_one_error_line_and_the_next_line_is_answered(
    hostile: HostileServer, tmp_path: Path
) -> None:
    code, out, err = await run_cli(
        tmp_path, "--base-url", hostile.base("ok"), "-m", "flood:20000", "-m", "hello"
    )
    assert code == 4
    assert "protocol error: part_order 10000 is beyond the cap of 10000 parts" in err
    assert "Traceback" not in err and out.splitlines()[-1].endswith("two")


async def test_a_400_digit_exp_in_the_jwt_logs_in_without_an_expiry(
    hostile: HostileServer,
) -> None:
    creds = await UnithAPI(hostile.base("bigexp")).login()
    assert creds.user_id == "u-1" and creds.expires_at is None


async def test_a_5000_deep_jwt_payload_logs_in_without_an_expiry(
    hostile: HostileServer,
) -> None:
    creds = await UnithAPI(hostile.base("deepjwt")).login()
    assert creds.user_id == "u-1" and creds.expires_at is None


async def test_a_400_digit_exp_through_the_cli_is_no_traceback(
    hostile: HostileServer, tmp_path: Path
) -> None:
    code, out, err = await run_cli(tmp_path, "--base-url", hostile.base("bigexp"), "-m", "hello")
    assert code == 0, err
    assert "Traceback" not in err and out.splitlines()[-1].endswith("two")


# ---- item 2: REST bodies and deadlines -----------------------------------------------------


async def test_a_gzip_bomb_stops_at_the_body_cap(hostile: HostileServer) -> None:
    with pytest.raises(BadResponse) as info:
        await UnithAPI(hostile.base("bomb")).login()
    assert str(info.value) == "login: the answer is larger than 2097152 bytes; stopped reading"


async def test_a_dripping_login_hits_the_overall_deadline(hostile: HostileServer) -> None:
    # Each byte comes well within the per-read limit: only an overall deadline ends it.
    async with asyncio.timeout(GUARD):
        with pytest.raises(APITimeout) as info:
            await UnithAPI(hostile.base("drip"), timeout=1.0).login()
    assert str(info.value) == f"login: no answer from {hostile.base('drip')} in 1 s"


async def test_a_greeting_that_never_ends_hits_the_handshake_deadline(
    hostile: HostileServer,
) -> None:
    session = Session(options(hostile.base("drip-greeting"), timeout=2.0, handshake_timeout=1.5))
    try:
        async with asyncio.timeout(GUARD):
            with pytest.raises(SessionError) as info:
                await session.connect()
        assert str(info.value) == "handshake: not complete within 1.5 s"
        assert session.state is not State.CONNECTED
    finally:
        await session.close()
        await api.close_clients()


async def test_a_dripping_download_hits_its_deadline(hostile: HostileServer) -> None:
    chunks: list[bytes] = []
    async with asyncio.timeout(GUARD):
        with pytest.raises(DownloadError) as info:
            await api.download(
                hostile.base("drip") + "/file.mp4", chunks.append, read_timeout=5.0, deadline=1.0
            )
    assert str(info.value).startswith("download: not finished within 1 s (")
    assert 0 < sum(map(len, chunks)) < 10_000


async def test_a_download_past_its_size_cap_stops(hostile: HostileServer) -> None:
    chunks: list[bytes] = []
    with pytest.raises(DownloadError, match="the file is 1000 bytes, more than the cap of 100"):
        await api.download(hostile.base("ok") + "/file.mp4", chunks.append, max_bytes=100)
    assert chunks == []  # refused on its Content-Length, before any byte
    with pytest.raises(DownloadError, match="more than 5000 bytes; stopped"):
        await api.download(hostile.base("chunked") + "/file.mp4", chunks.append, max_bytes=5000)
    assert 0 < sum(map(len, chunks)) <= 5000


async def test_video_download_through_the_cli_obeys_download_timeout(
    hostile: HostileServer, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text("download_timeout = 1\n")
    target = tmp_path / "idle.mp4"
    _, _, err = await run_cli(
        tmp_path, "--base-url", hostile.base("drip-file"), "-m", f"/video --download {target}",
        home=home,
    )  # fmt: skip
    assert "download: not finished within 1 s" in err
    assert "Traceback" not in err and not target.exists()


# ---- item 2: the reader must never die silently --------------------------------------------


class Exploding(Recorder):
    async def on_event(self, session: Session, event: ServerEvent) -> None:
        await super().on_event(session, event)
        if event.event == "explode":
            raise RuntimeError("a listener bug")


async def test_a_dead_reader_is_noticed_and_the_session_reconnects(
    hostile: HostileServer, closing: list[Session]
) -> None:
    rec = Exploding()
    session, _ = await open_session(hostile.base("ok"), closing, listener=rec)
    turn = await session.send("explode")
    assert turn is not None
    await session.wait(turn, timeout=GUARD)
    assert turn.outcome == "disconnected"
    assert turn.error == (
        "connection lost (the reader failed: RuntimeError: a listener bug); reconnecting"
    )
    assert State.RECONNECTING in rec.states  # /status stopped saying "connected"
    await wait_for(lambda: rec.connects == 2, timeout=GUARD)  # it reconnected by itself
    assert session.state is State.CONNECTED
    assert (await say(session, "hello")).ok


# ---- item 5: redirects ---------------------------------------------------------------------


async def test_login_refuses_a_307_to_another_origin(
    hostile: HostileServer, other: HostileServer
) -> None:
    hostile.other = other.base("ok") + "/token"
    with pytest.raises(RedirectRefused) as info:
        await UnithAPI(hostile.base("redirect-other")).login(password="s3cret")
    assert str(info.value) == (
        f"login: refused a redirect to another origin ({other.base('ok')}/token); "
        f"only {hostile.origin} is trusted with the credentials"
    )
    assert other.hits == []  # the password never left for the other origin


async def test_https_login_never_follows_a_307_down_to_http(other: HostileServer) -> None:
    async with HostileServer(tls=True) as tls:
        tls.other = other.base("ok") + "/token"
        try:
            with pytest.raises(RedirectRefused) as info:
                # verify=False: the fixture's certificate is self-signed (--insecure).
                await UnithAPI(tls.base("redirect-other"), verify=False).login(password="s3cret")
        finally:
            await api.close_clients()
    assert "refused a redirect to plain http" in str(info.value)
    assert other.hits == []  # on the old code the password was re-POSTed here in clear


async def test_login_follows_a_307_within_the_same_origin(hostile: HostileServer) -> None:
    creds = await UnithAPI(hostile.base("redirect-same")).login()
    assert creds.user_id == "u-1"
    assert [path for _, path, _ in hostile.hits] == ["/redirect-same/token", "/ok/token"]


async def test_the_websocket_refuses_a_redirect_to_another_origin(
    hostile: HostileServer, other: HostileServer
) -> None:
    hostile.other = f"ws://127.0.0.1:{other.port}/ok/api/v2/switch/o/h"
    session = Session(options(hostile.base("ws-redirect")))
    try:
        async with asyncio.timeout(GUARD):
            with pytest.raises(SessionError) as info:
                await session.connect()
    finally:
        await session.close()
        await api.close_clients()
    assert str(info.value) == (
        f"connect: refused a WebSocket redirect to another origin ({hostile.other}); "
        "the session token is only sent to the base URL's origin"
    )
    assert other.hits == []  # no handshake frame (with the token) reached the other origin


# ---- item 5: plain http and passwords in URLs ----------------------------------------------


def test_urls_display_without_password_and_origin_rules() -> None:
    assert display_url("https://bob:hunter2@h.example/x") == "https://bob:***@h.example/x"
    assert display_url("http://bob@h.example") == "http://bob@h.example"
    assert display_url("http://u:p\x1b]0;t\x07@h/\x1b") == "http://u:***@h/\\x1b"
    assert "hunter2" not in display_url("http://bob:hunter2@[::1")  # unparseable still masked
    assert same_origin("https://a.example/x", "https://a.example:443/y")
    assert not same_origin("https://a.example/x", "http://a.example/x")
    assert not same_origin("http://127.0.0.1:1/x", "http://127.0.0.1:2/x")
    assert is_loopback("http://localhost:8765") and is_loopback("http://[::1]:1")
    assert is_loopback("http://127.1.2.3") and not is_loopback("http://10.0.0.1")
    assert plain_http_warning("https://h.example") is None
    assert plain_http_warning("http://127.0.0.1:9") is None


async def test_a_plain_http_base_url_warns_and_never_echoes_its_password(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    # TEST-NET-1 never answers: the login fails at its deadline, quickly.
    (home / "config" / "config.toml").write_text("rest_timeout = 0.5\n")
    base = "http://bob:hunter2@192.0.2.1:9"
    code, out, err = await run_cli(tmp_path, "--base-url", base, "-m", "hello", home=home)
    assert code == 3
    assert err.splitlines()[0] == (
        "unith-shell: warning: http://bob:***@192.0.2.1:9 is plain http: the password and "
        "api key travel unencrypted (use https://)"
    )
    assert "http://bob:***@192.0.2.1:9" in err.splitlines()[-1]
    assert "hunter2" not in out + err


async def test_a_loopback_http_base_url_gives_no_warning(
    hostile: HostileServer, tmp_path: Path
) -> None:
    code, _, err = await run_cli(tmp_path, "--base-url", hostile.base("ok"), "-m", "hello")
    assert code == 0 and "warning" not in err


async def test_a_bad_base_url_is_not_echoed_with_its_password(tmp_path: Path) -> None:
    code, _, err = await run_cli(tmp_path, "--base-url", "ftp://bob:hunter2@h", "-m", "x")
    assert code == 2 and "ftp://bob:***@h" in err and "hunter2" not in err


# ---- helpers -------------------------------------------------------------------------------


async def test_status_never_shows_the_password_of_the_base_url(make: Any) -> None:
    h = await make()
    options = h.shell.session.options
    options.base_url = options.base_url.replace("http://", "http://bob:hunter2@")
    lines = await h.run("/status")
    assert any("http://bob:***@127.0.0.1:" in line for line in lines)
    assert "hunter2" not in "\n".join(lines) and "hunter2" not in repr(options)
    from unith_shell.settings import Settings

    settings = Settings(base_url="https://bob:hunter2@h.example")
    assert "hunter2" not in repr(settings) + str(settings)


def test_max_parts_comes_from_file_env_and_flag(tmp_path: Path) -> None:
    from unith_shell.config_file import load_settings
    from unith_shell.settings import ConfigError

    cfg = tmp_path / "config.toml"
    cfg.write_text("max_parts = 5\n")
    assert load_settings({}, env={}, config_file=cfg).settings.max_parts == 5
    env = {"UNITH_SHELL_MAX_PARTS": "7"}
    assert load_settings({}, env=env, config_file=cfg).settings.max_parts == 7
    assert load_settings({"max_parts": 9}, env=env, config_file=cfg).settings.max_parts == 9
    with pytest.raises(ConfigError, match="UNITH_SHELL_MAX_PARTS: expected a positive integer"):
        load_settings({}, env={"UNITH_SHELL_MAX_PARTS": "lots"}, config_file=cfg)
    with pytest.raises(ConfigError, match="--max-parts: max_parts must be positive"):
        load_settings({"max_parts": 0}, env={}, config_file=cfg)
