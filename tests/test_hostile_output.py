"""Nothing a hostile server sends reaches an output or a file raw (issue 9, item 1).

The real CLI runs against :mod:`tests.hostile_server` (over real sockets): pipe mode in a
subprocess, plain and ``--json``, and the REPL in a pseudo-terminal. Every message behaviour,
every command that shows server text, the transcript and the Markdown export are driven; the
tests then look for the raw payload (escape sequences, C1, bidi, zero-width, BOM, surrogate)
in stdout, stderr and the files, and for its visible form where the field is shown.
"""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.hostile_server import (
    BAD_LOGIN,
    CLEAR,
    FORBIDDEN_BYTES,
    FORBIDDEN_CHARS,
    HOSTILE,
    HOSTILE_TEXT,
    TITLE,
    HostileServer,
    hostile,
    hostile_reason,
    serve_in_thread,
)
from tests.support import UNITH_SHELL, cli_env
from unith_shell.pipe import JsonView, PlainView
from unith_shell.render import HumanView, Style
from unith_shell.sanitize import sanitize

TIMEOUT = 30  # per step; generous: the machine may be loaded


@pytest.fixture(scope="module")
def hostile_server() -> Iterator[HostileServer]:
    with serve_in_thread() as server:
        yield server


def visible(text: str) -> str:
    """How the gate shows ``text``: controls, C1 and bidi characters as ``\\xNN``/``\\uNNNN``."""
    return sanitize(text)


def assert_clean(data: bytes, where: str) -> None:
    """No raw payload byte sequence in ``data`` (what a terminal or a file received)."""
    for raw in FORBIDDEN_BYTES:
        assert raw not in data, f"{where}: raw {raw!r} in the output"


def assert_clean_text(text: str, where: str) -> None:
    """Plain output (no terminal of ours in between): not one payload character, not even ESC."""
    found = sorted({f"U+{ord(c):04X}" for c in text if c in FORBIDDEN_CHARS})
    assert not found, f"{where}: raw {found}"


def plugin_files(folder: Path) -> list[Path]:
    """A plugin that loads under a hostile file name, and one whose import error quotes one."""
    folder.mkdir(parents=True, exist_ok=True)
    named = folder / f"named{HOSTILE_TEXT}.py"
    named.write_text("VERSION = 1\n")
    failing = folder / "failing.py"
    failing.write_text(f"raise RuntimeError({hostile_reason('plugin-error')!r})\n")
    return [named, failing]


def plugin_flags(folder: Path) -> list[str]:
    return [flag for path in plugin_files(folder) for flag in ("--plugin", str(path))]


def commands(tmp: Path) -> list[str]:
    """Every command that shows server text, around every message behaviour."""
    return [
        f"/log on {tmp / 'transcript.jsonl'}",
        "/raw on",
        "hello",
        "/raw off",
        "menu",
        "nlp",
        "unknown",
        "junk",
        "badpart",
        "/status",
        "/head",
        "/head hostile/badhead",
        "/video",
        "/video --check",
        "/plugins",
        "close",
        "hello",
        "/log show 100",
        f"/log export md {tmp / 'export.md'}",
        "/log off",
    ]


def run_cli(
    home: Path, server: HostileServer, *args: str, **env: str
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*UNITH_SHELL, "--base-url", server.base_url, "--org", "hostile", "--timeout", "10", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=cli_env(home, **env),
        timeout=TIMEOUT * 3,
    )


def check_files(tmp: Path) -> None:
    """The JSON Lines transcript keeps the payload as ``\\uXXXX`` escapes that decode back to
    it; the Markdown export (a human-readable file) shows it visibly."""
    data = (tmp / "transcript.jsonl").read_bytes()
    assert_clean(data, "transcript")
    text = data.decode("utf-8")  # strict: a raw surrogate would not even be valid UTF-8
    assert "\x1b" not in text and "\\u001b]0;pwned" in text and "\\u202e" in text
    records = [json.loads(line) for line in text.splitlines()]
    received = [r["payload"] for r in records if r.get("direction") == "in"]
    texts = [p.get("text") for p in received if isinstance(p, dict)]
    assert hostile("reply") + "<br />line two" in texts  # decodes back to what was sent
    assert f"junk:{HOSTILE_TEXT} is not JSON" in texts  # a frame that is not JSON, too
    users = [p.get("user_id") for p in received if isinstance(p, dict)]
    assert hostile("sender") in users

    markdown = (tmp / "export.md").read_bytes()
    assert_clean(markdown, "Markdown export")
    shown = markdown.decode("utf-8")
    assert_clean_text(shown, "Markdown export")
    assert visible(hostile("reply")) in shown
    assert visible(hostile("username")) in shown  # the speaker's name


# ---- pipe mode ------------------------------------------------------------------------------


def test_pipe_plain_output_shows_every_hostile_field_visibly(
    hostile_server: HostileServer, shell_home: Path, tmp_path: Path
) -> None:
    lines = [arg for line in commands(tmp_path) for arg in ("-m", line)]
    flags = plugin_flags(tmp_path / "plugins")
    result = run_cli(shell_home, hostile_server, "--head", "h", *flags, *lines)
    assert result.returncode == 4, result.stderr  # nlp and close failed, and said so
    assert_clean(result.stdout, "stdout")
    assert_clean(result.stderr, "stderr")
    out, err = result.stdout.decode(), result.stderr.decode()
    assert_clean_text(out, "stdout")
    assert_clean_text(err, "stderr")
    # Shown, made visible: replies, suggestions, a choice, ids, head config, URLs ...
    for field in ("reply", "end", "suggestion", "choice-text", "choice", "user", "session"):
        assert visible(hostile(field)) in out, field
    for field in ("alias", "name", "language", "mode", "phrase"):
        assert visible(hostile(field)) in out, field
    assert visible(f"/media/idle.mp4#url:{HOSTILE_TEXT}") in out  # /video
    assert "overwrite\\x0dme" in out  # a lone CR cannot overwrite the line
    assert "-> " in out and "<- " in out  # /raw on showed frames
    # ... and errors: the nlp message, a close reason, a 404 detail, an event name, a plugin.
    assert visible(hostile("nlp")) in err
    assert visible(hostile_reason("close")) in err
    assert visible(hostile("detail")) in err
    assert visible(hostile("event")) in err
    assert visible(hostile_reason("plugin-error")) in out + err
    check_files(tmp_path)


@pytest.mark.parametrize(
    ("args", "env", "shown"),
    [
        (["--head", "badhead"], {}, hostile_reason("unknown")),  # 404 head, 1008 close
        (["--head", "refuse"], {}, hostile_reason("refused")),  # handshake closed, 4000
        (["--head", "h"], {"UNITH_USERNAME": BAD_LOGIN}, hostile("login")),  # 401 detail
    ],
    ids=["unknown-head", "refused-handshake", "refused-login"],
)
def test_pipe_connection_errors_are_gated(
    hostile_server: HostileServer,
    shell_home: Path,
    args: list[str],
    env: dict[str, str],
    shown: str,
) -> None:
    for mode in ([], ["--json"]):
        result = run_cli(shell_home, hostile_server, *mode, *args, "-m", "hello", **env)
        assert result.returncode == 3, result.stderr
        assert_clean(result.stdout + result.stderr, f"{mode} {args}")
        output = (result.stdout + result.stderr).decode()
        assert_clean_text(output, f"{mode} {args}")
        if mode:
            notices = [json.loads(line) for line in result.stdout.decode().splitlines()]
            assert any(shown in n.get("text", "") for n in notices), notices  # decodes back
        else:
            assert visible(shown) in result.stderr.decode()


def test_pipe_json_escapes_every_hostile_character(
    hostile_server: HostileServer, shell_home: Path, tmp_path: Path
) -> None:
    lines = [arg for line in commands(tmp_path) for arg in ("-m", line)]
    flags = plugin_flags(tmp_path / "plugins")
    result = run_cli(shell_home, hostile_server, "--json", "--head", "h", *flags, *lines)
    assert result.returncode == 4, result.stderr
    assert_clean(result.stdout, "stdout")
    assert_clean(result.stderr, "stderr")
    out = result.stdout.decode()  # strict UTF-8: no raw surrogate either
    assert_clean_text(out, "--json stdout")
    assert "\\u009b" in out and "\\u202e" in out and "\\ufeff" in out and "\\ud800" in out
    events = [json.loads(line) for line in out.splitlines()]  # every line is JSON
    # The escapes decode back to exactly what the server sent.
    texts = [e.get("text") for e in events]
    assert hostile("reply") + "<br />line two" in texts
    assert hostile("greeting") in texts
    turns = [e for e in events if e.get("event") == "unith_shell.turn"]
    assert any(e["error"] and hostile("nlp") in e["error"] for e in turns)
    assert any(e["error"] and hostile_reason("close") in e["error"] for e in turns)
    assert any(e.get("event") == hostile("event") for e in events)
    outputs = "\n".join(e["text"] for e in events if e.get("event") == "unith_shell.output")
    assert hostile("user") in outputs  # /status, as JSON: escaped, and decodes back
    check_files(tmp_path)


# ---- the REPL in a pseudo-terminal ---------------------------------------------------------


@pytest.mark.timeout(TIMEOUT * 5)
def test_repl_shows_hostile_text_visibly_and_never_raw(
    hostile_server: HostileServer, shell_home: Path, tmp_path: Path
) -> None:
    flags = plugin_flags(tmp_path / "plugins")
    server = ["--base-url", hostile_server.base_url, "--org", "hostile", "--head", "h"]
    child = pexpect.spawn(
        UNITH_SHELL[0],
        [*UNITH_SHELL[1:], *server, "--timeout", "10", *flags],
        env=cli_env(shell_home, NO_COLOR="1", COLUMNS="200"),
        dimensions=(30, 200),
        timeout=TIMEOUT,
    )
    screen = io.BytesIO()
    child.logfile_read = screen

    def expect(text: str) -> None:
        try:
            child.expect_exact(text.encode())
        except pexpect.TIMEOUT:
            tail = screen.getvalue()[-3000:].decode(errors="backslashreplace")
            pytest.fail(f"{text!r} not shown; the terminal ends with:\n{tail}")

    def run(line: str, *shown: str, prompt: str = "h>") -> None:
        child.send(line + "\r")
        for text in shown:
            expect(text)
        expect(prompt)

    try:
        expect(visible(hostile("greeting")))
        expect("h>")
        run(f"/log on {tmp_path / 'transcript.jsonl'}", "logging every frame to")
        run("/raw on", "raw frames on")
        run("hello", "<- ", visible(hostile("end")), "(type a number or /pick N)")
        run("/raw off", "raw frames off")
        run("menu", visible(hostile("choice")))
        run("nlp", visible(hostile("nlp")))
        run("unknown", "unknown event 'event:")
        run("junk", "bad frame from the server", visible(hostile("end")))
        run("badpart", "part_order must be an integer", visible(hostile("end")))
        run("/status", visible(hostile("user")), visible(hostile("session")))
        run("/head", visible(hostile("alias")), visible(hostile("phrase")))
        run("/head hostile/badhead", visible(hostile("detail")))
        run("/video", visible(f"idle.mp4#url:{HOSTILE_TEXT}"))
        run("/video --check", "error: /video")  # httpx refuses the URL: one line
        run("/plugins", visible(hostile_reason("plugin-error")))
        run("close", visible(hostile_reason("close")))
        expect("reconnected")
        run("/log show 100", visible(hostile("reply"))[:60])
        run(f"/log export md {tmp_path / 'export.md'}", "exported")
        run("/head hostile/media", visible(hostile("greeting")), prompt="media>")
        run("/video --check", "type video/mp4; x=\\u202e\\x9b\\u200b", prompt="media>")
        child.send("\x04")
        child.expect(pexpect.EOF)
    finally:
        if child.isalive():
            child.terminate(force=True)
    data = screen.getvalue()
    assert_clean(data, "terminal")
    assert HOSTILE.encode("utf-8", "surrogatepass") not in data
    check_files(tmp_path)


# ---- the CLI's own lines --------------------------------------------------------------------


def test_cli_lines_quoting_config_and_plugin_names_are_gated(
    shell_home: Path, tmp_path: Path
) -> None:
    config = shell_home / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.parent.chmod(0o700)
    # A profile name is quoted by the "unknown profile" error; TOML escapes carry the payload.
    config.write_text('[profiles."evil\\u001b]0;pwned\\u0007\\u202e"]\nhead = "kai"\n')
    config.chmod(0o600)
    result = subprocess.run(
        [*UNITH_SHELL, "--profile", "nope", "-m", "hi"],
        capture_output=True,
        env=cli_env(shell_home),
        timeout=TIMEOUT,
    )
    assert result.returncode == 2
    err = result.stderr.decode()
    assert_clean_text(err, "config error")
    assert "evil\\x1b]0;pwned\\x07\\u202e" in err

    # `unith-shell plugins` lists plugin names, which are file names.
    config.write_text(f"plugins = {json.dumps([str(p) for p in plugin_files(tmp_path)])}\n")
    listed = subprocess.run(
        [*UNITH_SHELL, "plugins"], capture_output=True, env=cli_env(shell_home), timeout=TIMEOUT
    )
    assert listed.returncode == 0, listed.stderr
    output = (listed.stdout + listed.stderr).decode()
    assert_clean_text(output, "unith-shell plugins")
    assert visible(f"named{HOSTILE_TEXT}") in listed.stdout.decode()
    assert visible(hostile_reason("plugin-error")) in listed.stderr.decode()


@pytest.mark.parametrize(
    ("host", "status"),
    [(f"bad{TITLE}{CLEAR}", 1), (f"bad{HOSTILE_TEXT}", 2)],
    ids=["not-found", "not-encodable"],
)
def test_serve_error_line_is_gated(shell_home: Path, host: str, status: int) -> None:
    result = subprocess.run(
        [*UNITH_SHELL, "serve", "--host", host, "--port", "0"],
        capture_output=True,
        env=cli_env(shell_home),
        timeout=TIMEOUT,
    )
    assert result.returncode == status
    err = result.stderr.decode()
    assert_clean_text(err, "serve")
    assert len(err.splitlines()) == 1, err  # one line, never a traceback
    assert visible(host) in err or repr(host) in err


# ---- the sinks themselves (unit tests of the views) -----------------------------------------


def test_repl_view_gates_text_but_keeps_its_own_styles() -> None:
    lines: list[str] = []
    view = HumanView(lines.append, Style(color=True), lambda: hostile("alias"))
    view.write(hostile("printed"))  # ctx.print and plugins' shell.print end here
    view.notice("error", hostile("notice"))
    shown = "\n".join(lines)
    assert visible(hostile("printed")) in shown and visible(hostile("notice")) in shown
    assert_clean(shown.encode("utf-8", "surrogatepass"), "view")
    # The only escape sequence left is the shell's own colour, around the marker.
    assert lines[1].startswith("\x1b[31merror:\x1b[0m ")
    assert lines[1].count("\x1b") == 2


def test_pipe_views_gate_both_streams_and_json_escapes() -> None:
    out, err = io.StringIO(), io.StringIO()
    plain = PlainView(out, err)
    plain.write(hostile("printed"))
    plain.notice("error", hostile("notice"))
    assert_clean_text(out.getvalue() + err.getvalue(), "plain view")
    assert visible(hostile("notice")) in err.getvalue()

    stream = io.StringIO()
    JsonView(stream).notice("error", hostile("notice"))
    line = stream.getvalue()
    assert_clean_text(line, "JSON view")
    assert json.loads(line)["text"] == hostile("notice")  # escaped, and decodes back
