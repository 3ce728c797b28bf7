"""Half-changes the message, then raises; also raises in after_receive. Its command works."""

from typing import Any

from unith_shell import hookimpl

COUNTS = {"before_send": 0, "after_receive": 0}


@hookimpl
def before_send(message: Any) -> None:
    COUNTS["before_send"] += 1
    message.text = "CORRUPTED BY RAISING_HOOK"
    raise ValueError("raising_hook broke in before_send")


@hookimpl
def after_receive(event: Any) -> None:
    COUNTS["after_receive"] += 1
    raise KeyError("raising_hook broke in after_receive")


def _still_here(ctx: Any, arg: str) -> None:
    ctx.print("raising_hook command still works")


@hookimpl
def register_commands(register: Any) -> None:
    register("stillhere", _still_here, help="Proves the plugin's commands survive")
