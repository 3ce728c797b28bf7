"""In-process REPL tests: the real ``run_repl`` fed by a prompt-toolkit pipe input, against the
real local server on a free port. Assertions are on what the server received and on what the
shell printed (captured through the shell's ``write`` function)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from prompt_toolkit.application.current import AppSession, create_app_session
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.input import PipeInput, create_pipe_input
from prompt_toolkit.output import DummyOutput

from tests.support import new_shell
from unith_shell.repl import ShellCompleter, run_repl
from unith_shell.server import LocalServer
from unith_shell.settings import Settings
from unith_shell.shell import Shell

API_KEY = "test-api-key-5f3c9e"

WEATHER_PLUGIN = """
from unith_shell import hookimpl


def weather(ctx, arg):
    ctx.print(f"weather: {arg or 'sunny'}")


@hookimpl
def register_commands(register):
    register("weather", weather, help="Say the weather", usage="KIND",
             complete=["sunny", "stormy", "rainy"])
"""


class RecordingOutput(DummyOutput):
    """A ``DummyOutput`` that counts screen erases (what ``/clear`` does)."""

    def __init__(self) -> None:
        self.erased = 0

    def erase_screen(self) -> None:
        self.erased += 1


def make_shell(server: LocalServer, **overrides: Any) -> tuple[Shell, list[str]]:
    settings = Settings(base_url=server.base_url, timeout=5.0, connect_timeout=5.0, **overrides)
    lines: list[str] = []
    env = {**os.environ, "NO_COLOR": "1"}
    return new_shell(settings, env=env, write=lines.append), lines


class Repl:
    """A running ``run_repl``: type into it, wait for what it printed or sent."""

    def __init__(
        self,
        shell: Shell,
        lines: list[str],
        pipe: PipeInput,
        app_session: AppSession,
        output: RecordingOutput,
        server: LocalServer,
    ) -> None:
        self.shell = shell
        self.lines = lines
        self.pipe = pipe
        self.app_session = app_session
        self.output = output
        self.server = server
        self.task: asyncio.Task[int] | None = None

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def type(self, keys: str) -> None:
        self.pipe.send_text(keys)

    async def wait(self, predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.task is not None and self.task.done():
                self.task.result()  # surfaces a crash of the REPL
                raise AssertionError(f"the REPL exited while waiting for {what}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; output:\n{self.text}")
            await asyncio.sleep(0.01)

    async def wait_output(self, needle: str, timeout: float = 5.0) -> None:
        await self.wait(lambda: needle in self.text, repr(needle), timeout)

    async def at_prompt(self) -> None:
        """Wait until a prompt is reading keys (needed before keys that act on state)."""

        def running() -> bool:
            app = self.app_session.app
            return app is not None and app.is_running

        await self.wait(running, "the prompt")

    def sent_texts(self) -> list[str]:
        """The text of every user message the server received (handshakes excluded)."""
        return [
            f["text"]
            for f in self.server.received
            if "text" in f and "token" not in f and f.get("event") != "keep_session"
        ]

    async def wait_sent(self, text: str) -> None:
        await self.server.wait_until(lambda: text in self.sent_texts())

    async def reply_to(self, text: str, timeout: float = 5.0) -> None:
        """Wait until ``text`` went out and its turn is over (the suggestions are then set)."""
        await self.wait_sent(text)

        def done() -> bool:
            turn = self.shell.session.last_turn
            return turn is not None and turn.prompt == text and turn.complete

        await self.wait(done, f"the reply to {text!r}", timeout)

    async def exit_code(self, timeout: float = 5.0) -> int:
        assert self.task is not None
        return await asyncio.wait_for(self.task, timeout)


@asynccontextmanager
async def running(
    shell: Shell, lines: list[str], server: LocalServer, greeting: str | None = ": Hi, I'm Aiko"
) -> AsyncIterator[Repl]:
    """The REPL connected and at the prompt, after ``greeting`` is shown (None: any head,
    greeting or not)."""
    output = RecordingOutput()
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=output) as app_session:
        repl = Repl(shell, lines, pipe, app_session, output, server)
        repl.task = asyncio.create_task(run_repl(shell))
        try:
            await repl.wait(lambda: shell.session.connected, "the connection")
            if greeting is not None:
                await repl.wait_output(greeting)
            await repl.at_prompt()
            yield repl
        finally:
            if not repl.task.done():
                shell.exit_requested = True
                pipe.send_text("\x04")
                await asyncio.wait_for(repl.task, 5)


@pytest.fixture
async def repl(server: LocalServer) -> AsyncIterator[Repl]:
    shell, lines = make_shell(server, api_key=API_KEY)
    async with running(shell, lines, server) as r:
        yield r


# ---- routing ----------------------------------------------------------------------------------


async def test_plain_line_is_sent_and_the_reply_is_shown(repl: Repl) -> None:
    repl.type("hello\r")
    await repl.wait_sent("hello")
    await repl.wait_output(": You said “hello”. Thanks for telling me!")
    await repl.wait_output("1) What can you do?")
    assert repl.sent_texts() == ["hello"]


async def test_escape_enter_inserts_a_newline_in_one_message(repl: Repl) -> None:
    repl.type("line one\x1b\rline two\r")
    await repl.wait_sent("line one\nline two")
    assert repl.sent_texts() == ["line one\nline two"]


async def test_a_pasted_block_of_lines_is_one_message(repl: Repl) -> None:
    # Bracketed paste, as a terminal sends it: the newlines inside do not submit.
    repl.type("\x1b[200~first\nsecond\nthird\x1b[201~\r")
    await repl.wait_sent("first\nsecond\nthird")
    assert repl.sent_texts() == ["first\nsecond\nthird"]


async def test_ctrl_r_finds_an_earlier_line(repl: Repl) -> None:
    repl.type("remember this one\r")
    await repl.reply_to("remember this one")
    repl.type("something else\r")
    await repl.reply_to("something else")
    await repl.at_prompt()
    app = repl.app_session.app
    assert app is not None

    def line() -> str:
        return app.current_buffer.text  # the search field while searching, else the prompt

    # Ctrl+R and a fragment; Enter takes the match into the line; Enter sends it.
    repl.type("\x12this o")
    await repl.wait(lambda: line() == "this o", "the search text")
    repl.type("\r")
    await repl.wait(lambda: line() == "remember this one", "the match in the line")
    repl.type("\r")
    await repl.server.wait_until(lambda: repl.sent_texts().count("remember this one") == 2)
    assert repl.sent_texts() == ["remember this one", "something else", "remember this one"]


async def test_command_is_run_not_sent(repl: Repl) -> None:
    repl.type("/status\r")
    await repl.wait_output("base url")
    repl.type("after\r")
    await repl.wait_sent("after")
    # The server saw the message typed after /status, and nothing of /status itself.
    assert repl.sent_texts() == ["after"]


async def test_double_slash_sends_a_literal_slash(repl: Repl) -> None:
    repl.type("//status please\r")
    await repl.wait_sent("/status please")
    await repl.wait_output("You said “/status please”")
    assert "base url" not in repl.text


async def test_number_and_pick_send_suggestions(repl: Repl) -> None:
    repl.type("hello\r")
    await repl.reply_to("hello")
    second = repl.shell.suggestions[1]
    repl.type("2\r")
    await repl.reply_to(second)
    first = repl.shell.suggestions[0]
    repl.type("/pick 1\r")
    await repl.reply_to(first)
    assert repl.sent_texts() == ["hello", second, first]


async def test_a_number_out_of_range_is_sent_as_text_and_pick_says_why(repl: Repl) -> None:
    repl.type("hello\r")
    await repl.reply_to("hello")
    assert len(repl.shell.suggestions) == 3
    repl.type("7\r")  # no suggestion 7: the number is what the user means to say
    await repl.reply_to("7")
    assert len(repl.shell.suggestions) == 3  # the reply to "7" has its own suggestions
    repl.type("/pick 0\r")
    await repl.wait_output("no suggestion 0")
    repl.type("still here\r")
    await repl.wait_sent("still here")
    assert repl.sent_texts() == ["hello", "7", "still here"]


async def test_send_is_literal_and_numbers_pick_only_while_shown(repl: Repl) -> None:
    repl.type("hello\r")
    await repl.reply_to("hello")
    repl.type("/send 2\r")  # suggestions are shown, but /send sends the text itself
    await repl.reply_to("2")
    repl.type("/send /status\r")
    await repl.reply_to("/status")
    first = repl.shell.suggestions[0]
    repl.type("1\r")
    await repl.reply_to(first)
    repl.type("/clear\r")  # the suggestions are gone from the screen ...
    await repl.wait(lambda: repl.output.erased > 0, "the screen cleared")
    repl.type("1\r")  # ... so "1" is text
    await repl.reply_to("1")
    repl.type("/send\r")
    await repl.wait_output("error: /send: usage: /send TEXT")
    assert repl.sent_texts() == ["hello", "2", "/status", first, "1"]


# ---- core commands ----------------------------------------------------------------------------


async def test_help_lists_every_command_and_help_cmd_shows_one(repl: Repl) -> None:
    repl.type("/help\r")
    await repl.wait_output("Ctrl+D quits")
    for name in repl.shell.registry.names():
        assert f"  /{name} " in repl.text, name
    start = len(repl.lines)
    repl.type("/help raw\r")
    await repl.wait_output("/raw on|off")
    assert repl.lines[start:] == [
        "/raw on|off",
        f"  {repl.shell.registry.commands['raw'].help}",
        "  from plugin: core",
    ]
    repl.type("/help nosuch\r")
    await repl.wait_output("error: /help: no command /nosuch")
    assert repl.sent_texts() == []


async def test_quit_exits_zero_and_closes_the_socket(repl: Repl) -> None:
    repl.type("/quit\r")
    assert await repl.exit_code() == 0
    await repl.server.wait_until(lambda: repl.server.open_connections == 0)
    assert repl.sent_texts() == []


async def test_status_shows_ids_but_never_secrets(repl: Repl) -> None:
    creds = repl.shell.session.credentials
    assert creds is not None and creds.session_id
    repl.type("/status\r")
    await repl.wait_output("pending")
    text = repl.text
    assert f"base url      {repl.server.base_url}" in text
    assert "head          unith/aiko" in text
    assert f"user id       {creds.user_id}" in text
    assert f"session id    {creds.session_id}" in text
    assert "token expires in 60 min" in text
    assert "api key       set" in text
    assert creds.access_token not in text
    assert API_KEY not in text


async def test_reconnect_makes_a_second_connection(repl: Repl) -> None:
    server = repl.server
    assert server.connections == 1
    repl.type("/reconnect\r")
    await server.wait_until(lambda: server.connections == 2 and server.open_connections == 1)
    await repl.wait(lambda: repl.shell.session.connected, "the new connection")
    repl.type("after reconnect\r")
    await repl.wait_output("You said “after reconnect”")


async def test_raw_shows_redacted_frames_until_off(repl: Repl) -> None:
    repl.type("/raw on\r")
    await repl.wait_output("raw frames on")
    repl.type("/reconnect\r")  # a handshake (token, api key) goes out while raw is on
    await repl.server.wait_until(lambda: repl.server.connections == 2)
    await repl.wait(lambda: repl.shell.session.connected, "the new connection")
    repl.type("hello\r")
    await repl.reply_to("hello")
    frames = [line for line in repl.lines if line.startswith(("-> ", "<- "))]
    handshakes = [f for f in frames if f.startswith("-> ") and '"token"' in f]
    assert handshakes and all('"token": "***"' in f for f in handshakes)
    assert all('"api_key": "***"' in f for f in handshakes)
    assert any(f.startswith("-> ") and '"text": "hello"' in f for f in frames)
    assert any(f.startswith("<- ") and '"is_last": true' in f for f in frames)
    creds = repl.shell.session.credentials
    assert creds is not None
    assert creds.access_token not in repl.text
    assert API_KEY not in repl.text

    repl.type("/raw off\r")
    await repl.wait_output("raw frames off")
    start = len(repl.lines)
    repl.type("quiet now\r")
    await repl.reply_to("quiet now")
    await repl.wait_output("You said “quiet now”")
    assert not [line for line in repl.lines[start:] if line.startswith(("-> ", "<- "))]


async def test_clear_erases_the_screen(repl: Repl) -> None:
    before = repl.output.erased
    repl.type("/clear\r")
    await repl.wait(lambda: repl.output.erased > before, "the screen to be erased")
    repl.type("after clear\r")
    await repl.wait_sent("after clear")
    assert repl.sent_texts() == ["after clear"]


async def test_unknown_command_is_one_line_with_the_closest_match(repl: Repl) -> None:
    start = len(repl.lines)
    repl.type("/stauts\r")
    await repl.wait_output("unknown command")
    repl.type("/help nosuch\r")  # a marker: everything /stauts printed is before it
    await repl.wait_output("no command /nosuch")
    assert repl.lines[start:-1] == ["error: unknown command /stauts; did you mean /status?"]
    assert repl.sent_texts() == []


async def test_retry_resends_the_last_unanswered_message(server: LocalServer) -> None:
    server.set_fault("nlp-exception")
    shell, lines = make_shell(server)
    async with running(shell, lines, server) as repl:
        repl.type("/retry\r")
        await repl.wait_output("error: /retry: nothing to retry")
        repl.type("please answer\r")
        await repl.reply_to("please answer")
        await repl.wait_output("error: the head could not answer (level 500)")
        repl.type("/retry\r")
        await repl.wait_output("resending 'please answer'")
        await repl.server.wait_until(lambda: repl.sent_texts().count("please answer") == 2)
        assert repl.sent_texts() == ["please answer", "please answer"]


async def test_keep_asks_the_server_to_keep_the_session(repl: Repl) -> None:
    repl.type("/keep\r")
    await repl.wait_output("asked the server to keep the session")
    server = repl.server
    await server.wait_until(lambda: any(f.get("event") == "keep_session" for f in server.received))
    assert repl.sent_texts() == []


async def test_lines_with_secrets_or_a_leading_space_stay_out_of_history(repl: Repl) -> None:
    repl.type(f"my key is {API_KEY}\r")
    await repl.reply_to(f"my key is {API_KEY}")
    repl.type(" off the record\r")
    await repl.reply_to(" off the record")
    repl.type("on the record\r")
    await repl.reply_to("on the record")
    history = repl.shell.paths.history_file.read_text()
    assert "on the record" in history
    assert API_KEY not in history
    assert "off the record" not in history
    assert oct(repl.shell.paths.history_file.stat().st_mode & 0o777) == oct(0o600)


# ---- keys -------------------------------------------------------------------------------------


async def test_ctrl_c_clears_the_line(repl: Repl) -> None:
    repl.type("draft that is dropped")
    repl.type("\x03")
    repl.type("kept\r")
    await repl.wait_sent("kept")
    assert repl.sent_texts() == ["kept"]
    assert not repl.task.done()  # type: ignore[union-attr]


async def test_ctrl_c_interrupts_a_slow_turn_and_the_shell_goes_on(server: LocalServer) -> None:
    server.set_fault("slow", delay=0.5)  # the turn takes 1.5 s
    shell, lines = make_shell(server)
    output = RecordingOutput()
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=output) as app_session:
        repl = Repl(shell, lines, pipe, app_session, output, server)
        repl.task = asyncio.create_task(run_repl(shell))
        await repl.wait(lambda: shell.session.connected, "the connection")
        await repl.at_prompt()
        repl.type("first\r")
        await repl.wait(lambda: shell.session.turn_in_flight is not None, "the turn in flight")
        turn = shell.session.turn_in_flight
        assert turn is not None
        await repl.at_prompt()
        repl.type("\x03")
        await repl.wait(lambda: turn.complete, "the interrupted turn")
        assert turn.outcome == "interrupted"
        await repl.wait_output("stopped waiting for the reply")
        start = len(lines)
        repl.type("second\r")
        await repl.wait_output(": You said “second”", timeout=8)
        await repl.reply_to("second", timeout=8)  # Ctrl+D with a reply due would ask first
        # The first turn's late parts came before the second reply: none of them was shown.
        assert lines[start].startswith(f"{shell.speaker()}: You said “second”"), lines[start:]
        assert repl.sent_texts() == ["first", "second"]
        pipe.send_text("\x04")
        assert await repl.exit_code() == 0


async def test_ctrl_d_on_empty_line_exits_zero_and_closes_the_socket(repl: Repl) -> None:
    repl.type("ab")
    repl.type("\x04")  # not empty: Ctrl+D deletes, it does not quit
    repl.type("\r")
    await repl.reply_to("ab")  # with the reply still due, Ctrl+D would ask first
    assert repl.task is not None and not repl.task.done()
    await repl.at_prompt()
    repl.type("\x04")
    assert await repl.exit_code() == 0
    await repl.server.wait_until(lambda: repl.server.open_connections == 0)
    assert repl.shell.session.state.value == "closed"


# ---- completion -------------------------------------------------------------------------------


@pytest.fixture
def completer(tmp_path: Path) -> ShellCompleter:
    plugin = tmp_path / "weather_plugin.py"
    plugin.write_text(WEATHER_PLUGIN)
    settings = Settings(base_url="http://127.0.0.1:9", plugins=[str(plugin)])
    shell = new_shell(settings, write=lambda text: None)
    shell.load_plugins()
    assert "weather" in shell.registry.names()
    return ShellCompleter(shell)


def complete(completer: ShellCompleter, text: str) -> list[str]:
    return [c.text for c in completer.get_completions(Document(text), CompleteEvent())]


def test_completes_command_names(completer: ShellCompleter) -> None:
    assert complete(completer, "/st") == ["/status"]
    assert complete(completer, "/re") == ["/reconnect", "/retry"]
    everything = complete(completer, "/")
    assert everything == [f"/{name}" for name in completer.shell.registry.names()]
    assert {"/help", "/quit", "/raw", "/pick", "/weather"} <= set(everything)
    # The replacement covers what was typed, and the help text is shown beside it.
    (status,) = completer.get_completions(Document("/sta"), CompleteEvent())
    assert status.start_position == -4
    assert "Connection" in status.display_meta_text


def test_completes_a_plugin_command_and_its_arguments(completer: ShellCompleter) -> None:
    assert complete(completer, "/wea") == ["/weather"]
    assert complete(completer, "/weather ") == ["sunny", "stormy", "rainy"]
    assert complete(completer, "/weather s") == ["sunny", "stormy"]
    (stormy,) = completer.get_completions(Document("/weather st"), CompleteEvent())
    assert stormy.start_position == -2


def test_completes_core_command_arguments(completer: ShellCompleter) -> None:
    assert complete(completer, "/raw ") == ["on", "off"]
    assert complete(completer, "/raw of") == ["off"]
    assert complete(completer, "/help we") == ["weather"]
    assert complete(completer, "/HELP ra") == ["raw"]
    assert complete(completer, "/pick ") == []
    completer.shell.suggestions = ["a", "b"]
    assert complete(completer, "/pick ") == ["1", "2"]


def test_no_completion_for_messages_or_unknown_commands(completer: ShellCompleter) -> None:
    assert complete(completer, "hello /st") == []
    assert complete(completer, "//st") == []
    assert complete(completer, "/nosuch x") == []


BOOM_PLUGIN = """
from unith_shell import hookimpl


def boom(ctx, arg):
    raise RuntimeError("boom")


@hookimpl
def register_commands(register):
    register("boom", boom, help="Fail")
"""


async def test_a_strict_plugin_crash_still_closes_the_socket(
    server: LocalServer, tmp_path: Path
) -> None:
    plugin = tmp_path / "boom_plugin.py"
    plugin.write_text(BOOM_PLUGIN)
    shell, lines = make_shell(server, plugins=[str(plugin)], strict_plugins=True)
    async with running(shell, lines, server) as repl:
        repl.type("/boom\r")
        with pytest.raises(RuntimeError, match="boom"):
            await repl.exit_code()
    # Strict mode lets the error out (for plugin authors), but the socket is closed properly.
    await server.wait_until(lambda: server.open_connections == 0)
    assert shell.session.state.value == "closed"


async def test_an_internal_error_is_one_line_and_the_shell_goes_on(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    shell, lines = make_shell(server)
    async with running(shell, lines, server) as repl:

        async def broken_send(text: str) -> None:
            raise RuntimeError("a bug in the send path")

        with monkeypatch.context() as patch:
            patch.setattr(shell, "send", broken_send)
            repl.type("hello\r")
            await repl.wait_output("error: internal error: RuntimeError: a bug in the send path")
        await repl.at_prompt()
        repl.type("after\r")
        await repl.reply_to("after")
        assert repl.sent_texts() == ["after"]
        assert not repl.task.done() if repl.task else False


async def test_a_bad_prompt_template_is_reported_once(server: LocalServer) -> None:
    shell, lines = make_shell(server, prompt="{bogus}> ")
    async with running(shell, lines, server) as repl:
        await repl.wait_output("prompt template '{bogus}> ' is invalid")
        assert len([line for line in repl.lines if "prompt template" in line]) == 1


# ---- the REPL's small surprises (issue 9, item 9) -------------------------------------------


def started(
    shell: Shell, lines: list[str], server: LocalServer
) -> AbstractAsyncContextManager[Repl]:
    """Like ``running``, for any head: connected and at the prompt, greeting or not."""
    return running(shell, lines, server, greeting=None)


async def test_retry_offers_only_the_most_recent_message(repl: Repl) -> None:
    repl.type("error\r")  # the demo heads answer "error" with an NLP exception
    await repl.reply_to("error")
    repl.type("hello\r")
    await repl.reply_to("hello")
    repl.type("/retry\r")  # "error" failed, but "hello", sent after it, was answered
    await repl.wait_output("error: /retry: nothing to retry: the most recent message did not fail")
    repl.type("error\r")
    await repl.reply_to("error")
    repl.type("/retry\r")
    await repl.wait_output("resending 'error'")
    await repl.server.wait_until(lambda: repl.sent_texts().count("error") == 3)
    assert repl.sent_texts() == ["error", "hello", "error", "error"]


async def test_streamed_chunks_flow_as_one_wrapped_paragraph(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    shell, lines = make_shell(server, head="nova")
    async with started(shell, lines, server) as repl:
        monkeypatch.setenv("COLUMNS", "200")
        start = len(lines)
        repl.type("hi\r")
        await repl.reply_to("hi")
        await repl.wait_output("(type a number or /pick N)")
        paragraph, suggestions = lines[start:]
        assert paragraph.startswith("Nova: Streaming an answer about ")
        assert paragraph.endswith(", inspired by “hi”, one small chunk at a time.")
        assert suggestions.startswith("  1) Tell me more")
        # A narrow terminal: the same paragraph, wrapped under the label.
        monkeypatch.setenv("COLUMNS", "40")
        start = len(lines)
        repl.type("again\r")
        await repl.reply_to("again")
        await repl.wait(lambda: len(lines) > start and "(type a" in lines[-1], "the suggestions")
        wrapped = lines[start:-1]
        assert len(wrapped) >= 3 and wrapped[0].startswith("Nova: ")
        assert all(line.startswith(" " * 6) and line[6] != " " for line in wrapped[1:])
        assert all(len(line) < 40 for line in wrapped)
        text = " ".join(line[6:] for line in wrapped)
        assert text.startswith("Streaming an answer about ")
        assert text.endswith(", inspired by “again”, one small chunk at a time.")


async def test_quit_with_a_reply_due_asks_once(server: LocalServer) -> None:
    server.set_fault("slow", delay=1.0)  # the turn takes 3 s
    shell, lines = make_shell(server)
    async with started(shell, lines, server) as repl:
        repl.type("first\r")
        await repl.wait(lambda: shell.session.turn_in_flight is not None, "the turn in flight")
        await repl.at_prompt()
        repl.type("second\r")
        await repl.wait(lambda: len(shell.session.pending) == 1, "the queued message")
        await repl.at_prompt()
        repl.type("/quit\r")
        await repl.wait_output("2 messages are still waiting for a reply; Ctrl+D or /quit again")
        await repl.at_prompt()
        assert not repl.task.done()  # type: ignore[union-attr]
        repl.type("/quit\r")
        assert await repl.exit_code() == 0
        assert shell.session.state.value == "closed"
