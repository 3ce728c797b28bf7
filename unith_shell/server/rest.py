"""The REST routes of PROTOCOL.md §2: login, head config, videos, idle URL, and the media."""

from __future__ import annotations

import re
import uuid
from http import HTTPStatus

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from .catalog import HEADS
from .heads import Head
from .media import CONTENT_TYPE, fake_mp4
from .state import STATE, ServerState

FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
PASSWORD = "Password1"  # the fixed password of the anonymous login [C-PY, C-V2]
_REPLY_VIDEO = re.compile(r"reply-(\d{1,12})\.mp4")


def detail(status: int, message: str | list[object]) -> web.Response:
    """A FastAPI-style error body: ``{"detail": ...}``."""
    return web.json_response({"detail": message}, status=status)


def forced_status(state: ServerState, route: str) -> web.Response | None:
    status = state.http_faults.get(route)
    if status is None:
        return None
    if route == "token" and status == 401:
        return detail(401, "Incorrect username or password")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return detail(status, f"{phrase} (scripted fault on '{route}')")


def _head_or_404(request: web.Request) -> Head | web.Response:
    org, head_id = request.match_info["org"], request.match_info["head"]
    head = request.app[STATE].find_head(org, head_id)
    if head is None:
        return detail(404, f"Head not found: {org}/{head_id}")
    return head


async def token(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if (forced := forced_status(state, "token")) is not None:
        return forced
    # post() parses both encodings clients use: urlencoded (PY) and multipart (V1, V2).
    if request.body_exists and request.content_type not in FORM_TYPES:
        return detail(400, f"expected a form body ({' or '.join(sorted(FORM_TYPES))})")
    try:
        form = await request.post()
    except web.HTTPException:
        raise  # 413 for a body over the size limit, answered by json_errors
    except (ValueError, LookupError, AssertionError, HttpProcessingError) as exc:
        # A broken multipart body, a bad charset, undecodable bytes: the client's fault.
        return detail(400, f"malformed form body ({type(exc).__name__})")
    fields = {name: form.get(name) for name in ("username", "password")}
    missing = [name for name, value in fields.items() if not isinstance(value, str)]
    if missing:
        return detail(
            422,
            [
                {"loc": ["body", name], "msg": "field required", "type": "value_error.missing"}
                for name in missing
            ],
        )
    # Any username works with the fixed password [I]; upstream may accept only "anonymous" [U].
    if fields["password"] != (state.config.password or PASSWORD):
        response = detail(401, "Incorrect username or password")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    username = str(fields["username"])
    user_id, session_id = uuid.uuid4().hex, str(uuid.uuid4())
    access_token = state.signer.issue(
        username=username, user_id=user_id, session_id=session_id, ttl=state.config.token_ttl
    )
    state.logins += 1
    state.notify()
    return web.json_response(
        {
            "access_token": access_token,
            "token_type": "bearer",
            "user_id": user_id,
            "session_id": session_id,
        }
    )


async def head_config(request: web.Request) -> web.Response:
    # The api_key path segment is accepted and ignored: its checking upstream is [U].
    state = request.app[STATE]
    if (forced := forced_status(state, "head")) is not None:
        return forced
    head = _head_or_404(request)
    if isinstance(head, web.Response):
        return head
    return web.json_response(head.config())


async def videos(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if (forced := forced_status(state, "videos")) is not None:
        return forced
    head = _head_or_404(request)
    if isinstance(head, web.Response):
        return head
    # Fields other than video_id are [U]; these are illustrative.
    return web.json_response([{"video_id": head.video_id, "type": "idle"}])


async def idle(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if (forced := forced_status(state, "idle")) is not None:
        return forced
    head = _head_or_404(request)
    if isinstance(head, web.Response):
        return head
    if request.match_info["video_id"] != head.video_id:
        return detail(404, f"Video not found: {request.match_info['video_id']}")
    origin = f"{request.scheme}://{request.host}"
    return web.json_response(f"{origin}/media/{head.org}/{head.head_id}/idle.mp4")


async def media(request: web.Request) -> web.Response:
    """``GET``/``HEAD`` of the generated idle and reply videos (aiohttp answers HEAD itself)."""
    state = request.app[STATE]
    if (forced := forced_status(state, "media")) is not None:
        return forced
    head = _head_or_404(request)
    if isinstance(head, web.Response):
        return head
    name = request.match_info["name"]
    if name == "idle.mp4":
        size = state.config.idle_video_size
    elif _REPLY_VIDEO.fullmatch(name):
        size = state.config.reply_video_size
    else:
        return detail(404, f"No such media: {name}")
    body = fake_mp4(f"{head.key}/{name}", size)
    return web.Response(body=body, content_type=CONTENT_TYPE)


async def index(request: web.Request) -> web.Response:
    """Not an upstream route: lists what this server offers, for a person poking at it."""
    return web.json_response(
        {
            "server": "unith-shell local server",
            "heads": sorted([*HEADS, *request.app[STATE].recorded]),
            "password": PASSWORD,
        }
    )


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown routes and methods answer like FastAPI, ``{"detail": ...}``, not plain text."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return detail(exc.status, exc.reason)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_post("/token", token)
    app.router.add_get("/api/v1/head/{org}/{head}", head_config)
    app.router.add_get("/api/v1/head/{org}/{head}/{api_key}", head_config)
    app.router.add_get("/api/v1/videos/{org}/{head}", videos)
    app.router.add_get("/api/v1/idle/{org}/{head}/{video_id}", idle)
    app.router.add_get("/media/{org}/{head}/{name}", media)
