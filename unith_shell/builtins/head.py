"""``/head [ORG/]HEAD``: switch heads live, or show the current head's configuration.

Switching checks the head exists (``GET /api/v1/head/...``), closes the current conversation,
connects to the new head and shows its greeting. Completion offers the heads named in the
config file (top level and profiles), the heads used recently, and with ``--local`` the local
server's demo heads.

A bundled plugin like any other: it uses only :class:`~unith_shell.context.Context`. The
recent heads are its own state (``ctx.state``, backed by a file); the head's configuration
is the session's (``ctx.session.head_info``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unith_shell.commands import CommandError
from unith_shell.context import Context
from unith_shell.files import ensure_private_dir, open_private
from unith_shell.hookspecs import hookimpl
from unith_shell.sanitize import sanitize

RECENT_FILE = "recent_heads.json"
RECENT_MAX = 10
#: ``ctx.state`` key of the recent heads.
RECENT_KEY = "recent_heads"


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
    return ctx.paths.state_dir / RECENT_FILE


def load_recent(ctx: Context) -> list[str]:
    try:
        data = json.loads(_recent_path(ctx).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [h for h in data if isinstance(h, str)][:RECENT_MAX] if isinstance(data, list) else []


def recent_heads(ctx: Context) -> list[str]:
    """This shell's recent heads (``ctx.state``), read from the state file on first use."""
    recent: list[str] | None = ctx.state.get(RECENT_KEY)
    if recent is None:
        recent = ctx.state[RECENT_KEY] = load_recent(ctx)
    return recent


def remember(ctx: Context, key: str) -> None:
    """Put ``org/head`` first in the shell's recent heads and in the state file."""
    recent = recent_heads(ctx)
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
    path = ctx.paths.config_file
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
    session = ctx.session
    found = [f"{session.org}/{session.head}", *recent_heads(ctx)]
    found += _config_heads(ctx)
    if ctx.settings.local:
        from unith_shell.server.heads import DEMO_HEADS

        found += [head.key for head in DEMO_HEADS]
    return list(dict.fromkeys(found))


def complete_head(ctx: Context, text: str) -> list[str]:
    heads = known_heads(ctx)
    # "kai" completes too when the current org is meant.
    org = ctx.session.org + "/"
    short = [h[len(org) :] for h in heads if h.startswith(org)]
    return [h for h in dict.fromkeys([*heads, *short]) if h.startswith(text)]


def show_info(ctx: Context, info: Mapping[str, Any]) -> None:
    """The head's configuration; every value is server text, escaped to one line each (a
    newline in a name must not print a line that looks like the shell's own)."""
    session = ctx.session
    ctx.print(f"  {'head':<18}{sanitize(session.org)}/{sanitize(session.head)}")
    for key in ("alias", "name", "language", "operation_mode", "streaming_enabled"):
        if key in info:
            ctx.print(f"  {key:<18}{sanitize(str(info[key]))}")
    phrases = info.get("phrases")
    if isinstance(phrases, list) and phrases:
        ctx.print(f"  {'phrases':<18}" + sanitize("; ".join(str(p) for p in phrases)))
    ctx.print(f"  {'connection':<18}{ctx.session.state.value}")


async def head_command(ctx: Context, arg: str) -> None:
    session = ctx.session
    api_key = ctx.settings.api_key
    if not arg.strip():
        # Fresh from the server (it may have changed); the session keeps its own copy.
        show_info(ctx, await session.api.head_info(session.org, session.head, api_key))
        return
    org, head = parse_target(arg, session.org)
    # Check first: an unknown head leaves the current conversation as it was. The session
    # fetches the new head's info itself when it connects (its one source of truth).
    await session.api.head_info(org, head, api_key)
    old = f"{session.org}/{session.head}"
    ctx.print(f"switching to {org}/{head}...")
    from unith_shell.session import SessionError

    try:
        await session.switch(org, head)
    except SessionError as exc:
        # The session went back to the old head (reconnecting) by itself.
        raise CommandError(f"cannot connect to {org}/{head}: {exc}; back to {old}") from None
    remember(ctx, f"{org}/{head}")


@hookimpl
def register_commands(register: Any) -> None:
    register(
        "head",
        head_command,
        help="Switch to another head (new conversation), or show this head's info",
        usage="[ORG/]HEAD",
        complete=complete_head,
    )
