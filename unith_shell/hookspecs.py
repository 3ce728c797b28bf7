"""The plugin contract: every hook unith-shell calls, documented hook by hook.

A plugin is a module (or any object) with functions marked ``@hookimpl``; it implements any
subset of these hooks, and may accept any subset of each hook's arguments (pluggy passes
only the names it asks for). Every implementation may be a plain function or return an
awaitable (an ``async def`` works); the shell awaits it, with a time limit.

Calls are pluggy's own: implementations run last-registered first, unless marked
``@hookimpl(tryfirst=True)`` or ``@hookimpl(trylast=True)``; new-style wrappers
(``@hookimpl(wrapper=True)``, a generator that yields once) are supported on the hooks in
:data:`WRAPPABLE`; ``@hookimpl(optionalhook=True)`` on a hook this shell does not define is
accepted and never called. Old-style ``hookwrapper=True``, a wrapper elsewhere, or an unknown
hook without ``optionalhook`` refuse the plugin at load, in one line naming plugin and hook.
Bundled plugins are registered first, so third-party plugins run before them by default.

Every hook also accepts ``ctx``: the plugin's own :class:`~unith_shell.context.Context`
(``ctx.state`` is private to the plugin). An awaitable an implementation returns is awaited
after all implementations of that call have run, in their order.

Errors: an implementation that raises, or whose awaitable does not finish within the time
limit, is reported in one line naming the plugin and the hook, and that plugin is disabled
for that hook for the rest of the run; its other hooks keep working. With
``UNITH_SHELL_STRICT_PLUGINS=1`` the error is re-raised instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from unith_shell.context import Context
    from unith_shell.protocol import ServerEvent, UserMessage
    from unith_shell.session import Session
    from unith_shell.shell import Shell
    from unith_shell.turn import Turn

PROJECT = "unith_shell"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: Hooks that accept ``@hookimpl(wrapper=True)``: the message path, where wrapping the other
#: implementations (timing them, changing what they see) means something.
WRAPPABLE = frozenset({"before_send", "after_receive", "turn_complete", "on_frame"})


@dataclass(frozen=True, slots=True)
class InPlace:
    """A hook whose argument implementations change in place: ``fields`` of argument ``arg``
    are put back when an implementation fails, and once ``stop_field`` is set the remaining
    implementations are not called."""

    arg: str
    fields: tuple[str, ...]
    stop_field: str

    def snapshot(self, target: Any) -> tuple[Any, ...]:
        return tuple(getattr(target, name) for name in self.fields)

    def restore(self, target: Any, snapshot: tuple[Any, ...]) -> None:
        for name, value in zip(self.fields, snapshot, strict=True):
            setattr(target, name, value)

    def stop(self, target: Any) -> bool:
        return getattr(target, self.stop_field, None) is not None


IN_PLACE = {"before_send": InPlace("message", ("text", "cancelled"), "cancelled")}


@hookspec
def register_commands(register: Callable[..., Any], ctx: Context) -> None:
    """Add slash commands to the shell.

    Called once when the plugin is loaded (and again on ``/plugins reload``).

    :param register: call it as ``register(name, handler, help="...", aliases=(...),
        usage="...", complete=...)``. ``handler(ctx, arg)`` receives a
        :class:`~unith_shell.context.Context` and the rest of the line as one string; it may
        be sync or async. ``complete`` is a list of words, or ``complete(ctx, text)`` returning
        words, for completing the argument. Names and aliases are stored in lower case
        (``/Shout`` and ``/shout`` are one command). A name that is already taken is refused
        with a notice: the first plugin to register a name keeps it; a taken alias is left
        out, with a one-line notice. Functions marked with
        :func:`unith_shell.commands.command` in the plugin are registered the same way,
        before this hook runs.
    :param ctx: the plugin's :class:`~unith_shell.context.Context`.

    Must be a plain function (an awaitable it returns is discarded, with a notice). The
    return value is ignored.
    """


@hookspec
def before_send(message: UserMessage, session: Session, ctx: Context) -> None:
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
def after_receive(event: ServerEvent, session: Session, ctx: Context) -> None:
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
def turn_complete(turn: Turn, session: Session, ctx: Context) -> None:
    """A reply is complete (or ended without one).

    :param turn: the :class:`~unith_shell.turn.Turn`: ``input`` (what the user typed),
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
def on_connect(session: Session, ctx: Context) -> None:
    """The session is connected: handshake done and greeting received.

    Called again after every reconnect and after ``/head`` switches heads.

    :param session: the :class:`~unith_shell.session.Session`; ``session.options`` holds
        ``org`` and ``head``, ``session.credentials`` the ``user_id`` and ``session_id``.

    The return value is ignored.
    """


@hookspec
def on_disconnect(session: Session, reason: str, ctx: Context) -> None:
    """The socket closed unexpectedly or by the server (the shell may reconnect afterwards).

    Not called when the shell closes the session itself (on exit, or when ``/head`` switches
    heads); ``shell_exit`` and ``on_connect`` cover those.

    :param session: the :class:`~unith_shell.session.Session`.
    :param reason: one line saying why (a close code, a dropped connection, a timeout).

    The return value is ignored.
    """


@hookspec
def on_frame(direction: str, data: str | bytes, session: Session, ctx: Context) -> None:
    """See every raw frame, as sent or received, before parsing.

    For transcripts and debugging. Frames may carry secrets (the handshake carries the
    token and api key): use :func:`unith_shell.protocol.redact` before storing or showing.

    :param direction: ``"out"`` (client to server) or ``"in"``.
    :param data: the frame as a ``str`` (JSON text) or ``bytes`` (a binary frame).
    :param session: the :class:`~unith_shell.session.Session`.

    The return value is ignored. Keep it cheap: it runs for every frame.
    """


@hookspec
def shell_start(shell: Shell, ctx: Context) -> None:
    """The shell is starting; a plugin loaded later (``/plugins reload``) gets the call when
    it is loaded.

    :param shell: the :class:`~unith_shell.shell.Shell`: ``shell.settings``,
        ``shell.session``, ``shell.print(text)``, ``shell.paths``.

    The return value is ignored.
    """


@hookspec
def shell_exit(shell: Shell, ctx: Context) -> None:
    """The shell is exiting, after the socket was closed. Flush and close your files here.

    :param shell: the :class:`~unith_shell.shell.Shell`.

    The return value is ignored.
    """


@hookspec
def register_assertions(register: Callable[..., Any], ctx: Context) -> None:
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
