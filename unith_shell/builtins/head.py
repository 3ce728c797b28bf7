"""``/head [ORG/]HEAD``: switch heads live, or show the current head's configuration.

Switching checks the head exists (``GET /api/v1/head/...``), closes the current conversation,
connects to the new head and shows its greeting. Completion offers the heads named in the
config file (top level and profiles), the heads used recently, and with ``--local`` the local
server's demo heads.

A bundled plugin like any other: it uses only the public hook API.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from unith_shell.commands import CommandError, Context
from unith_shell.config import ensure_private_dir, open_private
from unith_shell.hookspecs import hookimpl
from unith_shell.sanitize import sanitize

RECENT_FILE = "recent_heads.json"
RECENT_MAX = 10


def parse_target(arg: str, current_org: str) -> tuple[str, str]:
    """``"kai"`` -> ``(current_org, "kai")``; ``"acme/bot"`` -> ``("acme", "bot")``."""
    text = arg.strip()
    org, sep, head = text.partition("/")
    if not sep:
        org, head = current_org, text
    if not org or not head or "/" in head or any(c.isspace() for c in text):
        raise CommandError("usage: /head [ORG/]HEAD, for example /head unith/kai")
    return org, head


def _recent_path(ctx: Context) -> Path:
    return ctx.shell.paths.state_dir / RECENT_FILE


def load_recent(ctx: Context) -> list[str]:
    try:
        data = json.loads(_recent_path(ctx).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [h for h in data if isinstance(h, str)][:RECENT_MAX] if isinstance(data, list) else []


def remember(ctx: Context, key: str) -> None:
    """Put ``org/head`` first in the shell's recent heads and in the state file."""
    recent = ctx.shell.recent_heads
    if not recent:
        recent.extend(load_recent(ctx))
    if key in recent:
        recent.remove(key)
    recent.insert(0, key)
    del recent[RECENT_MAX:]
    path = _recent_path(ctx)
    try:
        ensure_private_dir(path.parent)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open_private(tmp, "w") as handle:  # 0600, like every file the shell writes
            handle.write(json.dumps(recent))
        tmp.replace(path)
    except OSError:
        pass  # completion data only: never worth an error


def _config_heads(ctx: Context) -> list[str]:
    """``org/head`` of the config file's top level and of each profile."""
    path = ctx.shell.paths.config_file
    try:
        import tomllib

        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    tables: list[Any] = [data]
    profiles = data.get("profiles")
    if isinstance(profiles, dict):
        tables.extend(profiles.values())
    heads = []
    for table in tables:
        if isinstance(table, dict) and isinstance(table.get("head"), str):
            org = table.get("org") if isinstance(table.get("org"), str) else data.get("org")
            heads.append(f"{org if isinstance(org, str) else ctx.settings.org}/{table['head']}")
    return heads


def known_heads(ctx: Context) -> list[str]:
    """Heads to offer for completion, most relevant first, without duplicates."""
    opts = ctx.session.options
    found = [f"{opts.org}/{opts.head}", *(ctx.shell.recent_heads or load_recent(ctx))]
    found += _config_heads(ctx)
    if ctx.settings.local:
        from unith_shell.server.heads import DEMO_HEADS

        found += [head.key for head in DEMO_HEADS]
    return list(dict.fromkeys(found))


def complete_head(ctx: Context, text: str) -> list[str]:
    heads = known_heads(ctx)
    # "kai" completes too when the current org is meant.
    org = ctx.session.options.org + "/"
    short = [h[len(org) :] for h in heads if h.startswith(org)]
    return [h for h in dict.fromkeys([*heads, *short]) if h.startswith(text)]


def show_info(ctx: Context, info: dict[str, Any]) -> None:
    """The head's configuration; every value is server text, escaped to one line each (a
    newline in a name must not print a line that looks like the shell's own)."""
    opts = ctx.session.options
    ctx.print(f"  {'head':<18}{sanitize(opts.org)}/{sanitize(opts.head)}")
    for key in ("alias", "name", "language", "operation_mode", "streaming_enabled"):
        if key in info:
            ctx.print(f"  {key:<18}{sanitize(str(info[key]))}")
    phrases = info.get("phrases")
    if isinstance(phrases, list) and phrases:
        ctx.print(f"  {'phrases':<18}" + sanitize("; ".join(str(p) for p in phrases)))
    ctx.print(f"  {'connection':<18}{ctx.session.state.value}")


async def head_command(ctx: Context, arg: str) -> None:
    session = ctx.session
    opts = session.options
    if not arg.strip():
        info = await session.api.head_info(opts.org, opts.head, opts.api_key)
        ctx.shell.head_info = info
        show_info(ctx, info)
        return
    org, head = parse_target(arg, opts.org)
    # Check first: an unknown head leaves the current conversation as it was.
    info = await session.api.head_info(org, head, opts.api_key)
    old = (opts.org, opts.head)
    old_info = ctx.shell.head_info
    ctx.shell.head_info = info  # the greeting is labelled with the new head's alias
    ctx.print(f"switching to {org}/{head}...")
    from unith_shell.session import SessionError

    try:
        await session.switch(org, head)
    except BaseException as exc:
        # The session went back to the old head (reconnecting) by itself; so do we.
        ctx.shell.head_info = old_info
        if isinstance(exc, SessionError):
            back = "/".join(old)
            raise CommandError(f"cannot connect to {org}/{head}: {exc}; back to {back}") from None
        raise
    remember(ctx, f"{org}/{head}")
    ctx.shell.on_change()


@hookimpl
def register_commands(register: Any) -> None:
    register(
        "head",
        head_command,
        help="Switch to another head (new conversation), or show this head's info",
        usage="[ORG/]HEAD",
        complete=complete_head,
    )
