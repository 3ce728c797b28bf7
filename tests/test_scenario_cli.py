"""``unith-shell test`` and the pytest plugin as users run them: real processes, real sockets."""

from __future__ import annotations

import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.support import REPO, UNITH_SHELL, cli_env

MENU = REPO / "examples" / "menu.yaml"


def unith_test(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*UNITH_SHELL, "test", *args],
        capture_output=True,
        text=True,
        env=cli_env(home),
        timeout=timeout,
        cwd=REPO,
    )


def changed_menu(tmp_path: Path) -> Path:
    changed = tmp_path / "menu.yaml"
    text = MENU.read_text(encoding="utf-8")
    changed.write_text(text.replace("(?i)menu|fact", "(?i)weather"), encoding="utf-8")
    return changed


def test_the_issue_example_passes_with_local(shell_home: Path) -> None:
    proc = unith_test(shell_home, str(MENU), "--local")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("PASS menu and goodbye [unith/aiko]")
    assert "1 passed in " in proc.stdout and "(run id ut-" in proc.stdout
    assert "\x1b" not in proc.stdout  # not a terminal: plain lines


def test_a_changed_expectation_fails_naming_the_step(shell_home: Path, tmp_path: Path) -> None:
    proc = unith_test(shell_home, str(changed_menu(tmp_path)), "--local")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "FAIL menu and goodbye [unith/aiko]" in out
    assert f"step 3 (pick: 1) at {tmp_path / 'menu.yaml'}:12" in out
    assert "regex (line 13)" in out and "expected: /(?i)weather/" in out
    assert "actual:   You said “Tell me a fact”" in out and "latency: first part" in out
    assert "0 passed, 1 failed" in out


def test_junit_output_is_valid_xml(shell_home: Path, tmp_path: Path) -> None:
    report = tmp_path / "out" / "junit.xml"
    report.parent.mkdir()
    proc = unith_test(
        shell_home,
        str(MENU),
        str(changed_menu(tmp_path)),
        "--local",
        "--format",
        "junit",
        "--output",
        str(report),
        "--run-id",
        "ci-42",
    )
    assert proc.returncode == 1, proc.stderr
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "1", "0")
    cases = suite.findall("testcase")
    assert [c.find("failure") is None for c in cases] == [True, False]
    failure = cases[1].find("failure")
    assert failure is not None and "expected: /(?i)weather/" in (failure.text or "")
    assert "(run id ci-42)" in proc.stderr  # the human summary went to stderr


def test_repeat_on_the_flaky_head_reports_pass_rates(shell_home: Path, tmp_path: Path) -> None:
    flaky = tmp_path / "flaky.yaml"
    flaky.write_text(
        "name: flaky\nhead: faults/flaky\nsteps:\n  - user: hi\n    expect: {contains: hi}\n"
    )
    proc = unith_test(shell_home, str(flaky), "--local", "--repeat", "5")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # a fresh server: replies 2 and 4 are the wrong ones
    assert "flaky [faults/flaky]: 3/5 passed (60%)" in proc.stdout
    assert "step 1 (user: 'hi'): 3/5 passed (60%)" in proc.stdout
    assert "3 passed, 2 failed" in proc.stdout


def test_a_malformed_file_is_one_line_exit_2_and_no_connection(
    shell_home: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: typo\nsteps:\n  - user: hi\n    expect: {contians: hi}\n")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        proc = unith_test(shell_home, str(bad), "--base-url", f"http://127.0.0.1:{port}")
        try:
            listener.accept()
            connected = True
        except BlockingIOError:
            connected = False
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"unith-shell test: {bad}:4: unknown assertion 'contians'; did you mean 'contains'?"
    ]
    assert not connected


def test_usage_errors_exit_2(shell_home: Path, tmp_path: Path) -> None:
    proc = unith_test(shell_home, str(MENU), "--repeat", "0")
    assert proc.returncode == 2 and "--repeat" in proc.stderr
    proc = unith_test(shell_home, str(tmp_path / "missing.yaml"))
    assert proc.returncode == 2 and "no such file" in proc.stderr
    proc = unith_test(shell_home, str(MENU), "-k", "nothing matches this")
    assert proc.returncode == 2 and "no scenarios" in proc.stderr


def pytest_run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        capture_output=True,
        text=True,
        env=cli_env(cwd / "home"),
        timeout=120,
        cwd=cwd,
    )


def test_pytest_runs_the_examples(shell_home: Path, tmp_path: Path) -> None:
    proc = pytest_run(REPO, "-p", "unith_shell.pytest_plugin", "examples/", "-q")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    count = len(list((REPO / "examples").rglob("*.yaml")))
    assert f"{count} passed" in proc.stdout


def test_pytest_plugin_is_opt_in_and_reports_steps(tmp_path: Path) -> None:
    (tmp_path / "menu.yaml").write_text(MENU.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "sub").mkdir()
    changed_menu(tmp_path / "sub")
    (tmp_path / "ci.yaml").write_text("jobs:\n  build: {steps: []}\n")  # not a scenario
    plain = pytest_run(tmp_path, "--collect-only", "-q")
    assert plain.returncode == 5 and "no tests" in plain.stdout, plain.stdout  # nothing
    opted = pytest_run(tmp_path, "-p", "unith_shell.pytest_plugin", "--unith-local", "-q")
    assert opted.returncode == 1, opted.stdout[-3000:]
    assert "1 failed, 1 passed" in opted.stdout
    assert "step 3 (pick: 1)" in opted.stdout and "expected: /(?i)weather/" in opted.stdout


def test_progress_is_updated_in_place_in_a_terminal(shell_home: Path, tmp_path: Path) -> None:
    import pexpect

    slow = tmp_path / "slow.yaml"
    slow.write_text("name: slow\nsteps:\n  - greeting: {}\n  - wait: 0.5s\n  - user: hi\n")
    child = pexpect.spawn(
        UNITH_SHELL[0],
        [*UNITH_SHELL[1:], "test", str(slow), "--local"],
        env=cli_env(shell_home),
        dimensions=(30, 100),
        encoding="utf-8",
        timeout=20,
    )
    try:
        child.expect_exact("running: slow [unith/aiko] step 2/3")  # the wait step, in place
        child.expect_exact("\r\x1b[KPASS slow [unith/aiko]")  # the same line, replaced
        child.expect_exact("1 passed in ")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
