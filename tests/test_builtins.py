"""The bundled plugins end to end: /head, /video, /log, /plugins, against the local server."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import UNITH_SHELL, Make, cli_env, fixture
from unith_shell.builtins import head as head_mod
from unith_shell.builtins import video as video_mod
from unith_shell.server import LocalServer

pytestmark = pytest.mark.timeout(60)

API_KEY = "sk-test-SECRET-api-key-42"


# ---- /head ----------------------------------------------------------------------------------


async def test_head_switches_live_and_the_next_message_goes_to_the_new_head(
    make: Make, server: LocalServer
) -> None:
    h = await make(plugins=(fixture("recorder"),))
    calls = h.shell.plugins.pm.get_plugin("recorder").CALLS
    first_session_id = h.shell.session.credentials.session_id
    out = await h.run("/head unith/kai")
    # The new head's greeting is shown, labelled with its alias.
    assert out[0] == "switching to unith/kai..."
    assert "Kai: Hallo, ich bin Kai. Wie kann ich helfen?" in out
    opts = h.shell.session.options
    assert (opts.org, opts.head) == ("unith", "kai")
    assert h.shell.session.connected
    # A second handshake on a new socket; on_connect fired for the new head.
    assert len([f for f in server.received if "token" in f]) == 2
    assert [c[1]["head"] for c in calls if c[0] == "on_connect"] == ["aiko", "kai"]
    turn = await h.say("hallo")
    assert h.sent_texts() == ["hallo"]
    assert "Verstanden" in turn.text  # Kai answers, in German
    assert h.shell.session.credentials.session_id == first_session_id  # same login
    # Back to the first head with the short form (org is kept).
    await h.run("/head aiko")
    assert h.shell.session.options.head == "aiko"
    assert "You said “hi”" in (await h.say("hi")).text
    assert head_mod.recent_heads(h.shell.context("head"))[:2] == ["unith/aiko", "unith/kai"]


async def test_head_without_argument_shows_the_head_info(make: Make) -> None:
    h = await make()
    out = await h.run("/head")
    assert "  head              unith/aiko" in out
    assert "  alias             Aiko" in out
    assert "  language          en-US" in out
    assert "  phrases           Tell me a fact; What can you do?; Show me the menu" in out
    assert "  connection        connected" in out
    assert h.shell.speaker() == "Aiko"


async def test_head_unknown_keeps_the_current_conversation(make: Make, server: LocalServer) -> None:
    h = await make()
    out = await h.run("/head unith/nobody")
    assert len(out) == 1 and out[0].startswith("error: /head: head unith/nobody")
    assert "404" in out[0]
    assert h.shell.session.options.head == "aiko" and h.shell.session.connected
    assert server.connections == 1  # never disconnected
    await h.say("still here")
    assert h.sent_texts() == ["still here"]
    assert (await h.run("/head a/b/c"))[0].startswith("error: /head: usage:")


async def test_head_completion_offers_known_heads(make: Make, shell_home: Path) -> None:
    config = shell_home / "config"
    config.mkdir(parents=True)
    (config / "config.toml").write_text(
        'org = "acme"\nhead = "front"\n[profiles.work]\nhead = "desk"\n'
        '[profiles.other]\norg = "zeta"\nhead = "bot"\n'
    )
    h = await make(local=True, connect=False)
    ctx = h.shell.context("head")
    words = head_mod.complete_head(ctx, "")
    # current head, config heads, the local demo heads; short forms for the current org.
    for expected in ["unith/aiko", "acme/front", "acme/desk", "zeta/bot", "unith/kai", "kai"]:
        assert expected in words, words
    assert head_mod.complete_head(ctx, "unith/k") == ["unith/kai"]
    head_mod.remember(ctx, "other/recent")
    recent_file = shell_home / "state" / head_mod.RECENT_FILE
    assert stat.S_IMODE(recent_file.stat().st_mode) == 0o600
    # Recent heads survive the shell: they are kept in the state folder.
    fresh = await make(connect=False)
    assert "other/recent" in head_mod.complete_head(fresh.shell.context("head"), "other/")
    assert "unith/kai" not in head_mod.complete_head(fresh.shell.context("head"), "")


# ---- /video ---------------------------------------------------------------------------------


async def idle_url(server: LocalServer) -> str:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        [video] = (await http.get("/api/v1/videos/unith/aiko")).json()
        url = (await http.get(f"/api/v1/idle/unith/aiko/{video['video_id']}")).json()
    assert isinstance(url, str)
    return url


async def test_video_prints_the_url_the_server_serves(make: Make, server: LocalServer) -> None:
    h = await make()
    url = await idle_url(server)
    assert await h.run("/video") == [url]
    assert url.startswith(server.base_url + "/media/")


async def test_video_check_reports_type_and_size_with_a_head_request(
    make: Make, server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = await make()
    methods: list[str] = []
    from unith_shell import api

    client = api.shared_client()
    real = client.send

    async def spy(request: httpx.Request, **kwargs: Any) -> httpx.Response:
        methods.append(f"{request.method} {request.url.path}")
        return await real(request, **kwargs)

    monkeypatch.setattr(client, "send", spy)
    out = await h.run("/video --check")
    assert out[1] == "  type video/mp4, size 195.3 KiB (200000 bytes)"
    media = [m for m in methods if "/media/" in m]
    assert media == ["HEAD /media/unith/aiko/idle.mp4"]  # no GET: the body was not fetched


async def test_video_download_writes_the_exact_bytes(
    make: Make, server: LocalServer, tmp_path: Path
) -> None:
    h = await make()
    url = await idle_url(server)
    async with httpx.AsyncClient() as http:
        expected = (await http.get(url)).content
    target = tmp_path / "clip.mp4"
    out = await h.run(f"/video --download {target}")
    assert target.read_bytes() == expected and len(expected) == 200_000
    assert out[0] == url
    assert "100.0%  200000/200000 bytes" in out[-2]
    assert out[-1] == f"  saved 195.3 KiB (200000 bytes) to {target}"
    # A folder gets the URL's file name; no temporary file is left behind.
    folder = tmp_path / "videos"
    folder.mkdir()
    await h.run(f"/video --download {folder}")
    assert (folder / "idle.mp4").read_bytes() == expected
    assert [p.name for p in folder.iterdir()] == ["idle.mp4"]
    missing = await h.run(f"/video --download {tmp_path / 'no' / 'such' / 'x.mp4'}")
    assert (
        missing[-1].startswith("error: /video: download: folder")
        and "does not exist" in missing[-1]
    )


async def test_video_open_hands_the_url_over_without_blocking(
    make: Make, server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = await make()
    launched: list[str] = []
    monkeypatch.setattr(video_mod, "launch", launched.append)
    out = await h.run("/video --open")
    assert launched == [await idle_url(server)]
    assert out[-1] == "  opened with the system's default handler"
    assert (await h.run("/video --bogus"))[0].startswith("error: /video: usage:")


def test_launch_uses_a_detached_opener(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[list[str], dict[str, Any]]] = []

    class FakePopen:
        def __init__(self, args: list[str], **kwargs: Any) -> None:
            seen.append((args, kwargs))

    monkeypatch.setattr(video_mod.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(video_mod.subprocess, "Popen", FakePopen)
    video_mod.launch("http://x/idle.mp4")
    [(args, kwargs)] = seen
    assert args[1] == "http://x/idle.mp4" and args[0].endswith("open")
    assert kwargs["start_new_session"] is True
    assert kwargs["stdout"] == kwargs["stderr"] == subprocess.DEVNULL


# ---- /log -----------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def test_log_writes_redacted_json_lines_of_every_frame(
    make: Make, server: LocalServer, shell_home: Path
) -> None:
    h = await make(api_key=API_KEY, plugins=(fixture("recorder"),))
    assert not h.shell.plugins.infos.get("log-recorder")
    out = await h.run("/log on")
    path = Path(out[0].removeprefix("logging every frame to "))
    assert path.parent == shell_home / "data" / "transcripts"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert await h.run("/log path") == [str(path)]
    await h.say("log me")
    await h.run("/head kai")  # the new handshake carries the token and the api key
    await h.say("und mich")
    header, *records = read_jsonl(path)
    # The first line is the recording header (docs/recordings.md): the head and host only.
    assert header["format"] == "unith-shell-recording" and header["version"] == 1
    assert header["head"] == "unith/aiko" and header["host"] == "127.0.0.1"
    frames = [
        (args["direction"], args["data"])
        for name, args in h.shell.plugins.pm.get_plugin("recorder").CALLS
        if name == "on_frame"
    ]
    # One line per frame since /log on, in order, with the same content (redacted).
    logged = frames[-len(records) :]
    assert [(r["direction"], r["payload"].get("text")) for r in records] == [
        (d, json.loads(data).get("text")) for d, data in logged
    ]
    assert {"time", "direction", "head", "event", "payload"} <= set(records[0])
    handshake = next(r for r in records if r["event"] == "handshake")
    assert handshake["payload"] == {"token": "***", "api_key": "***"}
    assert handshake["head"] == "unith/kai"
    text = path.read_text(encoding="utf-8")
    assert h.shell.session.credentials.access_token not in text
    assert API_KEY not in text
    sent = [
        r["payload"]["text"] for r in records if r["direction"] == "out" and r["event"] == "text"
    ]
    assert sent == ["log me", "und mich"]
    assert any(r["payload"].get("is_last") for r in records if r["direction"] == "in")

    shown = await h.run("/log show 2")
    assert len(shown) == 2 and all(" <- " in line for line in shown)
    md = shell_home / "t.md"
    await h.run(f"/log export md {md}")
    markdown = md.read_text(encoding="utf-8")
    assert "**You** (" in markdown and "): log me" in markdown
    assert "**Kai** (" in markdown and "Verstanden" in markdown
    assert "connected to unith/kai" in markdown
    assert API_KEY not in markdown

    off = await h.run("/log off")
    assert off[0].startswith(f"logging off ({len(records)} frame(s) written")
    assert "log-recorder" not in h.shell.plugins.infos
    await h.say("not logged")
    assert len(read_jsonl(path)) == len(records) + 1


async def test_log_to_a_chosen_path_and_usage(make: Make, tmp_path: Path) -> None:
    h = await make()
    assert not h.shell.plugins.has("on_frame")  # nothing on the frame path while off
    assert await h.run("/log path") == ["not logging (/log on starts a transcript)"]
    assert (await h.run("/log show"))[0] == "error: /log: no transcript yet: /log on starts one"
    target = tmp_path / "new" / "chat.jsonl"
    await h.run(f"/log on {target}")
    assert h.shell.plugins.has("on_frame")
    await h.say("to a file")
    assert (await h.run("/log on"))[0].startswith("error: /log: already logging")
    assert any(r["payload"].get("text") == "to a file" for r in read_jsonl(target)[1:])
    assert (await h.run("/log sideways"))[0].startswith("error: /log: usage:")
    await h.shell.stop()  # shell_exit closes the file and removes the recorder
    assert not h.shell.plugins.has("on_frame")


def test_log_survives_sigkill(tmp_path: Path) -> None:
    """Every line written before the shell is killed is intact and parseable."""
    log = tmp_path / "killed.jsonl"
    proc = subprocess.Popen(
        [*UNITH_SHELL, "--local", "--api-key", API_KEY],
        env=cli_env(tmp_path / "home"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(f"/log on {log}\nfirst message\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 20
        while "first message" not in (proc.stdout.readline() or ""):
            assert time.monotonic() < deadline and proc.poll() is None
        # The reply is printed: mid-session, no /log off, no exit. Kill it hard.
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert proc.returncode == -signal.SIGKILL
    raw = log.read_text(encoding="utf-8")
    assert raw.endswith("\n")
    header, *records = [json.loads(line) for line in raw.splitlines()]  # every line parses
    assert header["format"] == "unith-shell-recording"
    texts = [r["payload"].get("text", "") for r in records]
    assert "first message" in texts
    assert any("You said “first message”" in t for t in texts)
    assert any(r["payload"].get("is_last") for r in records if r["direction"] == "in")
    assert API_KEY not in raw


# ---- /plugins -------------------------------------------------------------------------------


async def test_plugins_list(make: Make) -> None:
    h = await make(plugins=(fixture("transform"),))
    out = await h.run("/plugins")
    assert "core  [bundled]" in out
    assert "    commands: /head" in out and "    commands: /video" in out
    assert any(line.startswith("transform  [command line]  /") for line in out)
    assert "    hooks: after_receive, before_send" in out
    assert any(line.startswith("plugin folders: ") for line in out)
    assert "allowlist (UNITH_SHELL_PLUGINS): (empty)" in out
    assert out[-1] == "hook tracing off"
    assert (await h.run("/plugins trace maybe"))[
        0
    ] == "error: /plugins: usage: /plugins trace on|off"


async def test_plugins_reload_picks_up_new_and_changed_files(make: Make, shell_home: Path) -> None:
    folder = shell_home / "config" / "plugins"
    folder.mkdir(parents=True)
    h = await make(env={"UNITH_SHELL_PLUGINS": None})
    assert (await h.run("/shout hi"))[0].startswith("error: unknown command /shout")
    source = (
        "from unith_shell import hookimpl\n\n"
        "async def shout(ctx, arg):\n"
        "    await ctx.session.send(arg.upper() + '{suffix}')\n\n"
        "@hookimpl\n"
        "def register_commands(register):\n"
        "    register('shout', shout)\n"
    )
    (folder / "shout.py").write_text(source.format(suffix=""))
    assert "shout" in (await h.run("/plugins reload"))[0]
    await h.run("/shout hi")
    await h.wait_for(lambda: h.sent_texts() == ["HI"])
    (folder / "shout.py").write_text(source.format(suffix="!!"))
    await h.run("/plugins reload")
    await h.run("/shout hi")
    await h.wait_for(lambda: h.sent_texts() == ["HI", "HI!!"])
    (folder / "shout.py").unlink()
    assert (await h.run("/plugins reload"))[0] == "reloaded 0 plugin file(s): none"
    assert h.shell.registry.get("shout") is None


def test_plugins_command_line_json_stays_parseable(tmp_path: Path) -> None:
    folder = tmp_path / "config" / "plugins"
    folder.mkdir(parents=True)
    (folder / "broken.py").write_text("raise RuntimeError('broken on purpose')\n")
    (folder / "shout.py").write_text(
        "from unith_shell import hookimpl\n\n@hookimpl\ndef shell_exit(shell):\n    pass\n"
    )
    env = cli_env(tmp_path, UNITH_SHELL_PLUGINS="broken,shout")
    result = subprocess.run(
        [*UNITH_SHELL, "plugins", "--json"], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["shout"]["source"] == "local file" and rows["shout"]["hooks"] == ["shell_exit"]
    assert {"core", "head", "video", "log", "plugins_cmd"} <= set(rows)
    assert "plugin 'broken'" in result.stderr and "broken on purpose" in result.stderr
    text = subprocess.run(
        [*UNITH_SHELL, "plugins"], env=env, capture_output=True, text=True, timeout=30
    ).stdout
    assert "shout  [local file]  hooks: shell_exit" in text
