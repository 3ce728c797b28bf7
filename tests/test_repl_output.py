"""``repl.AbovePrompt``: what the REPL puts in ``sys.stdout`` while the prompt is shown.

Lines written during one event-loop pass go out together at the end of that pass (one write,
one repaint) with no fixed delay; a partial line waits for its newline or ``flush()``; another
thread's writes reach the terminal through the loop. Run with a real prompt-toolkit
application on a pipe input, and without one.
"""

from __future__ import annotations

import asyncio
import threading

from prompt_toolkit import PromptSession
from prompt_toolkit.application.current import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from unith_shell.repl import AbovePrompt


class CapturingOutput(DummyOutput):
    """Records each ``write_raw`` call (one call = one batch handed to the terminal)."""

    def __init__(self) -> None:
        self.batches: list[str] = []

    def write_raw(self, data: str) -> None:
        self.batches.append(data)

    @property
    def text(self) -> str:
        return "".join(self.batches)


async def passes(count: int = 3) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_lines_of_one_pass_go_out_together_at_its_end() -> None:
    output = CapturingOutput()
    with create_app_session(output=output):
        proxy = AbovePrompt(asyncio.get_running_loop())
        for i in range(50):
            proxy.write(f"part {i}\n")
        assert output.batches == []  # not during the pass that wrote them
        await passes()
        assert output.batches == ["".join(f"part {i}\n" for i in range(50))]


async def test_a_partial_line_waits_for_its_newline_or_flush() -> None:
    output = CapturingOutput()
    with create_app_session(output=output):
        proxy = AbovePrompt(asyncio.get_running_loop())
        proxy.write("Aiko: hel")
        await passes()
        assert output.text == ""
        proxy.write("lo\nnext ")
        await passes()
        assert output.text == "Aiko: hello\n"
        proxy.flush()
        await passes()
        assert output.text == "Aiko: hello\nnext "


async def test_close_writes_what_is_left() -> None:
    output = CapturingOutput()
    with create_app_session(output=output):
        proxy = AbovePrompt(asyncio.get_running_loop())
        proxy.write("a line\nno newline")
        proxy.close()
        assert output.text == "a line\nno newline"
        proxy.write("late\n")  # after close (a thread finishing late): written at once
        assert output.text == "a line\nno newline" + "late\n"


async def test_another_threads_write_reaches_the_terminal_through_the_loop() -> None:
    output = CapturingOutput()
    with create_app_session(output=output):
        proxy = AbovePrompt(asyncio.get_running_loop())
        thread = threading.Thread(target=proxy.write, args=("from a thread\n",))
        thread.start()
        thread.join()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if output.text:
                break
        assert output.text == "from a thread\n"


async def test_with_a_running_prompt_each_pass_is_printed_above_it_without_delay() -> None:
    """A real prompt on a pipe input: lines written in one pass arrive in one batch, promptly
    (no 20 ms or 200 ms batching timer), and a second pass's lines in the next batch."""
    output = CapturingOutput()
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=output):
        session: PromptSession[str] = PromptSession()
        loop = asyncio.get_running_loop()
        proxy = AbovePrompt(loop)
        prompt = loop.create_task(session.prompt_async("> "))
        for _ in range(200):  # wait until the application runs
            await asyncio.sleep(0.005)
            if session.app.is_running:
                break
        assert session.app.is_running
        output.batches.clear()
        proxy.write("You said hello.\n")
        proxy.write("Fun fact.\n")
        started = loop.time()
        while "Fun fact.\n" not in output.text and loop.time() - started < 5:
            await asyncio.sleep(0.001)
        first_wait = loop.time() - started
        assert [b for b in output.batches if "You said" in b] == ["You said hello.\nFun fact.\n"]
        proxy.write("Third part.\n")
        started = loop.time()
        while "Third part.\n" not in output.text and loop.time() - started < 5:
            await asyncio.sleep(0.001)
        assert "Third part.\n" in output.text
        # No batching timer: both appeared within a few loop passes (generous for a busy box).
        assert first_wait < 1.0 and loop.time() - started < 1.0
        pipe.send_text("\r")
        assert await asyncio.wait_for(prompt, 5) == ""
        proxy.close()
