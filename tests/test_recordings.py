"""Recordings: the /log format read back, replay, diff, and recordings served as heads.

Recordings are made by the real client (pipe mode's ``--record`` and ``/log on``) against the
real local server on a free port; replays run against ``recorded/<name>`` heads of another
real local server; the CLI runs as a subprocess where its exit status and output matter.
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support import UNITH_SHELL, Make, cli_env, run_cli
from unith_shell.files import paths
from unith_shell.pipe import run_pipe
from unith_shell.recordings.diff import DiffOptions, compare, painter, render_turn, word_diff
from unith_shell.recordings.format import (
    FORMAT_VERSION,
    RecordingError,
    header_record,
    load,
    parse_lines,
)
from unith_shell.recordings.replay import replay
from unith_shell.recordings.scenario import scenario_from_recording
from unith_shell.server import LocalServer, ServerConfig
from unith_shell.server.recorded import NO_MATCH_LEVEL, load_recorded_heads, match_turn
from unith_shell.settings import Settings

IGNORE_LATENCY = DiffOptions(ignore_latency=True)


async def record_pipe(
    server: LocalServer, org: str, head: str, messages: list[str], path: Path
) -> str:
    """Run pipe mode (``-m ... --record PATH``) in-process; return what it printed."""
    settings = Settings(
        base_url=server.base_url, org=org, head=head, messages=messages, timeout=5.0,
        connect_timeout=5.0,
    )  # fmt: skip
    out, err = io.StringIO(), io.StringIO()
    await run_pipe(settings, paths(), stdout=out, stderr=err, record=str(path))
    return out.getvalue()


async def replay_against(
    original: Path, recordings: Path, name: str, target: Path, speed: float = 0.0
) -> tuple[int, str]:
    """Replay ``original`` against ``recorded/<name>`` served from ``recordings``."""
    config = ServerConfig(recordings=str(recordings), recording_speed=speed)
    async with LocalServer(config) as served:
        assert f"recorded/{name}" in served.recorded_heads
        settings = Settings(
            base_url=served.base_url, org="recorded", head=name, timeout=5.0, connect_timeout=5.0
        )
        out, err = io.StringIO(), io.StringIO()
        status = await replay(load(original), settings, paths(), target, IGNORE_LATENCY, out, err)
    return status, out.getvalue()


# ---- the format -----------------------------------------------------------------------------


def test_header_keeps_only_the_host_of_the_base_url() -> None:
    header = header_record("unith/aiko", "https://user:s3cret@chat.example.com:8443/x?key=k")
    assert header["host"] == "chat.example.com"
    assert header["version"] == FORMAT_VERSION and header["head"] == "unith/aiko"
    assert "s3cret" not in json.dumps(header) and "key=k" not in json.dumps(header)


def _lines(*records: dict[str, Any]) -> list[str]:
    return [json.dumps(r) + "\n" for r in records]


FRAME = {"time": "2026-01-01T00:00:00.000+00:00", "direction": "in", "head": "a/b",
         "event": "join", "payload": {"event": "join"}}  # fmt: skip


def test_an_older_or_unknown_format_version_is_refused_in_one_line() -> None:
    old = {**header_record("a/b", "http://h"), "version": 0}
    with pytest.raises(RecordingError) as info:
        parse_lines(_lines(old, FRAME), "old.jsonl")
    message = str(info.value)
    assert "\n" not in message and "old.jsonl" in message and "version 0" in message
    # A transcript written before the header existed is refused the same way.
    with pytest.raises(RecordingError, match="no recording header"):
        parse_lines(_lines(FRAME), "bare.jsonl")
    with pytest.raises(RecordingError, match="version 2"):
        parse_lines(_lines({**old, "version": 2}), "new.jsonl")


def test_a_torn_last_line_is_skipped_but_a_broken_middle_line_is_an_error() -> None:
    header = header_record("a/b", "http://h")
    recording = parse_lines([*_lines(header, FRAME), '{"time": "2026'], "torn.jsonl")
    assert len(recording.frames) == 1
    with pytest.raises(RecordingError, match=r"broken.jsonl:2: not a JSON object"):
        parse_lines([*_lines(header), "garbage\n", *_lines(FRAME)], "broken.jsonl")


def test_a_file_of_one_bad_line_is_named_as_such_not_as_empty() -> None:
    with pytest.raises(RecordingError, match=r"^junk.jsonl:1: not a JSON object$"):
        parse_lines(["\x1b]0;title\x07not json\n"], "junk.jsonl")
    with pytest.raises(RecordingError, match="empty file"):
        parse_lines(["\n", "  \n"], "blank.jsonl")


# ---- record and replay against recorded heads ---------------------------------------------

FAULT_CASES: dict[str, tuple[list[str], str | None]] = {
    # fault head: (messages, an event each recorded turn must show)
    "close-mid-turn": (["one", "two"], "disconnect"),
    "drop-mid-turn": (["one", "two"], "disconnect"),
    "nlp-exception": (["one", "two"], "unith_nlp_exception:500"),
    "conversation-end": (["one", "two", "three"], "conversation_end"),
    "choice": (["one", "Maybe"], "choice"),
    # A JSON null frame once crashed the recorder (and lost the rest of the recording).
    "non-object-json": (["one", "two"], None),
}


@pytest.mark.parametrize("fault", sorted(FAULT_CASES))
async def test_a_fault_head_recording_replays_identically_from_a_recorded_head(
    fault: str, server: LocalServer, tmp_path: Path
) -> None:
    messages, event = FAULT_CASES[fault]
    recordings = tmp_path / "recordings"
    original = recordings / f"{fault}.jsonl"
    await record_pipe(server, "faults", fault, messages, original)
    recorded = load(original)
    assert [t.user for t in recorded.turns] == messages
    if event is not None:
        assert all(event in t.events for t in recorded.turns), [t.events for t in recorded.turns]

    again = tmp_path / "again.jsonl"
    status, shown = await replay_against(original, recordings, fault, again)
    assert status == 0, shown
    assert shown.splitlines()[-1] == f"no differences ({len(messages)} turn(s))"
    diffs = compare(recorded, load(again), IGNORE_LATENCY)
    assert diffs and all(d.equal for d in diffs)
    assert [t.events for t in load(again).turns] == [t.events for t in recorded.turns]


async def test_a_demo_conversation_replays_with_picks_and_events(
    server: LocalServer, tmp_path: Path
) -> None:
    recordings = tmp_path / "recordings"
    original = recordings / "demo.jsonl"
    messages = ["hello", "menu", "Tell me a fact", "error", "bye"]
    await record_pipe(server, "unith", "aiko", messages, original)
    recorded = load(original)
    assert recorded.header["head"] == "unith/aiko"
    assert recorded.greeting_texts[0].startswith("Hi, I'm Aiko")
    picked = [t.picked for t in recorded.turns]
    assert picked == [False, False, True, False, False]  # offered by the menu's choice
    assert recorded.turns[1].events == ["choice"] and recorded.turns[1].suggestions
    assert recorded.turns[3].events == ["unith_nlp_exception:400"]
    assert recorded.turns[4].events == ["conversation_end"]
    assert recorded.turns[0].parts == 3 and recorded.turns[0].first_latency is not None

    again = tmp_path / "again.jsonl"
    status, shown = await replay_against(original, recordings, "demo", again)
    assert status == 0, shown
    assert "not offered" not in shown
    assert [line.split(":")[0] for line in shown.splitlines()[:6]] == [
        "greeting", "turn 1 'hello'", "turn 2 'menu'", "turn 3 'Tell me a fact'",
        "turn 4 'error'", "turn 5 'bye'",
    ]  # fmt: skip
    assert all(d.equal for d in compare(recorded, load(again), IGNORE_LATENCY))


async def test_recorded_timing_is_kept_at_speed_one(server: LocalServer, tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    original = recordings / "slow.jsonl"
    await record_pipe(server, "unith", "aiko", ["hello"], original)
    # Stretch the recorded reply: its last frame 0.4 s after the message.
    lines = original.read_text(encoding="utf-8").splitlines()
    last = json.loads(lines[-1])
    last["time"] = last["time"][:17] + "59.900+00:00"
    sent_index = max(i for i, line in enumerate(lines) if '"direction": "out"' in line)
    sent = json.loads(lines[sent_index])
    sent["time"] = sent["time"][:17] + "59.500+00:00"
    lines[sent_index], lines[-1] = json.dumps(sent), json.dumps(last)
    for i in range(sent_index + 1, len(lines) - 1):
        record = json.loads(lines[i])
        record["time"] = sent["time"]
        lines[i] = json.dumps(record)
    original.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert load(original).turns[0].last_latency == pytest.approx(0.4, abs=0.002)

    again = tmp_path / "again.jsonl"
    await replay_against(original, recordings, "slow", again, speed=1.0)
    replayed = load(again).turns[0].last_latency
    assert replayed is not None and replayed >= 0.39  # the recorded pause was kept


# ---- diff -----------------------------------------------------------------------------------


def _change_reply(source: Path, target: Path, turn_text: str, new_text: str) -> None:
    """Copy ``source`` with the first reply part answering ``turn_text`` changed."""
    records = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
    message_id = next(
        r["payload"]["id"] for r in records
        if r.get("direction") == "out" and r.get("event") == "text"
        and r["payload"]["text"] == turn_text
    )  # fmt: skip
    part = next(
        r for r in records
        if r.get("direction") == "in" and isinstance(r.get("payload"), dict)
        and r["payload"].get("input_message_id") == message_id
        and r["payload"].get("part_order") == 0
    )  # fmt: skip
    part["payload"]["text"] = new_text
    target.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


async def test_diff_shows_exactly_the_changed_turn(
    server: LocalServer, tmp_path: Path, shell_home: Path
) -> None:
    original = tmp_path / "a.jsonl"
    await record_pipe(server, "unith", "aiko", ["hello", "Tell me a fact", "thanks"], original)
    changed = tmp_path / "b.jsonl"
    _change_reply(original, changed, "Tell me a fact", "Something \x1b[2J entirely different.")

    same = run_cli(["diff", str(original), str(original)], shell_home)
    assert same.returncode == 0 and "no differences (3 turn(s))" in same.stdout

    result = run_cli(["diff", "--ignore-latency", str(original), str(changed)], shell_home)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert "turn 1 'hello': same" in lines and "turn 3 'thanks': same" in lines
    assert any(line.startswith("turn 2 'Tell me a fact': changed: text") for line in lines)
    assert "{+Something \\x1b[2J entirely different.+}" in result.stdout  # sanitised
    assert "\x1b" not in result.stdout  # not a terminal: no colour, and no raw ESC from a file
    assert lines[-1] == "1 of 4 compared turn(s) differ"

    as_json = run_cli(["diff", "--json", "--ignore-latency", str(original), str(changed)],
                      shell_home)  # fmt: skip
    rows = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert as_json.returncode == 1
    assert [(r["turn"], r["equal"]) for r in rows] == [(0, True), (1, True), (2, False), (3, True)]
    assert rows[2]["changed"] == ["text"] and rows[2]["b"]["text"].startswith("Something \x1b")


def test_diff_exit_two_and_one_line_for_an_old_format(tmp_path: Path, shell_home: Path) -> None:
    old = tmp_path / "old.jsonl"
    old.write_text("".join(_lines({**header_record("a/b", "http://h"), "version": 0}, FRAME)))
    result = run_cli(["diff", str(old), str(old)], shell_home)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "version 0 is not supported" in result.stderr
    assert result.stdout == ""
    replayed = run_cli(["replay", str(old), "--local"], shell_home)
    assert replayed.returncode == 2 and replayed.stderr.count("\n") == 1
    assert "version 0 is not supported" in replayed.stderr


def test_replay_usage_errors_come_first_in_one_line_named_replay(
    tmp_path: Path, shell_home: Path
) -> None:
    original = tmp_path / "one.jsonl"
    original.write_text("".join(_lines(header_record("unith/aiko", "http://h"), FRAME)))
    for flags, why in (
        (["--local", "--speed", "2"], "--speed and --match need --recordings DIR"),
        (["--match", "text"], "--speed and --match need --recordings DIR"),
        (["--local", "--recordings", str(tmp_path / "nope")], "nope: not a directory"),
        (["--recordings", str(tmp_path)], "--recordings needs --local"),
    ):
        result = run_cli(["replay", str(original), *flags], shell_home)
        assert result.returncode == 2, flags
        # One line, before anything is announced or recorded.
        assert result.stderr.startswith("unith-shell replay: error: "), result.stderr
        assert result.stderr.count("\n") == 1 and why in result.stderr, result.stderr
    assert not (shell_home / "data" / "transcripts").exists()
    served = run_cli(["serve", "--speed", "0"], shell_home)
    assert served.returncode == 2
    assert served.stderr == "unith-shell serve: error: --speed and --match need --recordings DIR\n"


def test_replay_records_to_a_default_path_it_prints(tmp_path: Path, shell_home: Path) -> None:
    original = tmp_path / "one.jsonl"
    assert (
        run_cli(["--local", "-m", "hello", "--record", str(original)], shell_home).returncode == 0
    )
    result = run_cli(["replay", str(original), "--local"], shell_home)
    assert result.returncode == 0, result.stderr
    printed = result.stderr.splitlines()[0].removeprefix(
        "unith-shell replay: recording the replay to "
    )
    path = Path(printed)
    assert path.parent == shell_home / "data" / "transcripts"
    assert path.name.endswith(".jsonl") and "-replay-unith-aiko-" in path.name
    assert [t.user for t in load(path).turns] == ["hello"]


def test_diff_options_ignore_case_whitespace_and_threshold() -> None:
    def recording(reply: str) -> Any:
        header = header_record("a/b", "http://h")
        out = {**FRAME, "direction": "out", "event": "text",
               "payload": {"id": 0, "user_id": "u", "event": "text", "text": "hi"}}  # fmt: skip
        part = {**FRAME, "event": "text", "payload": {"event": "text", "text": reply,
                "input_message_id": 0, "part_order": 0, "is_last": True}}  # fmt: skip
        return parse_lines(_lines(header, out, part), "x")

    a, b = recording("Hello  there, friend"), recording("hello there, friend")
    assert not compare(a, b, DiffOptions())[0].equal
    assert not compare(a, b, DiffOptions(ignore_case=True))[0].equal
    assert compare(a, b, DiffOptions(ignore_case=True, ignore_whitespace=True))[0].equal
    c = recording("Hello there, my friend")
    assert not compare(a, c, DiffOptions(ignore_whitespace=True))[0].equal
    assert compare(a, c, DiffOptions(ignore_whitespace=True, threshold=0.8))[0].equal
    marked = word_diff("a b c", "a x c", painter(False))
    assert marked == "a [-b-] {+x+} c"
    assert word_diff("a b", "a c", painter(True)) == "a \x1b[31m[-b-]\x1b[0m \x1b[32m{+c+}\x1b[0m"


def test_diff_quotes_hostile_user_text_escaped_once() -> None:
    def recording(user: str, suggestion: str) -> Any:
        header = header_record("a/b", "http://h")
        out = {**FRAME, "direction": "out", "event": "text",
               "payload": {"id": 0, "user_id": "u", "event": "text", "text": user}}  # fmt: skip
        part = {**FRAME, "event": "text", "payload": {"event": "text", "text": "ok",
                "input_message_id": 0, "part_order": 0, "is_last": True,
                "suggestions": [suggestion]}}  # fmt: skip
        return parse_lines(_lines(header, out, part), "x")

    a = recording("menu", "Fact")
    b = recording("me\x1b[2Jnu\u202e", "Fact\x9b")
    [diff] = compare(a, b, DiffOptions(ignore_latency=True))
    lines = render_turn(diff, DiffOptions(ignore_latency=True), painter(False))
    shown = "\n".join(lines)
    assert "    user: 'menu' -> 'me\\x1b[2Jnu\\u202e'" in lines, shown
    assert "    suggestions: ['Fact'] -> ['Fact\\x9b']" in lines, shown
    assert "\\\\" not in shown  # no escape escaped twice


# ---- served recordings ----------------------------------------------------------------------


async def test_a_message_matching_nothing_gets_an_error_naming_what_was_expected(
    server: LocalServer, tmp_path: Path
) -> None:
    recordings = tmp_path / "recordings"
    await record_pipe(server, "unith", "aiko", ["hello", "menu"], recordings / "r.jsonl")
    heads, problems = load_recorded_heads(recordings)
    assert problems == []
    entry = heads["recorded/r"]
    assert entry.head.greetings[0].startswith("Hi, I'm Aiko")
    # text: the turn with that text, in any order; similar: close enough; order: by position.
    assert match_turn(entry, "u1", "menu", "text").number == 2  # type: ignore[union-attr]
    assert match_turn(entry, "u2", "Hello!", "similar").number == 1  # type: ignore[union-attr]
    assert match_turn(entry, "u3", "anything", "order").number == 1  # type: ignore[union-attr]
    reason = match_turn(entry, "u4", "weather?", "text")
    assert reason == "no recorded turn matches by exact text; expected one of: 'hello', 'menu'"

    config = ServerConfig(recordings=str(recordings), recording_speed=0, recording_match="text")
    async with LocalServer(config) as served:
        settings = Settings(base_url=served.base_url, org="recorded", head="r",
                            messages=["menu", "weather?"], timeout=5.0)  # fmt: skip
        out, err = io.StringIO(), io.StringIO()
        status = await run_pipe(settings, paths(), stdout=out, stderr=err)
    assert status == 4  # the unmatched turn failed, with a reason instead of silence
    assert "1) Tell me a fact" in out.getvalue()
    assert f"level {NO_MATCH_LEVEL}" in err.getvalue()
    assert "expected one of: 'hello', 'menu'" in err.getvalue()


async def test_a_bad_recording_in_the_folder_is_reported_and_not_served(
    server: LocalServer, tmp_path: Path
) -> None:
    recordings = tmp_path / "recordings"
    await record_pipe(server, "unith", "aiko", ["hello"], recordings / "good.jsonl")
    (recordings / "old.jsonl").write_text("".join(_lines(FRAME)))
    served = LocalServer(ServerConfig(recordings=str(recordings)))
    assert served.recorded_heads == ["recorded/good"]
    with pytest.raises(ValueError, match="unknown match mode 'fuzzy'"):
        LocalServer(ServerConfig(recordings=str(recordings), recording_match="fuzzy"))
    assert len(served.recording_problems) == 1 and "old.jsonl" in served.recording_problems[0]


def test_local_recordings_answer_as_recorded_in_pipe_mode(tmp_path: Path, shell_home: Path) -> None:
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    original = recordings / "chat.jsonl"
    first = run_cli(["--local", "-m", "hello", "-m", "menu", "--record", str(original)],
                    shell_home)  # fmt: skip
    assert first.returncode == 0, first.stderr
    again = run_cli(["--local", "--recordings", str(recordings), "--org", "recorded",
                     "--head", "chat", "--speed", "0", "-m", "hi", "-m", "whatever"],
                    shell_home)  # fmt: skip
    assert again.returncode == 0, again.stderr
    # Matched by order: the answers are the recorded ones, whatever was asked.
    assert again.stdout == first.stdout
    bad = run_cli(["--recordings", str(recordings), "-m", "x"], shell_home)
    assert bad.returncode == 2 and "--recordings needs --local" in bad.stderr


def test_serve_recordings_and_replay_over_the_network(tmp_path: Path, shell_home: Path) -> None:
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    original = recordings / "net.jsonl"
    made = run_cli(["--local", "-m", "hello", "-m", "bye", "--record", str(original)], shell_home)
    assert made.returncode == 0, made.stderr
    (recordings / "old.jsonl").write_text("".join(_lines(FRAME)))
    proc = subprocess.Popen(
        [*UNITH_SHELL, "serve", "--port", "0", "--recordings", str(recordings), "--speed", "0"],
        env=cli_env(shell_home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:")
        target = tmp_path / "replayed.jsonl"
        result = run_cli(["replay", str(original), "--base-url", url, "--org", "recorded",
                          "--head", "net", "--record", str(target), "--ignore-latency"],
                         shell_home)  # fmt: skip
    finally:
        proc.terminate()
        _, served_err = proc.communicate(timeout=10)
    assert result.returncode == 0, result.stderr
    assert served_err.count("not serving") == 1 and "old.jsonl: no recording header" in served_err
    assert "turn 2 'bye': same" in result.stdout
    assert f"recording the replay to {target}" in result.stderr
    assert load(target).head == "recorded/net"


# ---- the "done when" flow ------------------------------------------------------------------


async def test_log_on_then_replay_then_diff(
    make: Make, server: LocalServer, tmp_path: Path, shell_home: Path
) -> None:
    """A session recorded with /log on, replayed against the local server (unchanged head:
    same; another head: turn-level differences), compared with diff."""
    h = await make()
    logged = tmp_path / "session.jsonl"
    assert (await h.run(f"/log on {logged}")) == [f"logging every frame to {logged}"]
    for text in ("hello", "menu", "Tell me a fact"):
        await h.say(text)
    await h.run("/log off")
    await h.shell.stop()
    assert [t.user for t in load(logged).turns] == ["hello", "menu", "Tell me a fact"]

    same = tmp_path / "same.jsonl"
    other = tmp_path / "other.jsonl"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(list(args), shell_home)

    # The default head is the recording's (unith/aiko): the deterministic demo answers alike.
    first, second = await asyncio.gather(
        asyncio.to_thread(cli, "replay", str(logged), "--local", "--record", str(same),
                          "--ignore-latency"),
        asyncio.to_thread(cli, "replay", str(logged), "--local", "--head", "kai", "--record",
                          str(other), "--ignore-latency"),
    )  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    assert load(same).head == "unith/aiko"
    assert second.returncode == 1
    assert "turn 1 'hello': changed: text, suggestions, parts" in second.stdout

    result = cli("diff", "--ignore-latency", str(logged), str(other))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert "turn 2 'menu': same" in lines  # the menu is the same choice on every demo head
    assert any(line.startswith("turn 3 'Tell me a fact': changed: text") for line in lines)
    assert any(line.startswith("    text (") and "[-You said" in line for line in lines)


# ---- scenario -------------------------------------------------------------------------------


async def test_scenario_from_a_recording(server: LocalServer, tmp_path: Path) -> None:
    path = tmp_path / "menu and bye.jsonl"
    await record_pipe(server, "unith", "aiko", ["menu", "Goodbye", "error"], path)
    scenario = scenario_from_recording(load(path))
    assert scenario["name"] == "recorded menu and bye"
    assert scenario["head"] == "unith/aiko"
    greeting, menu, bye, error = scenario["steps"]
    assert greeting["greeting"]["similar"]["text"].startswith("Hi, I'm Aiko")
    assert menu == {
        "user": "menu",
        "expect": {
            "similar": {"text": "Here is what you can try:", "min": 0.8},
            "suggestions": {"count": 3, "contains": ["Tell me a fact", "What can you do?",
                                                     "Goodbye"]},
            "event": [{"name": "choice"}],
        },
    }  # fmt: skip
    assert bye["pick"] == "Goodbye" and bye["expect"]["event"] == [{"name": "conversation_end"}]
    assert bye["expect"]["similar"]["text"].startswith("You said “Goodbye”")
    assert error == {
        "user": "error",
        "expect": {"event": [{"name": "nlp_exception", "level": 400}]},
    }


def test_test_from_recording_writes_a_scenario_that_passes_and_catches_a_change(
    tmp_path: Path, shell_home: Path
) -> None:
    """``unith-shell test --from-recording``: a good conversation becomes a regression test
    in one command; run against a head that answers differently, it fails on that turn."""
    recording = tmp_path / "good.jsonl"
    made = subprocess.run(
        [*UNITH_SHELL, "--local", "--record", str(recording), "-m", "menu", "-m", "error"],
        capture_output=True, text=True, env=cli_env(shell_home), timeout=60,
    )  # fmt: skip
    assert made.returncode == 4, made.stderr  # the nlp error is a failed turn in pipe mode
    scenario = tmp_path / "good.yaml"
    wrote = run_cli(["test", "--from-recording", str(recording), "--output", str(scenario)],
                    shell_home)  # fmt: skip
    assert wrote.returncode == 0, wrote.stderr
    assert "wrote" in wrote.stderr and "(3 steps)" in wrote.stderr
    again = run_cli(["test", "--from-recording", str(recording), "--output", str(scenario)],
                    shell_home)  # fmt: skip
    assert again.returncode == 2 and "exists" in again.stderr  # never replaces a file
    passed = run_cli(["test", str(scenario), "--local"], shell_home)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "1 passed" in passed.stdout
    # The same scenario against another head (German answers, other suggestions) fails.
    failed = run_cli(["test", str(scenario), "--local", "--head", "unith/kai"], shell_home)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "similar" in failed.stdout and "menu" in failed.stdout


def test_test_from_recording_refuses_an_old_format_in_one_line(
    tmp_path: Path, shell_home: Path
) -> None:
    old = tmp_path / "old.jsonl"
    old.write_text(json.dumps({"format": "unith-shell-recording", "version": 0}) + "\n")
    proc = run_cli(["test", "--from-recording", str(old)], shell_home)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_the_repl_talks_to_a_recorded_head(tmp_path: Path, shell_home: Path) -> None:
    """``unith-shell --local --recordings DIR --org recorded --head NAME`` in a real terminal."""
    import pexpect

    recordings = tmp_path / "recordings"
    recordings.mkdir()
    made = run_cli(
        ["--local", "-m", "hello", "-m", "menu", "--record", str(recordings / "chat.jsonl")],
        shell_home,
    )
    assert made.returncode == 0, made.stderr
    child = pexpect.spawn(
        UNITH_SHELL[0],
        [*UNITH_SHELL[1:], "--local", "--recordings", str(recordings), "--org", "recorded",
         "--head", "chat", "--speed", "0"],
        env=cli_env(shell_home), dimensions=(30, 100), encoding="utf-8", timeout=15,
    )  # fmt: skip
    try:
        child.expect_exact("Hi, I'm Aiko, a digital human on your local Unith server.")
        child.expect_exact("chat>")
        child.send("something else entirely\r")
        child.expect_exact("You said “hello”. Thanks for telling me!")  # the recorded turn 1
        child.expect_exact("chat>")
        child.send("and again\r")
        child.expect_exact("Here is what you can try:")  # the recorded turn 2: a choice
        child.expect_exact("chat>")
        child.send("\x04")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
    finally:
        if child.isalive():
            child.terminate(force=True)


async def test_log_show_and_export_skip_the_header_and_name_a_disconnect(
    make: Make, server: LocalServer, tmp_path: Path
) -> None:
    h = await make()
    path = tmp_path / "cut.jsonl"
    await h.run(f"/log on {path}")
    await h.say("hello")
    await server.drop_all(1011)
    await h.wait_for(lambda: "disconnect" in path.read_text(encoding="utf-8"))
    shown = await h.run("/log show 100")
    assert not any("null" in line or "format" in line for line in shown), shown
    assert any(" -- disconnect: " in line for line in shown), shown
    markdown = tmp_path / "cut.md"
    await h.run(f"/log export md {markdown}")
    text = markdown.read_text(encoding="utf-8")
    assert " disconnected_" in text and "unreadable" not in text
    assert load(path).turns[0].user == "hello"
