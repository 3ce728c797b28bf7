"""Unit and property tests for the wire format: parse_frame, encode, redact, Turn assembly."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unith_shell.protocol import (
    Choice,
    ConversationEnd,
    Echo,
    FeedbackAck,
    Handshake,
    Join,
    KeepSessionReply,
    NlpException,
    ProtocolError,
    ResponsePart,
    ServerEvent,
    SessionTimeout,
    TimeoutWarning,
    UnknownEvent,
    UserMessage,
    encode,
    keep_session_message,
    loads_bounded,
    parse_frame,
    redact,
)
from unith_shell.turn import Turn


def frame(**fields: Any) -> str:
    return json.dumps(fields)


def part(order: int | None, text: str = "", is_last: bool = False, mid: int = 0) -> ResponsePart:
    raw: dict[str, Any] = {"event": "text"}
    return ResponsePart(
        event="text", raw=raw, text=text, input_message_id=mid, part_order=order, is_last=is_last
    )


# ---- parse_frame ------------------------------------------------------------------------------


def test_response_part_fields() -> None:
    event = parse_frame(
        frame(
            event="text",
            id=7,
            user_id="bot",
            username="Aiko",
            text="Hi",
            input_message_id="3",
            part_order=1,
            is_last=True,
            video="http://v/1.mp4",
            stream_id="s1",
            suggestions=["a", "b"],
            media=["http://i/1.png"],
        )
    )
    assert isinstance(event, ResponsePart)
    assert (event.text, event.input_message_id, event.part_order, event.is_last) == (
        "Hi",
        3,  # a numeric string is accepted, as V2's Number() does
        1,
        True,
    )
    assert event.video == "http://v/1.mp4" and event.stream_id == "s1"
    assert event.suggestions == ["a", "b"] and event.media == ["http://i/1.png"]


def test_streaming_response_event_and_message_type() -> None:
    assert isinstance(parse_frame(frame(event="response", text="x", part_order=0)), ResponsePart)
    via_type = parse_frame(frame(message_type="response", text="x", part_order=0))
    assert isinstance(via_type, ResponsePart) and via_type.event == "response"


def test_echo_is_recognised_by_own_user_id_or_username_user() -> None:
    mine = parse_frame(frame(event="text", id=0, user_id="u1", text="hello"), user_id="u1")
    assert isinstance(mine, Echo) and mine.text == "hello" and mine.id == 0
    by_name = parse_frame(frame(event="text", id=0, user_id="x", username="user", text="hi"))
    assert isinstance(by_name, Echo)
    # Someone else's frame without part_order is a part, not our echo.
    other = parse_frame(frame(event="text", user_id="bot", text="hi"), user_id="u1")
    assert isinstance(other, ResponsePart)
    # A frame with part_order is never an echo, even from our own id.
    numbered = parse_frame(frame(event="text", user_id="u1", part_order=0), user_id="u1")
    assert isinstance(numbered, ResponsePart)


@pytest.mark.parametrize(
    ("fields", "kind", "check"),
    [
        ({"event": "join", "granted": False}, Join, lambda e: e.granted is False),
        ({"event": "join"}, Join, lambda e: e.granted is True),
        ({"event": "timeout_warning"}, TimeoutWarning, lambda e: True),
        ({"event": "keep_session", "granted": True}, KeepSessionReply, lambda e: e.granted),
        ({"event": "timeout", "granted": False}, SessionTimeout, lambda e: not e.granted),
        ({"event": "conversation_end"}, ConversationEnd, lambda e: True),
        (
            {"event": "unith_nlp_exception", "level": 400, "message": "oops"},
            NlpException,
            lambda e: e.level == 400 and e.message == "oops",
        ),
        ({"event": "analytics-userFeedback"}, FeedbackAck, lambda e: True),
        ({"event": "brand_new", "x": 1}, UnknownEvent, lambda e: e.raw["x"] == 1),
        (
            {"event": "choice", "suggestions": ["a"], "input_message_id": 2},
            Choice,
            lambda e: e.suggestions == ["a"] and e.input_message_id == 2,
        ),
    ],
)
def test_event_types(fields: dict[str, Any], kind: type, check: Any) -> None:
    event = parse_frame(json.dumps(fields))
    assert isinstance(event, kind)
    assert check(event)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("{not json", "malformed JSON"),
        (b'{"event": "text"}', "binary frame"),
        ("[1, 2]", "expected a JSON object"),
        ('{"text": "no event"}', "no 'event'"),
        ('{"event": 5}', "'event' must be a string"),
        ('{"event": "text", "part_order": "x"}', "part_order must be an integer"),
        ('{"event": "text", "part_order": true}', "part_order must be an integer"),
        ('{"event": "text", "part_order": 0, "is_last": "yes"}', "is_last must be a boolean"),
        ('{"event": "text", "part_order": 0, "suggestions": [1]}', "suggestions"),
        ('{"event": "text", "part_order": 0, "text": {"a": 1}}', "text must be a string"),
    ],
)
def test_bad_frames_raise_one_line_protocol_error(data: str | bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_frame(data)
    assert reason in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.raw == data


def test_deeply_nested_json_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        parse_frame("[" * 100_000 + "]" * 100_000)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
KNOWN_KEYS = st.sampled_from(
    ["event", "text", "part_order", "is_last", "input_message_id", "suggestions", "media",
     "granted", "level", "user_id", "id", "video", "message_type", "username"]
)  # fmt: skip
EVENTS = st.sampled_from(
    ["text", "response", "choice", "join", "timeout", "keep_session", "timeout_warning",
     "conversation_end", "unith_nlp_exception", "analytics-userFeedback", "other"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary(), JSON.map(json.dumps)))
def test_any_input_gives_an_event_or_protocol_error(data: str | bytes) -> None:
    try:
        event = parse_frame(data)
    except ProtocolError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert isinstance(event, ServerEvent)


@settings(max_examples=300, deadline=None)
@given(EVENTS, st.dictionaries(KNOWN_KEYS, JSON, max_size=6))
def test_known_events_with_arbitrary_field_values(event: str, fields: dict[str, Any]) -> None:
    fields["event"] = event
    try:
        parsed = parse_frame(json.dumps(fields), user_id="me")
    except ProtocolError:
        return
    assert isinstance(parsed, ServerEvent)
    if isinstance(parsed, ResponsePart):
        assert parsed.part_order is None or isinstance(parsed.part_order, int)
        assert isinstance(parsed.is_last, bool) and isinstance(parsed.text, str)


# ---- encode and redact ----------------------------------------------------------------------


def test_handshake_wire_form_and_repr_hide_the_token() -> None:
    hs = Handshake(token="tok-123", api_key="key-456", text_only=True, data_tag="t")
    assert json.loads(encode(hs)) == {
        "token": "tok-123",
        "api_key": "key-456",
        "text_only": True,
        "data_tag": "t",
    }
    # The example client's minimal form: only token and api_key.
    assert json.loads(encode(Handshake(token="t"))) == {"token": "t", "api_key": ""}
    assert "tok-123" not in repr(hs) and "key-456" not in repr(hs)


def test_user_message_wire_form_and_cancel() -> None:
    msg = UserMessage(id=3, user_id="u", text="hi")
    assert json.loads(encode(msg)) == {"id": 3, "user_id": "u", "event": "text", "text": "hi"}
    keep = keep_session_message(4, "u")
    assert json.loads(encode(keep))["event"] == "keep_session"
    assert json.loads(encode(keep))["text"] == ""
    msg.cancel("nope")
    assert msg.cancelled == "nope"


def test_redact_replaces_secret_values_at_any_depth() -> None:
    obj = {"token": "t", "nested": [{"api_key": "k", "Password": "p"}], "text": "token"}
    assert redact(obj) == {
        "token": "***",
        "nested": [{"api_key": "***", "Password": "***"}],
        "text": "token",
    }


# ---- Turn assembly ---------------------------------------------------------------------------


def test_turn_in_order() -> None:
    turn = Turn(message_id=0)
    assert [p.text for p in turn.add(part(0, "a"))] == ["a"]
    assert not turn.complete
    assert [p.text for p in turn.add(part(1, "b", is_last=True))] == ["b"]
    assert turn.complete and turn.ok and turn.text == "a\nb"
    assert turn.first_latency is not None and turn.total_latency is not None


def test_turn_out_of_order_waits_for_predecessors() -> None:
    turn = Turn(message_id=0)
    assert turn.add(part(2, "c", is_last=True)) == []
    assert not turn.complete and turn.last_seen and turn.missing == [0, 1]
    assert turn.add(part(1, "b")) == []
    ready = turn.add(part(0, "a"))
    assert [p.text for p in ready] == ["a", "b", "c"]
    assert turn.complete and turn.text == "a\nb\nc"


def test_turn_drops_duplicates_and_ignores_parts_after_completion() -> None:
    turn = Turn(message_id=0)
    turn.add(part(0, "a"))
    assert turn.add(part(0, "again")) == []
    turn.add(part(1, "b", is_last=True))
    assert turn.add(part(2, "late")) == []
    assert turn.text == "a\nb"


def test_turn_gap_is_flushed_by_finish() -> None:
    turn = Turn(message_id=0)
    turn.add(part(0, "a"))
    turn.add(part(2, "c", is_last=True))
    assert not turn.complete and turn.missing == [1]
    rest = turn.finish("last", "missing part(s) 1")
    assert [p.text for p in rest] == ["c"]
    assert turn.complete and turn.text == "a\nc" and turn.error == "missing part(s) 1"


def test_turn_without_part_order_in_arrival_order() -> None:
    turn = Turn(message_id=None)
    assert [p.text for p in turn.add(part(None, "x"))] == ["x"]
    assert [p.text for p in turn.add(part(None, "y", is_last=True))] == ["y"]
    assert turn.complete and turn.text == "x\ny"


def test_turn_ending_event_keeps_what_arrived() -> None:
    turn = Turn(message_id=0)
    turn.add(part(0, "a"))
    turn.add(part(2, "c"))
    rest = turn.finish("unith_nlp_exception", "failed")
    assert [p.text for p in rest] == ["c"]
    assert turn.complete and not turn.ok and turn.text == "a\nc"
    assert turn.finish("timeout") == [] and turn.outcome == "unith_nlp_exception"


def test_turn_suggestions_come_from_parts() -> None:
    turn = Turn(message_id=0)
    p = part(0, "a", is_last=True)
    p.suggestions = ["one", "two"]
    turn.add(p)
    assert turn.suggestions == ["one", "two"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(max_size=5), min_size=1, max_size=12),
    st.randoms(use_true_random=False),
    st.integers(min_value=0, max_value=3),
)
def test_completed_turn_text_is_parts_joined_in_part_order(
    texts: list[str], rnd: Any, duplicates: int
) -> None:
    parts = [part(i, t, is_last=i == len(texts) - 1) for i, t in enumerate(texts)]
    # A duplicate is the same frame received twice.
    copies = [parts[rnd.randrange(len(parts))] for _ in range(duplicates)]
    arrivals = parts + [part(c.part_order, c.text, c.is_last) for c in copies]
    rnd.shuffle(arrivals)
    turn = Turn(message_id=0)
    shown: list[ResponsePart] = []
    for p in arrivals:
        shown.extend(turn.add(p))
    assert turn.complete and turn.ok
    assert [(p.part_order, p.text) for p in shown] == [(i, t) for i, t in enumerate(texts)]
    assert turn.text == "\n".join(t for t in texts if t)


@pytest.mark.parametrize(
    "text",
    [
        '{"a":' + "9" * 31 + "}",  # one digit too many, in a tiny frame
        '{"a":-' + "9" * 31 + "}",
        '{"a":1e400}',
        '{"a":-1E+999}',
        '{"a":NaN}',
        '{"a":[Infinity]}',
        '{"a":-Infinity}',
        "[" * 40 + "]" * 40,
    ],
)
def test_small_frames_keep_every_json_bound(text: str) -> None:
    # Small flat frames take a fast path past the per-number callbacks; it must not let
    # through what the checked path refuses.
    with pytest.raises(ValueError):
        loads_bounded(text)


def test_the_fast_path_and_the_checked_path_agree() -> None:
    frames = [
        '{"event":"text","input_message_id":3,"part_order":0,"is_last":false,"text":"hi"}',
        '{"event":"response","score":0.25,"n":-12,"ok":true,"none":null,"t":"NaN inside"}',
        '{"a":' + "9" * 30 + ',"b":"1e5 in a string"}',
        ' {"x": [1, 2.5, {"y": []}]} ',
    ]
    for text in frames:
        assert loads_bounded(text) == json.loads(text)
        assert loads_bounded(text.encode()) == json.loads(text)
