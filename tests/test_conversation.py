"""The conversation's bookkeeping without sockets, the end-reason classifier, the error roots."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from unith_shell import api, protocol
from unith_shell.commands import CommandError
from unith_shell.conversation import (
    Complete,
    Conversation,
    Deliver,
    EndConnection,
    EndReason,
    Grace,
    KeepAlive,
)
from unith_shell.errors import UnithShellError, UserError
from unith_shell.protocol import (
    GREETING_ID,
    Choice,
    ConversationEnd,
    NlpException,
    ProtocolError,
    ResponsePart,
    SessionTimeout,
    TimeoutWarning,
    UserMessage,
)
from unith_shell.session import (
    FatalSessionError,
    HandshakeRefused,
    JoinRefused,
    Session,
    SessionError,
    SessionOptions,
    classify,
)
from unith_shell.settings import ConfigError
from unith_shell.turn import Turn, TurnOverflow


def part(order: int | None, text: str = "", *, last: bool = False, mid: int | None = 0) -> Any:
    return ResponsePart(
        event="text",
        raw={},
        text=text,
        input_message_id=mid,
        part_order=order,
        is_last=last,
    )


def message(text: str = "hi") -> UserMessage:
    return UserMessage(id=-2, user_id="", text=text)


def sent_turn(conv: Conversation, text: str = "hi", now: float = 1.0) -> Turn:
    """Queue ``text`` and send it; return its turn, now in flight."""
    turn = conv.queue(message(text), text)
    item = conv.take("u1", "s1")
    assert conv.sent(item, now) is turn
    return turn


def kinds(actions: list[Any]) -> list[str]:
    return [type(a).__name__ for a in actions]


def test_messages_are_numbered_and_sent_one_turn_at_a_time() -> None:
    conv = Conversation()
    first = conv.queue(message("one"), "one")
    second = conv.queue(message("TWO"), "two")
    assert conv.pending == [first, second] and second.input == "two" and second.prompt == "TWO"
    assert conv.can_send()
    item = conv.take("u1", "s1")
    assert (item.message.id, item.message.user_id, item.message.session_id) == (0, "u1", "s1")
    assert not conv.can_send()  # on the wire: nothing else goes out meanwhile
    conv.sent(item, now=5.0)
    assert conv.inflight is first and conv.turns[0] is first and first.sent_at == 5.0
    assert not conv.can_send()  # a turn in flight holds the next message back
    conv.queue_keep("u1")  # ... but not a keep_session
    assert conv.can_send()
    keep = conv.take("u1", None)
    assert keep.turn is None and keep.message.event == "keep_session" and keep.message.id == 1
    assert conv.sent(keep, now=6.0) is None and conv.inflight is first
    actions = conv.receive(part(0, "a", last=True))
    assert kinds(actions) == ["Deliver", "Complete"]
    assert conv.inflight is None and 0 not in conv.turns  # finished turns are forgotten
    assert conv.can_send() and conv.take("u1", "s1").message.id == 2


def test_a_frame_the_socket_did_not_take_goes_out_first_with_the_same_id() -> None:
    conv = Conversation()
    conv.queue(message("one"), "one")
    conv.queue(message("two"), "two")
    item = conv.take("u1", None)
    conv.not_sent(item)
    assert conv.pending[0] is item.turn and conv.inflight is None
    again = conv.take("u1", None)
    assert again is item and again.message.id == 0


def test_parts_are_delivered_in_order_and_a_gap_asks_for_the_grace() -> None:
    conv = Conversation()
    turn = sent_turn(conv)
    assert conv.receive(part(1, "b")) == []  # waits for part 0
    actions = conv.receive(part(3, "d", last=True))
    assert actions == [Grace(turn)]  # is_last is in, part 2 is not
    assert conv.deadline(last_frame=10.0, timeout=30.0, gap_grace=0.5) == 10.5
    actions = conv.receive(part(0, "a"))
    assert actions == [Deliver(turn, [turn.parts[0], turn.parts[1]])]
    actions = conv.receive(part(2, "c"))
    assert kinds(actions) == ["Deliver", "Complete"]
    assert [p.text for p in actions[0].parts] == ["c", "d"] and turn.outcome == "last"
    assert conv.deadline(10.0, 30.0, 0.5) is None  # nothing in flight


def test_a_part_without_input_message_id_joins_what_is_awaited() -> None:
    conv = Conversation()
    greeting = conv.start_greeting()
    actions = conv.receive(part(0, "hello", last=True, mid=None), during_handshake=True)
    assert actions[-1] == Complete(greeting) and greeting.text == "hello"
    assert conv.turns[GREETING_ID] is greeting  # the greeting stays known
    turn = sent_turn(conv)
    conv.receive(part(0, "x", mid=None))
    assert turn.text == "x"
    assert conv.receive(part(0, "stray", mid=99)) == []  # answers nothing we sent


def test_expired_says_why_the_turn_ended() -> None:
    conv = Conversation()
    silent = sent_turn(conv)
    assert conv.deadline(last_frame=2.0, timeout=30.0, gap_grace=0.5) == 32.0
    actions = conv.expired(silent, timeout=30.0)
    assert actions == [Complete(silent)]
    assert (silent.outcome, silent.error) == ("timed out", "no reply within 30 s")
    assert conv.expired(silent, timeout=30.0) == []  # no longer in flight

    gappy = sent_turn(conv)
    conv.receive(part(0, "a", mid=gappy.message_id))
    conv.receive(part(4, "e", last=True, mid=gappy.message_id))
    actions = conv.expired(gappy, timeout=30.0)
    assert kinds(actions) == ["Deliver", "Complete"]  # the held-back part is shown
    assert (gappy.outcome, gappy.error) == ("last", "missing part(s) 1, 2, 3")

    slow = sent_turn(conv)
    conv.receive(part(0, "a", mid=slow.message_id))
    conv.expired(slow, timeout=5.0)
    assert slow.error == "no further part within 5 s"


def test_choice_and_nlp_exception_end_the_turn() -> None:
    conv = Conversation()
    turn = sent_turn(conv)
    choice = Choice(event="choice", raw={}, input_message_id=0, text="Pick", suggestions=["a"])
    actions = conv.receive(choice)
    assert kinds(actions) == ["Deliver", "Complete"]
    assert turn.outcome == "choice" and turn.suggestions == ["a"] and turn.ok

    failed = sent_turn(conv)
    error = NlpException(event="unith_nlp_exception", raw={}, level=400, input_message_id=1)
    assert conv.receive(error) == [Complete(failed)]
    assert failed.error == "the head could not answer (level 400)" and not failed.ok


def test_the_server_ending_things_ends_the_connection_first() -> None:
    conv = Conversation()
    turn = sent_turn(conv)
    actions = conv.receive(ConversationEnd(event="conversation_end", raw={}))
    assert actions == [EndConnection(EndReason.ENDED), Complete(turn)]
    assert turn.error == "the conversation ended"

    conv = Conversation()
    assert conv.receive(SessionTimeout(event="timeout", raw={}, granted=True)) == []
    actions = conv.receive(SessionTimeout(event="timeout", raw={}, granted=False))
    assert actions == [EndConnection(EndReason.TIMED_OUT)]  # nothing was in flight


def test_a_timeout_warning_asks_for_keep_alive() -> None:
    warning = TimeoutWarning(event="timeout_warning", raw={})
    assert Conversation().receive(warning) == [KeepAlive()]


def test_too_many_parts_fail_the_turn_and_stop_it() -> None:
    conv = Conversation()
    turn = conv.queue(message(), "hi", max_parts=3)
    conv.sent(conv.take("u1", None), 1.0)
    actions = conv.receive(part(7, "far"))
    assert actions == [Complete(turn)] and turn.outcome == "failed"
    assert turn.error == "protocol error: part_order 7 is beyond the cap of 3 parts"
    assert conv.inflight is None


def test_a_turn_the_front_end_finished_still_stops_being_in_flight() -> None:
    conv = Conversation()
    turn = sent_turn(conv)
    turn.finish("timed out", "the front end gave up")
    assert conv.end_turn(turn, "interrupted") == [Complete(turn)]
    assert conv.inflight is None and turn.outcome == "timed out"


def test_pending_messages_are_cancelled_or_failed() -> None:
    conv = Conversation()
    one, two = conv.queue(message(), "a"), conv.queue(message(), "b")
    conv.queue_keep("u1")
    assert conv.cancel_pending() == [one, two] and not conv.outbox
    assert one.outcome == "cancelled"
    three = conv.queue(message(), "c")
    assert conv.fail_pending("no way") == [three] and three.error == "no way"


# ---- classify and the error roots -----------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (FatalSessionError("401"), EndReason.FATAL),
        (HandshakeRefused("refused; logging in again"), EndReason.RELOGIN),
        (JoinRefused("at capacity"), EndReason.RETRY),
        (SessionError("connect: connection refused"), EndReason.RETRY),
        (RuntimeError("a bug"), EndReason.RETRY),
    ],
)
def test_classify_maps_a_failed_attempt_to_what_comes_next(
    exc: BaseException, reason: EndReason
) -> None:
    assert classify(exc) is reason
    if isinstance(exc, SessionError):
        assert exc.retry is (reason is not EndReason.FATAL)


def test_every_error_root_is_a_user_error_with_a_one_line_str() -> None:
    for root in (
        api.APIError,
        ConfigError,
        CommandError,
        ProtocolError,
        SessionError,
        TurnOverflow,
    ):
        assert issubclass(root, UserError) and issubclass(root, UnithShellError), root
    assert issubclass(ProtocolError, ValueError)  # callers that catch ValueError still do
    assert str(UserError("two\nlines   here")) == "two lines here"
    assert str(api.ServerError("HTTP 500:\n boom", 500)) == "HTTP 500: boom"


def test_protocol_holds_wire_types_only() -> None:
    assert not hasattr(protocol, "Turn") and not hasattr(protocol, "TurnOverflow")


# ---- the session's one deadline timer -------------------------------------------------------


async def test_timed_waits_share_one_timer_and_stay_bounded() -> None:
    session = Session(SessionOptions(base_url="http://127.0.0.1:9", org="o", head="h"))
    turn = Turn(message_id=5)
    with pytest.raises(TimeoutError):
        await session.wait(turn, timeout=0.01)
    assert not turn.complete and id(turn) not in session._waiters

    # Many waits that end before their deadline leave no trail behind.
    for _ in range(1000):
        done = Turn(message_id=6)
        waiting = asyncio.ensure_future(session.wait(done, timeout=60.0))
        await asyncio.sleep(0)
        done.finish("last")
        session._resolve(done)
        assert await waiting is done
    assert len(session._timed) < 200
    # A short wait after many long ones still times out on time.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(session.wait(Turn(message_id=7), timeout=0.05), 5.0)
    await session.close()
