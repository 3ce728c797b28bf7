"""The bundled plugin that registers the built-in assertion kinds (docs/testing.md).

It goes through the same ``register_assertions`` hook as any third-party plugin.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from unith_shell.hookspecs import hookimpl
from unith_shell.protocol import (
    Choice,
    ConversationEnd,
    FeedbackAck,
    Join,
    KeepSessionReply,
    NlpException,
    ServerEvent,
    SessionTimeout,
    TimeoutWarning,
    UnknownEvent,
)
from unith_shell.sanitize import sanitize
from unith_shell.scenario.assertions import Outcome, Reply
from unith_shell.scenario.model import parse_duration

#: ``event:`` names and the server events they match.
EVENTS: dict[str, type[ServerEvent]] = {
    "choice": Choice,
    "conversation_end": ConversationEnd,
    "nlp_exception": NlpException,
    "timeout_warning": TimeoutWarning,
    "timeout": SessionTimeout,
    "keep_session": KeepSessionReply,
    "join": Join,
    "feedback": FeedbackAck,
    "unknown": UnknownEvent,
}


# ---- parsing what the file says ---------------------------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # `contains: 12345` means the digits
    raise ValueError(f"expected text, got {type(value).__name__}")


def _texts(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ValueError("expected at least one text")
    return [_text(item) for item in items]


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what}: expected a whole number >= 0, got {value!r}")
    return value


def _bounds(value: Any, what: str, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """``N`` (exactly N) or ``{min: A, max: B, count: N}``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return {"count": _count(value, what)}
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{what}: expected a number or {{min: N, max: N, count: N}}")
    allowed = ("count", "min", "max", *extra)
    for key in value:
        if key not in allowed:
            raise ValueError(f"{what}: unknown key {key!r}; allowed: {', '.join(allowed)}")
    return {
        k: (_count(v, f"{what}.{k}") if k in ("count", "min", "max") else v)
        for k, v in value.items()
    }


def _in_bounds(n: int, bounds: dict[str, Any]) -> bool:
    if "count" in bounds and n != bounds["count"]:
        return False
    if "min" in bounds and n < bounds["min"]:
        return False
    return not ("max" in bounds and n > bounds["max"])


def _describe_bounds(bounds: dict[str, Any]) -> str:
    said = [f"{k} {bounds[k]}" for k in ("count", "min", "max") if k in bounds]
    return ", ".join(said)


def _shown(text: str) -> str:
    return sanitize(text) if len(text) <= 300 else sanitize(text[:300]) + "…"


# ---- the checks -------------------------------------------------------------------------------


def contains(reply: Reply, expected: list[str]) -> Outcome:
    missing = [t for t in expected if reply.fold(t) not in reply.fold(reply.text)]
    return Outcome(not missing, " and ".join(repr(t) for t in expected) or "''", reply.text)


def not_contains(reply: Reply, expected: list[str]) -> Outcome:
    found = [t for t in expected if reply.fold(t) in reply.fold(reply.text)]
    return Outcome(not found, "none of " + ", ".join(repr(t) for t in expected), reply.text)


def equals(reply: Reply, expected: str) -> Outcome:
    return Outcome(reply.fold(reply.text) == reply.fold(expected), expected, reply.text)


def parse_regex(value: Any) -> str:
    pattern = _text(value)
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
    return pattern


def regex(reply: Reply, pattern: str) -> Outcome:
    flags = re.IGNORECASE if reply.options.ignore_case else 0
    text = " ".join(reply.text.split()) if reply.options.normalize_whitespace else reply.text
    return Outcome(re.search(pattern, text, flags) is not None, f"/{pattern}/", reply.text)


def any_of(reply: Reply, expected: list[str]) -> Outcome:
    hit = any(reply.fold(t) in reply.fold(reply.text) for t in expected)
    return Outcome(hit, "one of " + ", ".join(repr(t) for t in expected), reply.text)


def parse_similar(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        unknown = set(value) - {"text", "min"}
        if unknown or "text" not in value:
            raise ValueError("similar: expected TEXT or {text: TEXT, min: 0.8}")
        ratio = value.get("min", 0.8)
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio <= 1:
            raise ValueError(f"similar.min: expected a number from 0 to 1, got {ratio!r}")
        return {"text": _text(value["text"]), "min": float(ratio)}
    return {"text": _text(value), "min": 0.8}


def similar(reply: Reply, expected: dict[str, Any]) -> Outcome:
    import difflib  # only scenarios that use it pay for it

    ratio = difflib.SequenceMatcher(
        None, reply.fold(expected["text"]), reply.fold(reply.text), autojunk=False
    ).ratio()
    return Outcome(
        ratio >= expected["min"],
        f"similarity >= {expected['min']:.2f} to {expected['text']!r}",
        f"similarity {ratio:.2f}: {reply.text}",
    )


def parts(reply: Reply, bounds: dict[str, Any]) -> Outcome:
    n = len(reply.parts)
    return Outcome(_in_bounds(n, bounds), f"parts: {_describe_bounds(bounds)}", f"{n} parts")


def parse_suggestions(value: Any) -> dict[str, Any]:
    bounds = _bounds(value, "suggestions", extra=("contains",))
    if "contains" in bounds:
        bounds["contains"] = _texts(bounds["contains"])
    return bounds


def suggestions(reply: Reply, expected: dict[str, Any]) -> Outcome:
    have = reply.suggestions
    folded = [reply.fold(s) for s in have]
    wanted = expected.get("contains", [])
    ok = _in_bounds(len(have), expected) and all(reply.fold(w) in folded for w in wanted)
    said = _describe_bounds(expected)
    if wanted:
        said = ", ".join(x for x in (said, "including " + ", ".join(map(repr, wanted))) if x)
    shown = ", ".join(repr(_shown(s)) for s in have)
    return Outcome(ok, f"suggestions: {said}", f"{len(have)} suggestions: [{shown}]")


def parse_event(value: Any) -> list[dict[str, Any]]:
    items = value if isinstance(value, list) else [value]
    wanted: list[dict[str, Any]] = []
    for item in items:
        spec = {"name": item} if isinstance(item, str) else item
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise ValueError("event: expected NAME, {name: NAME, level: N} or a list of them")
        unknown = set(spec) - {"name", "level"}
        if unknown:
            raise ValueError(f"event: unknown key {sorted(unknown)[0]!r}; allowed: name, level")
        if spec["name"] not in EVENTS:
            from unith_shell.scenario.loader import did_you_mean

            hint = did_you_mean(spec["name"], EVENTS)
            raise ValueError(f"unknown event {spec['name']!r}{hint}")
        if "level" in spec:
            if spec["name"] != "nlp_exception":
                raise ValueError("event: level is only for nlp_exception")
            _count(spec["level"], "event.level")
        wanted.append(dict(spec))
    return wanted


def _matches(event: ServerEvent, spec: dict[str, Any]) -> bool:
    if not isinstance(event, EVENTS[spec["name"]]):
        return False
    if "level" in spec:
        return isinstance(event, NlpException) and event.level == spec["level"]
    if isinstance(event, Join | KeepSessionReply):
        return event.granted
    return True


def _event_name(event: ServerEvent) -> str:
    level = getattr(event, "level", None)
    return sanitize(event.event) + (f" (level {level})" if level is not None else "")


def event(reply: Reply, expected: list[dict[str, Any]]) -> Outcome:
    missing = [s for s in expected if not any(_matches(e, s) for e in reply.events)]
    wanted = ", ".join(
        s["name"] + (f" (level {s['level']})" if "level" in s else "") for s in expected
    )
    seen = ", ".join(_event_name(e) for e in reply.events if _interesting(e)) or "none"
    return Outcome(not missing, f"event {wanted}", f"events: {seen}")


def _interesting(event: ServerEvent) -> bool:
    # Every turn has an echo and parts: listing them would hide the events that matter.
    return event.event not in ("text", "response", "echo") and type(event).__name__ != "Echo"


def parse_video(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("video: expected true (each spoken part has a video URL) or false")
    return value


def video(reply: Reply, expected: bool) -> Outcome:
    spoken = [p for p in reply.spoken if p.text]
    with_url = [p for p in spoken if p.video and p.video.startswith(("http://", "https://"))]
    ok = len(with_url) == len(spoken) if expected else not with_url
    return Outcome(
        ok and (bool(spoken) or not expected),
        "a video URL on every spoken part" if expected else "no video URLs",
        f"{len(with_url)} of {len(spoken)} spoken parts have a video URL",
    )


def parse_latency(value: Any) -> dict[str, float]:
    if not isinstance(value, dict) or not value:
        raise ValueError("latency: expected {first_part: 2s, last_part: 5s}")
    budgets: dict[str, float] = {}
    for key, raw in value.items():
        if key not in ("first_part", "last_part"):
            raise ValueError(f"latency: unknown key {key!r}; allowed: first_part, last_part")
        budgets[key] = parse_duration(raw)
    return budgets


def _ms(seconds: float | None) -> str:
    return "none" if seconds is None else f"{seconds * 1000:.0f} ms"


def latency(reply: Reply, budgets: dict[str, float]) -> Outcome:
    actual = {"first_part": reply.first_latency, "last_part": reply.total_latency}
    ok = all(actual[k] is not None and actual[k] <= v for k, v in budgets.items())  # type: ignore[operator]
    return Outcome(
        ok,
        ", ".join(f"{k} <= {_ms(v)}" for k, v in budgets.items()),
        ", ".join(f"{k} {_ms(actual[k])}" for k in budgets),
    )


BUILTINS: tuple[tuple[str, Callable[..., Outcome], dict[str, Any]], ...] = (
    ("contains", contains, {"parse": _texts, "help": "the reply contains each text"}),
    ("not_contains", not_contains, {"parse": _texts, "help": "the reply contains none"}),
    ("equals", equals, {"parse": _text, "help": "the reply is exactly this text"}),
    ("regex", regex, {"parse": parse_regex, "regex": True, "help": "re.search matches"}),
    ("any_of", any_of, {"parse": _texts, "help": "the reply contains at least one text"}),
    ("similar", similar, {"parse": parse_similar, "help": "difflib ratio >= min (0.8)"}),
    ("parts", parts, {"parse": lambda v: _bounds(v, "parts"), "help": "number of parts"}),
    ("suggestions", suggestions, {"parse": parse_suggestions, "help": "count and contents"}),
    (
        "event",
        event,
        {
            "parse": parse_event,
            "needs_turn": False,
            "waits": True,
            "help": "these server events came during the step",
        },
    ),
    ("video", video, {"parse": parse_video, "help": "each spoken part has a video URL"}),
    ("latency", latency, {"parse": parse_latency, "help": "first/last part within budgets"}),
)


@hookimpl
def register_assertions(register: Any) -> None:
    for name, check, options in BUILTINS:
        register(name, check, **options)
