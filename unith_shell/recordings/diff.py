"""Turn-by-turn comparison of two recordings (``unith-shell diff A B``).

Per turn: the user text, the reply text (a word diff, and a similarity ratio against
``threshold``), suggestions, events (choice, conversation_end, unith_nlp_exception with its
level, timeout, disconnect), part count, and latency to the first and last part with the
ratio B/A. Exit status like diff(1): 0 equal under the options, 1 different, 2 a bad file.
Everything printed from a recording passes :mod:`unith_shell.sanitize`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from unith_shell.recordings.format import RecordedTurn, Recording
from unith_shell.sanitize import sanitize, sanitize_block

EXIT_SAME = 0
EXIT_DIFFERENT = 1
EXIT_TROUBLE = 2


@dataclass(frozen=True, slots=True)
class DiffOptions:
    ignore_latency: bool = False
    ignore_case: bool = False
    ignore_whitespace: bool = False
    #: Reply texts at least this similar (difflib ratio, 0..1) count as the same.
    threshold: float = 1.0
    #: A latency changes when B/A is outside [1/ratio, ratio] ...
    latency_ratio: float = 2.0
    #: ... and the two differ by more than this many seconds (loopback jitter is not a change).
    latency_slack: float = 0.25


@dataclass(slots=True)
class TurnDiff:
    number: int  # 0 = the greeting
    a: RecordedTurn | None
    b: RecordedTurn | None
    changed: list[str] = field(default_factory=list)  # the aspects that differ
    similarity: float = 1.0

    @property
    def equal(self) -> bool:
        return not self.changed


def _norm(text: str, opts: DiffOptions) -> str:
    if opts.ignore_whitespace:
        text = " ".join(text.split())
    if opts.ignore_case:
        text = text.casefold()
    return text


def similarity(a: str, b: str, opts: DiffOptions) -> float:
    na, nb = _norm(a, opts), _norm(b, opts)
    if na == nb:
        return 1.0
    return difflib.SequenceMatcher(None, na, nb, autojunk=False).ratio()


def _latency_changed(a: float | None, b: float | None, opts: DiffOptions) -> bool:
    if a is None or b is None:
        return (a is None) != (b is None)
    if abs(a - b) <= opts.latency_slack:
        return False
    low, high = sorted((max(a, 1e-6), max(b, 1e-6)))
    return high / low > opts.latency_ratio


def compare_turns(
    number: int, a: RecordedTurn | None, b: RecordedTurn | None, opts: DiffOptions
) -> TurnDiff:
    diff = TurnDiff(number, a, b)
    if a is None or b is None:
        diff.changed.append("missing")
        return diff
    changed = diff.changed
    if _norm(a.user, opts) != _norm(b.user, opts):
        changed.append("user")
    diff.similarity = similarity(a.text, b.text, opts)
    if diff.similarity < opts.threshold:
        changed.append("text")
    if [_norm(s, opts) for s in a.suggestions] != [_norm(s, opts) for s in b.suggestions]:
        changed.append("suggestions")
    if a.events != b.events:
        changed.append("events")
    if a.parts != b.parts:
        changed.append("parts")
    if not opts.ignore_latency and (
        _latency_changed(a.first_latency, b.first_latency, opts)
        or _latency_changed(a.last_latency, b.last_latency, opts)
    ):
        changed.append("latency")
    return diff


def greeting_diff(a: Recording, b: Recording, opts: DiffOptions) -> TurnDiff | None:
    """The greetings compared (text and suggestions), when both recordings have one."""
    ga, gb = _greeting(a), _greeting(b)
    if ga is None or gb is None:
        return None
    greeting = compare_turns(0, ga, gb, opts)
    # Only the text and suggestions of a greeting are compared: it has no timing.
    greeting.changed = [c for c in greeting.changed if c in ("text", "suggestions")]
    return greeting


def _greeting(recording: Recording) -> RecordedTurn | None:
    texts = [t for t in recording.greeting_texts if t]
    if not texts:
        return None
    turn = RecordedTurn(0, None, "", None, 0.0)
    turn.text = "\n".join(texts)
    turn.suggestions = recording.greeting_suggestions
    return turn


def compare(a: Recording, b: Recording, opts: DiffOptions) -> list[TurnDiff]:
    """One :class:`TurnDiff` per turn (the greeting first, when both recorded one)."""
    greeting = greeting_diff(a, b, opts)
    diffs: list[TurnDiff] = [] if greeting is None else [greeting]
    for index in range(max(len(a.turns), len(b.turns))):
        ta = a.turns[index] if index < len(a.turns) else None
        tb = b.turns[index] if index < len(b.turns) else None
        diffs.append(compare_turns(index + 1, ta, tb, opts))
    return diffs


# -- output ----------------------------------------------------------------------------------

Paint = Callable[[str, str], str]

_COLORS = {"del": "\x1b[31m", "add": "\x1b[32m", "head": "\x1b[33m", "dim": "\x1b[2m"}


def painter(color: bool) -> Paint:
    def paint(kind: str, text: str) -> str:
        return f"{_COLORS[kind]}{text}\x1b[0m" if color and text else text

    return paint


def word_diff(a: str, b: str, paint: Paint) -> str:
    """``a`` to ``b`` word by word, git style: ``[-removed-]{+added+}`` (coloured on a tty).

    Both texts are sanitised first, so the markup is the only thing this adds."""
    wa, wb = sanitize_block(a).split(), sanitize_block(b).split()
    out: list[str] = []
    matcher = difflib.SequenceMatcher(None, wa, wb, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            out.append(" ".join(wa[i1:i2]))
            continue
        if i2 > i1:
            out.append(paint("del", "[-" + " ".join(wa[i1:i2]) + "-]"))
        if j2 > j1:
            out.append(paint("add", "{+" + " ".join(wb[j1:j2]) + "+}"))
    return " ".join(out)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}ms"


def _ratio(a: float | None, b: float | None) -> str:
    value = _raw_ratio(a, b)
    return "" if value is None else f" x{value:.2f}"


def latency_text(a: RecordedTurn, b: RecordedTurn) -> str:
    return (
        f"first {_ms(a.first_latency)} -> {_ms(b.first_latency)}"
        f"{_ratio(a.first_latency, b.first_latency)}, "
        f"last {_ms(a.last_latency)} -> {_ms(b.last_latency)}"
        f"{_ratio(a.last_latency, b.last_latency)}"
    )


def _quote(text: str, limit: int = 50) -> str:
    # repr first, then the gate: sanitising first made repr double every escape (`\\x1b`).
    one = " ".join(text.split())
    return sanitize(repr(one if len(one) <= limit else one[: limit - 3] + "..."))


def _items(values: list[str]) -> str:
    return "[" + ", ".join(_quote(v, 40) for v in values) + "]"


def render_turn(diff: TurnDiff, opts: DiffOptions, paint: Paint) -> list[str]:
    """The lines of one turn's comparison (already sanitised)."""
    a, b = diff.a, diff.b
    label = "greeting" if diff.number == 0 else f"turn {diff.number}"
    if a is None or b is None:
        present = a or b
        assert present is not None
        side = "B" if b is None else "A"
        return [
            paint("head", f"{label} {_quote(present.user)}: only in {'A' if a else 'B'}")
            + f" (missing in {side})"
        ]
    user = f" {_quote(a.user)}" if diff.number else ""
    timing = "" if opts.ignore_latency or diff.number == 0 else f" ({latency_text(a, b)})"
    if diff.equal:
        return [f"{label}{user}: same{timing}"]
    lines = [paint("head", f"{label}{user}: changed: {', '.join(diff.changed)}")]
    if "user" in diff.changed:
        lines.append(f"    user: {_quote(a.user)} -> {_quote(b.user)}")
    if "text" in diff.changed:
        lines.append(
            f"    text ({diff.similarity:.2f} similar): {word_diff(a.text, b.text, paint)}"
        )
    if "suggestions" in diff.changed:
        lines.append(f"    suggestions: {_items(a.suggestions)} -> {_items(b.suggestions)}")
    if "events" in diff.changed:
        lines.append(f"    events: {_items(a.events)} -> {_items(b.events)}")
    if "parts" in diff.changed:
        lines.append(f"    parts: {a.parts} -> {b.parts}")
    if "latency" in diff.changed or (timing and diff.number):
        lines.append(f"    latency: {latency_text(a, b)}")
    return lines


def _turn_json(turn: RecordedTurn | None) -> dict[str, Any] | None:
    if turn is None:
        return None
    return {
        "user": turn.user,
        "text": turn.text,
        "suggestions": turn.suggestions,
        "events": turn.events,
        "parts": turn.parts,
        "first_latency": None if turn.first_latency is None else round(turn.first_latency, 3),
        "last_latency": None if turn.last_latency is None else round(turn.last_latency, 3),
    }


def diff_json(diff: TurnDiff) -> dict[str, Any]:
    """One turn as a JSON object (serialise with :func:`unith_shell.sanitize.json_line`)."""
    obj: dict[str, Any] = {
        "turn": diff.number,
        "equal": diff.equal,
        "changed": diff.changed,
        "similarity": round(diff.similarity, 4),
        "a": _turn_json(diff.a),
        "b": _turn_json(diff.b),
    }
    if diff.a is not None and diff.b is not None:
        obj["latency_ratio"] = {
            "first": _raw_ratio(diff.a.first_latency, diff.b.first_latency),
            "last": _raw_ratio(diff.a.last_latency, diff.b.last_latency),
        }
    return obj


def _raw_ratio(a: float | None, b: float | None) -> float | None:
    """B/A, when both are at least a millisecond (recorded times have millisecond steps)."""
    if a is None or b is None or a < 0.001 or b < 0.001:
        return None
    return round(b / a, 4)


def summary_line(diffs: list[TurnDiff]) -> str:
    differing = sum(1 for d in diffs if not d.equal)
    turns = sum(1 for d in diffs if d.number)
    if not differing:
        return f"no differences ({turns} turn(s))"
    return f"{differing} of {len(diffs)} compared turn(s) differ"
