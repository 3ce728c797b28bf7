"""docs/testing.md and the JSON Schema keep up with the scenario code; the loader's errors."""

from __future__ import annotations

import json
import os
import re
from importlib import resources
from pathlib import Path

import pytest

from tests.support import REPO
from unith_shell.config_file import load_settings
from unith_shell.files import paths
from unith_shell.scenario import builtin, loader
from unith_shell.scenario.assertions import AssertionRegistry, load_registry
from unith_shell.scenario.cli import _parser
from unith_shell.scenario.loader import ScenarioError, load_text
from unith_shell.scenario.model import parse_duration

DOC = (REPO / "docs" / "testing.md").read_text(encoding="utf-8")
SCHEMA = json.loads(resources.files("unith_shell.scenario").joinpath("schema.json").read_text())


def section(title: str) -> str:
    return DOC.split(f"\n### {title}\n", 1)[1].split("\n### ", 1)[0]


def headings(text: str) -> list[str]:
    return re.findall(r"^#### `(\w+)`$", text, flags=re.MULTILINE)


def registry(**flags: object) -> AssertionRegistry:
    env = dict(os.environ)
    settings = load_settings(flags, env=env).settings
    return load_registry(settings, paths(env), env, lambda text: None)


def test_every_step_kind_has_a_section() -> None:
    assert headings(section("Steps")) == list(loader.STEP_KINDS)


def test_every_registered_assertion_has_a_section() -> None:
    kinds = registry().kinds
    assert set(kinds) == {name for name, _, _ in builtin.BUILTINS}
    assert {k.plugin for k in kinds.values()} == {"assertions"}  # through the hook
    assert headings(section("Assertions")) == list(kinds)


def test_every_flag_is_documented() -> None:
    for action in _parser()._actions:
        for option in action.option_strings:
            if option not in ("-h", "--help"):
                assert f"`{option}" in DOC or f"{option} " in DOC, option


def test_schema_top_level_matches_the_loader() -> None:
    assert list(SCHEMA["properties"]) == list(loader.TOP_KEYS)
    assert SCHEMA["required"] == ["steps"]


def test_schema_steps_match_the_loader() -> None:
    step = SCHEMA["$defs"]["step"]
    assert list(step["properties"]) == [*loader.STEP_KINDS, *loader.STEP_KEYS]
    assert [one["required"] for one in step["oneOf"]] == [[kind] for kind in loader.STEP_KINDS]


def test_schema_assertions_and_events_match_the_registry() -> None:
    expect = SCHEMA["$defs"]["expect"]["properties"]
    assert list(expect) == [*(name for name, _, _ in builtin.BUILTINS), *loader.OPTION_KEYS]
    assert SCHEMA["$defs"]["event_name"]["enum"] == list(builtin.EVENTS)


@pytest.mark.parametrize("text", ["2s", "500ms", "0.5s", " 3 ", ".5s", "10", "2 days", "-1s",
                                  "1e3", "s", "5m"])  # fmt: skip
def test_schema_duration_pattern_agrees_with_the_parser(text: str) -> None:
    pattern = SCHEMA["$defs"]["duration"]["anyOf"][1]["pattern"]
    try:
        parse_duration(text)
        parsed = True
    except ValueError:
        parsed = False
    assert (re.search(pattern, text) is not None) == parsed


def load(text: str, reg: AssertionRegistry | None = None) -> object:
    return load_text(text, Path("s.yaml"), reg or registry())


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "s.yaml:1: empty file; a scenario needs 'steps'"),
        ("name: x\nstesp: []\n", "s.yaml:2: unknown key 'stesp'; did you mean 'steps'?"),
        ("steps:\n  - usr: hi\n", "s.yaml:2: unknown step key 'usr'; did you mean 'user'?"),
        ("steps:\n  - user: hi\n    expect: {contians: x}\n",
         "s.yaml:3: unknown assertion 'contians'; did you mean 'contains'?"),
        ("steps:\n  - user: hi\n    expect: {event: conversaton_end}\n",
         "s.yaml:3: event: unknown event 'conversaton_end'; did you mean 'conversation_end'?"),
        ("steps:\n  - user: hi\n    expect: {latency: {first_part: 2 days}}\n",
         "s.yaml:3: latency: not a duration: '2 days' (write 2s, 500ms or 0.5s)"),
        ("steps:\n  - user: hi\n    user: again\n", "s.yaml:3: 'user' is given twice"),
        ("steps:\n  - user: hi\n    pick: 1\n",
         "s.yaml:2: step 1 needs exactly one of greeting, user, pick, keep, wait, reconnect "
         "(has user, pick)"),
        ("steps:\n  - user: '{order}'\n",
         "s.yaml:2: {order} is not captured by an earlier step; no earlier step captures a value"),
        ("steps:\n  - user: hi\n    capture: {orders: '(\\d+)'}\n  - user: '{order}'\n",
         "s.yaml:4: {order} is not captured by an earlier step; did you mean 'orders'?"),
        ("steps:\n  - wait: 1s\n    expect: {contains: x}\n",
         "s.yaml:3: contains: a wait step has no reply to check"),
        ("steps:\n  - user: hi\n    expect: {regex: '(unclosed'}\n",
         "s.yaml:3: regex: bad regular expression '(unclosed': missing ), unterminated "
         "subpattern at position 0"),
        ("steps: [user: hi\n", "s.yaml:2: not valid YAML: did not find expected ',' or ']'"),
        ("steps:\n  - pick: 0\n", "s.yaml:2: pick: suggestions are numbered from 1"),
        ('{"steps": [{"user": "hi", "expect": {"parts": -1}}]}',
         "s.yaml:1: parts: parts: expected a whole number >= 0, got -1"),
    ],
)  # fmt: skip
def test_malformed_files_are_one_line_with_the_line(text: str, error: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        load(text)
    assert str(caught.value) == error
    assert "\n" not in str(caught.value)


def test_no_plugins_means_no_plugin_assertions(tmp_path: Path) -> None:
    plugin = tmp_path / "kinds.py"
    plugin.write_text(
        "from unith_shell import hookimpl\n\n\n@hookimpl\ndef register_assertions(register):\n"
        "    register('always', lambda reply, expected: True)\n"
    )
    text = "steps:\n  - user: hi\n    expect: {always: 1}\n"
    assert load(text, registry(plugins=[str(plugin)]))
    with pytest.raises(ScenarioError, match="unknown assertion 'always'"):
        load(text, registry(plugins=[str(plugin)], no_plugins=True))


def test_a_broken_register_assertions_keeps_the_others(tmp_path: Path) -> None:
    plugin = tmp_path / "broken.py"
    plugin.write_text(
        "from unith_shell import hookimpl\n\n\n@hookimpl\ndef register_assertions(register):\n"
        "    register('contains', lambda reply, expected: True)\n"
    )
    reg = registry(plugins=[str(plugin)])
    assert reg.kinds["contains"].plugin == "assertions"  # the bundled one kept its name
    assert reg.problems == [
        "plugin 'broken' failed in register_assertions: assertion 'contains' is taken "
        "(by 'assertions')"
    ]


def test_json_files_are_scenarios_too(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text('{"name": "j", "steps": [{"user": "hi", "expect": {"contains": "hi"}}]}')
    scenario = loader.load_file(path, registry())
    assert scenario.name == "j" and scenario.steps[0].expect[0].argument == ["hi"]
    assert loader.looks_like_scenario(path)
