"""The scenario runner against the real local server, over real sockets, in-process."""

from __future__ import annotations

import io
import json
import os
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO
from unith_shell import api
from unith_shell.config_file import load_settings
from unith_shell.files import paths
from unith_shell.scenario import report
from unith_shell.scenario.assertions import load_registry
from unith_shell.scenario.loader import load_file
from unith_shell.scenario.runner import (
    EXIT_CONNECT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMEOUT,
    RunConfig,
    ScenarioResult,
    exit_status,
    make_jobs,
    run_jobs,
)
from unith_shell.server import LocalServer

RUN_ID = "ut-test-0001"


async def run(
    tmp_path: Path,
    base_url: str,
    text: str,
    *,
    heads: tuple[str, ...] = (),
    repeat: int = 1,
    jobs: int = 1,
    fail_fast: bool = False,
    **flags: Any,
) -> list[ScenarioResult]:
    """Write ``text`` as a scenario file and run it as ``unith-shell test`` would."""
    path = tmp_path / f"scenario{len(list(tmp_path.glob('*.yaml')))}.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    env = dict(os.environ)
    settings = load_settings({"base_url": base_url, **flags}, env=env).settings
    notes: list[str] = []
    registry = load_registry(settings, paths(env), env, notes.append)
    scenario = load_file(path, registry)
    config = RunConfig(settings, paths(env), env, registry, RUN_ID, repeat, jobs, fail_fast)
    try:
        return await run_jobs(make_jobs([scenario], list(heads), settings, repeat), config)
    finally:
        await api.close_clients()


def only_failure(result: ScenarioResult) -> Any:
    failures = [f for s in result.steps for f in s.failures]
    assert len(failures) == 1, failures
    return failures[0]


async def test_the_issue_example_passes_and_sends_the_run_id(
    tmp_path: Path, server: LocalServer
) -> None:
    text = (REPO / "examples" / "menu.yaml").read_text(encoding="utf-8")
    [result] = await run(tmp_path, server.base_url, text)
    assert result.status == "passed", report.failure_text(result)
    assert [s.status for s in result.steps] == ["passed"] * 6
    handshakes = [f for f in server.received if "token" in f]
    assert handshakes and all(f.get("data_tag") == RUN_ID for f in handshakes)
    # the capture was used: the head was asked and answered with the captured number
    assert any(f.get("text") == "what was my order number?" for f in server.received)


async def test_a_changed_expectation_names_step_expected_and_actual(
    tmp_path: Path, server: LocalServer
) -> None:
    [result] = await run(
        tmp_path,
        server.base_url,
        """
        head: unith/aiko
        steps:
          - user: menu
            expect: {event: choice}
          - pick: 1
            expect: {regex: "(?i)weather"}
        """,
    )
    assert result.status == "failed"
    failure = only_failure(result)
    assert (failure.assertion, failure.expected, failure.line) == ("regex", "/(?i)weather/", 7)
    assert "Tell me a fact" in failure.actual
    text = report.failure_text(result)
    assert "step 2 (pick: 1)" in text and "expected: /(?i)weather/" in text
    assert "actual:   You said “Tell me a fact”" in text and "latency: first part" in text
    assert exit_status([result]) == EXIT_FAILED


async def test_every_builtin_assertion_passes_and_fails(
    tmp_path: Path, server: LocalServer
) -> None:
    good = """
        head: unith/aiko
        steps:
          - greeting: {contains: Aiko, parts: 2, video: true}
          - user: "my name is Ada"
            capture: "name is (?P<who>\\\\w+)"
            expect:
              contains: ["Ada", "Thanks"]
              not_contains: Bob
              any_of: [nothing, "Ada"]
              similar: {text: "You said “my name is Ada”. Thanks for telling me!", min: 0.3}
              parts: {min: 3, max: 3}
              suggestions: {count: 3}
              video: true
              latency: {first_part: 5s, last_part: 10000ms}
          - user: "what is my name"
            expect:
              regex: "your name is {who}\\\\."
              equals: "YOU TOLD ME YOUR NAME IS ADA. {{x}}"
              ignore_case: true
              normalize_whitespace: true
          - user: crash
            expect: {event: {name: nlp_exception, level: 500}}
        """
    # equals above cannot pass (the reply has more parts): exactly that one fails
    [result] = await run(tmp_path, server.base_url, good)
    failure = only_failure(result)
    assert failure.assertion == "equals" and failure.expected.endswith("{x}")
    assert [s.status for s in result.steps] == ["passed", "passed", "failed", "passed"]

    bad = """
        head: unith/aiko
        timeout: 0.5
        steps:
          - user: hello
            expect:
              contains: zebra
              not_contains: hello
              any_of: [zebra, lion]
              similar: {text: "completely different words here", min: 0.9}
              parts: 5
              suggestions: {contains: "Fly me to the moon"}
              video: false
              latency: {first_part: 0s}
              event: conversation_end
        """
    [result] = await run(tmp_path, server.base_url, bad)
    kinds = [f.assertion for s in result.steps for f in s.failures]
    assert kinds == [
        "contains",
        "not_contains",
        "any_of",
        "similar",
        "parts",
        "suggestions",
        "video",
        "latency",
        "event",
    ]


async def test_an_unexpected_error_turn_fails_unless_expected(
    tmp_path: Path, server: LocalServer
) -> None:
    [result] = await run(tmp_path, server.base_url, "head: unith/aiko\nsteps:\n  - user: error\n")
    failure = only_failure(result)
    assert failure.assertion == "reply" and "unith_nlp_exception" in failure.actual


async def test_a_silent_head_times_out_with_exit_4(tmp_path: Path, server: LocalServer) -> None:
    [result] = await run(
        tmp_path,
        server.base_url,
        "head: faults/silent\ntimeout: 0.3\nsteps:\n  - user: hi\n  - user: never sent\n",
    )
    assert result.status == "timeout"
    assert [s.status for s in result.steps] == ["timeout", "skipped"]
    assert exit_status([result]) == EXIT_TIMEOUT


async def test_a_refused_join_is_reported_as_refused(tmp_path: Path, server: LocalServer) -> None:
    [result] = await run(
        tmp_path, server.base_url, "steps:\n  - user: hi\n", heads=("faults/join-refused",)
    )
    assert result.status == "refused" and "join refused" in result.message
    assert exit_status([result]) == EXIT_CONNECT
    assert "refused (high demand)" in report.Summary([result], RUN_ID, 1.0).line()


async def test_no_server_is_exit_3(tmp_path: Path, server: LocalServer) -> None:
    [result] = await run(tmp_path, "http://127.0.0.1:9", "steps:\n  - user: hi\n")
    assert result.status == "error" and "cannot reach" in result.message
    assert exit_status([result]) == EXIT_CONNECT


async def test_matrix_jobs_and_fresh_sessions(tmp_path: Path, server: LocalServer) -> None:
    results = await run(
        tmp_path,
        server.base_url,
        "steps:\n  - greeting: {parts: {min: 1}}\n  - user: hello\n    expect: {contains: hello}\n",
        heads=("unith/aiko", "unith/kai", "faults/out-of-order"),
        repeat=2,
        jobs=3,
    )
    assert [r.job.head_key for r in results] == ["unith/aiko"] * 2 + ["unith/kai"] * 2 + [
        "faults/out-of-order"
    ] * 2
    assert [r.status for r in results] == ["passed"] * 6
    assert server.connections == 6  # one fresh session per scenario run
    assert exit_status(results) == EXIT_OK


async def test_repeat_on_a_flaky_head_reports_a_pass_rate(
    tmp_path: Path, server: LocalServer
) -> None:
    results = await run(
        tmp_path,
        server.base_url,
        "head: faults/flaky\nsteps:\n  - greeting: {}\n  - user: hi\n    expect: {contains: hi}\n",
        repeat=5,
    )
    passed = sum(r.status == "passed" for r in results)
    assert 2 <= passed <= 3  # every other reply is the wrong one
    lines = report.pass_rates(results)
    assert lines[0].endswith(f"{passed}/5 passed ({passed * 20}%)")
    assert lines[1].endswith("5/5 passed (100%)")  # the greeting step
    assert lines[2].endswith(f"{passed}/5 passed ({passed * 20}%)")


async def test_fail_fast_skips_what_has_not_started(tmp_path: Path, server: LocalServer) -> None:
    results = await run(
        tmp_path,
        server.base_url,
        "steps:\n  - user: hi\n    expect: {contains: zebra}\n",
        repeat=3,
        fail_fast=True,
    )
    assert [r.status for r in results] == ["failed", "skipped", "skipped"]


async def test_plugins_apply_to_scenarios_unless_switched_off(
    tmp_path: Path, server: LocalServer
) -> None:
    transform = str(REPO / "tests" / "plugin_fixtures" / "transform.py")
    text = "steps:\n  - user: hello\n    expect: {contains: '[t] You said “HELLO”'}\n"
    [result] = await run(tmp_path, server.base_url, text, plugins=[transform])
    assert result.status == "passed", report.failure_text(result)
    assert any(f.get("text") == "HELLO" for f in server.received)  # before_send ran
    [result] = await run(tmp_path, server.base_url, text, plugins=[transform], no_plugins=True)
    assert result.status == "failed"


PLUGIN = """
from unith_shell import hookimpl
from unith_shell.scenario import Outcome


@hookimpl
def register_assertions(register):
    register("max_words", max_words, parse=parse, help="at most N words")


def parse(value):
    if not isinstance(value, int):
        raise ValueError("expected a number of words")
    return value


def max_words(reply, expected):
    n = len(reply.text.split())
    return Outcome(n <= expected, f"at most {expected} words", f"{n} words")
"""


async def test_a_plugin_adds_an_assertion_kind(tmp_path: Path, server: LocalServer) -> None:
    plugin = tmp_path / "wordcount.py"
    plugin.write_text(PLUGIN, encoding="utf-8")
    text = "head: unith/aiko\nsteps:\n  - user: hi\n    expect: {max_words: %d}\n"
    [ok] = await run(tmp_path, server.base_url, text % 100, plugins=[str(plugin)])
    assert ok.status == "passed"
    [bad] = await run(tmp_path, server.base_url, text % 3, plugins=[str(plugin)])
    failure = only_failure(bad)
    assert failure.assertion == "max_words" and failure.expected == "at most 3 words"


async def test_reports_junit_tap_json_and_escaping(tmp_path: Path, server: LocalServer) -> None:
    results = await run(
        tmp_path,
        server.base_url,
        "steps:\n  - user: hi\n    expect: {contains: zebra}\n",
        heads=("faults/control-chars", "unith/aiko"),
    )
    results[1].status = "passed"  # pretend, to have both kinds in one report
    for step in results[1].steps:
        step.status, step.failures = "passed", []
    summary = report.Summary(results, RUN_ID, 1.5)

    root = ET.fromstring(report.junit_xml(summary))
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = suite.findall("testcase")
    failure = cases[0].find("failure")
    assert failure is not None and "expected: 'zebra'" in (failure.text or "")
    assert "\x1b" not in (failure.text or "") and "\\x1b[2J" in (failure.text or "")
    assert cases[1].find("failure") is None
    assert suite.find("properties/property[@name='run_id']").get("value") == RUN_ID  # type: ignore[union-attr]

    tap = report.tap(summary).splitlines()
    assert tap[:2] == ["TAP version 13", "1..2"]
    assert tap[3].startswith("not ok 1 - ") and "ok 2 - " in "\n".join(tap)
    assert "\x1b" not in "\n".join(tap)

    lines = [json.loads(line) for line in report.json_lines(summary).splitlines()]
    assert [line["event"] for line in lines] == ["scenario", "scenario", "summary"]
    assert lines[0]["steps"][0]["failures"][0]["assertion"] == "contains"
    assert "\x1b[2J" in lines[0]["steps"][0]["failures"][0]["actual"]  # JSON keeps it, escaped
    assert lines[2]["run_id"] == RUN_ID and lines[2]["failed"] == 1

    human = io.StringIO()
    report.HumanReport(human, live=False).report(summary)
    assert "\x1b" not in human.getvalue() and "\\x1b[2J" in human.getvalue()
    whole = report.human(summary)  # what --output gets: a line per run, then the details
    assert whole.startswith("FAIL scenario0 [faults/control-chars] (")
    assert whole.splitlines()[1].startswith("PASS ") and whole.endswith(summary.line() + "\n")


async def test_progress_in_place_on_a_terminal_plain_lines_otherwise(
    tmp_path: Path, server: LocalServer
) -> None:
    results = await run(tmp_path, server.base_url, "steps:\n  - user: hi\n")
    for live in (True, False):
        out = io.StringIO()
        progress = report.HumanReport(out, live=live)
        job = results[0].job
        progress.started(job)
        progress.step(job, job.scenario.steps[0])
        progress.finished(results[0])
        written = out.getvalue()
        assert ("\r\x1b[K" in written) is live
        assert ("running: " in written) is live
        assert "PASS " in written
        if not live:
            assert written.count("\n") == 1 and written.startswith("PASS ")


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "examples").rglob("*.yaml")))
def test_examples_load(name: str) -> None:
    env = dict(os.environ)
    settings = load_settings({}, env=env).settings
    registry = load_registry(settings, paths(env), env, print)
    [path] = list((REPO / "examples").rglob(name))
    assert load_file(path, registry).steps


async def test_every_session_hook_fires_as_in_the_shell(
    tmp_path: Path, server: LocalServer
) -> None:
    from tests.plugin_fixtures import recorder

    recorder.CALLS.clear()
    text = "steps:\n  - user: hello\n  - reconnect: {}\n  - user: bye\n"
    [result] = await run(
        tmp_path, server.base_url, text, plugins=["tests.plugin_fixtures.recorder"]
    )
    assert result.status == "passed", report.failure_text(result)
    hooks = [name for name, _ in recorder.CALLS]
    for hook in (
        "register_commands",
        "shell_start",
        "on_connect",
        "before_send",
        "after_receive",
        "turn_complete",
        "on_frame",
        "shell_exit",
    ):
        assert hook in hooks, hook
    assert hooks.count("on_connect") == 2  # the first connection and the reconnect
    assert hooks.index("shell_start") < hooks.index("on_connect") < hooks.index("before_send")
    assert hooks[-1] == "shell_exit"


async def test_a_strict_plugin_failure_ends_that_run_only(
    tmp_path: Path, server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = tmp_path / "boom.py"
    plugin.write_text(
        "from unith_shell import hookimpl\n\n\n@hookimpl\ndef before_send(message):\n"
        "    raise RuntimeError('boom')\n"
    )
    monkeypatch.setenv("UNITH_SHELL_STRICT_PLUGINS", "1")
    results = await run(
        tmp_path,
        server.base_url,
        "steps:\n  - user: hi\n  - user: again\n",
        plugins=[str(plugin)],
        repeat=2,
    )
    assert [r.status for r in results] == ["error", "error"]
    assert "boom" in results[0].message
    assert [s.status for s in results[0].steps] == ["skipped", "skipped"]


async def test_a_step_timeout_applies_to_that_step(tmp_path: Path, server: LocalServer) -> None:
    text = "head: faults/slow\ntimeout: 10\nsteps:\n  - user: hi\n    timeout: 0.3\n"
    [result] = await run(tmp_path, server.base_url, text)
    assert result.status == "timeout"  # parts come 1 s apart: more than this step allows
    assert result.steps[0].duration < 5
