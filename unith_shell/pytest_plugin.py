"""Scenario files as pytest items (pytest's "non-Python tests" pattern). Opt-in only:

    pytest -p unith_shell.pytest_plugin [--unith-local] [--unith-head ORG/HEAD] examples/

Installing unith-shell registers no ``pytest11`` entry point, so nobody else's pytest runs
change. With the plugin on, every ``*.yaml``/``*.yml``/``*.json`` file whose top level has a
``steps`` key is collected; each scenario (x each ``--unith-head``) is one item, run in a
fresh shell and session exactly as ``unith-shell test`` runs it, and a failed step is
reported like a failed assertion: step, assertion, expected, actual, latency.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from unith_shell.scenario.runner import Job, RunConfig, ScenarioResult

_CONFIG = pytest.StashKey["RunConfig | None"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("unith-shell", "unith-shell scenarios")
    group.addoption(
        "--unith-local",
        action="store_true",
        default=None,
        help="run scenarios against the built-in local server",
    )
    group.addoption(
        "--unith-head",
        action="append",
        default=[],
        metavar="ORG/HEAD",
        help="run every scenario against this head (repeatable)",
    )
    group.addoption("--unith-base-url", metavar="URL", help="REST base URL")
    group.addoption("--unith-profile", metavar="NAME", help="config file profile")
    group.addoption(
        "--unith-no-plugins",
        action="store_true",
        default=None,
        help="load bundled unith-shell plugins only",
    )
    parser.addini(
        "unith_local", "run scenarios against the built-in local server", type="bool", default=False
    )


def _run_config(config: pytest.Config) -> RunConfig:
    cached = config.stash.get(_CONFIG, None)
    if cached is not None:
        return cached
    from unith_shell.config_file import load_settings
    from unith_shell.files import paths
    from unith_shell.scenario.assertions import load_registry
    from unith_shell.scenario.cli import new_run_id

    env = dict(os.environ)
    local = config.getoption("unith_local") or config.getini("unith_local")
    flags = {
        "local": bool(local) or None,
        "base_url": config.getoption("unith_base_url"),
        "profile": config.getoption("unith_profile"),
        "no_plugins": config.getoption("unith_no_plugins"),
    }
    settings = load_settings(flags, env=env, config_file=paths(env).config_file).settings
    home = paths(env)

    def warn(text: str) -> None:
        config.issue_config_time_warning(pytest.PytestWarning(f"unith-shell: {text}"), 2)

    registry = load_registry(settings, home, env, warn)
    run = RunConfig(settings, home, env, registry, new_run_id())
    config.stash[_CONFIG] = run
    return run


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    from unith_shell.scenario.loader import SUFFIXES, looks_like_scenario

    if file_path.suffix in SUFFIXES and looks_like_scenario(file_path):
        file: ScenarioFile = ScenarioFile.from_parent(parent, path=file_path)
        return file
    return None


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        from unith_shell.scenario.loader import ScenarioError, load_file
        from unith_shell.scenario.runner import make_jobs

        run = _run_config(self.config)
        try:
            scenario = load_file(self.path, run.registry)
        except ScenarioError as exc:
            raise self.CollectError(str(exc)) from None
        heads = self.config.getoption("unith_head")
        for job in make_jobs([scenario], heads, run.settings, 1):
            name = f"{scenario.name} [{job.head_key}]"
            yield ScenarioItem.from_parent(self, name=name, job=job)


class ScenarioFailed(Exception):
    def __init__(self, result: ScenarioResult) -> None:
        super().__init__(result.status)
        self.result = result


class ScenarioItem(pytest.Item):
    def __init__(self, *, job: Job, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job = job

    def runtest(self) -> None:
        result = asyncio.run(_run(self.job, _run_config(self.config)))
        if result.status != "passed":
            raise ScenarioFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ScenarioFailed):
            from unith_shell.scenario.report import failure_text

            return failure_text(excinfo.value.result)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.job.scenario.line - 1, f"scenario: {self.name}"


async def _run(job: Job, run: RunConfig) -> ScenarioResult:
    import dataclasses

    from unith_shell import api
    from unith_shell.scenario.runner import run_job

    server = None
    if run.settings.local:
        from unith_shell.server import LocalServer, ServerConfig

        server = LocalServer(ServerConfig(port=0))
        await server.start()
        run = dataclasses.replace(
            run, settings=dataclasses.replace(run.settings, base_url=server.base_url)
        )
    try:
        return await run_job(job, run)
    finally:
        await api.close_clients()
        if server is not None:
            await server.stop()
