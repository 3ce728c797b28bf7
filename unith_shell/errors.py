"""The roots of unith-shell's own exceptions.

Every error the package raises on purpose derives from :class:`UnithShellError`. The ones a
person is meant to read derive from :class:`UserError`: ``str()`` is the one line shown
(whitespace, newlines included, collapsed), never a traceback. Secrets and server text are
kept out of, or sanitised in, the message where it is built.
"""

from __future__ import annotations


class UnithShellError(Exception):
    """Base of every exception unith-shell raises on purpose."""


class UserError(UnithShellError):
    """An error for a person: ``str()`` is the one line to show."""

    def __str__(self) -> str:
        return " ".join(super().__str__().split())
