"""unith-shell-censor: the masking, and both hooks in a real shell against the local server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import unith_shell_censor as censor

from unith_shell.config import Settings, paths
from unith_shell.protocol import ResponsePart, UserMessage
from unith_shell.server import LocalServer, ServerConfig
from unith_shell.shell import Shell


def test_masks_whole_words_any_case() -> None:
    c = censor.Censor(("darn", "heck"))
    assert c.apply("Darn it, what the heck") == "D*** it, what the h***"
    assert c.apply("darning socks") == "darning socks"  # whole words only
    c.enabled = False
    assert c.apply("darn") == "darn"


def test_hooks_change_message_and_reply_text() -> None:
    censor.CENSOR.set_words(["heck"])
    message = UserMessage(id=1, user_id="u", text="oh heck")
    censor.before_send(message)
    assert message.text == "oh h***"
    part = ResponsePart(event="text", raw={}, text="heck yes")
    censor.after_receive(part)
    assert part.text == "h*** yes"


@pytest.fixture
async def server() -> AsyncIterator[LocalServer]:
    async with LocalServer(ServerConfig(port=0)) as srv:
        yield srv


async def test_in_a_real_shell(server: LocalServer, tmp_path: Path) -> None:
    env = {"UNITH_SHELL_HOME": str(tmp_path), "UNITH_SHELL_PLUGINS": "", "NO_COLOR": "1",
           "UNITH_SHELL_CENSOR_WORDS": "darn,digital"}  # fmt: skip
    lines: list[str] = []
    shell = Shell(
        Settings(base_url=server.base_url, plugins=["unith_shell_censor"]),
        paths(env),
        env=env,
        write=lines.append,
    )
    shell.load_plugins()
    await shell.start_plugins()
    try:
        await shell.session.connect()  # the greeting says "a digital human"
        shell.session.start(connected=True)
        assert any("d****** human" in line for line in lines), lines
        turn = await shell.send("well darn")
        assert turn is not None
        await shell.session.wait(turn, timeout=5)
        sent = [f["text"] for f in server.received if f.get("event") == "text"]
        assert sent == ["well d***"]
        await shell.handle_line("/censor off")
        turn = await shell.send("darn again")
        assert turn is not None
        await shell.session.wait(turn, timeout=5)
        assert server.received[-1]["text"] == "darn again"
    finally:
        await shell.stop()
