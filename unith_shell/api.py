"""Unith's REST API over httpx: anonymous login, head info, videos and the idle video.

Every expected failure becomes an :class:`APIError` subclass whose ``str()`` is one line and
never contains a secret (the api key travels in some URL paths, so messages name the route,
not the URL).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

#: The public anonymous credentials of Unith's example client [C-PY].
DEFAULT_USERNAME = "anonymous"
DEFAULT_PASSWORD = "Password1"  # public by design [C-PY]; a user-set password is secret

# V2 logs in again when less than 15 minutes of validity are left [C-V2].
REFRESH_MARGIN = 15 * 60


class APIError(Exception):
    """A REST call failed. ``str(err)`` is a one-line message without secrets."""


class AuthError(APIError):
    """The server refused the credentials (401)."""


class NotFoundError(APIError):
    """Unknown org or head (404)."""


class ServerError(APIError):
    """Any other non-2xx answer."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class APITimeout(APIError):
    """The server did not answer in time."""


class APIConnectionError(APIError):
    """Connection refused, DNS failure, TLS failure, or the connection dropped."""


class BadResponse(APIError):
    """The answer was not the JSON the protocol promises."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """What ``POST /token`` returns. The token itself is kept out of ``repr``."""

    access_token: str = field(repr=False)
    user_id: str
    session_id: str
    username: str
    token_type: str = "bearer"
    expires_at: float | None = None

    def expires_in(self, now: float | None = None) -> float | None:
        if self.expires_at is None:
            return None
        return self.expires_at - (time.time() if now is None else now)

    def needs_refresh(self, margin: float = REFRESH_MARGIN, now: float | None = None) -> bool:
        """True when the token has expired or expires within ``margin`` seconds."""
        left = self.expires_in(now)
        return left is not None and left < margin


def jwt_payload(token: str) -> dict[str, Any]:
    """Decode a JWT's payload without verifying it (clients only read ``exp``) [C-V1, C-V2]."""
    try:
        payload = token.split(".")[1]
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        obj = json.loads(raw)
    except (IndexError, ValueError, binascii.Error):
        return {}
    return obj if isinstance(obj, dict) else {}


_clients: dict[str, tuple[asyncio.AbstractEventLoop, httpx.AsyncClient]] = {}


def shared_client(verify: bool = True, *, plain_http: bool = False) -> httpx.AsyncClient:
    """The process's AsyncClient for this kind of use, created on first use.

    ``plain_http`` is for a base URL that is ``http://`` (the local server): that client
    never builds a TLS context (~30 ms of start-up) and follows no redirects, so it cannot
    end up on an https URL unverified. Everything else gets a verifying client unless
    ``verify`` is false (``--insecure``).

    A client belongs to the event loop it was first used in, so a new loop (a second
    ``asyncio.run``) gets a new client instead of one whose connections are dead.
    """
    key = "plain" if plain_http else ("tls" if verify else "insecure")
    loop = asyncio.get_running_loop()
    entry = _clients.get(key)
    if entry is None or entry[0] is not loop or entry[1].is_closed:
        if plain_http:
            client = httpx.AsyncClient(verify=False, follow_redirects=False, trust_env=False)
        else:
            client = httpx.AsyncClient(verify=verify, follow_redirects=True, trust_env=False)
        _clients[key] = (loop, client)
        return client
    return entry[1]


async def close_clients() -> None:
    loop = asyncio.get_running_loop()
    for key, (owner, client) in list(_clients.items()):
        if owner is loop:
            await client.aclose()
        del _clients[key]


def ws_base(base_url: str) -> str:
    """``http(s)://host`` -> ``ws(s)://host``, as V1 and V2 build it [C-V1, C-V2]."""
    base = base_url.rstrip("/")
    if base.startswith("http"):
        return "ws" + base[4:]
    return base


def switch_url(base_url: str, org: str, head: str) -> str:
    return f"{ws_base(base_url)}/api/v2/switch/{quote(org, safe='')}/{quote(head, safe='')}"


def _detail(response: httpx.Response) -> str:
    """FastAPI-style ``detail``: a string, or a list of ``{loc, msg}`` (rendered like V1)."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or f"HTTP {response.status_code}"
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        items = []
        for item in detail:
            if isinstance(item, dict):
                loc = item.get("loc")
                where = loc[-1] if isinstance(loc, list) and loc else ""
                items.append(f"{item.get('msg', 'invalid')}: {where}" if where else "invalid")
        if items:
            return "; ".join(items)
    return response.reason_phrase or f"HTTP {response.status_code}"


class UnithAPI:
    """The chat-origin REST routes for one base URL."""

    def __init__(self, base_url: str, *, timeout: float = 15.0, verify: bool = True) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.verify = verify

    async def _request(
        self, method: str, path: str, what: str, data: Mapping[str, str] | None = None
    ) -> httpx.Response:
        client = shared_client(self.verify, plain_http=self.base_url.startswith("http://"))
        try:
            response = await client.request(
                method, self.base_url + path, data=data, timeout=self.timeout
            )
        except httpx.TimeoutException:
            raise APITimeout(
                f"{what}: no answer from {self.base_url} in {self.timeout:g} s"
            ) from None
        except (httpx.ConnectError, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise APIConnectionError(
                f"{what}: cannot reach {self.base_url} ({_why(exc)})"
            ) from None
        except httpx.HTTPError as exc:
            raise APIConnectionError(f"{what}: {type(exc).__name__}") from None
        if response.is_success:
            return response
        status = response.status_code
        detail = _detail(response)
        if status == 401:
            raise AuthError(f"{what}: {detail} (401)")
        if status == 404:
            raise NotFoundError(f"{what}: {detail} (404)")
        raise ServerError(f"{what}: server error {status}: {detail}", status)

    @staticmethod
    def _json(response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise BadResponse(f"{what}: the server's answer is not JSON") from None

    async def login(
        self, username: str = DEFAULT_USERNAME, password: str = DEFAULT_PASSWORD
    ) -> Credentials:
        """``POST /token`` with form fields, as the example client does [C-PY]."""
        what = "login"
        response = await self._request(
            "POST", "/token", what, data={"username": username, "password": password}
        )
        body = self._json(response, what)
        if not isinstance(body, dict):
            raise BadResponse(f"{what}: expected a JSON object")
        token, user_id = body.get("access_token"), body.get("user_id")
        if not isinstance(token, str) or not token or not isinstance(user_id, str | int):
            raise BadResponse(f"{what}: the answer lacks access_token or user_id")
        exp = jwt_payload(token).get("exp")
        expires_at = float(exp) if isinstance(exp, int | float) else None
        return Credentials(
            access_token=token,
            user_id=str(user_id),
            # V2 stores session_id [C-V2]; PY ignores it, so it may be absent [I].
            session_id=str(body.get("session_id") or ""),
            username=username,
            token_type=str(body.get("token_type") or "bearer"),
            expires_at=expires_at,
        )

    async def head_info(self, org: str, head: str, api_key: str = "") -> dict[str, Any]:
        """The head's configuration (V2 adds the api key to the path [C-V2])."""
        what = f"head {org}/{head}"
        path = f"/api/v1/head/{quote(org, safe='')}/{quote(head, safe='')}"
        if api_key:
            path += "/" + quote(api_key, safe="")
        body = self._json(await self._request("GET", path, what), what)
        if not isinstance(body, dict):
            raise BadResponse(f"{what}: expected a JSON object")
        return body

    async def video_id(self, org: str, head: str) -> str:
        what = f"videos of {org}/{head}"
        path = f"/api/v1/videos/{quote(org, safe='')}/{quote(head, safe='')}"
        body = self._json(await self._request("GET", path, what), what)
        # An empty list or no video_id counts as "video not found" [C-V1, C-V2].
        if not isinstance(body, list) or not body or not isinstance(body[0], dict):
            raise NotFoundError(f"{what}: no video found")
        video_id = body[0].get("video_id")
        if not isinstance(video_id, str | int) or video_id == "":
            raise NotFoundError(f"{what}: no video found")
        return str(video_id)

    async def idle_video_url(self, org: str, head: str) -> str:
        """videos -> ``[0].video_id`` -> idle -> a JSON string URL [C-PY]."""
        video_id = await self.video_id(org, head)
        what = f"idle video of {org}/{head}"
        path = f"/api/v1/idle/{quote(org, safe='')}/{quote(head, safe='')}/{quote(video_id)}"
        url = self._json(await self._request("GET", path, what), what)
        if not isinstance(url, str) or not url:
            raise BadResponse(f"{what}: expected a URL string")
        return url


def _why(exc: BaseException) -> str:
    """The root cause in a few words: httpx wraps the OSError that says what happened."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "host not found"
        cause = cause.__cause__ or cause.__context__
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    lowered = first.lower()
    if "refused" in lowered or "all connection attempts failed" in lowered:
        return "connection refused"
    if "name or service" in lowered or "nodename" in lowered or "getaddrinfo" in lowered:
        return "host not found"
    return first[:120]
