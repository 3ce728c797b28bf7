"""Transforms both ways: capitals on send, a "[t] " prefix on every reply part shown."""

from typing import Any

from unith_shell import ResponsePart, hookimpl


@hookimpl
def before_send(message: Any) -> None:
    if message.text.startswith("cancel me"):
        message.cancel("the transform plugin said no")
    else:
        message.text = message.text.upper()


@hookimpl
async def after_receive(event: Any) -> None:
    if isinstance(event, ResponsePart) and event.text:
        event.text = "[t] " + event.text
