"""Fault scripts: scripted misbehaviour for tests and for trying a client by hand.

A fault is selected per head (``faults/<name>``) or per connection
(:meth:`LocalServer.set_fault`). Reply faults change how the answer to each user message goes
out; the handshake and greeting stay normal unless the fault is about the handshake
(``join-refused``, ``token-refused``, ``no-join``, ``no-greeting``) or the session
(``idle-timeout``). Each fault's parameters and defaults are in :data:`FAULTS`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .frames import FrameBuilder, Turn

Json = dict[str, Any]

CONTROL_TEXT = "Control test: \x1b[2J\x1b]0;pwned\x07 bell:\x07 nul:\x00 end"


class Wire(Protocol):
    """What a fault script (or a recorded head) may do to its socket; server/switch.py's
    ``Connection`` implements it."""

    @property
    def closed(self) -> bool:
        """The socket is closed."""
        ...

    @property
    def closing(self) -> bool:
        """A close has started (or the socket is closed): send nothing more."""
        ...

    async def send(self, frame: Json) -> None: ...
    async def send_raw(self, data: str) -> None: ...
    async def send_binary(self, data: bytes) -> None: ...
    async def close(self, code: int, reason: str) -> None: ...
    def abort(self) -> None: ...


@dataclass(slots=True)
class TurnContext:
    """One user message being answered: the planned frames plus the means to send them."""

    wire: Wire
    turn: Turn
    builder: FrameBuilder
    params: Mapping[str, Any]
    part_delay: float

    async def send_parts(self, parts: Sequence[Json], delay: float | None = None) -> None:
        pause = self.part_delay if delay is None else delay
        send = self.wire.send
        for part in parts:
            if pause > 0:  # never sleep when there is no delay: benchmarks go through here
                await asyncio.sleep(pause)
            await send(part)

    async def send_head(self) -> None:
        """The echo and any events that precede the parts."""
        await self.wire.send(self.turn.echo)
        for event in self.turn.before:
            await self.wire.send(event)

    async def send_tail(self) -> None:
        for event in self.turn.after:
            await self.wire.send(event)

    async def send_turn(
        self, parts: Sequence[Json] | None = None, delay: float | None = None
    ) -> None:
        await self.send_head()
        await self.send_parts(self.turn.parts if parts is None else parts, delay)
        await self.send_tail()

    async def send_around(self, inject: Callable[[], Awaitable[None]]) -> None:
        """Part 0, then ``inject()``, then the remaining parts: a fault in mid-turn."""
        await self.send_head()
        parts = self.turn.parts
        await self.send_parts(parts[:1])
        await inject()
        await self.send_parts(parts[1:])
        await self.send_tail()


Script = Callable[[TurnContext], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Fault:
    name: str
    doc: str
    script: Script
    defaults: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """A fault with its parameters resolved (defaults overridden by what was given)."""

    name: str
    params: Mapping[str, Any]

    @property
    def script(self) -> Script:
        return FAULTS[self.name].script


FAULTS: dict[str, Fault] = {}


def _fault(name: str, doc: str, **defaults: Any) -> Callable[[Script], Script]:
    def register(script: Script) -> Script:
        FAULTS[name] = Fault(name, doc, script, defaults)
        return script

    return register


def make_fault(name: str, **params: Any) -> FaultSpec:
    """Resolve ``name`` and ``params``; raise ``ValueError`` for an unknown fault or param."""
    fault = FAULTS.get(name)
    if fault is None:
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(FAULTS))}")
    unknown = set(params) - set(fault.defaults)
    if unknown:
        allowed = ", ".join(fault.defaults) or "none"
        raise ValueError(f"fault {name!r} takes no {sorted(unknown)}; params: {allowed}")
    return FaultSpec(name, {**fault.defaults, **params})


async def normal(ctx: TurnContext) -> None:
    await ctx.send_turn()


# Faults about the handshake or the session: their replies are normal, the session reads the
# name (see switch.py).
for _name, _doc, _defaults in (
    ("join-refused", "the handshake gets join granted:false, then a close", {}),
    ("token-refused", "every token is refused: close 1008", {}),
    ("no-join", "no join event before the greeting (as PY-era servers may do)", {}),
    ("no-greeting", "the handshake reply is one empty is_last part", {}),
    (
        "idle-timeout",
        "timeout_warning after `warning` idle seconds, timeout after `grace` more",
        {"warning": 3.0, "grace": 5.0},
    ),
):
    FAULTS[_name] = Fault(_name, _doc, normal, _defaults)


@_fault("slow", "sleeps `delay` seconds before each reply part", delay=1.0)
async def _slow(ctx: TurnContext) -> None:
    await ctx.send_turn(delay=float(ctx.params["delay"]))


@_fault("never-ends", "reply parts never carry is_last: true")
async def _never_ends(ctx: TurnContext) -> None:
    await ctx.send_turn([{**part, "is_last": False} for part in ctx.turn.parts])


@_fault("close-mid-turn", "part 0, then a close with `code`", code=1011)
async def _close_mid_turn(ctx: TurnContext) -> None:
    await ctx.send_head()
    await ctx.send_parts(ctx.turn.parts[:1])
    await ctx.wire.close(int(ctx.params["code"]), "closed mid-turn")


@_fault("drop-mid-turn", "part 0, then the TCP connection drops with no close frame")
async def _drop_mid_turn(ctx: TurnContext) -> None:
    await ctx.send_head()
    await ctx.send_parts(ctx.turn.parts[:1])
    ctx.wire.abort()


@_fault("malformed-json", "one non-JSON text frame in mid-turn, then the remaining parts")
async def _malformed_json(ctx: TurnContext) -> None:
    await ctx.send_around(lambda: ctx.wire.send_raw('{"event": "text", "text": "cut off'))


@_fault("binary-frame", "one binary frame in mid-turn, then the remaining parts")
async def _binary_frame(ctx: TurnContext) -> None:
    await ctx.send_around(lambda: ctx.wire.send_binary(b"\x00\x01 binary frame \xff\xfe"))


@_fault("oversized-frame", "one huge valid-JSON frame of an unknown event", size=2 * 1024 * 1024)
async def _oversized_frame(ctx: TurnContext) -> None:
    prefix, suffix = '{"event":"oversized_blob","data":"', '"}'
    filler = "x" * max(0, int(ctx.params["size"]) - len(prefix) - len(suffix))
    await ctx.send_around(lambda: ctx.wire.send_raw(prefix + filler + suffix))


@_fault("wrong-types", "a part with part_order 'x' and one with is_last 'yes' among valid ones")
async def _wrong_types(ctx: TurnContext) -> None:
    parts = ctx.turn.parts
    template = {**parts[0], "text": "(bad frame)", "is_last": False}
    template.pop("suggestions", None)
    bad_order = {**template, "id": next(ctx.builder.ids), "part_order": "x"}
    bad_last = {**template, "id": next(ctx.builder.ids), "is_last": "yes"}
    await ctx.send_turn([*parts[:-1], bad_order, bad_last, parts[-1]])


@_fault("control-chars", "reply text with ESC sequences, a BEL and a NUL")
async def _control_chars(ctx: TurnContext) -> None:
    parts = [dict(part) for part in ctx.turn.parts]
    parts[0]["text"] = CONTROL_TEXT
    parts[-1]["suggestions"] = ["\x1b[1mbold\x1b[0m", "plain"]
    await ctx.send_turn(parts)


@_fault("many-parts", "`count` parts in one turn, no delay", count=10_000)
async def _many_parts(ctx: TurnContext) -> None:
    count = int(ctx.params["count"])
    texts = [f"Part {i + 1} of {count}." for i in range(count)]
    await ctx.send_turn(ctx.builder.parts(ctx.turn.input_id, texts, ("Again",)), delay=0)


@_fault("out-of-order", "parts in a fixed shuffled order (last first) plus one duplicate")
async def _out_of_order(ctx: TurnContext) -> None:
    parts = ctx.turn.parts
    first, *middle = parts[:-1]
    shuffled = [parts[-1], first, dict(first), *middle] if len(parts) > 1 else [first, first]
    await ctx.send_turn(shuffled)


@_fault("nlp-exception", "an unith_nlp_exception of `level` instead of parts", level=500)
async def _nlp_exception(ctx: TurnContext) -> None:
    level = int(ctx.params["level"])
    error = ctx.builder.nlp_exception(ctx.turn.input_id, level, "NLP failure (scripted fault)")
    await ctx.send_turn([error])


@_fault("conversation-end", "a normal reply, then conversation_end")
async def _conversation_end(ctx: TurnContext) -> None:
    await ctx.send_turn()
    await ctx.wire.send({"event": "conversation_end"})


@_fault("unknown-event", "an event named brand_new_thing, then a normal reply")
async def _unknown_event(ctx: TurnContext) -> None:
    await ctx.send_head()
    await ctx.wire.send({"event": "brand_new_thing", "payload": {"answer": 42}})
    await ctx.send_parts(ctx.turn.parts)
    await ctx.send_tail()


@_fault("choice", "a choice event with suggestions instead of parts")
async def _choice(ctx: TurnContext) -> None:
    offer = ctx.builder.choice(ctx.turn.input_id, "Pick one:", ("Yes", "No", "Maybe"))
    await ctx.send_turn([offer])


@_fault("feedback", "a normal reply, then analytics-userFeedback")
async def _feedback(ctx: TurnContext) -> None:
    await ctx.send_turn()
    await ctx.wire.send({"event": "analytics-userFeedback"})


@_fault("silent", "the echo, then nothing at all")
async def _silent(ctx: TurnContext) -> None:
    await ctx.wire.send(ctx.turn.echo)


@_fault("no-echo", "reply parts without the echo first")
async def _no_echo(ctx: TurnContext) -> None:
    await ctx.send_parts(ctx.turn.parts)
    await ctx.send_tail()


@_fault("string-ids", "ids and input_message_id as numeric strings ([U] upstream)")
async def _string_ids(ctx: TurnContext) -> None:
    parts = [
        {**part, "id": str(part["id"]), "input_message_id": str(part["input_message_id"])}
        for part in ctx.turn.parts
    ]
    await ctx.send_turn(parts)


@_fault("non-object-json", "valid JSON that is not an event object, in mid-turn")
async def _non_object_json(ctx: TurnContext) -> None:
    async def inject() -> None:
        for raw in ("[1, 2, 3]", '"just a string"', "null", '{"no_event": true}'):
            await ctx.wire.send_raw(raw)

    await ctx.send_around(inject)


@_fault("close-after-reply", "a normal reply, then a close with `code`", code=1000)
async def _close_after_reply(ctx: TurnContext) -> None:
    await ctx.send_turn()
    await ctx.wire.close(int(ctx.params["code"]), "closed after reply")


@_fault(
    "scripted",
    "the echo, then `frames` as given: a str is a text frame (MID stands for the message id), "
    "bytes a binary frame",
    frames=(),
)
async def _scripted(ctx: TurnContext) -> None:
    await ctx.wire.send(ctx.turn.echo)
    mid = str(ctx.turn.input_id)
    for frame in ctx.params["frames"]:
        if isinstance(frame, bytes | bytearray):
            await ctx.wire.send_binary(bytes(frame))
        else:
            await ctx.wire.send_raw(str(frame).replace("MID", mid))


_FLAKY_TURNS = itertools.count(1)  # server-process wide, so that it alternates across sessions


@_fault("flaky", "every `every`-th reply (counted across sessions) is 'I forgot what I was saying'",
        every=2)  # fmt: skip
async def _flaky(ctx: TurnContext) -> None:
    if next(_FLAKY_TURNS) % max(1, int(ctx.params["every"])) != 0:
        await ctx.send_turn()
        return
    parts = [{**part, "text": "I forgot what I was saying."} for part in ctx.turn.parts]
    await ctx.send_turn(parts)
