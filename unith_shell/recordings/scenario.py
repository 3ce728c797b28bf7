"""A recording as a scenario for ``unith-shell test`` (the YAML structure of issue 11).

Each user turn becomes a ``user`` step (a ``pick`` step when the recorded text was one of the
suggestions offered just before), expecting the recorded reply text as a ``similar``
assertion, the recorded suggestions, and the recorded event (choice, conversation_end,
unith_nlp_exception). The greeting, when recorded, becomes a ``greeting`` step. The result is
plain data: dump it with PyYAML or ``json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unith_shell.recordings.format import RecordedTurn, Recording

#: The events a scenario can assert, in the order a turn's first one is taken.
ASSERTED_EVENTS = ("choice", "conversation_end", "unith_nlp_exception")
DEFAULT_THRESHOLD = 0.8


def _expect(text: str, suggestions: list[str], threshold: float) -> dict[str, Any]:
    expect: dict[str, Any] = {}
    if text:
        expect["similar"] = {"text": text, "threshold": threshold}
    if suggestions:
        expect["suggestions"] = {"count": len(suggestions), "contains": list(suggestions)}
    return expect


def _event(turn: RecordedTurn) -> str | None:
    for event in turn.events:
        name = event.partition(":")[0]
        if name in ASSERTED_EVENTS:
            return name
    return None


def scenario_from_recording(
    recording: Recording, threshold: float = DEFAULT_THRESHOLD, name: str | None = None
) -> dict[str, Any]:
    """The scenario (name, head, steps) that expects what ``recording`` shows."""
    steps: list[dict[str, Any]] = []
    greeting = "\n".join(t for t in recording.greeting_texts if t)
    if greeting:
        steps.append({"greeting": _expect(greeting, [], threshold)})
    for turn in recording.turns:
        step: dict[str, Any] = {"pick": turn.user} if turn.picked else {"user": turn.user}
        expect = _expect(turn.text, turn.suggestions, threshold)
        event = _event(turn)
        if event is not None:
            expect["event"] = event
        if expect:
            step["expect"] = expect
        steps.append(step)
    title = name or f"recorded {Path(recording.path).stem}"
    return {"name": title, "head": recording.head, "steps": steps}
