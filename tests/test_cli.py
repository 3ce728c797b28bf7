"""The command line itself: cheap --version/--help, usage errors, a malformed config file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import UNITH_SHELL, cli_env
from unith_shell import __version__

HEAVY = ("prompt_toolkit", "websockets", "httpx", "aiohttp")

PROBE = """
import json, sys
from unith_shell import cli
try:
    code = cli.main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.stdin.read())))
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help_import_nothing_heavy(flag: str, shell_home: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, flag],
        input=json.dumps(HEAVY),
        capture_output=True,
        text=True,
        env=cli_env(shell_home),
        timeout=30,
    )
    report = json.loads(result.stderr.strip().splitlines()[-1])
    assert report == {"code": 0, "heavy": []}
    if flag == "--version":
        assert result.stdout == f"unith-shell {__version__}\n"
    else:
        assert "--local" in result.stdout and "--json" in result.stdout


def test_probe_sees_heavy_imports_when_there_are_some(shell_home: Path) -> None:
    """The probe above would notice: importing the REPL does load prompt_toolkit."""
    code = PROBE.replace("from unith_shell import cli", "from unith_shell import cli, repl")
    result = subprocess.run(
        [sys.executable, "-c", code, "--version"],
        input=json.dumps(HEAVY),
        capture_output=True,
        text=True,
        env=cli_env(shell_home),
        timeout=30,
    )
    assert "prompt_toolkit" in json.loads(result.stderr.strip().splitlines()[-1])["heavy"]


def test_bad_flag_is_a_one_line_usage_error_exit_2(shell_home: Path) -> None:
    result = subprocess.run(
        [*UNITH_SHELL, "--bogus"], capture_output=True, text=True, env=cli_env(shell_home)
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "unith-shell: error: unrecognized arguments: --bogus (see --help)"
    ]


def test_malformed_config_is_one_line_naming_file_and_line_exit_2(shell_home: Path) -> None:
    config = shell_home / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('org = "unith"\nhead = \ntimeout = 5\n')
    result = subprocess.run(
        [*UNITH_SHELL, "--local", "-m", "hi"],
        capture_output=True,
        text=True,
        env=cli_env(shell_home),
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"unith-shell: {config}:2: ")


@pytest.mark.parametrize(
    "args",
    [["serve", "--port", "99999"], ["serve", "--port", "x"], ["serve", "--part-delay", "-1"]],
)
def test_serve_rejects_bad_numbers_in_one_line(args: list[str], tmp_path: Path) -> None:
    result = subprocess.run(
        [*UNITH_SHELL, *args], capture_output=True, text=True, env=cli_env(tmp_path), timeout=30
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_a_missing_plugins_dir_is_a_warning_not_silence(tmp_path: Path) -> None:
    result = subprocess.run(
        [*UNITH_SHELL, "--local", "--plugins-dir", str(tmp_path / "nope"), "-m", "hi"],
        capture_output=True, text=True, env=cli_env(tmp_path), timeout=30,
    )  # fmt: skip
    assert result.returncode == 0
    assert f"--plugins-dir {tmp_path / 'nope'}: no such folder" in result.stderr


def test_pre_rendered_help_is_the_parsers_help(monkeypatch: pytest.MonkeyPatch) -> None:
    """The console script answers --help from unith_shell/_help.py: it must be exactly what
    argparse renders at that width (after a flag changes: python -m unith_shell._help --write)."""
    from unith_shell import _entry, _help, cli

    monkeypatch.setenv("COLUMNS", str(cli.HELP_WIDTH))
    assert _entry.HELP_WIDTH == cli.HELP_WIDTH
    if tuple(sys.version_info[:2]) == _help.PYTHON:
        assert cli.build_parser().format_help() == _help.HELP
    else:  # rendered by another Python's argparse: _entry must not use it here
        monkeypatch.setattr(sys, "argv", ["unith-shell", "--help"])
        monkeypatch.setattr(_help, "HELP", "stale pre-rendered text\n")
        with pytest.raises(SystemExit):  # argparse's own --help exits after printing
            _entry.main()


@pytest.mark.parametrize("columns", ["80", "100", "200", "60"])
def test_console_script_help_matches_argparse_at_any_width(columns: str, shell_home: Path) -> None:
    """From 80 columns up the help is the 80-column text (the pre-rendered one); narrower, it
    is argparse's at that width, as before."""
    env = {**cli_env(shell_home), "COLUMNS": columns}
    shown = subprocess.run(
        [*UNITH_SHELL, "--help"], capture_output=True, text=True, env=env, timeout=30
    )
    probe = "from unith_shell.cli import build_parser; print(build_parser().format_help(), end='')"
    rendered = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=30
    )
    assert shown.returncode == 0
    assert shown.stdout == rendered.stdout
    widest = max(len(line) for line in shown.stdout.splitlines())
    assert widest <= min(int(columns), 80) - 2


def test_console_script_passes_other_arguments_to_the_cli(shell_home: Path) -> None:
    """Only a lone --version/--help/-h is answered early; the rest is the cli's."""
    result = subprocess.run(
        [*UNITH_SHELL, "--bogus"],
        capture_output=True,
        text=True,
        env=cli_env(shell_home),
        timeout=30,
    )
    assert result.returncode == 2
    assert "unrecognized arguments: --bogus" in result.stderr
