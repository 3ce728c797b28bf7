"""Implements a hook that does not exist: refused at load time."""

from unith_shell import hookimpl


@hookimpl
def before_sned(message):  # a typo of before_send
    message.text = "never"
