"""Core commands: /help /quit /status /reconnect /raw /clear /pick /send /retry /keep.

A bundled plugin like any other: it uses only the public hook API.
"""

from __future__ import annotations

from collections.abc import Callable

from unith_shell.commands import CommandError, Context
from unith_shell.hookspecs import hookimpl
from unith_shell.urls import display_url


def help_command(ctx: Context, arg: str) -> None:
    registry = ctx.shell.registry
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
    for command_name in registry.names():
        command = registry.commands[command_name]
        ctx.print(f"  /{command_name.ljust(width)}{command.help}")
    ctx.print("A bare number N sends suggestion N of the last reply while its suggestions are")
    ctx.print("shown and N is in range; otherwise it is sent as text. /send TEXT sends TEXT as is.")
    if ctx.shell.interactive:  # keys mean nothing in pipe mode
        ctx.print("Keys: Enter sends, Esc+Enter inserts a newline, Ctrl+R searches history,")
        ctx.print("      Ctrl+C clears the line or stops waiting for a reply, Ctrl+D quits")
        ctx.print("      (with messages still waiting for a reply it asks once first).")


def quit_command(ctx: Context, arg: str) -> None:
    if ctx.shell.confirm_quit():
        ctx.shell.exit_requested = True


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 0:
        return f"expired {-seconds / 60:.0f} min ago"
    return f"in {seconds / 60:.0f} min"


def status_command(ctx: Context, arg: str) -> None:
    session = ctx.session
    opts = session.options
    creds = session.credentials
    rows = [
        ("base url", display_url(opts.base_url)),  # no user:pass@ password on screen
        ("head", f"{opts.org}/{opts.head}"),
        ("connection", ctx.shell.connection_state),
        ("turn", ctx.shell.turn_state),
        ("user id", creds.user_id if creds else "-"),
        ("session id", (creds.session_id or "-") if creds else "-"),
        ("token expires", _when(creds.expires_in()) if creds else "-"),
        ("api key", "set" if opts.api_key else "not set"),
        ("pending", str(len(session.pending))),
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
    view = ctx.shell.view
    view.raw = (not view.raw) if value == "" else value == "on"
    ctx.print("raw frames on (secrets are redacted)" if view.raw else "raw frames off")


def clear_command(ctx: Context, arg: str) -> None:
    ctx.shell.clear_screen()
    ctx.shell.suggestions = []  # no longer shown, so a bare number is text again


async def pick_command(ctx: Context, arg: str) -> None:
    try:
        number = int(arg.strip())
    except ValueError:
        raise CommandError("usage: /pick N (a suggestion's number)") from None
    await ctx.shell.pick(number)


async def send_command(ctx: Context, arg: str) -> None:
    # ``arg`` as typed (split_command trims the ends): "2" is not a pick, "/x" not a command.
    if not arg:
        raise CommandError("usage: /send TEXT (sent exactly as typed)")
    await ctx.shell.send(arg)


async def retry_command(ctx: Context, arg: str) -> None:
    turn = ctx.shell.last_failed
    if turn is None:
        raise CommandError("nothing to retry: the most recent message did not fail")
    ctx.shell.last_failed = None
    text = turn.input or turn.prompt  # as typed: before_send plugins run again on it
    ctx.print(f"resending {text[:60]!r}")
    await ctx.shell.send(text)


async def keep_command(ctx: Context, arg: str) -> None:
    await ctx.session.keep_session()
    ctx.print("asked the server to keep the session")


def _command_names(ctx: Context, text: str) -> list[str]:
    return ctx.shell.registry.names()


def _pick_numbers(ctx: Context, text: str) -> list[str]:
    return [str(i) for i in range(1, len(ctx.shell.suggestions) + 1)]


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
