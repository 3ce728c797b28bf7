"""A parsed scenario: what the loader produces and the runner executes. No I/O here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: ``{name}`` in a step's text or expected value: a value captured by an earlier step.
#: ``{{`` and ``}}`` are literal braces; ``{5}`` (a regex quantifier) is not a reference.
REFERENCE = re.compile(r"\{\{|\}\}|\{([A-Za-z_]\w*)\}")


def references(value: Any) -> list[str]:
    """The capture names ``value`` (a string, or a list/dict of them) refers to."""
    if isinstance(value, str):
        return [m.group(1) for m in REFERENCE.finditer(value) if m.group(1)]
    if isinstance(value, list):
        return [name for item in value for name in references(item)]
    if isinstance(value, dict):
        return [name for item in value.values() for name in references(item)]
    return []


def interpolate(value: Any, variables: dict[str, str], *, escape: bool = False) -> Any:
    """``value`` with each ``{name}`` replaced by its captured text (``re.escape``-d when
    ``escape``: the value goes into a regular expression)."""
    if isinstance(value, str):

        def put(match: re.Match[str]) -> str:
            name = match.group(1)
            if name is None:
                return match.group()[0]
            text = variables[name]
            return re.escape(text) if escape else text

        return REFERENCE.sub(put, value) if "{" in value or "}" in value else value
    if isinstance(value, list):
        return [interpolate(item, variables, escape=escape) for item in value]
    if isinstance(value, dict):
        return {k: interpolate(v, variables, escape=escape) for k, v in value.items()}
    return value


@dataclass(frozen=True, slots=True)
class MatchOptions:
    """How text is compared: ``ignore_case`` and ``normalize_whitespace``."""

    ignore_case: bool = False
    normalize_whitespace: bool = False

    def fold(self, text: str) -> str:
        if self.normalize_whitespace:
            text = " ".join(text.split())
        if self.ignore_case:
            text = text.casefold()
        return text


@dataclass(slots=True)
class Expectation:
    """One assertion of a step: ``kind`` (a registered assertion) with its parsed argument."""

    kind: str
    argument: Any
    raw: Any  # as written, for interpolating captured values at run time
    line: int
    options: MatchOptions = field(default_factory=MatchOptions)


@dataclass(slots=True)
class Capture:
    """Store what ``pattern`` matches in the reply as ``name`` (and each named group)."""

    name: str | None  # None: only the pattern's named groups are stored
    pattern: str
    line: int


@dataclass(slots=True)
class Step:
    index: int  # 1-based
    line: int
    kind: str  # greeting, user, pick, keep, wait, reconnect
    value: Any
    expect: list[Expectation] = field(default_factory=list)
    capture: list[Capture] = field(default_factory=list)
    timeout: float | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        """``step 3 (user: 'menu')``: how reports name the step."""
        if self.name:
            return f"step {self.index} ({self.name})"
        if self.kind in ("user", "pick", "wait"):
            shown = self.value if not isinstance(self.value, str) else repr(self.value[:40])
            return f"step {self.index} ({self.kind}: {shown})"
        return f"step {self.index} ({self.kind})"


@dataclass(slots=True)
class Scenario:
    name: str
    path: Path
    line: int
    steps: list[Step]
    head: str | None = None  # "org/head" or "head"
    timeout: float | None = None
    description: str = ""

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s)?\s*$")


def parse_duration(value: Any) -> float:
    """Seconds from ``2s``, ``500ms``, ``0.5s``, or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r} (write 2s, 500ms or 0.5s)")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ValueError(f"not a duration: {value!r} (write 2s, 500ms or 0.5s)")
        seconds = float(match.group(1)) / (1000.0 if match.group(2) == "ms" else 1.0)
    if not 0 <= seconds < 86400:
        raise ValueError(f"duration out of range: {value!r}")
    return seconds
