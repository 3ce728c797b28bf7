"""Issue 9 review: hostile input on paths the first round of tests did not drive.

Each test drives the real CLI (a subprocess) or the real module against
tests/hostile_network.py or a hostile file, and fails on the code before its fix.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.hostile_network import HostileServer, deep
from tests.support import run_cli, run_cli_async
from unith_shell import api
from unith_shell.recordings.format import header_record, load


@pytest.fixture
async def hostile() -> AsyncIterator[HostileServer]:
    async with HostileServer() as srv:
        yield srv
    await api.close_clients()


# ---- a deeply nested frame on the secondary paths (/raw, the transcript recorder) ----------


async def test_raw_frames_on_survive_a_900_deep_frame(
    hostile: HostileServer, tmp_path: Path
) -> None:
    """/raw on redacted the frame with unbounded json.loads: RecursionError killed the reader
    and the turn was cut."""
    code, out, err = await run_cli_async(
        tmp_path, "--base-url", hostile.base("ok"), "-m", "/raw on", "-m", "deep", "-m", "hello"
    )
    assert "RecursionError" not in err and "reader failed" not in err, err
    assert code == 0, err
    assert "nested more than 32 levels deep" in err  # the session's one protocol-error line
    assert out.splitlines()[-1].endswith("two")


async def test_the_transcript_recorder_survives_a_900_deep_frame(
    hostile: HostileServer, tmp_path: Path
) -> None:
    """The recorder decoded frames with unbounded json.loads: a deep frame disabled it and
    the rest of the conversation was never written."""
    record = tmp_path / "deep.jsonl"
    code, _, err = await run_cli_async(
        tmp_path,
        "--base-url",
        hostile.base("ok"),
        "--record",
        str(record),
        "-m",
        "deep",
        "-m",
        "hello",
    )
    assert code == 0, err
    assert "log-recorder" not in err and "RecursionError" not in err, err
    assert [t.user for t in load(record).turns] == ["deep", "hello"]
    texts = [f.payload for f in load(record).frames if f.direction == "in"]
    assert any(isinstance(p, dict) and p.get("text") == "two" for p in texts)


# ---- recordings are files someone may hand over -------------------------------------------


def test_a_deeply_nested_recording_line_is_one_error_line(tmp_path: Path) -> None:

    path = tmp_path / "deep.jsonl"
    header = json.dumps(header_record("o/h", "http://127.0.0.1"))
    frame = json.dumps({"time": 0, "direction": "in", "event": "text", "payload": {}})
    path.write_text(f"{header}\n{deep(100_000)}\n{frame}\n", encoding="utf-8")
    result = run_cli(["diff", str(path), str(path)], tmp_path / "home")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert "deep.jsonl:2: not a JSON object" in result.stderr


# ---- item 5 on the other entry points: replay and test -------------------------------------


def _minimal_recording(tmp_path: Path) -> Path:
    path = tmp_path / "min.jsonl"
    path.write_text(json.dumps(header_record("o/h", "http://127.0.0.1")) + "\n", "utf-8")
    return path


def test_replay_never_echoes_the_password_of_a_bad_base_url(tmp_path: Path) -> None:

    recording = _minimal_recording(tmp_path)
    result = run_cli(["replay", str(recording), "--base-url", "ftp://bob:hunter2@h"], tmp_path)
    assert result.returncode == 2
    assert "ftp://bob:***@h" in result.stderr and "hunter2" not in result.stderr


@pytest.mark.parametrize("command", ["replay", "test"])
def test_replay_and_test_warn_about_a_plain_http_base_url(tmp_path: Path, command: str) -> None:

    if command == "replay":
        args = ["replay", str(_minimal_recording(tmp_path))]
    else:
        scenario = tmp_path / "s.yaml"
        scenario.write_text("name: s\nhead: o/h\nsteps:\n  - user: hi\n", "utf-8")
        args = ["test", str(scenario)]
    # .invalid never resolves: the run fails fast after the warning.
    result = run_cli([*args, "--base-url", "http://bob:hunter2@unith.invalid"], tmp_path)
    warning = [line for line in result.stderr.splitlines() if "plain http" in line]
    assert warning == [
        f"unith-shell {command}: warning: http://bob:***@unith.invalid is plain http: the "
        "password and api key travel unencrypted (use https://)"
    ], result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_replay_prints_no_repl_hints(tmp_path: Path) -> None:
    """replay is not interactive: an nlp exception is reported without '; /retry'."""
    from tests.hostile_server import serve_in_thread

    recording = tmp_path / "nlp.jsonl"
    with serve_in_thread() as server:
        base = ["--base-url", server.base_url, "--org", "o", "--head", "h"]
        made = run_cli([*base, "-m", "nlp", "--record", str(recording)], tmp_path)
        assert "/retry" not in made.stderr  # pipe mode already leaves it out
        result = run_cli(["replay", str(recording), *base], tmp_path)
    assert "the head could not answer (level 500)" in result.stderr, result.stderr
    assert "/retry" not in result.stderr and "/reconnect" not in result.stderr


# ---- one-line fields stay one line: a server's newline never prints a line of its own ------

FAKE = "x\nerror: FAKE LINE<br>FAKE2\r\nFAKE3"


def _newline_server() -> type:
    from aiohttp import web

    from tests import hostile_server as hs

    class NewlineServer(hs.HostileServer):
        """Newlines and <br> in every one-line field: names, the idle URL, an nlp message,
        an event name, a close reason, a suggestion."""

        async def head(self, request: web.Request) -> web.Response:
            info = {"name": "N" + FAKE, "alias": "A" + FAKE, "phrases": ["p" + FAKE]}
            return hs._json({**info, "streaming_enabled": False})

        async def idle(self, request: web.Request) -> web.Response:
            return hs._json(f"{request.scheme}://{request.host}/media/idle.mp4#{FAKE}")

        async def _answer(self, ws: web.WebSocketResponse, frame: dict[str, object]) -> None:
            msg_id, text = frame.get("id"), str(frame.get("text", "")).strip()
            echo = {"event": "text", "id": msg_id, "user_id": frame.get("user_id"), "text": text}
            await ws.send_str(hs._dumps(echo))
            if text == "nlp":
                nlp = {"event": "unith_nlp_exception", "level": 500, "message": "M" + FAKE}
                await ws.send_str(hs._dumps({**nlp, "input_message_id": msg_id}))
                return
            if text == "close":
                await ws.close(code=4000, message=("C" + FAKE).encode())
                return
            if text == "unknown":
                await ws.send_str(hs._dumps({"event": "E" + FAKE}))
            part = {
                "event": "text",
                "input_message_id": msg_id,
                "part_order": 0,
                "is_last": True,
                "text": "reply",
                "suggestions": ["S" + FAKE],
            }
            await ws.send_str(hs._dumps(part))

    return NewlineServer


async def test_a_servers_newline_never_starts_a_line_in_pipe_mode(tmp_path: Path) -> None:
    server = _newline_server()()
    await server.start()
    try:
        lines = ["nlp", "unknown", "/head", "/video", "close", "hello"]
        args = [a for line in lines for a in ("-m", line)]
        code, out, err = await run_cli_async(
            tmp_path, "--base-url", server.base_url, "--org", "o", "--head", "h", *args
        )
    finally:
        await server.stop()
    assert code == 4, err
    for line in (out + err).splitlines():
        assert not line.startswith(("error: FAKE", "FAKE2", "FAKE3")), out + err
    assert out.count("FAKE3") == 6  # 2 suggestions, alias, name, phrases, the idle URL
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert [e.split("'")[1] for e in errors] == ["nlp", "close"]  # one line per failed message
    assert all("\\x0aerror: FAKE LINE<br>FAKE2\\x0d\\x0aFAKE3" in e for e in errors)


def test_the_repl_view_keeps_notices_and_suggestions_on_one_line() -> None:
    from unith_shell.render import HumanView, Style

    lines: list[str] = []
    view = HumanView(lines.append, Style(color=False), speaker=lambda: "Aiko")
    view.notice("warn", "closed: " + FAKE)
    view.suggestions(["S" + FAKE, "plain"])
    assert len(lines) == 2 and all("\n" not in line and "\r" not in line for line in lines)
    assert "\\x0aerror: FAKE LINE<br>FAKE2\\x0d\\x0aFAKE3" in lines[0]


# ---- the print paths of test, replay and diff, against the hostile server ------------------


def test_test_replay_and_diff_keep_hostile_text_out_of_every_output_and_report(
    tmp_path: Path,
) -> None:
    """Every report format (to stdout and to --output files), replay's and diff's lines:
    the hostile server's text is visible, never raw."""
    from tests.hostile_server import FORBIDDEN_BYTES, serve_in_thread

    home = tmp_path / "home"
    scenario = tmp_path / "hostile.yaml"
    steps = "".join(f"  - user: {m}\n    expect: {{contains: zz}}\n" for m in ("hello", "nlp"))
    scenario.write_text(f"name: hostile\nhead: o/h\ntimeout: 5\nsteps:\n{steps}", "utf-8")
    outputs: dict[str, str | bytes] = {}
    with serve_in_thread() as server:
        base = ["--base-url", server.base_url]
        for fmt in ("human", "json", "junit", "tap"):
            report = tmp_path / f"report.{fmt}"
            args = ["test", str(scenario), *base, "--format", fmt]
            to_file = run_cli([*args, "--output", str(report)], home)
            to_stdout = run_cli(args, home)
            assert to_file.returncode == to_stdout.returncode == 1, to_file.stderr
            outputs[f"{fmt} file"] = report.read_bytes()
            outputs[f"{fmt} stdout"] = to_stdout.stdout
            outputs[f"{fmt} stderr"] = to_file.stderr + to_stdout.stderr
        recording = tmp_path / "rec.jsonl"
        made = run_cli([*base, "--org", "o", "--head", "h", "-m", "hello", "-m", "menu",
                         "-m", "unknown", "--record", str(recording)], home)  # fmt: skip
        replayed = tmp_path / "replayed.jsonl"
        replay = run_cli(["replay", str(recording), *base, "--record", str(replayed)], home)
    assert made.returncode == 0 and replay.returncode in (0, 1), replay.stderr
    changed = tmp_path / "changed.jsonl"
    changed.write_text(
        recording.read_text("utf-8").replace("line two", "line \\u001b[2J\\u202e three"),
        "utf-8",
    )
    diff = run_cli(["diff", str(recording), str(changed)], home)
    assert diff.returncode == 1, diff.stderr
    outputs.update(replay=replay.stdout + replay.stderr, diff=diff.stdout + diff.stderr)
    from xml.dom import minidom

    minidom.parseString(outputs["junit file"])  # valid XML 1.0: no raw control characters
    for where, data in outputs.items():
        raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogateescape")
        found = [b for b in FORBIDDEN_BYTES if b in raw]
        assert not found, f"{where}: {found}"
    assert "reply:\\x1b]0;pwned" in outputs["human stdout"]  # shown, made visible
    assert "line [-two-] {+\\x1b[2J\\u202e three+}" in outputs["diff"]


def test_a_scenario_file_name_with_control_characters_is_shown_visibly(tmp_path: Path) -> None:
    """A scenario folder may come from anyone (a clone): its file names pass the gate in the
    human report and the JUnit file (whose XML a raw ESC would make invalid)."""
    from xml.dom import minidom

    folder = tmp_path / "scenarios"
    folder.mkdir()
    evil = "evil\x1b]0;pwned\x07"
    (folder / f"{evil}.yaml").write_text(
        "name: s\nhead: unith/aiko\nsteps:\n  - user: hello\n    expect: {contains: nope}\n",
        "utf-8",
    )
    (folder / f"{evil}-broken.yaml").write_text("name: b\nsteps: 3\n", "utf-8")
    broken = run_cli(["test", str(folder), "--local"], tmp_path / "home")
    assert broken.returncode == 2 and "\x1b" not in broken.stderr, broken.stderr
    assert "evil\\x1b]0;pwned\\x07-broken.yaml" in broken.stderr
    (folder / f"{evil}-broken.yaml").unlink()
    junit = tmp_path / "junit.xml"
    args = ["test", str(folder), "--local", "--format", "junit", "--output", str(junit)]
    result = run_cli(args, tmp_path / "home")
    assert result.returncode == 1, result.stderr
    human = run_cli(["test", str(folder), "--local"], tmp_path / "home")
    for where, text in [("junit", junit.read_text("utf-8")), ("stderr", result.stderr),
                        ("human", human.stdout + human.stderr)]:  # fmt: skip
        assert "\x1b" not in text and "\x07" not in text, where
        assert "evil\\x1b]0;pwned\\x07.yaml" in text, where
    minidom.parseString(junit.read_bytes())


# ---- item 2: what a reply can make the client hold, in bytes --------------------------------


async def test_big_parts_past_the_turn_byte_cap_end_the_turn_and_the_session_goes_on(
    tmp_path: Path,
) -> None:
    """Each part keeps its frame; 10,000 parts of just under the 1 MiB frame limit were
    10 GiB (300 of them measured 1.2 GB peak RSS). Past 8 MiB the turn ends in one line."""
    from aiohttp import web

    from tests.hostile_network import _part

    class BigParts(HostileServer):
        async def _reply(self, ws: web.WebSocketResponse, mid: int, text: str) -> None:
            if text == "big":
                blob = "x" * 900_000
                for order in range(40):
                    await ws.send_str(_part(mid, order, blob, last=order == 39))
            else:
                await super()._reply(ws, mid, text)

    async with BigParts() as server:
        code, out, err = await run_cli_async(tmp_path, "--base-url", server.base("ok"), "-m", "big",
                                       "-m", "hello")  # fmt: skip
    await api.close_clients()
    assert code == 4, err
    assert "protocol error: more than 8388608 bytes of parts in one reply" in err
    assert "Traceback" not in err and out.splitlines()[-1].endswith("two")
    assert out.count("x" * 900_000) <= 9  # what arrived under the cap is kept and printed


def test_the_turn_byte_cap_counts_text_when_no_size_is_given() -> None:
    from unith_shell.protocol import ResponsePart
    from unith_shell.turn import Turn, TurnOverflow

    turn = Turn(message_id=1, max_bytes=10)
    turn.add(ResponsePart(event="text", raw={}, text="12345", part_order=0))
    with pytest.raises(TurnOverflow):
        turn.add(ResponsePart(event="text", raw={}, text="123456", part_order=1))
