"""Records every hook call with its arguments (tests read ``CALLS``)."""

from typing import Any

from unith_shell import hookimpl

CALLS: list[tuple[str, dict[str, Any]]] = []


def _hello(ctx: Any, arg: str) -> None:
    ctx.print(f"recorder says {arg}")


@hookimpl
def register_commands(register: Any) -> None:
    CALLS.append(("register_commands", {"register": register}))
    register("recorded", _hello, help="Print a line")


@hookimpl
def shell_start(shell: Any) -> None:
    CALLS.append(("shell_start", {"shell": shell}))


@hookimpl
def shell_exit(shell: Any) -> None:
    CALLS.append(("shell_exit", {"shell": shell}))


@hookimpl
def on_connect(session: Any) -> None:
    CALLS.append(("on_connect", {"session": session, "head": session.options.head}))


@hookimpl
def on_disconnect(session: Any, reason: str) -> None:
    CALLS.append(("on_disconnect", {"session": session, "reason": reason}))


@hookimpl
def before_send(message: Any, session: Any) -> None:
    CALLS.append(("before_send", {"message": message, "text": message.text, "session": session}))


@hookimpl
async def after_receive(event: Any, session: Any) -> None:  # async on purpose
    CALLS.append(("after_receive", {"event": event, "session": session}))


@hookimpl
def turn_complete(turn: Any, session: Any) -> None:
    CALLS.append(("turn_complete", {"turn": turn, "session": session}))


@hookimpl
def on_frame(direction: str, data: Any, session: Any) -> None:
    CALLS.append(("on_frame", {"direction": direction, "data": data, "session": session}))
