"""What each step kind does, on one shell: send and wait, pick, keep, wait, reconnect; then the
step's assertions and captures. See docs/testing.md for the reference of each kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from unith_shell.protocol import ServerEvent
from unith_shell.sanitize import sanitize
from unith_shell.scenario.assertions import AssertionRegistry, Outcome, Reply, run_check
from unith_shell.scenario.model import Expectation, Step, interpolate, references
from unith_shell.session import Session, State
from unith_shell.settings import Settings
from unith_shell.shell import Shell
from unith_shell.turn import Turn

#: A turn's outcome explained by an expected event: ``expect: {event: nlp_exception}``.
_EXPLAINED_BY = {
    "unith_nlp_exception": "nlp_exception",
    "conversation_end": "conversation_end",
    "timeout": "timeout",
}


@dataclass(slots=True)
class Failure:
    """One failed assertion: which, where, expected and actual (actual as the server sent it;
    reporters sanitise it)."""

    assertion: str
    expected: str
    actual: str
    line: int = 0


@dataclass(slots=True)
class StepResult:
    step: Step
    status: str = "passed"  # passed, failed, timeout, error, skipped
    failures: list[Failure] = field(default_factory=list)
    message: str = ""
    first_latency: float | None = None
    total_latency: float | None = None
    duration: float = 0.0


class ObservingShell(Shell):
    """A shell that also keeps the events it received, for the steps' assertions."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Events since the current step began (cleared per step: memory stays flat).
        self.events: list[ServerEvent] = []
        self.connect_mark = 0  # index into events where the latest connection began
        #: The events of the latest connection's handshake and greeting.
        self.greeting_events: list[ServerEvent] = []
        self.changed = asyncio.Event()

    def begin_step(self) -> None:
        self.events.clear()
        self.connect_mark = 0

    async def on_connect(self, session: Session) -> None:
        self.greeting_events = self.events[self.connect_mark :]
        await super().on_connect(session)

    async def on_event(self, session: Session, event: ServerEvent) -> None:
        await super().on_event(session, event)  # after_receive runs first, as in the shell
        self.events.append(event)
        self.changed.set()

    async def on_state(self, session: Session) -> None:
        if session.state in (State.CONNECTING, State.RECONNECTING):
            self.connect_mark = len(self.events)
        await super().on_state(session)
        self.changed.set()

    async def wait_change(self, deadline: float) -> None:
        """Until the next event or state change, or ``deadline`` (loop time)."""
        self.changed.clear()
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)


class StepRunner:
    """Executes steps on one shell; keeps the values captured so far."""

    def __init__(self, shell: ObservingShell, settings: Settings, registry: AssertionRegistry):
        self.shell = shell
        self.session = shell.session
        self.settings = settings
        self.registry = registry
        self.variables: dict[str, str] = {}

    async def run(self, step: Step) -> StepResult:
        result = StepResult(step)
        started = time.monotonic()
        options = self.session.options
        scenario_timeout = options.timeout
        if step.timeout is not None:
            options.timeout = step.timeout  # the session's per-frame watchdog, for this step
        try:
            await self._run(step, result)
        finally:
            options.timeout = scenario_timeout
            result.duration = time.monotonic() - started
        if result.status == "passed" and result.failures:
            result.status = "failed"
        return result

    def _limit(self, step: Step) -> float:
        return step.timeout or self.settings.timeout

    async def _run(self, step: Step, result: StepResult) -> None:
        loop = asyncio.get_running_loop()
        self.shell.begin_step()
        kind = step.kind
        if kind == "greeting":
            turn = self.session.greeting
            await self._check(step, result, turn, loop.time(), greeting=True)
        elif kind in ("user", "pick"):
            text = self._text_to_send(step, result)
            if text is None:
                return
            turn = await self.shell.send(text)
            if turn is None:
                result.failures.append(
                    Failure("send", "the message is sent", "cancelled by a plugin", step.line)
                )
                return
            await self._wait_turn(turn, step)
            await self._check(step, result, turn, loop.time() + self._limit(step))
        elif kind == "keep":
            await self.session.keep_session()
            await self._check(step, result, None, loop.time() + self._limit(step))
        elif kind == "wait":
            await asyncio.sleep(float(step.value))
            await self._check(step, result, None, loop.time())
        elif kind == "reconnect":
            before = self.session.connections
            self.session.reconnect()
            deadline = loop.time() + self.settings.connect_timeout + 2 * self._limit(step)
            while not (self.session.connected and self.session.connections > before):
                if loop.time() >= deadline:
                    why = self.session.last_error or "no connection in time"
                    result.status, result.message = "error", f"reconnect failed: {sanitize(why)}"
                    return
                await self.shell.wait_change(deadline)
            await self._check(step, result, self.session.greeting, loop.time(), greeting=True)

    def _text_to_send(self, step: Step, result: StepResult) -> str | None:
        if step.kind == "user":
            text = self._interpolate(step.value, step, result)
            return None if text is None else str(text)
        suggestions = self.shell.suggestions
        choice = step.value
        if isinstance(choice, int):
            if 1 <= choice <= len(suggestions):
                return suggestions[choice - 1]
        else:
            wanted = str(self._interpolate(choice, step, result) or "").casefold()
            for suggestion in suggestions:
                if suggestion.casefold() == wanted:
                    return suggestion
        offered = ", ".join(f"{i}) {s}" for i, s in enumerate(suggestions, 1)) or "none"
        result.failures.append(Failure("pick", f"a suggestion {choice!r}", offered, step.line))
        return None

    def _interpolate(self, value: Any, step: Step, result: StepResult, escape: bool = False) -> Any:
        missing = [name for name in references(value) if name not in self.variables]
        if missing:
            result.failures.append(
                Failure("capture", f"{{{missing[0]}}} captured earlier", "not captured", step.line)
            )
            return None
        return interpolate(value, self.variables, escape=escape)

    async def _wait_turn(self, turn: Turn, step: Step) -> None:
        # The session's watchdog ends a silent turn after `timeout`; this bounds a turn that
        # waits through reconnects (as pipe mode does).
        limit = self._limit(step) * 2 + self.settings.connect_timeout
        try:
            await self.session.wait(turn, timeout=limit)
        except TimeoutError:
            self.session.cancel_pending()
            if self.session.turn_in_flight is turn:
                await self.session.interrupt()
            turn.finish("timed out", f"no reply within {limit:g} s")

    async def _check(
        self,
        step: Step,
        result: StepResult,
        turn: Turn | None,
        deadline: float,
        *,
        greeting: bool = False,
    ) -> None:
        if turn is not None:
            result.first_latency, result.total_latency = turn.first_latency, turn.total_latency
        while True:
            reply = self._reply(turn, greeting)
            failures, waiting = self._assert(step, reply)
            if not failures or not waiting or asyncio.get_running_loop().time() >= deadline:
                break
            if self.session.state is not State.CONNECTED:
                break  # ended, timed out or gone: no more events will come on this socket
            await self.shell.wait_change(deadline)  # an expected event may still come
        explained = {
            spec["name"]
            for e in step.expect
            if e.kind == "event" and isinstance(e.argument, list)
            for spec in e.argument
        }
        if turn is not None and not turn.ok:
            outcome = turn.outcome or "open"
            if outcome == "timed out":
                result.status = "timeout"
                result.failures.append(Failure("reply", "a complete reply", _said(turn), step.line))
            elif _EXPLAINED_BY.get(outcome) not in explained:
                result.failures.append(Failure("reply", "a complete reply", _said(turn), step.line))
        result.failures.extend(failures)
        if turn is not None and not failures:
            self._capture(step, result, reply)
        for failure in result.failures:  # a key pasted into a message comes back in replies
            failure.expected = self.shell.scrub(failure.expected)
            failure.actual = self.shell.scrub(failure.actual)

    def _reply(self, turn: Turn | None, greeting: bool) -> Reply:
        events = list(self.shell.greeting_events if greeting else self.shell.events)
        if turn is None:
            return Reply(events=events)
        parts = turn.parts
        return Reply(
            text=turn.text,
            parts=[p.text for p in parts if p.text],
            spoken=parts,
            suggestions=list(turn.suggestions),
            events=events,
            outcome=turn.outcome,
            error=turn.error,
            first_latency=turn.first_latency,
            total_latency=turn.total_latency,
        )

    def _assert(self, step: Step, reply: Reply) -> tuple[list[Failure], bool]:
        failures: list[Failure] = []
        waiting = False
        for expectation in step.expect:
            kind = self.registry.get(expectation.kind)
            if kind is None:  # the loader checked; a plugin may have gone since
                failures.append(Failure(expectation.kind, "a known assertion", "unknown"))
                continue
            argument = self._argument(expectation, kind.regex, kind.parse)
            if argument is _MISSING:
                failures.append(
                    Failure(
                        "capture",
                        "the values it refers to captured earlier",
                        "not captured",
                        expectation.line,
                    )
                )
                continue
            reply.options = expectation.options
            outcome: Outcome = run_check(kind, reply, argument)
            if not outcome.passed:
                failures.append(
                    Failure(kind.name, outcome.expected, outcome.actual, expectation.line)
                )
                waiting = waiting or kind.waits
        return failures, waiting

    def _argument(
        self, expectation: Expectation, regex: bool, parse: Callable[[Any], Any] | None
    ) -> Any:
        refs = references(expectation.raw)
        if not refs:
            return expectation.argument
        if any(name not in self.variables for name in refs):
            return _MISSING
        raw = interpolate(expectation.raw, self.variables, escape=regex)
        return parse(raw) if parse is not None else raw

    def _capture(self, step: Step, result: StepResult, reply: Reply) -> None:
        for capture in step.capture:
            pattern = interpolate(capture.pattern, self.variables, escape=True)
            match = re.search(pattern, reply.text)
            if match is None:
                result.failures.append(
                    Failure("capture", f"/{capture.pattern}/ matches", reply.text, capture.line)
                )
                continue
            for name, value in match.groupdict().items():
                if value is not None:
                    self.variables[name] = value
            if capture.name is not None:
                if capture.name in match.groupdict():
                    value = match.group(capture.name)
                else:
                    value = match.group(1) if match.re.groups else match.group(0)
                self.variables[capture.name] = value or ""


_MISSING = object()


def _said(turn: Turn) -> str:
    why = turn.error or ""
    return f"{turn.outcome}: {why}" if why else str(turn.outcome)
