"""``unith-shell test PATH...``: run conversation scenarios and report (docs/testing.md).

Exit status: 0 all passed, 1 an assertion failed, 2 usage or scenario error (before any
connection), 3 authentication or connection failure (or a refused join), 4 a turn timed out.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from unith_shell.scenario.runner import EXIT_USAGE, Job, RunConfig

#: The settings ``unith-shell test`` takes as flags.
TEST_SETTINGS = (
    "local", "base_url", "profile", "timeout", "no_plugins", "plugins", "plugins_dirs",
)  # fmt: skip

PROG = "unith-shell test"


def _parser() -> argparse.ArgumentParser:
    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> Any:
            self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")

    def positive(text: str) -> int:
        if not text.isdigit() or int(text) < 1:
            raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
        return int(text)

    parser = Parser(
        prog=PROG,
        description="Run conversation scenarios (YAML or JSON) against a Unith head.",
        epilog="Exit status: 0 passed, 1 an assertion failed, 2 usage or scenario error, "
        "3 connection or authentication failure, 4 a turn timed out. See docs/testing.md.",
    )
    add = parser.add_argument
    add("paths", nargs="*", metavar="PATH", help="scenario files, or folders to search")
    add(
        "--from-recording",
        metavar="FILE",
        help="write a scenario that expects what the recording FILE shows (to --output or "
        "stdout), and exit",
    )
    add(
        "--head",
        action="append",
        dest="heads",
        default=[],
        metavar="ORG/HEAD",
        help="run every scenario against this head (repeatable: a matrix)",
    )
    add("-k", dest="keyword", metavar="SUBSTRING", help="only scenarios whose name or file has it")
    add("--repeat", type=positive, default=1, metavar="N", help="run each scenario N times")
    add("--jobs", type=positive, default=1, metavar="N", help="run N scenarios at once (1)")
    add("--fail-fast", action="store_true", help="start no new scenario after a failure")
    add(
        "--format",
        choices=("human", "json", "junit", "tap"),
        default="human",
        help="report format (human); with the others the human report goes to stderr",
    )
    add("--output", metavar="FILE", help="write the report to FILE (default: stdout)")
    add("--run-id", metavar="ID", help="the run id (sent as the handshake's data_tag)")
    from unith_shell.setting_table import add_setting_flags

    add_setting_flags(
        parser,
        TEST_SETTINGS,
        help={
            "local": "run against the built-in server",
            "timeout": "per-turn timeout when a file sets none",
        },
    )
    return parser


def new_run_id() -> str:
    """``ut-20260101T120000-1a2b3c``: sortable, and unique enough to find in server logs."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return f"ut-{stamp}-{uuid.uuid4().hex[:6]}"


def _say(text: str) -> None:
    from unith_shell.sanitize import sanitize  # it may quote a file name or a config value

    print(sanitize(f"{PROG}: {text}"), file=sys.stderr, flush=True)


def main(argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(list(argv))
    env = dict(os.environ if env is None else env)
    if args.from_recording:
        if args.paths:
            parser.error("--from-recording takes no PATH (write the scenario with --output)")
        return from_recording(args.from_recording, args.output)
    if not args.paths:
        parser.error("give at least one PATH (a scenario file or a folder)")
    from unith_shell.config_file import load_settings
    from unith_shell.files import paths
    from unith_shell.settings import ConfigError

    flags = {name: getattr(args, name) for name in TEST_SETTINGS}
    try:
        loaded = load_settings(flags, env=env, config_file=paths(env).config_file)
    except ConfigError as exc:
        _say(str(exc))
        return EXIT_USAGE
    for warning in loaded.warnings:
        _say(f"warning: {warning}")
    settings = loaded.settings
    home = paths(env)
    if not settings.local:
        from unith_shell.urls import plain_http_warning

        plain = plain_http_warning(settings.base_url)
        if plain:
            _say(f"warning: {plain}")

    from unith_shell.scenario.assertions import load_registry
    from unith_shell.scenario.loader import ScenarioError, find_files, load_file
    from unith_shell.scenario.runner import make_jobs

    for head in args.heads:
        org, _, name = head.rpartition("/")
        if not name or "/" in org:
            _say(f"error: --head {head!r}: expected ORG/HEAD or HEAD")
            return EXIT_USAGE
    registry = load_registry(settings, home, env, lambda text: _say(f"warning: {text}"))
    try:
        files = find_files(Path(p) for p in args.paths)
        scenarios = [load_file(path, registry) for path in files]
    except ScenarioError as exc:
        _say(str(exc))
        return EXIT_USAGE
    if args.keyword:
        word = args.keyword.casefold()
        scenarios = [
            s for s in scenarios if word in s.name.casefold() or word in str(s.path).casefold()
        ]
    if not scenarios:
        _say("error: no scenarios to run" + (f" (-k {args.keyword!r})" if args.keyword else ""))
        return EXIT_USAGE
    config = RunConfig(
        settings=settings,
        paths=home,
        env=env,
        registry=registry,
        run_id=args.run_id or new_run_id(),
        repeat=args.repeat,
        jobs=args.jobs,
        fail_fast=args.fail_fast,
    )
    jobs = make_jobs(scenarios, args.heads, settings, args.repeat)
    from unith_shell.cli import _asyncio_run

    try:
        return _asyncio_run(_run(jobs, config, args.format, args.output))
    except KeyboardInterrupt:
        return 130


async def _run(jobs: list[Job], config: RunConfig, fmt: str, output: str | None) -> int:
    from unith_shell import api
    from unith_shell.scenario import report
    from unith_shell.scenario.runner import exit_status, run_jobs

    server = None
    settings = config.settings
    if settings.local:
        from unith_shell.server import LocalServer, ServerConfig

        custom = settings.password if settings.password != api.DEFAULT_PASSWORD else None
        server = LocalServer(ServerConfig(password=custom))
        await server.start()
        settings.base_url = server.base_url
    # Human output goes to stdout; with a machine format, the human report goes to stderr.
    human_out: TextIO = sys.stdout if fmt == "human" else sys.stderr
    human = report.HumanReport(human_out, live=_is_terminal(human_out))
    started = time.monotonic()
    try:
        results = await run_jobs(jobs, config, human)
    finally:
        await api.close_clients()
        if server is not None:
            await server.stop()
    summary = report.Summary(results, config.run_id, time.monotonic() - started, config.repeat)
    human.report(summary)
    if fmt != "human" or output:
        text = {
            "human": lambda: report.human(summary),
            "json": lambda: report.json_lines(summary),
            "junit": lambda: report.junit_xml(summary),
            "tap": lambda: report.tap(summary),
        }[fmt]()
        if output:
            try:
                Path(output).write_text(text, encoding="utf-8")
            except OSError as exc:
                _say(f"error: cannot write {output}: {exc.strerror or exc}")
                return EXIT_USAGE
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
    return exit_status(results)


def from_recording(source: str, output: str | None) -> int:
    """``--from-recording FILE``: a recording (docs/recordings.md) as a scenario file.

    The scenario is checked by the same loader ``unith-shell test`` uses before it is written;
    ``--output`` never replaces an existing file.
    """
    import yaml

    from unith_shell.recordings.format import RecordingError, load
    from unith_shell.recordings.scenario import scenario_from_recording
    from unith_shell.sanitize import sanitize
    from unith_shell.scenario.assertions import builtin_registry
    from unith_shell.scenario.loader import ScenarioError, load_text

    try:
        scenario = scenario_from_recording(load(source))
    except RecordingError as exc:
        _say(sanitize(str(exc)))
        return EXIT_USAGE
    text = yaml.safe_dump(scenario, sort_keys=False, allow_unicode=True, width=100)
    if sanitize(text.replace("\n", "")) != text.replace("\n", ""):
        # PyYAML writes bidi and zero-width characters raw; ASCII-only escapes them all.
        text = yaml.safe_dump(scenario, sort_keys=False, allow_unicode=False, width=100)
    target = Path(output) if output else Path(f"{Path(source).stem}.yaml")
    try:
        load_text(text, target, builtin_registry())
    except ScenarioError as exc:  # a recording this module cannot express: say so, write nothing
        _say(f"error: the scenario made from {sanitize(source)} does not load: {exc}")
        return EXIT_USAGE
    if not output:
        sys.stdout.write(text)
        return 0
    try:
        with open(output, "x", encoding="utf-8") as file:  # never replace an existing file
            file.write(text)
    except FileExistsError:
        _say(f"error: {sanitize(output)} exists; choose another --output or remove it")
        return EXIT_USAGE
    except OSError as exc:
        _say(f"error: cannot write {sanitize(output)}: {exc.strerror or exc}")
        return EXIT_USAGE
    _say(f"wrote {sanitize(output)} ({len(scenario['steps'])} steps)")
    return 0


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"
