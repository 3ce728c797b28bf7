"""Pipe mode: the real CLI in a subprocess (stdin lines in, text or JSON Lines out, exit
statuses), plus in-process runs of ``run_pipe`` against the local server fixture."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import UNITH_SHELL, cli_env
from unith_shell.files import paths
from unith_shell.pipe import run_pipe
from unith_shell.server import LocalServer
from unith_shell.settings import Settings

CONTROL = ("\x1b", "\x07", "\x00", "\x9b")


def run_cli(
    home: Path, *args: str, stdin: str = "", timeout: float = 30, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*UNITH_SHELL, *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=cli_env(home, **env),
        timeout=timeout,
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_plain_output_one_block_per_reply(shell_home: Path) -> None:
    result = run_cli(shell_home, "--local", stdin="hello\nmenu\n")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    # No greeting, no prompt: the reply to "hello" (3 parts + 3 suggestions), then the menu.
    assert lines[0] == "You said “hello”. Thanks for telling me!"
    assert lines[3:6] == ["1) What can you do?", "2) Show me the menu", "3) Goodbye"]
    assert lines[6:] == [
        "Here is what you can try:",
        "1) Tell me a fact",
        "2) What can you do?",
        "3) Goodbye",
    ]
    assert "Aiko" not in result.stdout and "aiko>" not in result.stdout


def test_json_output_every_line_is_json_with_echo_and_parts(shell_home: Path) -> None:
    result = run_cli(shell_home, "--local", "--json", stdin="hello\nhow are you\n")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(isinstance(e, dict) and "event" in e for e in events)
    echoes = [e for e in events if e.get("username") == "user"]
    assert [e["text"] for e in echoes] == ["hello", "how are you"]
    turns = [e for e in events if e["event"] == "unith_shell.turn"]
    assert [t["input"] for t in turns] == ["", "hello", "how are you"]  # greeting first
    assert all(t["outcome"] == "last" for t in turns)
    for turn in turns[1:]:
        parts = [
            e
            for e in events
            if e["event"] == "text" and e.get("input_message_id") == turn["input_message_id"]
        ]
        assert len(parts) == 3
        assert [p["part_order"] for p in parts] == [0, 1, 2]
        assert "\n".join(p["text"] for p in parts) == turn["text"]
    assert "You said “how are you”" in turns[2]["text"]


def test_message_flag_is_repeatable_and_stdin_is_not_read(shell_home: Path) -> None:
    result = run_cli(shell_home, "--local", "-m", "first one", "-m", "menu", stdin="from stdin\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.index("You said “first one”") < out.index("Here is what you can try:")
    assert "from stdin" not in out


def test_commands_and_literal_slash_in_pipe_mode(shell_home: Path) -> None:
    result = run_cli(shell_home, "--local", stdin="/status\n//slash\n\n/quit\nnot sent\n")
    assert result.returncode == 0, result.stderr
    assert "head          unith/aiko" in result.stdout
    assert "You said “/slash”" in result.stdout
    assert "not sent" not in result.stdout  # /quit ends the input


def test_unreachable_server_exits_3(shell_home: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = run_cli(shell_home, "--base-url", url, "-m", "hi")
    assert result.returncode == 3
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: login: cannot reach {url}")


async def test_wrong_password_exits_3_and_never_shows_it(
    shell_home: Path, server: LocalServer
) -> None:
    secret = "wrong-secret-pw"
    proc = await asyncio.create_subprocess_exec(
        *UNITH_SHELL, "--base-url", server.base_url, "-m", "hi",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=cli_env(shell_home, UNITH_PASSWORD=secret),
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 3
    assert "Incorrect username or password" in err.decode()
    assert secret not in (out + err).decode()


def test_local_server_accepts_the_configured_password(shell_home: Path) -> None:
    # --local logs in with UNITH_PASSWORD, so the in-process server must take it.
    result = run_cli(shell_home, "--local", "-m", "hi", UNITH_PASSWORD="my-own-pw-123")
    assert result.returncode == 0 and "You said “hi”" in result.stdout
    assert "my-own-pw-123" not in result.stdout + result.stderr


def test_failed_turn_exits_4_and_names_the_line(shell_home: Path) -> None:
    result = run_cli(shell_home, "--local", "--org", "faults", "--head", "nlp-exception",
                     stdin="hi\nagain\n")  # fmt: skip
    assert result.returncode == 4
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: line")]
    assert errors == [
        "error: line 1 'hi': NLP failure (scripted fault) (level 500)",
        "error: line 2 'again': NLP failure (scripted fault) (level 500)",
    ]


def test_turn_that_never_ends_times_out_with_exit_4(shell_home: Path) -> None:
    started = time.monotonic()
    result = run_cli(shell_home, "--local", "--org", "faults", "--head", "never-ends",
                     "--timeout", "1", "-m", "hi")  # fmt: skip
    assert result.returncode == 4
    assert "error: line 1 'hi': no further part within 1 s" in result.stderr
    # The per-frame timeout ends it, not a long pipe-level limit.
    assert time.monotonic() - started < 8


def test_no_escape_codes_in_pipe_output(shell_home: Path) -> None:
    args = ("--local", "--org", "faults", "--head", "control-chars", "-m", "hi")
    plain = run_cli(shell_home, *args)
    assert plain.returncode == 0, plain.stderr
    assert "Control test: \\x1b[2J\\x1b]0;pwned\\x07 bell:\\x07 nul:\\x00 end" in plain.stdout
    as_json = run_cli(shell_home, *args, "--json")
    assert as_json.returncode == 0, as_json.stderr
    texts = [json.loads(line).get("text", "") for line in as_json.stdout.splitlines()]
    assert any("\x1b[2J" in text for text in texts)  # faithful data, escaped by JSON
    for out in (plain.stdout, plain.stderr, as_json.stdout, as_json.stderr):
        assert not any(c in out for c in CONTROL)


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
async def test_run_pipe_one_outcome_per_line_in_order(server: LocalServer) -> None:
    """In-process: what the server received, and stdout/stderr, for a mixed input."""
    settings = Settings(base_url=server.base_url, timeout=5.0, api_key="pipe-secret-key")
    stdin = io.StringIO("first\n\n/raw on\n//second\n/nosuch\nthird\n")
    out, err = io.StringIO(), io.StringIO()
    status = await run_pipe(settings, paths(), stdin=stdin, stdout=out, stderr=err)
    assert status == 0
    sent = [f["text"] for f in server.received if "text" in f]
    assert sent == ["first", "/second", "third"]
    text = out.getvalue()
    assert text.index("“first”") < text.index("“/second”") < text.index("“third”")
    assert "raw frames on" in text
    assert "unknown command /nosuch" in err.getvalue()
    assert '"text": "third"' in text  # raw frames are shown ...
    assert "pipe-secret-key" not in text + err.getvalue()  # ... redacted
    await server.wait_until(lambda: server.open_connections == 0)


async def test_run_pipe_json_raw_frames_are_json_and_redacted(server: LocalServer) -> None:
    settings = Settings(base_url=server.base_url, timeout=5.0, json=True)
    stdin = io.StringIO("/raw on\n/reconnect\nhello\n")
    out, err = io.StringIO(), io.StringIO()
    assert await run_pipe(settings, paths(), stdin=stdin, stdout=out, stderr=err) == 0
    objects = [json.loads(line) for line in out.getvalue().splitlines()]
    frames = [o for o in objects if o["event"] == "unith_shell.frame"]
    assert {f["direction"] for f in frames} == {"in", "out"}
    handshakes = [f["data"] for f in frames if '"token"' in f["data"]]
    assert handshakes and all('"token": "***"' in data for data in handshakes)
    assert server.connections == 2
    assert err.getvalue() == ""


def test_stdin_from_dev_null_or_closed_is_empty_input(shell_home: Path) -> None:
    env = cli_env(shell_home)
    devnull = subprocess.run(
        [*UNITH_SHELL, "--local"], stdin=subprocess.DEVNULL, capture_output=True,
        text=True, env=env, timeout=30,
    )  # fmt: skip
    assert devnull.returncode == 0, devnull.stderr
    assert "Traceback" not in devnull.stderr and devnull.stdout == ""
    closed = subprocess.run(
        ["/bin/sh", "-c", 'exec "$@" <&-', "sh", *UNITH_SHELL, "--local"],
        capture_output=True, text=True, env=env, timeout=30,
    )  # fmt: skip
    assert closed.returncode == 0, closed.stderr
    assert "Traceback" not in closed.stderr


def test_reader_closing_our_output_stops_quietly(shell_home: Path) -> None:
    # As in `... | unith-shell --local | head -1`.
    proc = subprocess.Popen(
        [*UNITH_SHELL, "--local"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=cli_env(shell_home),
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(b"".join(f"message {i}\n".encode() for i in range(50)))
    proc.stdin.close()
    first = proc.stdout.readline()
    proc.stdout.close()
    started = time.monotonic()
    assert proc.wait(20) == 0
    assert time.monotonic() - started < 10  # it noticed, instead of answering all 50
    assert b"You said" in first
    assert b"Traceback" not in proc.stderr.read()


def test_command_errors_name_their_line(shell_home: Path) -> None:
    result = run_cli(shell_home, "--local", stdin="hi\n/nosuch\n")
    assert "error: line 2: unknown command /nosuch" in result.stderr
    assert "You said “hi”" in result.stdout


def test_unknown_head_and_refused_join_are_one_clear_line(shell_home: Path) -> None:
    unknown = run_cli(shell_home, "--local", "--head", "nobody", "-m", "hi")
    assert unknown.returncode == 3
    assert unknown.stderr.strip().startswith("error: unknown head unith/nobody")
    assert unknown.stderr.count("\n") == 1
    busy = run_cli(shell_home, "--local", "--org", "faults", "--head", "join-refused", "-m", "hi")
    assert busy.returncode == 3
    assert busy.stderr == "error: the server is at capacity (join refused)\n"


# ---- every outcome is kept (issue 9, item 8) ------------------------------------------------


@pytest.mark.parametrize("fault", ["close-mid-turn", "drop-mid-turn"])
def test_a_cut_reply_prints_what_arrived_and_says_it_was_cut(shell_home: Path, fault: str) -> None:
    args = ("--local", "--org", "faults", "--head", fault, "-m", "hi")
    plain = run_cli(shell_home, *args)
    assert plain.returncode == 4
    assert plain.stdout == "Reply to “hi”, part 1 of 3.\n"  # part 0 arrived before the cut
    (error,) = [line for line in plain.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith("error: line 1 'hi': connection lost (")
    assert error.endswith("; reply cut short after 1 part")
    as_json = run_cli(shell_home, *args, "--json")
    assert as_json.returncode == 4
    events = [json.loads(line) for line in as_json.stdout.splitlines()]
    parts = [e for e in events if e["event"] == "text" and e.get("input_message_id") == 0]
    assert [(p["part_order"], p["text"]) for p in parts] == [(0, "Reply to “hi”, part 1 of 3.")]
    (turn,) = [e for e in events if e["event"] == "unith_shell.turn" and e["input"] == "hi"]
    assert turn["outcome"] == "disconnected" and turn["text"] == "Reply to “hi”, part 1 of 3."
    (notice,) = [e for e in events if e["event"] == "unith_shell.notice"]
    assert notice["level"] == "error"
    assert notice["text"].startswith("line 1 'hi': connection lost (")


def test_a_failed_message_gets_one_error_line_and_no_repl_hints(shell_home: Path) -> None:
    result = run_cli(shell_home, "--local", "--org", "faults", "--head", "nlp-exception",
                     stdin="hi\n/help\nagain\n")  # fmt: skip
    assert result.returncode == 4
    assert result.stderr.splitlines() == [
        "error: line 1 'hi': NLP failure (scripted fault) (level 500)",
        "error: line 3 'again': NLP failure (scripted fault) (level 500)",
    ]
    assert "/send TEXT" in result.stdout  # /help ran, without the REPL's keys
    assert "Ctrl+D" not in result.stdout and "Ctrl+C" not in result.stdout


def test_a_dead_server_fails_the_remaining_lines_fast_with_exit_3(shell_home: Path) -> None:
    from tests.support import start_server

    port = closed_port()
    server = start_server(port)
    proc = subprocess.Popen(
        [*UNITH_SHELL, "--base-url", f"http://127.0.0.1:{port}", "--timeout", "2"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=cli_env(shell_home),
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        proc.stdin.write(b"first\n")
        proc.stdin.flush()
        reply = [proc.stdout.readline().decode()]
        while not reply[-1].startswith("3)"):  # the whole reply, up to its last suggestion
            assert reply[-1], f"no reply; stderr: {proc.stderr.read().decode()}"
            reply.append(proc.stdout.readline().decode())
        assert reply[0].startswith("You said “first”")
        server.kill()
        server.wait()
        started = time.monotonic()
        proc.stdin.write(b"second\nthird\n\nfourth\n")
        proc.stdin.close()
        status = proc.wait(60)
        elapsed = time.monotonic() - started
        err = proc.stderr.read().decode()
    finally:
        for child in (proc, server):
            if child.poll() is None:
                child.kill()
                child.wait()
    assert status == 3, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert [e.split(":")[1] for e in errors] == [" line 2 'second'", " line 3 'third'",
                                                 " line 5 'fourth'"]  # fmt: skip
    assert "not re-established in 2 s" in errors[-1]
    assert "Traceback" not in err and "/retry" not in err and "/reconnect" not in err
    # Bounded by the per-turn timeout (2 s) plus start-up slack; the old pipe mode waited
    # 2 * timeout + connect timeout (14 s here) for every line.
    assert elapsed < 12, (elapsed, err)


def from_a_pipe_and_a_file(
    data: bytes, shell_home: Path, tmp_path: Path, timeout: float
) -> tuple[subprocess.CompletedProcess[bytes], subprocess.CompletedProcess[bytes]]:
    """Pipe mode on the same bytes, once from a pipe and once with stdin a regular file."""
    env = cli_env(shell_home)
    piped = subprocess.run([*UNITH_SHELL, "--local"], input=data, capture_output=True,
                           env=env, timeout=timeout)  # fmt: skip
    source = tmp_path / "input.txt"
    source.write_bytes(data)
    with source.open("rb") as stdin:
        filed = subprocess.run([*UNITH_SHELL, "--local"], stdin=stdin, capture_output=True,
                               env=env, timeout=timeout)  # fmt: skip
    return piped, filed


def test_invalid_utf8_lines_are_read_alike_from_a_pipe_and_a_file(
    shell_home: Path, tmp_path: Path
) -> None:
    data = b"caf\xe9 au lait\nplain \xff\xfe words\r\nlast\n"
    piped, filed = from_a_pipe_and_a_file(data, shell_home, tmp_path, timeout=60)
    for result in (piped, filed):
        assert result.returncode == 0, result.stderr.decode()
        assert result.stderr == b""
        out = result.stdout.decode()
        assert "You said “caf\ufffd au lait”" in out
        assert "You said “plain \ufffd\ufffd words”" in out
        assert "You said “last”" in out
    assert filed.stdout == piped.stdout


def test_numbers_and_send_mean_the_same_as_in_the_repl(shell_home: Path) -> None:
    stdin = "hello\n2\n9\n/send 1\n//x\n"
    # A plain head: "Reply to “X”, part 1 of 3." and so on, then 1) Again 2) Something else.
    result = run_cli(shell_home, "--local", "--org", "faults", "--head", "feedback", stdin=stdin)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[3:5] == ["1) Again", "2) Something else"]
    said = [line.split("”")[0] for line in lines if line.startswith("Reply to")]
    assert said == [
        "Reply to “hello",
        "Reply to “Something else",  # 2: a suggestion shown, and in range
        "Reply to “9",  # 9: out of range, so text
        "Reply to “1",  # /send: always the text itself
        "Reply to “/x",
    ]


def test_streamed_chunks_are_one_paragraph(shell_home: Path) -> None:
    plain = run_cli(shell_home, "--local", "--head", "nova", "-m", "hi")
    assert plain.returncode == 0, plain.stderr
    first = plain.stdout.splitlines()[0]
    assert first.startswith("Streaming an answer about ")
    assert first.endswith(", inspired by “hi”, one small chunk at a time.")
    as_json = run_cli(shell_home, "--local", "--head", "nova", "--json", "-m", "hi")
    events = [json.loads(line) for line in as_json.stdout.splitlines()]
    chunks = [e for e in events if e["event"] == "response" and e.get("input_message_id") == 0]
    assert len(chunks) > 3  # streamed in pieces ...
    (turn,) = [e for e in events if e["event"] == "unith_shell.turn" and e["input"] == "hi"]
    assert turn["text"] == first  # ... and assembled as one paragraph


def test_an_over_long_line_is_one_error_and_the_next_lines_go_on(
    shell_home: Path, tmp_path: Path
) -> None:
    from unith_shell.pipe import MAX_LINE

    data = b"before\n" + b"x" * (MAX_LINE + 100) + b"\nafter\n"
    piped, filed = from_a_pipe_and_a_file(data, shell_home, tmp_path, timeout=120)
    for result in (piped, filed):
        assert result.returncode == 4, result.stderr.decode()[-2000:]
        assert result.stderr.decode() == f"error: line 2: longer than {MAX_LINE} bytes; not sent\n"
        out = result.stdout.decode()
        assert "You said “before”" in out and "You said “after”" in out
        assert "xxxxxxxx" not in out


def test_stdout_and_stderr_on_one_pipe_keep_the_order_of_the_lines(shell_home: Path) -> None:
    """stdout is flushed in batches (once per two event-loop passes), stderr at once: an error
    line still comes after the reply before it and before the reply after it (``2>&1``), and
    nothing written is lost at exit."""
    env = cli_env(shell_home)
    env.pop("PYTHONUNBUFFERED", None)  # Python's own buffering, as users run it
    result = subprocess.run(
        [*UNITH_SHELL, "--local"],
        input="first\n/nosuch\nsecond\n",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=30,
    )
    text = result.stdout
    assert result.returncode == 0, text
    error = text.index("error: line 2: unknown command /nosuch")
    assert text.index("You said “first”") < error < text.index("You said “second”")
    # The last reply is complete, its suggestions included: flushed at the end.
    assert text.endswith("\n") and text.splitlines()[-1].startswith("3) ")
