"""Scenario files -> :class:`~.model.Scenario`, or one line: ``file:line: problem``.

YAML is read with PyYAML's safe loader (JSON is YAML, so ``.json`` files go the same way);
the node tree is walked rather than the constructed value, so every problem can name its
line. Unknown keys get a did-you-mean. Nothing here connects anywhere.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from unith_shell.scenario.assertions import AssertionRegistry
from unith_shell.scenario.model import (
    Capture,
    Expectation,
    MatchOptions,
    Scenario,
    Step,
    interpolate,
    parse_duration,
    references,
)

SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILE_BYTES = 1 << 20  # a scenario is a short script; this bounds what a typo can load
TOP_KEYS = (
    "name",
    "description",
    "head",
    "timeout",
    "ignore_case",
    "normalize_whitespace",
    "steps",
)
STEP_KINDS = ("greeting", "user", "pick", "keep", "wait", "reconnect")
STEP_KEYS = ("expect", "capture", "timeout", "name")
OPTION_KEYS = ("ignore_case", "normalize_whitespace")
_HEAD = re.compile(r"^[\w.-]+(/[\w.-]+)?$")

Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _scalar(node: yaml.ScalarNode) -> Any:
    """A scalar with YAML's safe type resolution (``12`` an int, ``true`` a bool)."""
    value = _CONSTRUCTOR.construct_object(node, deep=True)
    _CONSTRUCTOR.constructed_objects.clear()  # it memoises by node: keep memory flat
    return value


_CONSTRUCTOR = yaml.SafeLoader("")


class ScenarioError(Exception):
    """A malformed scenario file; ``str()`` is one line: ``file:line: problem``."""

    def __init__(self, path: Path | str, line: int, message: str) -> None:
        self.path, self.line = str(path), line
        self.message = " ".join(message.split())
        where = f"{self.path}:{line}" if line else self.path  # 0: the file as a whole
        super().__init__(f"{where}: {self.message}")


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """``; did you mean 'x'?`` for the closest known word, or the list of known words."""
    options = list(known)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; expected one of: {', '.join(options)}"


def find_files(paths: Iterable[Path]) -> list[Path]:
    """Files given, and scenario files (``*.yaml``, ``*.yml``, ``*.json``) under folders."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file()))
        elif path.exists():
            found.append(path)
        else:
            raise ScenarioError(path, 0, "no such file or folder")
    return found


def looks_like_scenario(path: Path) -> bool:
    """A mapping at the top with a ``steps`` key: how pytest tells scenarios from other YAML."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return False
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=Loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(node, yaml.MappingNode) and any(
        isinstance(k, yaml.ScalarNode) and k.value == "steps" for k, _ in node.value
    )


def load_file(path: Path, registry: AssertionRegistry) -> Scenario:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ScenarioError(path, 0, f"file too big ({size} bytes > {MAX_FILE_BYTES})")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(path, 0, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ScenarioError(path, 0, "not UTF-8 text") from None
    return load_text(text, path, registry)


def load_text(text: str, path: Path, registry: AssertionRegistry) -> Scenario:
    try:
        node = yaml.compose(text, Loader=Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise ScenarioError(path, line, f"not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(path, 0, f"not valid YAML: {exc}") from None
    return _Reader(path, registry).scenario(node)


class _Reader:
    def __init__(self, path: Path, registry: AssertionRegistry) -> None:
        self.path = path
        self.registry = registry
        self.captured: set[str] = set()

    # ---- helpers ----------------------------------------------------------------------------

    def error(self, node: yaml.Node | None, message: str) -> ScenarioError:
        line = node.start_mark.line + 1 if node is not None else 0
        return ScenarioError(self.path, line, message)

    def value(self, node: yaml.Node) -> Any:
        """A node as plain Python (safe constructors only)."""
        if isinstance(node, yaml.ScalarNode):
            return _scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item) for item in node.value]
        if isinstance(node, yaml.MappingNode):
            return {self.key(k): self.value(v) for k, v in self.items(node)}
        raise self.error(node, "unsupported YAML node")

    def key(self, node: yaml.Node) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, "a key must be plain text")
        return str(node.value)

    def items(self, node: yaml.MappingNode) -> Iterator[tuple[yaml.Node, yaml.Node]]:
        seen: set[str] = set()
        for key, value in node.value:
            name = self.key(key)
            if name == "<<":
                raise self.error(key, "merge keys (<<) are not supported")
            if name in seen:
                raise self.error(key, f"{name!r} is given twice")
            seen.add(name)
            yield key, value

    def mapping(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{what} must be a mapping (key: value)")
        return [(self.key(k), k, v) for k, v in self.items(node)]

    def unknown(self, key_node: yaml.Node, key: str, known: Iterable[str], what: str) -> None:
        raise self.error(key_node, f"unknown {what} {key!r}{did_you_mean(key, known)}")

    def flag(self, node: yaml.Node, name: str) -> bool:
        value = self.value(node)
        if not isinstance(value, bool):
            raise self.error(node, f"{name} must be true or false")
        return value

    def duration(self, node: yaml.Node, name: str) -> float:
        try:
            seconds = parse_duration(self.value(node))
        except ValueError as exc:
            raise self.error(node, f"{name}: {exc}") from None
        if seconds <= 0 and name != "wait":
            raise self.error(node, f"{name} must be more than 0")
        return seconds

    # ---- the document -----------------------------------------------------------------------

    def scenario(self, root: yaml.Node | None) -> Scenario:
        if root is None:
            raise ScenarioError(self.path, 1, "empty file; a scenario needs 'steps'")
        entries = self.mapping(root, "a scenario")
        name = self.path.stem
        head: str | None = None
        timeout: float | None = None
        description = ""
        options: dict[str, bool] = {}
        steps_node: yaml.Node | None = None
        for key, key_node, node in entries:
            if key not in TOP_KEYS:
                self.unknown(key_node, key, TOP_KEYS, "key")
            if key == "name":
                name = self.text(node, "name")
            elif key == "description":
                description = self.text(node, "description")
            elif key == "head":
                head = self.text(node, "head")
                if not _HEAD.match(head):
                    raise self.error(node, f"head must be ORG/HEAD or HEAD, got {head!r}")
            elif key == "timeout":
                timeout = self.duration(node, "timeout")
            elif key in OPTION_KEYS:
                options[key] = self.flag(node, key)
            else:
                steps_node = node
        if steps_node is None:
            raise self.error(root, "a scenario needs 'steps' (a list of steps)")
        if not isinstance(steps_node, yaml.SequenceNode) or not steps_node.value:
            raise self.error(steps_node, "steps must be a non-empty list")
        defaults = MatchOptions(**options)
        steps = [
            self.step(index, node, defaults) for index, node in enumerate(steps_node.value, start=1)
        ]
        return Scenario(
            name, self.path, root.start_mark.line + 1, steps, head, timeout, description
        )

    def text(self, node: yaml.Node, what: str) -> str:
        value = self.value(node)
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.error(node, f"{what} must be text")
        return str(value)

    def step(self, index: int, node: yaml.Node, defaults: MatchOptions) -> Step:
        entries = self.mapping(node, f"step {index}")
        kinds = [(k, kn, v) for k, kn, v in entries if k in STEP_KINDS]
        for key, key_node, _ in entries:
            if key not in STEP_KINDS and key not in STEP_KEYS:
                self.unknown(key_node, key, (*STEP_KINDS, *STEP_KEYS), "step key")
        if len(kinds) != 1:
            said = "none" if not kinds else ", ".join(k for k, _, _ in kinds)
            raise self.error(
                node, f"step {index} needs exactly one of {', '.join(STEP_KINDS)} (has {said})"
            )
        kind, _, value_node = kinds[0]
        line = node.start_mark.line + 1
        step = Step(index, line, kind, None)
        expect_node: yaml.Node | None = None
        for key, _, child in entries:
            if key == "expect":
                expect_node = child
            elif key == "timeout":
                step.timeout = self.duration(child, "timeout")
            elif key == "name":
                step.name = self.text(child, "name")
        step.value = self.step_value(kind, value_node)
        if kind in ("greeting", "reconnect") and isinstance(value_node, yaml.MappingNode):
            # `greeting: {contains: Aiko}`: the value is the expectation itself.
            if expect_node is not None:
                raise self.error(value_node, f"{kind}: give the checks here or in expect, not both")
            expect_node, step.value = value_node, None
        if expect_node is not None:
            step.expect = self.expectations(expect_node, kind, defaults)
        for key, _, child in entries:
            if key == "capture":
                if kind in ("keep", "wait"):
                    raise self.error(child, f"a {kind} step has no reply to capture from")
                step.capture = self.captures(child)
        for ref in references(step.value) if kind == "user" else []:
            self.check_reference(ref, value_node)
        return step

    def step_value(self, kind: str, node: yaml.Node) -> Any:
        value = self.value(node) if not isinstance(node, yaml.MappingNode) else None
        if kind == "user":
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise self.error(node, "user: expected the message text")
            if not str(value).strip():
                raise self.error(node, "user: the message is empty")
            return str(value)
        if kind == "pick":
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise self.error(node, "pick: expected a suggestion number (1, 2, ...) or text")
            if isinstance(value, int) and value < 1:
                raise self.error(node, "pick: suggestions are numbered from 1")
            return value
        if kind == "wait":
            return self.duration(node, "wait")
        if kind in ("greeting", "reconnect") and isinstance(node, yaml.MappingNode):
            return None
        if value not in (None, True):
            raise self.error(node, f"{kind}: expected nothing, true, or a mapping of checks")
        return None

    def expectations(self, node: yaml.Node, kind: str, defaults: MatchOptions) -> list[Expectation]:
        entries = self.mapping(node, "expect")
        options = {k: getattr(defaults, k) for k in OPTION_KEYS}
        for key, _, child in entries:
            if key in OPTION_KEYS:
                options[key] = self.flag(child, key)
        match = MatchOptions(**options)
        found: list[Expectation] = []
        for key, key_node, child in entries:
            if key in OPTION_KEYS:
                continue
            assertion = self.registry.get(key)
            if assertion is None:
                known = [*sorted(self.registry.kinds), *OPTION_KEYS]
                self.unknown(key_node, key, known, "assertion")
                raise AssertionError  # unreachable: unknown() raises
            if assertion.needs_turn and kind in ("keep", "wait"):
                raise self.error(key_node, f"{key}: a {kind} step has no reply to check")
            raw = self.value(child)
            refs = references(raw)
            for ref in refs:
                self.check_reference(ref, child)
            # Without references the value is final now (`{{` is a literal brace); with them,
            # the runner fills them in and parses again.
            argument = raw if refs else interpolate(raw, {}, escape=assertion.regex)
            if assertion.parse is not None:
                try:
                    argument = assertion.parse(argument)
                except (ValueError, TypeError) as exc:
                    raise self.error(child, f"{key}: {exc}") from None
            found.append(Expectation(key, argument, raw, key_node.start_mark.line + 1, match))
        return found

    def captures(self, node: yaml.Node) -> list[Capture]:
        """``capture: {name: REGEX}`` or ``capture: REGEX`` with named groups."""
        line = node.start_mark.line + 1
        pairs: list[tuple[str | None, yaml.Node]]
        if isinstance(node, yaml.MappingNode):
            pairs = [(self.key(k), v) for k, v in self.items(node)]
        else:
            pairs = [(None, node)]
        found: list[Capture] = []
        for name, child in pairs:
            if name is not None and not name.isidentifier():
                raise self.error(child, f"capture name {name!r} must be an identifier")
            pattern = self.text(child, "capture")
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise self.error(child, f"capture: bad regular expression: {exc}") from None
            if name is None and not compiled.groupindex:
                raise self.error(
                    child, "capture: name the value ({name: REGEX}) or use (?P<name>...)"
                )
            for ref in references(pattern):
                self.check_reference(ref, child)
            found.append(Capture(name, pattern, line))
            self.captured.update(compiled.groupindex)
            if name is not None:
                self.captured.add(name)
        return found

    def check_reference(self, name: str, node: yaml.Node) -> None:
        if name not in self.captured:
            hint = did_you_mean(name, sorted(self.captured)) if self.captured else ""
            where = "; no earlier step captures a value" if not self.captured else hint
            raise self.error(node, f"{{{name}}} is not captured by an earlier step{where}")
