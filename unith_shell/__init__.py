"""unith-shell: an interactive terminal client for Unith's talking-head chat API.

The names plugin authors need are importable from here::

    from unith_shell import hookimpl, command, Context, UserMessage, ResponsePart, Turn

They are loaded on first use, so ``import unith_shell`` (and ``unith-shell --version``) stays
cheap: no prompt-toolkit, websockets or httpx import happens here.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Not ``typing.TYPE_CHECKING``: importing typing costs ~5 ms on every start (mypy honours
# any constant of this name).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from unith_shell.commands import CommandError, command
    from unith_shell.context import Context, FrontEnd
    from unith_shell.hookspecs import hookimpl, hookspec
    from unith_shell.protocol import (
        Choice,
        ConversationEnd,
        Echo,
        FeedbackAck,
        Join,
        KeepSessionReply,
        NlpException,
        ResponsePart,
        ServerEvent,
        SessionTimeout,
        TimeoutWarning,
        UnknownEvent,
        UserMessage,
        redact,
    )
    from unith_shell.turn import Turn

#: public name -> the module that defines it (imported on first access)
_LAZY = {
    "hookimpl": "unith_shell.hookspecs",
    "hookspec": "unith_shell.hookspecs",
    "Context": "unith_shell.context",
    "FrontEnd": "unith_shell.context",
    "CommandError": "unith_shell.commands",
    "command": "unith_shell.commands",
    "Turn": "unith_shell.turn",
    **{
        name: "unith_shell.protocol"
        for name in (
            "Choice",
            "ConversationEnd",
            "Echo",
            "FeedbackAck",
            "Join",
            "KeepSessionReply",
            "NlpException",
            "ResponsePart",
            "ServerEvent",
            "SessionTimeout",
            "TimeoutWarning",
            "UnknownEvent",
            "UserMessage",
            "redact",
        )
    },
}

__all__ = [
    "Choice",
    "CommandError",
    "Context",
    "ConversationEnd",
    "Echo",
    "FeedbackAck",
    "FrontEnd",
    "Join",
    "KeepSessionReply",
    "NlpException",
    "ResponsePart",
    "ServerEvent",
    "SessionTimeout",
    "TimeoutWarning",
    "Turn",
    "UnknownEvent",
    "UserMessage",
    "__version__",
    "command",
    "hookimpl",
    "hookspec",
    "redact",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'unith_shell' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
