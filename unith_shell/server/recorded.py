"""Recordings served as heads: ``recorded/<name>`` answers as the recording did.

Each ``*.jsonl`` recording in the directory given to ``serve --recordings DIR`` (or
``--local --recordings DIR``) becomes the head ``recorded/<file stem>``. The greeting is the
recorded one (its texts and suggestions, rebuilt as frames by :class:`FrameBuilder`); each
incoming message is matched to a recorded user turn and answered with that turn's recorded
frames (parts, suggestions, choice, conversation_end, unith_nlp_exception, unknown events,
malformed and binary frames), at the recorded pace times ``speed`` (0: no delays). Ids are
rewritten to the new message's id; video URLs point at this server's media. A turn the
recording shows cut by a disconnect is cut again: the socket closes after its frames.

Matching, like vcrpy's ``match_on``: ``order`` (the n-th message of a client gets turn n),
``text`` (the turn with exactly this text, the next unused one first) or ``similar`` (the most
similar text, difflib ratio >= :data:`SIMILAR_THRESHOLD`). The position is kept per user id, so
it survives a reconnect.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unith_shell.files import name_part
from unith_shell.recordings import MATCH_MODES
from unith_shell.recordings.format import (
    Frame,
    RecordedTurn,
    Recording,
    RecordingError,
    load,
)

from .heads import Head
from .personas import plain

if TYPE_CHECKING:
    from .faults import Wire
    from .frames import FrameBuilder

RECORDED_ORG = "recorded"
SIMILAR_THRESHOLD = 0.6
#: This server's choice for "no recorded turn matches": an ``unith_nlp_exception`` ends the
#: client's wait like a real failed answer would; the level is ours (404: nothing found).
NO_MATCH_LEVEL = 404
_MAX_CLIENTS = 1000  # positions kept per recorded head (oldest dropped first)
_CLOSE_CODE = re.compile(r"\bcode (\d{4})\b")

Json = dict[str, Any]


@dataclass(slots=True)
class RecordedHead:
    head: Head
    recording: Recording
    #: user id -> (index of the next turn, the last message id, the turn it got): the
    #: position in the recording, and what a message sent again after a reconnect gets.
    positions: OrderedDict[str, tuple[int, Any, RecordedTurn | None]] = field(
        default_factory=OrderedDict
    )


def recorded_head(name: str, recording: Recording) -> RecordedHead:
    alias = name
    for frame in recording.greeting:
        username = frame.payload.get("username") if isinstance(frame.payload, dict) else None
        if isinstance(username, str) and username:
            alias = username
            break
    texts = tuple(t for t in recording.greeting_texts if t)
    head = Head(
        org=RECORDED_ORG,
        head_id=name,
        alias=alias,
        language="en-US",  # not in a recording
        persona=plain,  # never asked: every answer comes from the recording
        greetings=texts,
        phrases=tuple(recording.greeting_suggestions) if texts else (),
    )
    return RecordedHead(head, recording)


def load_recorded_heads(
    directory: str | Path, match: str = "order"
) -> tuple[dict[str, RecordedHead], list[str]]:
    """Every readable recording in ``directory`` by head key, and one line per file refused.

    Raises ``ValueError`` for a ``match`` mode that is not one of :data:`MATCH_MODES`.
    """
    if match not in MATCH_MODES:
        raise ValueError(f"unknown match mode {match!r}; known: {', '.join(MATCH_MODES)}")
    heads: dict[str, RecordedHead] = {}
    problems: list[str] = []
    folder = Path(directory)
    if not folder.is_dir():
        return heads, [f"{directory}: not a directory"]
    for path in sorted(folder.glob("*.jsonl")):
        try:
            recording = load(path)
        except RecordingError as exc:
            problems.append(str(exc))
            continue
        entry = recorded_head(name_part(path.stem), recording)
        heads[entry.head.key] = entry
    return heads, problems


# -- matching -----------------------------------------------------------------------------


def match_turn(
    entry: RecordedHead, client: str, text: str, mode: str, message_id: Any = None
) -> RecordedTurn | str:
    """The recorded turn answering ``text``, or a one-line reason why none does."""
    turns = entry.recording.turns
    if not turns:
        return "the recording has no user turns"
    position, last_id, last_turn = entry.positions.pop(client, (0, None, None))
    entry.positions[client] = (position, last_id, last_turn)  # most recently used last
    while len(entry.positions) > _MAX_CLIENTS:
        entry.positions.popitem(last=False)
    if last_turn is not None and message_id is not None and message_id == last_id:
        return last_turn  # the same message again (a client re-sends after a reconnect)
    found: RecordedTurn | None = None
    if mode == "order":
        if position >= len(turns):
            return f"the recording has only {len(turns)} user turn(s)"
        found = turns[position]
    else:
        # Prefer the turns after the last one used, then any (a question asked again).
        ordered = turns[position:] + turns[:position]
        if mode == "text":
            found = next((t for t in ordered if t.user == text), None)
        else:
            best = 0.0
            for turn in ordered:
                ratio = difflib.SequenceMatcher(None, turn.user, text, autojunk=False).ratio()
                if ratio >= SIMILAR_THRESHOLD and ratio > best:
                    found, best = turn, ratio
        if found is None:
            expected = ", ".join(repr(t.user) for t in ordered[:5])
            more = ", ..." if len(ordered) > 5 else ""
            how = "exact text" if mode == "text" else f"similarity >= {SIMILAR_THRESHOLD}"
            return f"no recorded turn matches by {how}; expected one of: {expected}{more}"
    entry.positions[client] = (found.number, message_id, found)  # number = next index
    return found


def no_match_frame(input_id: Any, text: str, reason: str, mode: str) -> Json:
    return {
        "event": "unith_nlp_exception",
        "level": NO_MATCH_LEVEL,
        "message": f"recorded head: {text[:60]!r} matches nothing (--match {mode}): {reason}",
        "input_message_id": input_id,
    }


# -- answering ----------------------------------------------------------------------------


def _rewrite(frame: Frame, turn: RecordedTurn, message: Json, builder: FrameBuilder) -> Json:
    obj = dict(frame.payload)
    new_id = message.get("id")
    answered = obj.get("input_message_id")
    if answered is not None and str(answered) == str(turn.message_id):
        # Keep the recorded type: a server that sent ids as strings still does.
        obj["input_message_id"] = str(new_id) if isinstance(answered, str) else new_id
    if "id" in obj and obj.get("event") in ("text", "response", "choice"):
        obj["id"] = next(builder.ids)
        if isinstance(obj.get("video"), str):
            obj["video"] = builder.video_url(obj["id"])
    return obj


def _is_echo(frame: Frame, turn: RecordedTurn) -> bool:
    payload = frame.payload
    return (
        isinstance(payload, dict)
        and payload.get("event") in ("text", "response")
        and "input_message_id" not in payload
        and "part_order" not in payload
        and str(payload.get("id")) == str(turn.message_id)
    )


async def answer(
    conn: Wire,
    entry: RecordedHead,
    builder: FrameBuilder,
    message: Json,
    speed: float,
    mode: str,
) -> None:
    text = message.get("text")
    text = text if isinstance(text, str) else ""
    client = str(message.get("user_id", ""))
    found = match_turn(entry, client, text, mode, message_id=message.get("id"))
    echo = builder.echo(message)
    if isinstance(found, str):
        await conn.send(echo)
        await conn.send(no_match_frame(message.get("id"), text, found, mode))
        return
    previous = found.sent
    for frame in found.frames:
        pause = (frame.time - previous) * speed
        previous = frame.time
        if pause > 0:
            await asyncio.sleep(min(pause, 60.0))  # a recorded stall, bounded
        if frame.direction == "meta":
            if frame.event == "disconnect" and found.cut:
                await _disconnect(conn, frame)
                return
            continue
        if _is_echo(frame, found):
            await conn.send(echo)  # the echo of what was sent now (a recording without one,
            continue  # from the no-echo fault, stays without one)
        await _send_recorded(conn, frame, found, message, builder)


async def _send_recorded(
    conn: Wire, frame: Frame, turn: RecordedTurn, message: Json, builder: FrameBuilder
) -> None:
    payload = frame.payload
    if isinstance(payload, dict):
        if frame.event is None and set(payload) == {"text"} and isinstance(payload["text"], str):
            await conn.send_raw(payload["text"])  # a frame that was not JSON
            return
        if frame.event is None and set(payload) == {"binary_bytes"}:
            size = payload["binary_bytes"]
            count = min(max(size, 0), 1 << 20) if isinstance(size, int) else 0  # bounded
            await conn.send_binary(bytes(count))
            return
        await conn.send(_rewrite(frame, turn, message, builder))
        return
    await conn.send_raw(json.dumps(payload))  # valid JSON that is not an object


async def _disconnect(conn: Wire, frame: Frame) -> None:
    reason = frame.payload.get("reason") if isinstance(frame.payload, dict) else None
    reason = reason if isinstance(reason, str) else ""
    if "without a close frame" in reason:
        conn.abort()  # as recorded: the TCP connection dropped
        return
    found = _CLOSE_CODE.search(reason)
    code = int(found.group(1)) if found else 1011  # unknown: an internal-error close
    if not (1000 <= code <= 4999) or code in (1004, 1005, 1006, 1015):
        code = 1011
    await conn.close(code, "recorded disconnect")


async def respond(
    conn: Wire,
    entry: RecordedHead,
    builder: FrameBuilder,
    queue: asyncio.Queue[Json],
    speed: float,
    mode: str,
) -> None:
    """Answer messages one at a time from the recording (the recorded twin of ``_respond``)."""
    while True:
        message = await queue.get()
        try:
            await answer(conn, entry, builder, message, speed, mode)
        except ConnectionError:
            return
        if conn.closing:
            return
