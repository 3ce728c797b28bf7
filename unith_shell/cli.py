"""Argument parsing and mode selection: the REPL, pipe mode, ``serve`` and ``plugins``.

``--version`` and ``--help`` import nothing heavy: prompt-toolkit, websockets, httpx and
aiohttp are imported only once a mode that needs them is chosen.
"""

from __future__ import annotations

import os
import sys

from unith_shell import __version__

# Only for type checkers: at run time these stay unimported until a mode needs them, so that
# --version and --help cost little more than starting Python (see benchmarks/).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any

    from unith_shell.config_file import LoadResult
    from unith_shell.settings import Settings

EXIT_USAGE = 2


def _parser(**kwargs: Any) -> argparse.ArgumentParser:
    """An ArgumentParser whose errors are one line and exit 2 (argparse is imported here)."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> Any:
            from unith_shell.sanitize import sanitize  # the message may quote an argument

            self.exit(EXIT_USAGE, sanitize(f"{self.prog}: error: {message} (see --help)") + "\n")

    return Parser(**kwargs)


#: The widest ``--help`` is rendered (columns): a wider terminal gets this width, so the text
#: is the same everywhere from 80 columns up and ``_entry`` can answer it pre-rendered.
HELP_WIDTH = 80


def _help_formatter(prog: str) -> argparse.HelpFormatter:
    import argparse
    import shutil

    # argparse's own rule (the terminal's columns less 2), capped at HELP_WIDTH.
    columns = min(shutil.get_terminal_size().columns, HELP_WIDTH)
    return argparse.HelpFormatter(prog, width=columns - 2)


def build_parser() -> argparse.ArgumentParser:
    parser = _parser(
        prog="unith-shell",
        formatter_class=_help_formatter,
        description="Chat with a Unith digital human from the terminal.",
        epilog=(
            "Other commands: 'unith-shell serve [--host H] [--port N] [--recordings DIR]' "
            "runs the local Unith server; 'unith-shell plugins [--json]' lists plugins; "
            "'unith-shell test PATH...' runs conversation scenarios (docs/testing.md); "
            "'unith-shell replay FILE' sends a recording again and compares; 'unith-shell "
            "diff A B' compares two recordings. Without a terminal on stdin (or with -m), "
            "each input line is a message and replies go to stdout."
        ),
    )
    parser.add_argument("--version", action="version", version=f"unith-shell {__version__}")
    from unith_shell.setting_table import add_setting_flags

    add_setting_flags(parser)  # one flag per setting that has one
    parser.add_argument(
        "--record",
        metavar="FILE",
        help="-m and pipe mode: record every frame to FILE (see docs/recordings.md)",
    )
    from unith_shell.recordings import add_served_options

    add_served_options(parser)  # --recordings, --speed, --match (with --local)
    return parser


def _port(text: str) -> int:
    import argparse

    value = int(text) if text.isdigit() else -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r} (0-65535)")
    return value


def _seconds(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}")
    return value


def _host(text: str) -> str:
    import argparse

    try:
        text.encode("idna")  # what the socket layer does with a name: fail here, in one line
    except UnicodeError:
        raise argparse.ArgumentTypeError(f"not a host name or address: {text!r}") from None
    return text


def build_serve_parser() -> argparse.ArgumentParser:
    parser = _parser(prog="unith-shell serve", description="Run the local Unith server.")
    parser.add_argument(
        "--host", type=_host, default="127.0.0.1", help="address to bind (127.0.0.1)"
    )
    parser.add_argument("--port", type=_port, default=8765, help="port (8765; 0 picks a free one)")
    parser.add_argument(
        "--part-delay",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="pause between reply parts",
    )
    parser.add_argument(
        "--idle-warning",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="send timeout_warning after this much inactivity",
    )
    from unith_shell.recordings import add_served_options

    add_served_options(parser)
    return parser


def resolve(argv: Sequence[str], env: dict[str, str]) -> tuple[argparse.Namespace, LoadResult]:
    """Parse flags (``--help`` and usage errors exit here), then load the settings."""
    args = build_parser().parse_args(argv)
    from unith_shell.config_file import load_settings
    from unith_shell.files import paths
    from unith_shell.setting_table import flag_fields

    flags = {name: getattr(args, name) for name in flag_fields()}
    return args, load_settings(flags, env=env, config_file=paths(env).config_file)


def _reopen_closed_std_fds() -> None:
    """Point a closed stdin, stdout or stderr at /dev/null.

    Otherwise the next socket or file takes its number (fd 0 for the WebSocket), and writes
    meant for stdout go to the server, or uvloop aborts on an assertion about fd numbers.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)
            if opened != fd:
                os.dup2(opened, fd)
                os.close(opened)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _reopen_closed_std_fds()
    if argv == ["--version"]:  # the common case, answered before building any parser
        print(f"unith-shell {__version__}")
        return 0
    env = dict(os.environ)
    if argv and argv[0] == "serve":
        return serve(argv[1:])
    if argv and argv[0] == "plugins":
        return list_plugins(argv[1:], env)
    if argv and argv[0] in ("replay", "diff"):
        from unith_shell.recordings import cli as recordings_cli

        run = recordings_cli.replay_main if argv[0] == "replay" else recordings_cli.diff_main
        return run(argv[1:], env)
    if argv and argv[0] == "test":
        from unith_shell.scenario.cli import main as test_main

        return test_main(argv[1:], env)
    try:
        args, loaded = resolve(argv, env)
    except Exception as exc:
        from unith_shell.settings import ConfigError

        if not isinstance(exc, ConfigError):
            raise
        _error(f"unith-shell: {exc}")
        return EXIT_USAGE
    for warning in loaded.warnings:
        _error(f"unith-shell: warning: {warning}")
    settings = loaded.settings
    if not settings.local and not _valid_base_url(settings.base_url):
        from unith_shell.urls import display_url

        _error(
            f"unith-shell: error: base URL must be http://HOST or https://HOST, "
            f"got {display_url(settings.base_url)!r} (see --help)"
        )
        return EXIT_USAGE
    if not settings.local:
        from unith_shell.urls import plain_http_warning

        plain = plain_http_warning(settings.base_url)
        if plain:
            _error(f"unith-shell: warning: {plain}")
    if settings.insecure:
        _error("unith-shell: warning: TLS certificate checks are OFF (--insecure)")
    # No stdin at all (``<&-``) is read as empty input.
    has_tty = sys.stdin is not None and sys.stdin.isatty()
    interactive = not settings.messages and not settings.json and has_tty
    if args.record is not None and interactive:
        print(
            "unith-shell: error: --record works with -m and pipe mode; in the shell, "
            "/log on FILE records (see --help)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.recordings is None and (args.speed is not None or args.match is not None):
        print(
            "unith-shell: error: --speed and --match need --recordings DIR (see --help)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.recordings is not None and not settings.local:
        print(
            "unith-shell: error: --recordings needs --local (or 'unith-shell serve "
            "--recordings DIR') (see --help)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        return _run(settings, env, interactive, args)
    except KeyboardInterrupt:
        return 130


def _error(text: str) -> None:
    """One line on stderr, through the gate: it may quote a config file, a URL or an error."""
    from unith_shell.sanitize import sanitize

    print(sanitize(text), file=sys.stderr)


def _gate_stderr() -> None:
    """Route the last-resort outputs through the gate too: a traceback or a library's log
    record (asyncio's "Task exception was never retrieved") can quote server text."""
    import logging

    from unith_shell.sanitize import sanitize_block

    class GatedFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return sanitize_block(super().format(record))

    # lastResort prints records when logging was never configured (the common case).
    if logging.lastResort is not None:
        logging.lastResort.setFormatter(GatedFormatter())

    def excepthook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        import traceback

        text = "".join(traceback.format_exception(kind, exc, tb))
        sys.stderr.write(sanitize_block(text))

    sys.excepthook = excepthook


def _run(
    settings: Settings, env: dict[str, str], interactive: bool, args: argparse.Namespace
) -> int:
    from unith_shell.files import paths

    _gate_stderr()

    async def go() -> int:
        server = None
        if settings.local:
            from unith_shell.recordings.cli import start_local_server

            # The in-process server accepts the password the shell will log in with, and
            # serves --recordings DIR as recorded/<name>.
            server = await start_local_server(settings, args)
            if server is None:
                return EXIT_USAGE
        try:
            if interactive:
                from unith_shell.repl import run_repl
                from unith_shell.shell import Shell

                return await run_repl(Shell(settings, paths(env), env=env))
            from unith_shell.pipe import run_pipe

            return await run_pipe(settings, paths(env), record=args.record)
        finally:
            if server is not None:
                await server.stop()

    return _asyncio_run(go())


def _valid_base_url(url: str) -> bool:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _asyncio_run(coro: Any) -> int:
    run: Callable[[Any], Any] | None
    try:
        import uvloop  # optional: the 'speed' extra
    except ImportError:
        run = None
    else:
        run = uvloop.run
    # Run outside the try: an ImportError from the app must not look like a missing uvloop.
    if run is not None:
        result: int = run(coro)
        return result
    import asyncio

    status: int = asyncio.run(coro)
    return status


def serve(argv: Sequence[str]) -> int:
    args = build_serve_parser().parse_args(argv)
    from unith_shell.recordings.cli import server_config
    from unith_shell.server import ServerConfig, serve_forever

    config = server_config(
        ServerConfig(
            host=args.host,
            port=args.port,
            part_delay=args.part_delay,
            idle_warning=args.idle_warning,
        ),
        args,
        "unith-shell serve",
    )
    if config is None:
        return EXIT_USAGE
    _gate_stderr()  # a client's request can make aiohttp log an error that quotes it
    return serve_forever(args.host, args.port, config=config)


def _print_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)  # the view that calls this has gated the text


def list_plugins(argv: Sequence[str], env: dict[str, str]) -> int:
    parser = _parser(prog="unith-shell plugins", description="List the plugins unith-shell loads.")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    from unith_shell.config_file import load_settings
    from unith_shell.files import paths
    from unith_shell.settings import ConfigError

    try:
        loaded = load_settings({}, env=env, config_file=paths(env).config_file)
    except ConfigError as exc:
        _error(f"unith-shell: {exc}")
        return EXIT_USAGE
    from unith_shell.builtins.plugins_cmd import plugin_rows
    from unith_shell.shell import Shell

    # Load errors go to stderr: stdout is for the list (JSON must stay parseable).
    shell = Shell(loaded.settings, paths(env), env=env, write=_print_stderr)
    shell.load_plugins()
    rows = plugin_rows(shell.context("plugins_cmd"))
    if args.json:
        import json

        print(json.dumps(rows, indent=2))  # ensure_ascii: every control is a \uXXXX escape
    else:
        from unith_shell.sanitize import sanitize

        for row in rows:
            version = f" {row['version']}" if row["version"] else ""
            line = f"{row['name']}{version}  [{row['source']}]  hooks: {', '.join(row['hooks'])}"
            print(sanitize(line))  # names and versions come from plugin files
    return 0
