"""The local server's settings."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(slots=True)
class ServerConfig:
    """How a :class:`~unith_shell.server.LocalServer` behaves.

    Upstream's limits and timings are unknown ([U], PROTOCOL.md §8); the defaults here are
    choices for a stand-in, not measurements.
    """

    host: str = "127.0.0.1"
    port: int = 0  # 0 = pick a free port
    token_ttl: float = 3600.0  # JWT lifetime in seconds [U upstream]
    part_delay: float = 0.0  # seconds before each reply part (0 = no sleep at all)
    idle_warning: float | None = None  # idle seconds before timeout_warning (None = never)
    idle_grace: float = 30.0  # further idle seconds before `timeout` and a close
    greeting: bool = True  # False: the handshake reply is one empty is_last part
    join_event: bool = True  # send {"event": "join", "granted": true} before the greeting [I]
    max_msg_size: int = MIB  # largest client frame accepted; larger ones close with 1009
    handshake_timeout: float = 30.0  # close a socket whose first frame never comes
    header_timeout: float = 10.0  # close a connection whose first request is not read by then
    keepalive_timeout: float = 15.0  # close an idle keep-alive HTTP connection after this
    max_connections: int = 256  # open TCP connections; one more gets a 503 and is closed
    received_limit: int = 1000  # client frames kept for tests in LocalServer.received
    close_timeout: float = 1.0  # how long a close waits for the client's close frame
    idle_video_size: int = 200_000  # bytes of the generated idle "mp4"
    reply_video_size: int = 32_000  # bytes of each generated reply "mp4"
    secret: bytes | None = None  # JWT signing key; None = random per server
    password: str | None = None  # accept this password instead of the public "Password1"
    #: A directory of recordings served as heads ``recorded/<name>`` (see server/recorded.py).
    recordings: str | None = None
    recording_speed: float = 1.0  # recorded delays times this (0 = no delays)
    recording_match: str = "order"  # order | text | similar
