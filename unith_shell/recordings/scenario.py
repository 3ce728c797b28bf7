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

#: Recorded event names -> the scenario's event names (docs/testing.md, ``event``).
ASSERTED_EVENTS = {
    "choice": "choice",
    "conversation_end": "conversation_end",
    "unith_nlp_exception": "nlp_exception",
}
DEFAULT_THRESHOLD = 0.8


def _expect(text: str, suggestions: list[str], threshold: float) -> dict[str, Any]:
    expect: dict[str, Any] = {}
    if text:
        expect["similar"] = {"text": text, "min": threshold}
    if suggestions:
        expect["suggestions"] = {"count": len(suggestions), "contains": list(suggestions)}
    return expect


def _events(turn: RecordedTurn) -> list[dict[str, Any]]:
    """The turn's asserted events, each once, with an nlp exception's level when recorded."""
    wanted: list[dict[str, Any]] = []
    for recorded in turn.events:
        name, _, level = recorded.partition(":")
        if name not in ASSERTED_EVENTS:
            continue
        spec: dict[str, Any] = {"name": ASSERTED_EVENTS[name]}
        if level.isdigit():
            spec["level"] = int(level)
        if spec not in wanted:
            wanted.append(spec)
    return wanted


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
        events = _events(turn)
        if events:
            expect["event"] = events
        if expect:
            step["expect"] = expect
        steps.append(step)
    title = name or f"recorded {Path(recording.path).stem}"
    return {"name": title, "head": recording.head, "steps": steps}
