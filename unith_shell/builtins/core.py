"""Core commands: /help /quit /status /reconnect /raw /clear /pick /send /retry /keep.

A bundled plugin like any other: it uses only :class:`~unith_shell.context.Context` and the
hooks. ``/retry`` reads the most recent message from the session view; which one it already
resent is this plugin's own state (``ctx.state``).
"""

from __future__ import annotations

from collections.abc import Callable

from unith_shell.commands import CommandError
from unith_shell.context import Context
from unith_shell.hookspecs import hookimpl
from unith_shell.turn import Turn
from unith_shell.urls import display_url


def help_command(ctx: Context, arg: str) -> None:
    registry = ctx.commands
    name = arg.strip().lstrip("/")
    if name:
        command = registry.get(name)
        if command is None:
            raise CommandError(f"no command /{name}")
        usage = f"/{command.name} {command.usage}".rstrip()
        ctx.print(usage)
        if command.help:
            ctx.print(f"  {command.help}")
        if command.aliases:
            ctx.print("  aliases: " + ", ".join(f"/{a}" for a in command.aliases))
        if command.plugin:
            ctx.print(f"  from plugin: {command.plugin}")
        return
    width = max(len(n) for n in registry.names()) + 2
    ctx.print("Commands (plain lines are sent to the head; //text sends a literal /text):")
    for command in registry:
        ctx.print(f"  /{command.name.ljust(width)}{command.help}")
    ctx.print("A bare number N sends suggestion N of the last reply while its suggestions are")
    ctx.print("shown and N is in range; otherwise it is sent as text. /send TEXT sends TEXT as is.")
    if ctx.interactive:  # keys mean nothing in pipe mode
        ctx.print("Keys: Enter sends, Esc+Enter inserts a newline, Ctrl+R searches history,")
        ctx.print("      Ctrl+C clears the line or stops waiting for a reply, Ctrl+D quits")
        ctx.print("      (with messages still waiting for a reply it asks once first).")


def quit_command(ctx: Context, arg: str) -> None:
    ctx.request_exit()


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 0:
        return f"expired {-seconds / 60:.0f} min ago"
    return f"in {seconds / 60:.0f} min"


def status_command(ctx: Context, arg: str) -> None:
    session = ctx.session
    logged_in = session.user_id is not None
    rows = [
        ("base url", display_url(session.base_url)),  # no user:pass@ password on screen
        ("head", f"{session.org}/{session.head}"),
        ("connection", session.connection),
        ("turn", session.turn),
        ("user id", session.user_id or "-"),
        ("session id", session.session_id or "-"),
        ("token expires", _when(session.token_expires_in) if logged_in else "-"),
        ("api key", "set" if session.has_api_key else "not set"),
        ("pending", str(session.pending)),
    ]
    if session.last_error:
        rows.append(("last error", session.last_error))
    turn = session.last_turn
    if turn is not None and turn.complete:
        first = turn.first_latency
        if turn.ok and first is not None and turn.total_latency is not None:
            latency = f"first part {first:.3f} s, last part {turn.total_latency:.3f} s"
        else:
            latency = f"{turn.outcome}" + (f" after a first part at {first:.3f} s" if first else "")
        rows.append(("last reply", latency))
    for key, value in rows:
        ctx.print(f"  {key:<14}{value}")


def reconnect_command(ctx: Context, arg: str) -> None:
    ctx.print("reconnecting...")
    ctx.session.reconnect()


def raw_command(ctx: Context, arg: str) -> None:
    value = arg.strip().lower()
    if value not in ("on", "off", ""):
        raise CommandError("usage: /raw on|off")
    ctx.raw_frames = (not ctx.raw_frames) if value == "" else value == "on"
    ctx.print("raw frames on (secrets are redacted)" if ctx.raw_frames else "raw frames off")


def clear_command(ctx: Context, arg: str) -> None:
    ctx.clear_screen()  # the suggestions are no longer shown: a bare number is text again


async def pick_command(ctx: Context, arg: str) -> None:
    try:
        number = int(arg.strip())
    except ValueError:
        raise CommandError("usage: /pick N (a suggestion's number)") from None
    suggestions = ctx.suggestions
    if not 1 <= number <= len(suggestions):
        raise CommandError(f"no suggestion {number}; there are {len(suggestions)}")
    await ctx.send(suggestions[number - 1])


async def send_command(ctx: Context, arg: str) -> None:
    # ``arg`` as typed (split_command trims the ends): "2" is not a pick, "/x" not a command.
    if not arg:
        raise CommandError("usage: /send TEXT (sent exactly as typed)")
    await ctx.send(arg)


async def retry_command(ctx: Context, arg: str) -> None:
    turn = ctx.session.last_message
    if turn is None or not failed(turn) or ctx.state.get(RETRIED) is turn:
        raise CommandError("nothing to retry: the most recent message did not fail")
    ctx.state[RETRIED] = turn  # once: a second /retry waits for the resent one to fail
    text = turn.input or turn.prompt  # as typed: before_send plugins run again on it
    ctx.print(f"resending {text[:60]!r}")
    await ctx.send(text)


async def keep_command(ctx: Context, arg: str) -> None:
    await ctx.session.keep()
    ctx.print("asked the server to keep the session")


def _command_names(ctx: Context, text: str) -> list[str]:
    return ctx.commands.names()


def _pick_numbers(ctx: Context, text: str) -> list[str]:
    return [str(i) for i in range(1, len(ctx.suggestions) + 1)]


#: ``ctx.state`` key: the failed message ``/retry`` resent last (it is offered once).
RETRIED = "retried"


def failed(turn: Turn) -> bool:
    """Ended without a reply, and not because the user or a plugin cancelled it."""
    return turn.complete and not turn.ok and turn.outcome != "cancelled"


@hookimpl
def register_commands(register: Callable[..., None]) -> None:
    register(
        "help",
        help_command,
        help="List commands, or show one: /help CMD",
        usage="[COMMAND]",
        aliases=("?",),
        complete=_command_names,
    )
    register("quit", quit_command, help="Close the connection and exit", aliases=("exit",))
    register("status", status_command, help="Connection, head, user and session ids, latency")
    register("reconnect", reconnect_command, help="Reconnect now (fresh handshake)")
    register(
        "raw",
        raw_command,
        help="Show raw JSON frames (secrets redacted)",
        usage="on|off",
        complete=["on", "off"],
    )
    register("clear", clear_command, help="Clear the screen")
    register(
        "pick",
        pick_command,
        help="Send suggestion N (or type just the number)",
        usage="N",
        complete=_pick_numbers,
    )
    register(
        "send",
        send_command,
        help="Send TEXT literally (a number or a /word too)",
        usage="TEXT",
    )
    register("retry", retry_command, help="Resend the most recent message if it got no reply")
    register("keep", keep_command, help="Keep the session alive after an inactivity warning")
