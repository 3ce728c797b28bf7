"""The ``replay`` and ``diff`` subcommands: their own argument parsers and entry points.

``unith_shell.cli`` dispatches ``unith-shell replay ...`` and ``unith-shell diff ...`` here.
"""

from __future__ import annotations

import os
import sys
import time

from unith_shell.recordings import add_served_options

# Exit statuses as diff(1); the comparison itself is imported only when it runs, so that
# ``unith-shell --help`` (which lists --recordings, --speed, --match) stays cheap.
EXIT_SAME = 0
EXIT_DIFFERENT = 1
EXIT_TROUBLE = 2
EXIT_USAGE = 2

#: The settings ``unith-shell replay`` takes as flags.
REPLAY_SETTINGS = (
    "local", "base_url", "org", "head", "api_key", "profile", "timeout", "text_only",
    "no_plugins", "insecure",
)  # fmt: skip

# Only for type checkers: the server (aiohttp) is imported when a mode needs it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path
    from typing import Any

    from unith_shell.recordings.diff import DiffOptions
    from unith_shell.server import LocalServer, ServerConfig
    from unith_shell.settings import Settings


def _fraction(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"not a similarity between 0 and 1: {text!r}")
    return value


def add_compare_options(parser: Any) -> None:
    add = parser.add_argument
    add("--ignore-latency", action="store_true", help="do not compare latencies")
    add("--ignore-case", action="store_true", help="compare texts and suggestions case-blind")
    add("--ignore-whitespace", action="store_true", help="collapse whitespace before comparing")
    add(
        "--threshold",
        type=_fraction,
        default=1.0,
        metavar="RATIO",
        help="reply texts at least this similar (0..1, difflib ratio) count as equal (1.0)",
    )


def options_of(args: Any) -> DiffOptions:
    from unith_shell.recordings.diff import DiffOptions

    return DiffOptions(
        ignore_latency=args.ignore_latency,
        ignore_case=args.ignore_case,
        ignore_whitespace=args.ignore_whitespace,
        threshold=args.threshold,
    )


def _color(stream: Any, env: dict[str, str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not env.get("NO_COLOR") and env.get("TERM") != "dumb"


def diff_main(argv: Sequence[str], env: dict[str, str]) -> int:
    from unith_shell.cli import _parser
    from unith_shell.sanitize import sanitize

    parser = _parser(
        prog="unith-shell diff",
        description="Compare two recordings turn by turn. Exit 0 equal, 1 different, 2 trouble.",
    )
    parser.add_argument("a", metavar="A", help="the first recording")
    parser.add_argument("b", metavar="B", help="the second recording")
    add_compare_options(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object per turn")
    args = parser.parse_args(argv)
    from unith_shell.recordings.diff import compare
    from unith_shell.recordings.format import RecordingError, load

    try:
        first, second = load(args.a), load(args.b)
    except RecordingError as exc:
        print(f"unith-shell diff: {sanitize(str(exc))}", file=sys.stderr)
        return EXIT_TROUBLE
    opts = options_of(args)
    diffs = compare(first, second, opts)
    status = EXIT_SAME if all(d.equal for d in diffs) else EXIT_DIFFERENT
    try:
        _print_diff(args, first, second, diffs, opts, env)
    except BrokenPipeError:
        # The reader went away (``| head``): the status still says equal or not.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return status


def _print_diff(
    args: Any, first: Any, second: Any, diffs: Any, opts: DiffOptions, env: dict[str, str]
) -> None:
    from unith_shell.recordings.diff import diff_json, painter, render_turn, summary_line
    from unith_shell.sanitize import json_line, sanitize

    if args.json:
        for diff in diffs:
            print(json_line(diff_json(diff)))
    else:
        paint = painter(_color(sys.stdout, env))
        print(f"--- A {sanitize(args.a)} ({sanitize(first.head)})")
        print(f"+++ B {sanitize(args.b)} ({sanitize(second.head)})")
        for diff in diffs:
            for line in render_turn(diff, opts, paint):
                print(line)
        print(summary_line(diffs))
    sys.stdout.flush()


def _replay_parser() -> Any:
    from unith_shell.cli import _parser

    parser = _parser(
        prog="unith-shell replay",
        description="Send a recording's user turns to a head again, record the new "
        "conversation and compare it turn by turn. Exit 0 same, 1 different, 2 a bad file "
        "or usage, 3 no connection.",
    )
    add = parser.add_argument
    add("file", metavar="FILE", help="the recording to replay")
    add(
        "--record",
        metavar="FILE",
        help="record the replay to FILE (default: a new file in the transcripts folder, printed)",
    )
    from unith_shell.setting_table import add_setting_flags

    add_setting_flags(
        parser,
        REPLAY_SETTINGS,
        help={
            "local": "replay against the local server",
            "org": "organisation id (default: the recording's)",
            "head": "head id (default: the recording's)",
            "api_key": "the organisation's public api key",
            "insecure": "do not verify TLS certificates",
        },
    )
    add_served_options(parser)
    add_compare_options(parser)
    return parser


def replay_main(argv: Sequence[str], env: dict[str, str]) -> int:
    from pathlib import Path

    from unith_shell.sanitize import sanitize

    args = _replay_parser().parse_args(argv)
    from unith_shell.config_file import load_settings
    from unith_shell.files import paths
    from unith_shell.recordings.format import RecordingError, load
    from unith_shell.settings import ConfigError

    try:
        original = load(args.file)
    except RecordingError as exc:
        print(f"unith-shell replay: {sanitize(str(exc))}", file=sys.stderr)
        return EXIT_TROUBLE
    if args.recordings is not None and not args.local:
        print("unith-shell replay: error: --recordings needs --local (see --help)", file=sys.stderr)
        return EXIT_USAGE
    # --speed/--match without --recordings, or DIR not a folder: said before the record path
    # is announced (start_local_server checks again, then passing in silence).
    from unith_shell.server import ServerConfig

    if server_config(ServerConfig(), args, "unith-shell replay") is None:
        return EXIT_USAGE
    flags = {name: getattr(args, name) for name in REPLAY_SETTINGS}
    user_paths = paths(env)
    try:
        settings = load_settings(flags, env=env, config_file=user_paths.config_file).settings
    except ConfigError as exc:
        print(f"unith-shell replay: {sanitize(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    org, _, head = original.head.partition("/")
    if not args.profile:  # the default is the recording's head; flags override each part
        settings.org = args.org or org or settings.org
        settings.head = args.head or head or settings.head
    from unith_shell.cli import _valid_base_url
    from unith_shell.urls import display_url, plain_http_warning

    if not settings.local and not _valid_base_url(settings.base_url):
        print(
            f"unith-shell replay: error: base URL must be http://HOST or https://HOST, "
            f"got {display_url(settings.base_url)!r}",  # never a user:pass@ password
            file=sys.stderr,
        )
        return EXIT_USAGE
    plain = None if settings.local else plain_http_warning(settings.base_url)
    if plain:
        print(f"unith-shell replay: warning: {plain}", file=sys.stderr)
    record_path = (
        Path(args.record).expanduser()
        if args.record
        else _default_record_path(user_paths.transcripts_dir, settings.org, settings.head)
    )
    print(
        f"unith-shell replay: recording the replay to {sanitize(str(record_path))}",
        file=sys.stderr,
        flush=True,
    )
    from unith_shell.recordings.replay import replay

    async def go() -> int:
        server = None
        if settings.local:
            server = await start_local_server(settings, args, "unith-shell replay")
            if server is None:
                return EXIT_USAGE
        try:
            return await replay(
                original,
                settings,
                user_paths,
                record_path,
                options_of(args),
                sys.stdout,
                sys.stderr,
                _color(sys.stdout, env),
            )
        finally:
            if server is not None:
                await server.stop()

    from unith_shell.cli import _asyncio_run

    try:
        return _asyncio_run(go())
    except KeyboardInterrupt:
        return 130


def _default_record_path(folder: Path, org: str, head: str) -> Path:
    from unith_shell.files import name_part

    stamp = time.strftime("%Y%m%d-%H%M%S")
    return folder / f"{stamp}-replay-{name_part(org)}-{name_part(head)}-{os.getpid()}.jsonl"


async def start_local_server(
    settings: Settings, args: Any, prog: str = "unith-shell"
) -> LocalServer | None:
    """The in-process local server for ``--local`` (with ``--recordings`` served), or None
    after printing why the recordings cannot be served."""
    from unith_shell.api import DEFAULT_PASSWORD
    from unith_shell.sanitize import sanitize
    from unith_shell.server import LocalServer, ServerConfig

    config = server_config(ServerConfig(), args, prog)
    if config is None:
        return None
    config.password = settings.password if settings.password != DEFAULT_PASSWORD else None
    server = LocalServer(config)
    for problem in server.recording_problems:
        print(f"{prog}: warning: {sanitize(problem)}", file=sys.stderr)
    await server.start()
    settings.base_url = server.base_url
    return server


def server_config(
    config: ServerConfig, args: Any, prog: str = "unith-shell"
) -> ServerConfig | None:
    """``config`` with ``--recordings``, ``--speed`` and ``--match`` applied (None and a
    printed line when DIR is not a directory or flags are given without it)."""
    from pathlib import Path

    from unith_shell.sanitize import sanitize

    recordings = getattr(args, "recordings", None)
    speed, match = getattr(args, "speed", None), getattr(args, "match", None)
    if recordings is None:
        if speed is not None or match is not None:
            print(f"{prog}: error: --speed and --match need --recordings DIR", file=sys.stderr)
            return None
        return config
    if not Path(recordings).is_dir():
        print(
            f"{prog}: error: --recordings {sanitize(recordings)}: not a directory",
            file=sys.stderr,
        )
        return None
    config.recordings = recordings
    config.recording_speed = 1.0 if speed is None else speed
    config.recording_match = match or "order"
    return config
