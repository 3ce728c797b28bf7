"""``/plugins [list | trace on|off | reload]``: what is loaded, from where, with which hooks."""

from __future__ import annotations

from typing import Any

from unith_shell.commands import CommandError
from unith_shell.context import Context
from unith_shell.hookspecs import hookimpl
from unith_shell.plugins import allowlist


def plugin_rows(ctx: Context) -> list[dict[str, Any]]:
    """One dict per loaded plugin (name, version, source, path, hooks, disabled_hooks)."""
    rows = [info.as_dict() for info in ctx.plugins.infos]
    for row in rows:
        row["commands"] = sorted(c.name for c in ctx.commands if c.plugin == row["name"])
    return rows


def _list(ctx: Context) -> None:
    for row in plugin_rows(ctx):
        version = f" {row['version']}" if row["version"] else ""
        ctx.print(
            f"{row['name']}{version}  [{row['source']}]{'  ' + row['path'] if row['path'] else ''}"
        )
        ctx.print(f"    hooks: {', '.join(row['hooks']) or '-'}")
        if row["commands"]:
            ctx.print(f"    commands: {', '.join('/' + c for c in row['commands'])}")
        if row["disabled_hooks"]:
            ctx.print(f"    disabled after errors: {', '.join(row['disabled_hooks'])}")
    for line in ctx.plugins.load_errors:
        ctx.print(f"  ! {line}")
    settings = ctx.settings
    if settings.no_plugins:
        ctx.print("only bundled plugins (--no-plugins)")
    else:
        folders = [str(ctx.paths.plugins_dir), *settings.plugins_dirs]
        ctx.print(f"plugin folders: {', '.join(folders)}")
        allow = allowlist(ctx.env)
        if allow is not None:
            ctx.print(f"allowlist (UNITH_SHELL_PLUGINS): {', '.join(sorted(allow)) or '(empty)'}")
    ctx.print(f"hook tracing {'on' if ctx.plugins.trace else 'off'}")


async def _reload(ctx: Context) -> None:
    """Reload plugin files (see ``Context.plugins.reload``)."""
    loaded = await ctx.plugins.reload()
    names = ", ".join(loaded) or "none"
    ctx.print(f"reloaded {len(loaded)} plugin file(s): {names}")


async def plugins_command(ctx: Context, arg: str) -> None:
    words = arg.split()
    action = words[0] if words else "list"
    if action == "list":
        _list(ctx)
    elif action == "trace":
        if len(words) != 2 or words[1] not in ("on", "off"):
            raise CommandError("usage: /plugins trace on|off")
        ctx.plugins.trace = words[1] == "on"
        ctx.print(f"hook tracing {words[1]}")
    elif action == "reload":
        await _reload(ctx)
    else:
        raise CommandError("usage: /plugins [list | trace on|off | reload]")


def _complete(ctx: Context, text: str) -> list[str]:
    return ["list", "trace", "reload", "on", "off"]


@hookimpl
def register_commands(register: Any) -> None:
    register(
        "plugins",
        plugins_command,
        help="List plugins; trace hook calls; reload local plugin files",
        usage="[list | trace on|off | reload]",
        complete=_complete,
    )
