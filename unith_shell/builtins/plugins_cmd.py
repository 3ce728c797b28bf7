"""``/plugins [list | trace on|off | reload]``: what is loaded, from where, with which hooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unith_shell.commands import CommandError, Context
from unith_shell.hookspecs import hookimpl
from unith_shell.plugins import allowlist


def plugin_rows(shell: Any) -> list[dict[str, Any]]:
    """One dict per loaded plugin (name, version, source, path, hooks, disabled_hooks)."""
    rows = [info.as_dict() for info in shell.plugins.infos.values()]
    for row in rows:
        row["commands"] = sorted(
            name for name, cmd in shell.registry.commands.items() if cmd.plugin == row["name"]
        )
    return rows


def _list(ctx: Context) -> None:
    for row in plugin_rows(ctx.shell):
        version = f" {row['version']}" if row["version"] else ""
        ctx.print(
            f"{row['name']}{version}  [{row['source']}]{'  ' + row['path'] if row['path'] else ''}"
        )
        ctx.print(f"    hooks: {', '.join(row['hooks']) or '-'}")
        if row["commands"]:
            ctx.print(f"    commands: {', '.join('/' + c for c in row['commands'])}")
        if row["disabled_hooks"]:
            ctx.print(f"    disabled after errors: {', '.join(row['disabled_hooks'])}")
    for line in ctx.shell.plugins.load_errors:
        ctx.print(f"  ! {line}")
    settings = ctx.settings
    if settings.no_plugins:
        ctx.print("only bundled plugins (--no-plugins)")
    else:
        folders = [str(ctx.shell.paths.plugins_dir), *settings.plugins_dirs]
        ctx.print(f"plugin folders: {', '.join(folders)}")
        allow = allowlist(ctx.shell.env)
        if allow is not None:
            ctx.print(f"allowlist (UNITH_SHELL_PLUGINS): {', '.join(sorted(allow)) or '(empty)'}")
    ctx.print(f"hook tracing {'on' if ctx.shell.plugins.trace else 'off'}")


async def _reload(ctx: Context) -> None:
    """Forget every plugin loaded from a file, then load the plugin folders and files again.

    New files in the plugin folders are picked up; removed ones are gone. Entry points and
    bundled plugins stay as they are (a changed package needs a new shell).
    """
    shell = ctx.shell
    plugins = shell.plugins
    files = [info for info in plugins.infos.values() if info.path]
    for info in files:
        shell.registry.unregister_plugin(info.name)
        plugins.unregister(info.name)
    plugins.load_errors.clear()
    before = set(plugins.infos)
    if not shell.settings.no_plugins:
        allow = allowlist(shell.env)
        dirs = [
            shell.paths.plugins_dir,
            *(Path(d).expanduser() for d in shell.settings.plugins_dirs),
        ]
        for folder in dirs:
            plugins.load_folder(folder, allow)
        for info in files:
            if info.source == "command line":
                plugins.load_file(Path(info.path), source="command line")
    loaded = [name for name in plugins.infos if name not in before]
    for name in loaded:
        shell.register_commands_of(name)
        await shell.start_plugins(only=name)
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
        ctx.shell.plugins.trace = words[1] == "on"
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
