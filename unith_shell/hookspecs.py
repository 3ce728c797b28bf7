"""The plugin contract: every hook unith-shell calls, documented hook by hook.

A plugin is a module (or any object) with functions marked ``@hookimpl``; it implements any
subset of these hooks, and may accept any subset of each hook's arguments (pluggy passes
only the names it asks for). Every implementation may be a plain function or return an
awaitable (an ``async def`` works); the shell awaits it, with a time limit.

Order: implementations run last-registered first, unless marked ``@hookimpl(tryfirst=True)``
or ``@hookimpl(trylast=True)``. Bundled plugins are registered first, so third-party plugins
run before them by default.

Errors: an implementation that raises, or whose awaitable does not finish within the time
limit, is reported in one line naming the plugin and the hook, and that plugin is disabled
for that hook for the rest of the run; its other hooks keep working. With
``UNITH_SHELL_STRICT_PLUGINS=1`` the error is re-raised instead.
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT = "unith_shell"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_commands(register: Any) -> None:
    """Add slash commands to the shell.

    Called once when the plugin is loaded (and again on ``/plugins reload``).

    :param register: call it as ``register(name, handler, help="...", aliases=(...),
        usage="...", complete=...)``. ``handler(ctx, arg)`` receives a
        :class:`~unith_shell.commands.Context` and the rest of the line as one string; it may
        be sync or async. ``complete`` is a list of words, or ``complete(ctx, text)`` returning
        words, for completing the argument. A name that is already taken is refused with a
        notice: the first plugin to register a name keeps it.

    The return value is ignored.
    """


@hookspec
def before_send(message: Any, session: Any) -> None:
    """Inspect or change a user message before it is queued for the socket.

    :param message: the :class:`~unith_shell.protocol.UserMessage`. Change ``message.text``
        in place to transform it; call ``message.cancel(reason)`` to drop it (the shell says
        so in one line and the message is not sent). Once a plugin cancels, later plugins are
        not called.
    :param session: the :class:`~unith_shell.session.Session` the message is for.

    The return value is ignored. If an implementation raises, its partial changes are undone
    and the message goes on with the other plugins' changes only: a broken plugin never
    loses the user's message.
    """


@hookspec
def after_receive(event: Any, session: Any) -> None:
    """See every parsed server event before it is rendered or assembled into a turn.

    :param event: a :class:`~unith_shell.protocol.ServerEvent` subclass
        (``ResponsePart``, ``Echo``, ``Choice``, ``Join``, ``TimeoutWarning``,
        ``KeepSessionReply``, ``SessionTimeout``, ``ConversationEnd``, ``NlpException``,
        ``FeedbackAck`` or ``UnknownEvent``). Fields may be changed in place (for example
        ``event.text`` on a ``ResponsePart``) and the change is what the user sees.
    :param session: the :class:`~unith_shell.session.Session`.

    The return value is ignored. Frames that fail to parse never reach this hook; they are
    reported as notices.
    """


@hookspec
def turn_complete(turn: Any, session: Any) -> None:
    """A reply is complete (or ended without one).

    :param turn: the :class:`~unith_shell.protocol.Turn`: ``input`` (what the user typed),
        ``prompt`` (what was sent, after ``before_send``),
        ``text`` (parts joined in ``part_order``), ``parts``, ``suggestions``, ``outcome``
        (``"last"``, ``"choice"``, ``"unith_nlp_exception"``, ``"conversation_end"``,
        ``"timeout"`` (the server's event), ``"timed out"`` (no frame in time), ``"interrupted"``,
        ``"disconnected"``, ``"failed"``, ``"cancelled"``, ``"closed"`` (the shell exited)),
        ``error``, and the timings ``first_latency`` and ``total_latency`` in seconds.
        The greeting is a turn too, with ``message_id == -1``.
    :param session: the :class:`~unith_shell.session.Session`.

    The return value is ignored.
    """


@hookspec
def on_connect(session: Any) -> None:
    """The session is connected: handshake done and greeting received.

    Called again after every reconnect and after ``/head`` switches heads.

    :param session: the :class:`~unith_shell.session.Session`; ``session.options`` holds
        ``org`` and ``head``, ``session.credentials`` the ``user_id`` and ``session_id``.

    The return value is ignored.
    """


@hookspec
def on_disconnect(session: Any, reason: str) -> None:
    """The socket closed unexpectedly or by the server (the shell may reconnect afterwards).

    Not called when the shell closes the session itself (on exit, or when ``/head`` switches
    heads); ``shell_exit`` and ``on_connect`` cover those.

    :param session: the :class:`~unith_shell.session.Session`.
    :param reason: one line saying why (a close code, a dropped connection, a timeout).

    The return value is ignored.
    """


@hookspec
def on_frame(direction: str, data: Any, session: Any) -> None:
    """See every raw frame, as sent or received, before parsing.

    For transcripts and debugging. Frames may carry secrets (the handshake carries the
    token and api key): use :func:`unith_shell.protocol.redact` before storing or showing.

    :param direction: ``"out"`` (client to server) or ``"in"``.
    :param data: the frame as a ``str`` (JSON text) or ``bytes`` (a binary frame).
    :param session: the :class:`~unith_shell.session.Session`.

    The return value is ignored. Keep it cheap: it runs for every frame.
    """


@hookspec(historic=True)
def shell_start(shell: Any) -> None:
    """The shell is starting (historic: a plugin loaded later still gets this call).

    :param shell: the :class:`~unith_shell.shell.Shell`: ``shell.settings``,
        ``shell.session``, ``shell.print(text)``, ``shell.paths``.

    The return value is ignored.
    """


@hookspec
def shell_exit(shell: Any) -> None:
    """The shell is exiting, after the socket was closed. Flush and close your files here.

    :param shell: the :class:`~unith_shell.shell.Shell`.

    The return value is ignored.
    """


@hookspec
def register_assertions(register: Any) -> None:
    """Add assertion kinds for ``unith-shell test`` scenarios (``expect: {KIND: VALUE}``).

    Called once per test run, before any scenario file is read; the built-in kinds
    (``contains``, ``regex``, ``event``, ...) are registered through this hook too, by the
    bundled plugin ``unith_shell.scenario.builtin``.

    :param register: call it as ``register(name, check, help="...", parse=None,
        needs_turn=True, waits=False, regex=False)``. ``check(reply, expected)`` gets a
        :class:`~unith_shell.scenario.Reply` (``text``, ``parts``, ``suggestions``,
        ``events``, latencies, ``fold(text)`` for the case/whitespace options) and the value
        from the file (as ``parse(value)`` returned it, if given), and returns a
        :class:`~unith_shell.scenario.Outcome` ``(passed, expected, actual)`` or a bool.
        ``parse`` runs when the file is loaded: raise ``ValueError`` to reject a value (the
        user gets ``file:line: KIND: reason``). A name that is taken is refused.

    The return value is ignored. Must be a plain function (not async).
    """
