"""Secret hygiene: a scripted session with known token, api key and password values, then a
search of everything the shell printed and every file it wrote."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

from tests.support import UNITH_SHELL, cli_env
from unith_shell.server import LocalServer, ServerConfig

PASSWORD = "pw-Secret-7391"
API_KEY = "ak-Secret-5528"


def written_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


async def test_no_secret_in_output_or_files(tmp_path: Path) -> None:
    home = tmp_path / "home"
    script = "\n".join(
        [
            "/log on",
            "/raw on",
            "hello",
            "/status",
            "error",  # an unith_nlp_exception: an error line
            "/log show 20",
            "/video --check",
            "/plugins",
            "/nonsense",
            "/head unith/kai",
            "hallo",
        ]
    )
    async with LocalServer(ServerConfig(password=PASSWORD)) as server:
        env = cli_env(
            home,
            UNITH_BASE_URL=server.base_url,
            UNITH_API_KEY=API_KEY,
            UNITH_PASSWORD=PASSWORD,
        )
        proc = await asyncio.create_subprocess_exec(
            *UNITH_SHELL,
            "--json",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await asyncio.wait_for(proc.communicate(script.encode() + b"\n"), 60)
        tokens = {f["token"] for f in server.received if "token" in f}
        handshakes = [f for f in server.received if "token" in f]
    assert len(tokens) >= 1 and all(len(t) > 20 for t in tokens)
    # The secrets did reach the server, where they belong.
    assert all(h["api_key"] == API_KEY for h in handshakes)
    assert len(handshakes) == 2  # /head switched heads with a fresh handshake

    secrets = [PASSWORD, API_KEY, *tokens]
    printed = out.decode() + err.decode()
    assert '"event": "unith_shell.turn"' in printed and "hallo" in printed  # it really ran
    for secret in secrets:
        assert secret not in printed

    files = written_files(home)
    transcripts = [p for p in files if p.suffix == ".jsonl"]
    assert transcripts, files
    assert '"api_key": "***"' in transcripts[0].read_text()  # redacted, not dropped
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, f"{secret[:6]}... in {path}"
        if os.name == "posix":
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700, path.parent


async def test_no_secret_in_help_or_bad_flag_errors(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "home", UNITH_API_KEY=API_KEY, UNITH_PASSWORD=PASSWORD)
    for args in (["--help"], ["--bogus-flag"], ["--timeout", "soon"]):
        proc = await asyncio.create_subprocess_exec(
            *UNITH_SHELL,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        text = (out + err).decode()
        assert API_KEY not in text and PASSWORD not in text
        assert "Traceback" not in text
