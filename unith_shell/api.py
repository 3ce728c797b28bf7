"""Unith's REST API over httpx: anonymous login, head info, videos and the idle video.

Every expected failure becomes an :class:`APIError` subclass whose ``str()`` is one line and
never contains a secret (the api key travels in some URL paths, so messages name the route,
not the URL; the base URL is shown through :func:`unith_shell.urls.display_url`).

What a server can make the client hold is bounded: every REST call has an overall deadline
(httpx's timeouts are per read, so a server dripping a byte at a time would otherwise hang
it), a body is read as a stream and refused past ``max_body`` bytes *after* decompression
(a gzip bomb stops at the cap), JSON nesting and number sizes are bounded
(:func:`unith_shell.protocol.loads_bounded`), and redirects are followed only within the
same origin (a 307 from ``POST /token`` to another host or to plain http would resend the
password).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import socket
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx

from unith_shell.errors import UserError
from unith_shell.protocol import loads_bounded
from unith_shell.sanitize import sanitize
from unith_shell.urls import display_url, same_origin

#: The public anonymous credentials of Unith's example client [C-PY].
DEFAULT_USERNAME = "anonymous"
DEFAULT_PASSWORD = "Password1"  # public by design [C-PY]; a user-set password is secret

# V2 logs in again when less than 15 minutes of validity are left [C-V2].
REFRESH_MARGIN = 15 * 60

#: Default cap on a REST body after decompression (the routes answer a few KiB).
DEFAULT_MAX_BODY = 2 * 1024 * 1024
#: Default overall deadline and size cap for ``/video --download``.
DEFAULT_DOWNLOAD_TIMEOUT = 300.0
DEFAULT_MAX_DOWNLOAD = 512 * 1024 * 1024
#: Same-origin redirects followed by one REST call, at most.
MAX_REDIRECTS = 3
#: An error body is read only this far (its ``detail`` is one line anyway).
_ERROR_BODY_CAP = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class APIError(UserError):
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


class BodyTooLarge(BadResponse):
    """The body (after decompression) went past the cap; reading stopped there."""


class RedirectRefused(APIError):
    """A redirect to another origin (or down to plain http): never followed."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """What ``POST /token`` returns. The token itself is kept out of ``repr``."""

    access_token: str = field(repr=False)
    user_id: str
    session_id: str
    username: str
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
        obj = loads_bounded(raw)  # deep nesting or a 400-digit exp: {} rather than a crash
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


@dataclass(frozen=True, slots=True)
class Reply:
    """A REST answer read in full (within the caps)."""

    status: int
    body: bytes
    reason: str = ""

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300


def _detail(response: Reply) -> str:
    """FastAPI-style ``detail``: a string, or a list of ``{loc, msg}`` (rendered like V1)."""
    fallback = response.reason or f"HTTP {response.status}"
    try:
        body = loads_bounded(response.body)
    except ValueError:
        return fallback
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
    return fallback


class _BoundedDecoder:
    """Content-Encoding decoding that never produces more than the room left under a cap."""

    def __init__(self, encoding: str) -> None:
        coding = encoding.strip().lower()
        if coding in ("", "identity"):
            self._zlib = None
        elif coding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding == "deflate":
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS)
        else:
            raise ValueError(f"unsupported Content-Encoding {coding[:20]!r}")
        self._raw_deflate_tried = coding != "deflate"
        self._started = False

    def feed(self, chunk: bytes, room: int) -> bytes:
        """Decode ``chunk``; at most ``room + 1`` bytes come out (one more means: over)."""
        if self._zlib is None:
            return chunk[: room + 1]
        try:
            out = self._zlib.decompress(chunk, room + 1)
        except zlib.error:
            if self._started or self._raw_deflate_tried:
                raise ValueError("the compressed body is corrupt") from None
            # "deflate" is sometimes sent without the zlib wrapper.
            self._raw_deflate_tried = True
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            return self.feed(chunk, room)
        self._started = True
        return out


async def read_capped(response: httpx.Response, cap: int) -> bytes:
    """The body of a streamed response, decompressed, refused past ``cap`` bytes.

    :raises BodyTooLarge: the body is longer than ``cap`` (reading stops at once).
    :raises ValueError: an unknown or corrupt Content-Encoding.
    """
    decoder = _BoundedDecoder(response.headers.get("content-encoding", ""))
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += decoder.feed(chunk, cap - len(body))
        if len(body) > cap:
            raise BodyTooLarge(f"the answer is larger than {cap} bytes")
    return bytes(body)


def _origin_text(url: str) -> str:
    parts = urlsplit(url)
    return display_url(f"{parts.scheme}://{parts.netloc}")


class UnithAPI:
    """The chat-origin REST routes for one base URL.

    ``timeout`` is the overall deadline of each call (connect, redirects, headers and body
    together), not only a per-read limit; ``max_body`` caps each body after decompression.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 15.0,
        verify: bool = True,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.verify = verify
        self.max_body = max_body

    @property
    def shown_base(self) -> str:
        """The base URL as it may be printed (no password, no control characters)."""
        return display_url(self.base_url)

    async def _request(
        self, method: str, path: str, what: str, data: Mapping[str, str] | None = None
    ) -> Reply:
        try:
            async with asyncio.timeout(self.timeout):
                reply = await self._exchange(method, self.base_url + path, what, data)
        except TimeoutError:
            raise APITimeout(
                f"{what}: no answer from {self.shown_base} in {self.timeout:g} s"
            ) from None
        except httpx.TimeoutException:
            raise APITimeout(
                f"{what}: no answer from {self.shown_base} in {self.timeout:g} s"
            ) from None
        except (httpx.ConnectError, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise APIConnectionError(
                f"{what}: cannot reach {self.shown_base} ({_why(exc)})"
            ) from None
        except httpx.HTTPError as exc:
            raise APIConnectionError(f"{what}: {type(exc).__name__}") from None
        if reply.is_success:
            return reply
        status = reply.status
        detail = _detail(reply)
        if status == 401:
            raise AuthError(f"{what}: {detail} (401)")
        if status == 404:
            raise NotFoundError(f"{what}: {detail} (404)")
        raise ServerError(f"{what}: server error {status}: {detail}", status)

    async def _exchange(
        self, method: str, url: str, what: str, data: Mapping[str, str] | None
    ) -> Reply:
        """Send, follow same-origin redirects only, and read the body within the cap."""
        for _ in range(MAX_REDIRECTS + 1):
            # The plain-http client never builds a TLS context; neither client follows
            # redirects on its own (follow_redirects=False below), this loop does.
            client = shared_client(self.verify, plain_http=url.startswith("http://"))
            request = client.build_request(
                method,
                url,
                data=data,
                timeout=self.timeout,
                # Only encodings read_capped can decode within its cap.
                headers={"Accept-Encoding": "gzip, deflate"},
            )
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                location = response.headers.get("location")
                if response.status_code in _REDIRECTS and location is not None:
                    url = self._redirect_target(url, location, what)
                    continue  # same origin: the same method and form again
                cap = self.max_body if response.is_success else _ERROR_BODY_CAP
                try:
                    body = await read_capped(response, cap)
                except BodyTooLarge as exc:
                    if not response.is_success:
                        body = b""  # an oversized error body: its status says enough
                    else:
                        raise BodyTooLarge(f"{what}: {exc}; stopped reading") from None
                except ValueError as exc:
                    raise BadResponse(f"{what}: {exc}") from None
                return Reply(response.status_code, body, response.reason_phrase)
            finally:
                await response.aclose()
        raise RedirectRefused(f"{what}: more than {MAX_REDIRECTS} redirects")

    @staticmethod
    def _redirect_target(url: str, location: str, what: str) -> str:
        try:
            target = urljoin(url, location)
            scheme = urlsplit(target).scheme.lower()
        except ValueError:
            target, scheme = location, ""
        if same_origin(url, target):
            return target
        down = url.startswith("https://") and scheme == "http"
        kind = "to plain http" if down else "to another origin"
        raise RedirectRefused(
            f"{what}: refused a redirect {kind} ({display_url(target)}); "
            f"only {_origin_text(url)} is trusted with the credentials"
        )

    @staticmethod
    def _json(response: Reply, what: str) -> Any:
        try:
            return loads_bounded(response.body)
        except ValueError as exc:
            raise BadResponse(f"{what}: the server's answer is not valid JSON ({exc})") from None

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
        # loads_bounded keeps exp short, but a float() that overflows must never escape.
        expires_at: float | None = None
        if isinstance(exp, int | float) and not isinstance(exp, bool):
            try:
                expires_at = float(exp)
            except OverflowError:
                expires_at = None
            if expires_at is not None and not math.isfinite(expires_at):
                expires_at = None
        return Credentials(
            access_token=token,
            user_id=str(user_id),
            # V2 stores session_id [C-V2]; PY ignores it, so it may be absent [I].
            session_id=str(body.get("session_id") or ""),
            username=username,
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


class DownloadError(APIError):
    """``/video --download`` failed: HTTP status, deadline, size cap or connection."""


async def download(
    url: str,
    write: Callable[[bytes], object],
    *,
    verify: bool = True,
    read_timeout: float = 15.0,
    deadline: float = DEFAULT_DOWNLOAD_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_DOWNLOAD,
    progress: Callable[[int, int | None], object] | None = None,
) -> int:
    """Stream ``url`` into ``write`` (chunk by chunk); return the bytes written.

    Bounded whatever the server does: the whole transfer (headers, redirects, body) must end
    within ``deadline`` seconds, each read within ``read_timeout``, and the body (after any
    decompression) may not exceed ``max_bytes``. ``progress(done, total)`` is called after
    each chunk (``total`` from Content-Length, or None). Writing to a file is the caller's
    job, and so is deleting a partial file when this raises.

    :raises DownloadError: with a one-line message (the URL is never part of it).
    """
    what = "download"
    client = shared_client(verify)
    written = 0
    try:
        async with asyncio.timeout(deadline):
            async with client.stream(
                "GET",
                url,
                timeout=read_timeout,
                headers={"Accept-Encoding": "gzip, deflate"},
            ) as response:
                if not response.is_success:
                    raise DownloadError(f"{what}: HTTP {response.status_code}")
                length = response.headers.get("content-length", "")
                total = int(length) if length.isdigit() and len(length) < 19 else None
                if total is not None and total > max_bytes:
                    raise DownloadError(
                        f"{what}: the file is {total} bytes, more than the cap of {max_bytes}"
                    )
                try:
                    decoder = _BoundedDecoder(response.headers.get("content-encoding", ""))
                except ValueError as exc:
                    raise DownloadError(f"{what}: {exc}") from None
                async for chunk in response.aiter_raw():
                    try:
                        data = decoder.feed(chunk, max_bytes - written)
                    except ValueError as exc:
                        raise DownloadError(f"{what}: {exc}") from None
                    if written + len(data) > max_bytes:
                        raise DownloadError(
                            f"{what}: more than {max_bytes} bytes; stopped (raise "
                            "max_download_size to allow more)"
                        )
                    write(data)
                    written += len(data)
                    if progress is not None:
                        progress(written, total)
    except TimeoutError:
        raise DownloadError(
            f"{what}: not finished within {deadline:g} s ({written} bytes so far); "
            "raise download_timeout to allow more"
        ) from None
    except httpx.TimeoutException:
        raise DownloadError(f"{what}: no data for {read_timeout:g} s") from None
    except (httpx.ConnectError, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        raise DownloadError(f"{what}: connection failed ({_why(exc)})") from None
    except httpx.HTTPError as exc:
        raise DownloadError(f"{what}: {type(exc).__name__}") from None
    return written


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
    return sanitize(first[:120])
