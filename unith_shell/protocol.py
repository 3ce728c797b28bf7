"""The Unith chat wire format as typed dataclasses: parse and encode, no I/O.

Everything here follows ``shared/PROTOCOL.md``. Where the format is only inferred ([I]) or
unknown ([U]) upstream, the comment says so and the parser is tolerant there.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from json.scanner import make_scanner
from typing import Any

from unith_shell.errors import UserError

# The greeting's parts are answers to no user message; V2's video queue plays group "-1" first,
# which suggests the server tags them input_message_id -1 [I].
GREETING_ID = -1

#: Keys whose values are secrets and must never be shown or logged.
SECRET_KEYS = frozenset({"token", "access_token", "api_key", "password", "authorization"})


class ProtocolError(UserError, ValueError):
    """A frame that is not valid Unith JSON. ``str(err)`` is a one-line reason."""

    def __init__(self, reason: str, raw: str | bytes | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw


# --------------------------------------------------------------------------------------------
# Client -> server frames
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Handshake:
    """The first frame on the switch socket: ``{"token", "api_key"}`` plus V2's optional fields."""

    token: str
    api_key: str = ""
    text_only: bool | None = None
    data_tag: str | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"token": self.token, "api_key": self.api_key}
        if self.text_only is not None:
            out["text_only"] = self.text_only
        if self.data_tag:
            out["data_tag"] = self.data_tag
        return out

    def __repr__(self) -> str:  # keep the token out of tracebacks and logs
        return f"Handshake(token='***', api_key='***', text_only={self.text_only!r})"


@dataclass(slots=True)
class UserMessage:
    """A user utterance (``event: "text"``) or a ``keep_session`` request (``text: ""``).

    Plugins may change ``text`` in ``before_send`` or drop the message with :meth:`cancel`.
    """

    id: int
    user_id: str
    text: str
    event: str = "text"
    session_id: str | None = None
    username: str | None = None
    cancelled: str | None = None

    def cancel(self, reason: str = "cancelled by a plugin") -> None:
        self.cancelled = reason

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "user_id": self.user_id,
            "event": self.event,
            "text": self.text,
        }
        # V2 adds these; the server ignores extra fields [I from C-PY].
        if self.session_id is not None:
            out["session_id"] = self.session_id
        if self.username is not None:
            out["username"] = self.username
        return out


def keep_session_message(msg_id: int, user_id: str, session_id: str | None = None) -> UserMessage:
    return UserMessage(
        id=msg_id, user_id=user_id, text="", event="keep_session", session_id=session_id
    )


# --------------------------------------------------------------------------------------------
# Server -> client events
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class ServerEvent:
    """Base of every parsed server frame. ``raw`` is the decoded JSON object."""

    event: str
    raw: dict[str, Any] = field(repr=False)


@dataclass(slots=True)
class Echo(ServerEvent):
    """The server's copy of a user message, sent before the reply's parts."""

    id: int | str | None = None
    user_id: str | None = None
    text: str = ""


@dataclass(slots=True)
class ResponsePart(ServerEvent):
    """One part of a reply (``text`` in video mode, ``response`` in text-only/streaming)."""

    id: int | str | None = None
    user_id: str | None = None
    username: str | None = None
    text: str = ""
    input_message_id: int | None = None
    part_order: int | None = None
    is_last: bool = False
    video: str | None = None
    stream_id: str | None = None
    suggestions: list[str] = field(default_factory=list)
    media: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Choice(ServerEvent):
    """Suggestions to pick from; V2 ends the "thinking" state on it."""

    input_message_id: int | None = None
    part_order: int | None = None
    text: str = ""
    suggestions: list[str] = field(default_factory=list)
    is_last: bool = False


@dataclass(slots=True)
class Join(ServerEvent):
    granted: bool = True


@dataclass(slots=True)
class TimeoutWarning(ServerEvent):
    pass


@dataclass(slots=True)
class KeepSessionReply(ServerEvent):
    granted: bool = True


@dataclass(slots=True)
class SessionTimeout(ServerEvent):
    """``timeout``; ``granted: false`` means the session is over and must not reconnect."""

    granted: bool = False


@dataclass(slots=True)
class ConversationEnd(ServerEvent):
    pass


@dataclass(slots=True)
class NlpException(ServerEvent):
    """``unith_nlp_exception``: the answer failed. Fields beyond ``level`` are [U]."""

    level: int | None = None
    message: str = ""
    input_message_id: int | None = None


@dataclass(slots=True)
class FeedbackAck(ServerEvent):
    """``analytics-userFeedback``: ignored by V2; probably a feedback ack [I]."""


@dataclass(slots=True)
class UnknownEvent(ServerEvent):
    """Any event this client does not know, kept raw so it can be shown and logged."""


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def _opt_int(obj: Mapping[str, Any], key: str) -> int | None:
    value = obj.get(key)
    if value is None or type(value) is int:  # the common cases first, without isinstance
        return value
    if isinstance(value, bool):
        raise ProtocolError(f"{key} must be an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    # V2 converts ids with Number(), so a numeric string is accepted [C-V2].
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ProtocolError(f"{key} must be an integer, got {type(value).__name__} {_short(value)}")


def _opt_bool(obj: Mapping[str, Any], key: str, default: bool) -> bool:
    value = obj.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    raise ProtocolError(f"{key} must be a boolean, got {type(value).__name__} {_short(value)}")


def _opt_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None or type(value) is str:  # the common cases first, without isinstance
        return value
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ProtocolError(f"{key} must be a string, got {type(value).__name__}")


def _id(obj: Mapping[str, Any], key: str) -> int | str | None:
    value = obj.get(key)
    kind = type(value)
    if value is None or kind is int or kind is str:
        return value
    if isinstance(value, int | str) and not isinstance(value, bool):
        return value
    raise ProtocolError(f"{key} must be an integer or string, got {type(value).__name__}")


def _str_list(obj: Mapping[str, Any], key: str) -> list[str]:
    value = obj.get(key)
    if value is None:
        return []
    if type(value) is list and not value:
        return []  # most frames: nothing to check
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ProtocolError(f"{key} must be a list of strings")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


#: Deepest nesting of arrays and objects accepted in a frame or a REST body. Real frames are
#: two or three levels deep; deep nesting makes recursive code (hooks, redaction, json.dumps
#: for transcripts) raise RecursionError far from here.
MAX_JSON_DEPTH = 32
#: Longest integer literal accepted (digits). ids and part numbers are small; a 400-digit
#: ``exp`` overflows ``float()`` and a huge ``part_order`` must not reach arithmetic.
MAX_INT_DIGITS = 30


class _JSONLimit(ValueError):
    pass


def _parse_int(text: str) -> int:
    if len(text) - text.startswith("-") > MAX_INT_DIGITS:
        raise _JSONLimit(f"a number with {len(text)} digits")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _JSONLimit(f"a number out of range ({text[:20]}...)")
    return value


def _parse_constant(name: str) -> Any:
    raise _JSONLimit(f"{name} is not JSON")


def _depth_exceeds(obj: Any, limit: int) -> bool:
    """True if ``obj`` nests deeper than ``limit``; iterative, so it cannot recurse too far."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, dict | list))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value if isinstance(v, dict | list))
    return False


_PLAIN = json.JSONDecoder()
# The scanner JSONDecoder.decode runs (C when available), made from the same decoder.
_SCAN = make_scanner(_PLAIN)  # type: ignore[arg-type]  # typeshed wants its own duck type
_BOUNDED = json.JSONDecoder(
    parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant
)
_INT_BOUND = 10**MAX_INT_DIGITS
_NOT_JSON = object()


def _numbers_in_bounds(obj: Any) -> bool:
    """Every number in a decoded value is one the checked decoder accepts: an integer of at
    most MAX_INT_DIGITS digits, a finite float. Iterative; flat frames cost a few checks."""
    stack = [obj]
    while stack:
        value = stack.pop()
        for item in value.values() if isinstance(value, dict) else value:
            kind = type(item)
            if kind is str or kind is bool or item is None:
                continue
            if kind is int:
                if not -_INT_BOUND < item < _INT_BOUND:
                    return False
            elif kind is float:
                if not math.isfinite(item):
                    return False
            elif kind is dict or kind is list:
                stack.append(item)
    return True


def _loads_fast(text: str) -> Any:
    """The C decoder without per-number callbacks, then the numbers checked afterwards: the
    same bounds, for about half the cost. Anything it does not accept (an error, a number out
    of bounds) returns ``_NOT_JSON`` and goes through the checked decoder, which says why."""
    try:
        # The decoder's C scanner itself: ``decode`` adds two regex matches for surrounding
        # whitespace and two Python calls. A frame with whitespace around its value (or
        # anything else the scanner stops short of) takes the checked path, which accepts it.
        obj, end = _SCAN(text, 0)
    except (StopIteration, ValueError, RecursionError):
        return _NOT_JSON
    if end != len(text):
        return _NOT_JSON
    return obj if _numbers_in_bounds([obj]) else _NOT_JSON


def _loads_bytes(data: bytes) -> Any:
    return json.loads(
        data, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant
    )


def loads_bounded(text: str | bytes) -> Any:
    """``json.loads`` with bounds: nesting depth, integer length, no NaN/Infinity.

    :raises ValueError: with a one-line reason for anything malformed or out of bounds
        (never RecursionError, never the interpreter's int-conversion error).
    """
    try:
        # Nearly every frame takes the fast path; depth is checked below on both paths.
        obj = _loads_fast(text) if isinstance(text, str) else _NOT_JSON
        if obj is _NOT_JSON:
            obj = _BOUNDED.decode(text) if isinstance(text, str) else _loads_bytes(text)
    except _JSONLimit as exc:
        raise ValueError(str(exc)) from None
    except json.JSONDecodeError as exc:
        raise ValueError(exc.msg) from None
    except RecursionError:
        raise ValueError(f"nested more than {MAX_JSON_DEPTH} levels deep") from None
    except (ValueError, TypeError) as exc:  # bad UTF-8 in bytes, and the like
        raise ValueError(" ".join(str(exc).split())[:80] or type(exc).__name__) from None
    # Counting brackets is cheap; the walk only runs when there are enough of them.
    if type(obj) is dict or isinstance(obj, dict | list):
        if isinstance(text, str):
            brackets = text.count("[") + text.count("{")
        else:
            brackets = text.count(b"[") + text.count(b"{")
        if brackets > MAX_JSON_DEPTH and _depth_exceeds(obj, MAX_JSON_DEPTH):
            raise ValueError(f"nested more than {MAX_JSON_DEPTH} levels deep")
    return obj


def decode_json(data: str | bytes) -> dict[str, Any]:
    """Decode one frame to a JSON object, or raise :class:`ProtocolError`."""
    if type(data) is not str and isinstance(data, bytes | bytearray | memoryview):
        # Every Unith frame is a JSON text frame [C-PY, C-V2]; a binary one is a fault.
        raise ProtocolError(f"unexpected binary frame ({len(data)} bytes)", bytes(data))
    try:
        obj = loads_bounded(data)
    except ValueError as exc:
        raise ProtocolError(f"malformed JSON: {exc}", data) from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"expected a JSON object, got {type(obj).__name__}", data)
    return obj


def parse_frame(data: str | bytes, *, user_id: str | None = None) -> ServerEvent:
    """Parse one server frame into a typed event.

    :param data: the frame as received.
    :param user_id: this client's ``user_id``; it tells the echo of our own message apart.
    :raises ProtocolError: for anything that is not a valid server frame. Nothing else escapes.
    """
    obj = decode_json(data)
    try:
        return parse_object(obj, user_id=user_id)
    except ProtocolError as exc:
        exc.raw = data
        raise
    except Exception as exc:  # pragma: no cover - defensive: the contract is ProtocolError only
        raise ProtocolError(f"unparseable frame: {type(exc).__name__}", data) from None


def parse_object(obj: dict[str, Any], *, user_id: str | None = None) -> ServerEvent:
    """Parse an already decoded JSON object (see :func:`parse_frame`)."""
    # In text_only sessions V2 also dispatches on message_type [C-V2].
    event = obj.get("event", obj.get("message_type"))
    if event is None:
        raise ProtocolError("frame has no 'event' field")
    if not isinstance(event, str):
        raise ProtocolError(f"'event' must be a string, got {type(event).__name__}")

    if event in ("text", "response"):
        part_order = _opt_int(obj, "part_order")
        is_last = _opt_bool(obj, "is_last", False)
        sender = _opt_str(obj, "user_id")
        # The echo has no part_order and never is_last [I from C-PY]; V2 also marks it with
        # username "user" [C-V2], which we accept but do not require.
        if part_order is None and not is_last and "input_message_id" not in obj:
            own = user_id is not None and sender == user_id
            if own or obj.get("username") == "user":
                return Echo(
                    event=event,
                    raw=obj,
                    id=_id(obj, "id"),
                    user_id=sender,
                    text=_opt_str(obj, "text") or "",
                )
        return ResponsePart(
            event=event,
            raw=obj,
            id=_id(obj, "id"),
            user_id=sender,
            username=_opt_str(obj, "username"),
            text=_opt_str(obj, "text") or "",
            input_message_id=_opt_int(obj, "input_message_id"),
            part_order=part_order,
            is_last=is_last,
            video=_opt_str(obj, "video"),
            stream_id=_opt_str(obj, "stream_id"),
            suggestions=_str_list(obj, "suggestions"),
            media=_str_list(obj, "media"),
        )
    if event == "choice":
        return Choice(
            event=event,
            raw=obj,
            input_message_id=_opt_int(obj, "input_message_id"),
            part_order=_opt_int(obj, "part_order"),
            text=_opt_str(obj, "text") or "",
            suggestions=_str_list(obj, "suggestions"),
            is_last=_opt_bool(obj, "is_last", False),
        )
    if event == "join":
        # V2: only an explicit false means refused; anything else clears the state [C-V2].
        return Join(event=event, raw=obj, granted=obj.get("granted") is not False)
    if event == "timeout_warning":
        return TimeoutWarning(event=event, raw=obj)
    if event == "keep_session":
        return KeepSessionReply(event=event, raw=obj, granted=obj.get("granted") is not False)
    if event == "timeout":
        return SessionTimeout(event=event, raw=obj, granted=obj.get("granted") is True)
    if event == "conversation_end":
        return ConversationEnd(event=event, raw=obj)
    if event == "unith_nlp_exception":
        # The message field's name is [U]; take the first plausible one.
        message = ""
        for key in ("message", "text", "detail", "error"):
            value = obj.get(key)
            if isinstance(value, str) and value:
                message = value
                break
        return NlpException(
            event=event,
            raw=obj,
            level=_opt_int(obj, "level"),
            message=message,
            input_message_id=_opt_int(obj, "input_message_id"),
        )
    if event == "analytics-userFeedback":
        return FeedbackAck(event=event, raw=obj)
    return UnknownEvent(event=event, raw=obj)


def encode(frame: Handshake | UserMessage | Mapping[str, Any]) -> str:
    """Encode a client frame as a JSON text frame."""
    obj = frame if isinstance(frame, Mapping) else frame.to_wire()
    text = _ENCODER.encode(obj)
    # A lone surrogate (a server may hand out "\ud800" as a user_id, which goes back out in
    # every message) cannot be sent as UTF-8: write it as the JSON escape, the same value.
    if _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


_SURROGATE = re.compile("[\ud800-\udfff]")
# Made once: json.dumps with options builds an encoder per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def redact(obj: Any) -> Any:
    """A copy of a JSON value with every secret-bearing key's value replaced by ``"***"``."""
    if isinstance(obj, dict):
        return {
            k: ("***" if isinstance(k, str) and k.lower() in SECRET_KEYS else redact(v))
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    return obj
