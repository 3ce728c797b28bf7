"""unith-shell-censor: mask chosen words in what you send and in what the head answers.

A transforming plugin: ``before_send`` rewrites the outgoing message, ``after_receive``
rewrites each reply part before it is shown. ``/censor`` manages the word list.

Words come from ``UNITH_SHELL_CENSOR_WORDS`` (comma-separated) when the shell starts, else
the defaults below; ``/censor add WORD`` and ``/censor remove WORD`` change them for the run.
"""

from __future__ import annotations

import re
from typing import Any

from unith_shell import CommandError, ResponsePart, hookimpl

__version__ = "0.1.0"

DEFAULT_WORDS = ("darn", "heck")


class Censor:
    """The word list and the masking itself: ``darn`` -> ``d***``."""

    def __init__(self, words: tuple[str, ...] = DEFAULT_WORDS) -> None:
        self.enabled = True
        self.words: set[str] = set()
        self.set_words(words)

    def set_words(self, words: Any) -> None:
        self.words = {w.strip().lower() for w in words if w.strip()}
        self._pattern = self._compile()

    def _compile(self) -> re.Pattern[str] | None:
        if not self.words:
            return None
        alternatives = "|".join(re.escape(w) for w in sorted(self.words, key=len, reverse=True))
        return re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)

    def apply(self, text: str) -> str:
        if not self.enabled or self._pattern is None:
            return text
        return self._pattern.sub(lambda m: m.group()[0] + "*" * (len(m.group()) - 1), text)


CENSOR = Censor()


@hookimpl
def shell_start(shell: Any) -> None:
    """Take the word list from the environment, if given."""
    words = shell.env.get("UNITH_SHELL_CENSOR_WORDS")
    CENSOR.enabled = True
    CENSOR.set_words(words.split(",") if words is not None else DEFAULT_WORDS)


@hookimpl
def before_send(message: Any) -> None:
    """Outgoing: mask the words in the user's message before it reaches the socket."""
    message.text = CENSOR.apply(message.text)


@hookimpl
def after_receive(event: Any) -> None:
    """Incoming: mask the words in every reply part before it is shown."""
    if isinstance(event, ResponsePart):
        event.text = CENSOR.apply(event.text)


def censor_command(ctx: Any, arg: str) -> None:
    action, _, rest = arg.strip().partition(" ")
    words = rest.split()
    if action in ("", "list"):
        state = "on" if CENSOR.enabled else "off"
        ctx.print(f"censor {state}: {', '.join(sorted(CENSOR.words)) or '(no words)'}")
    elif action == "add" and words:
        CENSOR.set_words(CENSOR.words | {w.lower() for w in words})
        ctx.print(f"censoring {', '.join(sorted(CENSOR.words))}")
    elif action == "remove" and words:
        CENSOR.set_words(CENSOR.words - {w.lower() for w in words})
        ctx.print(f"censoring {', '.join(sorted(CENSOR.words)) or '(no words)'}")
    elif action in ("on", "off") and not words:
        CENSOR.enabled = action == "on"
        ctx.print(f"censor {action}")
    else:
        raise CommandError("usage: /censor [list | add WORD... | remove WORD... | on | off]")


@hookimpl
def register_commands(register: Any) -> None:
    register(
        "censor",
        censor_command,
        help="Mask words in messages and replies: /censor add WORD",
        usage="[list | add WORD... | remove WORD... | on | off]",
        complete=["list", "add", "remove", "on", "off"],
    )
