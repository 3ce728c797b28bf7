"""Local files the shell writes: downloads, transcripts, exports, folders, history; and the
system opener of ``/video --open``.

A server must not pick which local file is written, a planted symbolic link must not redirect
a write, and folders the shell makes are private whatever the umask. The "media host" below is
a real aiohttp server that answers the idle-video routes with a URL the test chooses.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pexpect
import pytest
from aiohttp import web

from tests.support import UNITH_SHELL, Harness, Make, cli_env, quit_with_ctrl_d, spawn, start_shell
from unith_shell.files import ensure_private_dir

pytestmark = pytest.mark.timeout(60)

VIDEO = b"\x00\x00\x00\x18ftypmp42 not really a video"


class MediaHost:
    """videos -> idle -> ``idle_url`` (set per test); every ``/files/...`` path serves VIDEO."""

    def __init__(self) -> None:
        self.idle_url = ""
        self.base_url = ""

    def app(self) -> web.Application:
        async def videos(request: web.Request) -> web.Response:
            return web.json_response([{"video_id": "v1"}])

        async def idle(request: web.Request) -> web.Response:
            url = self.idle_url.replace("BASE", self.base_url)
            return web.json_response(url)

        async def files(request: web.Request) -> web.Response:
            return web.Response(body=VIDEO, content_type="video/mp4")

        app = web.Application()
        app.router.add_get("/api/v1/videos/{org}/{head}", videos)
        app.router.add_get("/api/v1/idle/{org}/{head}/{video}", idle)
        app.router.add_route("*", "/files/{tail:.*}", files)
        return app


@pytest.fixture
async def media_host() -> AsyncIterator[MediaHost]:
    host = MediaHost()
    runner = web.AppRunner(host.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    host.base_url = f"http://127.0.0.1:{port}"
    try:
        yield host
    finally:
        await runner.cleanup()


@pytest.fixture
async def hosted(media_host: MediaHost) -> AsyncIterator[Harness]:
    """A shell (not connected: /video needs REST only) whose base URL is the media host."""
    harness = await start_shell(media_host, connect=False)  # type: ignore[arg-type]
    try:
        yield harness
    finally:
        await harness.shell.stop()


# ---- /video --download ----------------------------------------------------------------------


async def test_download_never_overwrites_an_existing_file_without_force(
    hosted: Harness, media_host: MediaHost, tmp_path: Path
) -> None:
    media_host.idle_url = "BASE/files/idle.mp4"
    target = tmp_path / "keep.mp4"
    target.write_bytes(b"precious")
    out = await hosted.run(f"/video --download {target}")
    assert out[-1] == f"error: /video: download: {target} exists; add --force to replace it"
    assert target.read_bytes() == b"precious"
    # The same for a folder target whose URL name is taken.
    (tmp_path / "idle.mp4").write_bytes(b"mine")
    out = await hosted.run(f"/video --download {tmp_path}")
    assert "exists; add --force" in out[-1]
    assert (tmp_path / "idle.mp4").read_bytes() == b"mine"
    # --force replaces it (either position).
    await hosted.run(f"/video --download --force {target}")
    assert target.read_bytes() == VIDEO
    await hosted.run(f"/video --download {tmp_path} --force")
    assert (tmp_path / "idle.mp4").read_bytes() == VIDEO
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idle.mp4", "keep.mp4"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/files/.bashrc", "bashrc"),
        ("/files/..%2F..%2F.bashrc", "bashrc"),
        ("/files/a%5C..%5C..%5Cevil.mp4", "evil.mp4"),
        ("/files/%1B%5D0%3Bpwn%07clip%E2%80%AE4pm.mp4", "]0;pwnclip4pm.mp4"),
        ("/files/", "idle-aiko.mp4"),
        ("/files/%2E%2E", "idle-aiko.mp4"),
        ("/files/%20.%20%E2%80%8B", "idle-aiko.mp4"),
    ],
)
async def test_a_name_taken_from_the_url_is_sanitised(
    hosted: Harness, media_host: MediaHost, tmp_path: Path, path: str, expected: str
) -> None:
    media_host.idle_url = f"BASE{path}"
    folder = tmp_path / "downloads"
    folder.mkdir()
    out = await hosted.run(f"/video --download {folder}")
    assert out[-1].startswith("  saved"), out
    assert [p.name for p in folder.iterdir()] == [expected]
    assert (folder / expected).read_bytes() == VIDEO
    assert [p.name for p in tmp_path.iterdir() if p.name != "home"] == ["downloads"]


def test_safe_file_name_bounds_the_length() -> None:
    from unith_shell.builtins.video import safe_file_name

    name = safe_file_name("http://h/" + "é" * 300 + ".mp4", "aiko")
    assert len(name.encode()) <= 200 and name.startswith("é")


async def test_the_temporary_file_is_created_exclusively(
    hosted: Harness, media_host: MediaHost, tmp_path: Path
) -> None:
    """A link planted where a predictable temporary file would go is neither followed nor
    renamed into place."""
    media_host.idle_url = "BASE/files/idle.mp4"
    victim = tmp_path / "victim"
    victim.write_bytes(b"untouched")
    planted = tmp_path / f".clip.mp4.{os.getpid()}.part"
    planted.symlink_to(victim)
    target = tmp_path / "clip.mp4"
    await hosted.run(f"/video --download {target}")
    assert victim.read_bytes() == b"untouched"
    assert not target.is_symlink() and target.read_bytes() == VIDEO
    assert planted.is_symlink()  # not ours: left alone
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]
    assert leftovers == [planted.name]


async def test_a_download_gets_the_users_normal_mode(
    hosted: Harness, media_host: MediaHost, tmp_path: Path
) -> None:
    media_host.idle_url = "BASE/files/idle.mp4"
    old = os.umask(0o002)
    try:
        await hosted.run(f"/video --download {tmp_path / 'a.mp4'}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.mp4").stat().st_mode) == 0o664


# ---- folders and the umask ------------------------------------------------------------------


def test_every_folder_the_shell_makes_is_0700_whatever_the_umask(tmp_path: Path) -> None:
    home = tmp_path / "x" / "y" / "home"
    result = subprocess.run(
        [*UNITH_SHELL, "--local"],
        input="/log on\nhello\n",
        env=cli_env(home),
        capture_output=True,
        text=True,
        timeout=60,
        umask=0,
    )
    assert result.returncode == 0, result.stderr
    transcripts = home / "data" / "transcripts"
    for folder in (tmp_path / "x", tmp_path / "x" / "y", home, home / "data", transcripts):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    [transcript] = transcripts.iterdir()
    assert stat.S_IMODE(transcript.stat().st_mode) == 0o600


def test_ensure_private_dir_under_a_strict_umask(tmp_path: Path) -> None:
    old = os.umask(0o277)  # would make 0500 folders the shell could not write into
    try:
        made = ensure_private_dir(tmp_path / "a" / "b")
    finally:
        os.umask(old)
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    assert stat.S_IMODE(made.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(tmp_path.stat().st_mode) != 0o777  # untouched parent stays as it was


# ---- /log on PATH and /log export -----------------------------------------------------------


async def test_log_on_never_follows_a_link_nor_changes_an_existing_files_mode(
    make: Make, tmp_path: Path
) -> None:
    h = await make()
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(victim)
    out = await h.run(f"/log on {link}")
    assert out == [f"error: /log: cannot open {link}: is a symbolic link (not followed)"]
    assert victim.read_text() == "untouched\n"

    existing = tmp_path / "old.jsonl"
    existing.write_text('{"old": 1}\n')
    existing.chmod(0o644)
    out = await h.run(f"/log on {existing}")
    assert out == [f"logging every frame to {existing} (appending to the existing file)"]
    await h.say("appended")
    await h.run("/log off")
    lines = existing.read_text().splitlines()
    assert lines[0] == '{"old": 1}' and any("appended" in line for line in lines[1:])
    assert stat.S_IMODE(existing.stat().st_mode) == 0o644


async def test_log_on_refuses_a_fifo_without_hanging(make: Make, tmp_path: Path) -> None:
    h = await make()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    out = await asyncio.wait_for(h.run(f"/log on {fifo}"), 10)
    assert out == [f"error: /log: cannot open {fifo}: not a regular file"]


async def test_log_export_refuses_an_existing_file_unless_forced(
    make: Make, tmp_path: Path
) -> None:
    h = await make()
    await h.run(f"/log on {tmp_path / 't.jsonl'}")
    await h.say("export me")
    existing = tmp_path / "notes.md"
    existing.write_text("my notes\n")
    existing.chmod(0o640)
    out = await h.run(f"/log export md {existing}")
    assert out == [f"error: /log: {existing} exists; /log export md --force PATH replaces it"]
    assert existing.read_text() == "my notes\n"
    await h.run(f"/log export md --force {existing}")
    assert "export me" in existing.read_text()
    assert stat.S_IMODE(existing.stat().st_mode) == 0o640  # rewritten in place, mode kept
    # A link is refused even with --force; a new file is created 0600.
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    link = tmp_path / "link.md"
    link.symlink_to(victim)
    out = await h.run(f"/log export md --force {link}")
    assert out == [f"error: /log: cannot write {link}: is a symbolic link (not followed)"]
    assert victim.read_text() == "untouched\n"
    await h.run(f"/log export md {tmp_path / 'new.md'}")
    assert stat.S_IMODE((tmp_path / "new.md").stat().st_mode) == 0o600


# ---- /video --open --------------------------------------------------------------------------

FAKE_OPENER = """#!{python}
import json, os, sys
with open({record!r}, "w") as fh:
    json.dump({{"argv": sys.argv[1:], "env": dict(os.environ)}}, fh)
"""


@pytest.fixture
def fake_opener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``xdg-open`` and ``open`` on PATH that record their argv and environment."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "opened.json"
    for name in ("xdg-open", "open"):
        script = bin_dir / name
        script.write_text(FAKE_OPENER.format(python=sys.executable, record=str(record)))
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return record


async def test_open_hands_only_the_url_to_the_opener_without_unith_secrets(
    hosted: Harness,
    media_host: MediaHost,
    fake_opener: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    monkeypatch.setenv("UNITH_API_KEY", "sk-secret-key")
    monkeypatch.setenv("UNITH_PASSWORD", "hunter2")
    monkeypatch.setenv("UNITH_SOMETHING_ELSE", "x")
    monkeypatch.setenv("KEEP_ME", "yes")
    media_host.idle_url = "BASE/files/idle.mp4"
    out = await hosted.run("/video --open")
    assert out[-1] == "  opened with the system's default handler"
    await hosted.wait_for(lambda: fake_opener.exists() and fake_opener.stat().st_size > 0, 20)
    opened = json.loads(fake_opener.read_text())
    assert opened["argv"] == [f"{media_host.base_url}/files/idle.mp4"]
    assert not [k for k in opened["env"] if k.startswith("UNITH_")]
    assert opened["env"]["KEEP_ME"] == "yes"


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "javascript:alert(1)", "-oProxyCommand=x", "smb://host/share",
     "http:///no-host", "http://h/a b"],
)  # fmt: skip
async def test_open_refuses_anything_but_http_urls(
    hosted: Harness, media_host: MediaHost, fake_opener: Path, url: str
) -> None:
    media_host.idle_url = url
    out = await hosted.run("/video --open")
    assert out[-1].startswith("error: /video: open: "), out
    await asyncio.sleep(0.5)  # the opener, if it were started, would have written by now
    assert not fake_opener.exists()


# ---- history --------------------------------------------------------------------------------


def _no_crash(text: str) -> None:
    assert "Traceback" not in text and "Press ENTER" not in text, text


def test_a_folder_in_place_of_the_history_file_warns_once(
    shell_home: Path, children: list[pexpect.spawn]
) -> None:
    (shell_home / "state" / "history").mkdir(parents=True)
    child = spawn(shell_home)
    children.append(child)
    child.expect_exact("history is kept in memory for this session")
    child.expect_exact("aiko>")
    for text in ("first line", "second line"):
        child.send(f"{text}\r")
        child.expect_exact(f"You said “{text}”")
    child.send("\x1b[A")  # Up: the in-memory history still works
    child.expect_exact("second line")
    child.send("\x15")  # Ctrl+U clears the line
    quit_with_ctrl_d(child)
    seen = child.before or ""
    _no_crash(seen)


def test_a_history_file_that_cannot_be_written_warns_once(
    shell_home: Path, children: list[pexpect.spawn], tmp_path: Path
) -> None:
    child = spawn(shell_home)
    children.append(child)
    child.expect_exact("aiko>")
    history = shell_home / "state" / "history"
    assert history.is_file()
    # Now the file becomes a link to a full disk: every write would fail.
    history.unlink()
    history.symlink_to("/dev/full")
    transcript = []
    for text in ("one", "two", "three"):
        child.send(f"{text}\r")
        child.expect_exact(f"You said “{text}”")
        transcript.append(child.before)
    quit_with_ctrl_d(child)
    output = "".join(transcript)
    _no_crash(output)
    assert output.count("history is kept in memory for this session") == 1


@pytest.fixture
def children() -> Iterator[list[pexpect.spawn]]:
    spawned: list[pexpect.spawn] = []
    yield spawned
    for child in spawned:
        if child.isalive():
            child.terminate(force=True)


def test_history_is_read_in_prompt_toolkits_format(tmp_path: Path) -> None:
    from prompt_toolkit.history import FileHistory

    from unith_shell.repl import _parse_history

    path = tmp_path / "history"
    written = FileHistory(str(path))
    for entry in ("first", "two\nlines", "", "trailing\n", "é ünïcode"):
        written.store_string(entry)
    expected = list(FileHistory(str(path)).load_history_strings())
    assert _parse_history(path.read_text(encoding="utf-8")) == expected
    assert expected[0] == "é ünïcode"
