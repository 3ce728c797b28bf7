"""Running scenarios: one fresh shell and session per scenario run, as pipe mode makes them.

Each run builds a :class:`~unith_shell.shell.Shell` with its plugins loaded and started
exactly as pipe mode does, so every hook fires as it does in the shell (``before_send``
changes what a ``user`` step sends, ``after_receive`` what assertions see). The runs of a
test (scenarios x heads x repetitions) go through :func:`run_jobs`, at most ``jobs`` at a
time. Statuses: ``passed``, ``failed`` (an assertion), ``timeout`` (a turn timed out),
``error`` (no connection, authentication), ``refused`` (the server refused the join: high
demand, not a failure of the head), ``skipped`` (``--fail-fast``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from unith_shell.files import Paths
from unith_shell.render import View
from unith_shell.sanitize import sanitize
from unith_shell.scenario.assertions import AssertionRegistry
from unith_shell.scenario.model import Scenario, Step
from unith_shell.scenario.steps import ObservingShell, StepResult, StepRunner
from unith_shell.session import (
    JoinRefused,
    Session,
    SessionError,
    connect_retrying,
)
from unith_shell.settings import Settings
from unith_shell.shell import Shell

#: Exit statuses of ``unith-shell test``.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONNECT, EXIT_TIMEOUT = 0, 1, 2, 3, 4
_MAX_NOTICES = 50


@dataclass(slots=True)
class Job:
    scenario: Scenario
    org: str
    head: str
    repetition: int = 1  # 1-based

    @property
    def head_key(self) -> str:
        return f"{self.org}/{self.head}"

    @property
    def title(self) -> str:
        return f"{self.scenario.name} [{self.head_key}]"


@dataclass(slots=True)
class ScenarioResult:
    job: Job
    status: str = "passed"
    steps: list[StepResult] = field(default_factory=list)
    message: str = ""
    duration: float = 0.0
    notices: list[str] = field(default_factory=list)

    @property
    def failed_steps(self) -> list[StepResult]:
        return [s for s in self.steps if s.status not in ("passed", "skipped")]


@dataclass(slots=True)
class RunConfig:
    settings: Settings
    paths: Paths
    env: Mapping[str, str]
    registry: AssertionRegistry
    run_id: str
    repeat: int = 1
    jobs: int = 1
    fail_fast: bool = False


def exit_status(results: Sequence[ScenarioResult]) -> int:
    """3 if any run could not connect (or was refused), else 4 if a turn timed out, else 1 if
    an assertion failed, else 0."""
    statuses = {r.status for r in results}
    if statuses & {"error", "refused"}:
        return EXIT_CONNECT
    if "timeout" in statuses:
        return EXIT_TIMEOUT
    if "failed" in statuses:
        return EXIT_FAILED
    return EXIT_OK


def split_head(spec: str, default_org: str) -> tuple[str, str]:
    org, _, head = spec.rpartition("/")
    return (org or default_org), head


def make_jobs(
    scenarios: Sequence[Scenario], heads: Sequence[str], settings: Settings, repeat: int
) -> list[Job]:
    """Scenarios x heads (``--head``, else the file's ``head``, else the settings') x repeats."""
    jobs: list[Job] = []
    for scenario in scenarios:
        specs = list(heads) or [scenario.head or f"{settings.org}/{settings.head}"]
        for spec in specs:
            org, head = split_head(spec, settings.org)
            for repetition in range(1, repeat + 1):
                jobs.append(Job(scenario, org, head, repetition))
    return jobs


class Progress:
    """What the runner reports while it runs; reporters override what they show."""

    def started(self, job: Job) -> None: ...

    def step(self, job: Job, step: Step) -> None: ...

    def finished(self, result: ScenarioResult) -> None: ...


async def run_jobs(
    jobs: Sequence[Job], config: RunConfig, progress: Progress | None = None
) -> list[ScenarioResult]:
    """Run ``jobs``, at most ``config.jobs`` at once; results in ``jobs`` order."""
    progress = progress or Progress()
    slots = asyncio.Semaphore(max(1, config.jobs))
    stop = asyncio.Event()

    async def one(job: Job) -> ScenarioResult:
        async with slots:
            if stop.is_set():
                result = ScenarioResult(job, "skipped", message="not run (--fail-fast)")
                result.steps = [StepResult(s, "skipped") for s in job.scenario.steps]
            else:
                progress.started(job)
                result = await run_job(job, config, progress)
            if config.fail_fast and result.status not in ("passed", "skipped"):
                stop.set()
            progress.finished(result)
            return result

    return list(await asyncio.gather(*(one(job) for job in jobs)))


class _NoticeView(View):
    """Keeps the shell's notices (already escaped and scrubbed by the shell) for reports."""

    def __init__(self) -> None:
        self.notices: list[str] = []

    def notice(self, level: str, text: str) -> None:
        if len(self.notices) < _MAX_NOTICES:
            self.notices.append(f"{level}: {text}")

    def write(self, text: str) -> None:
        self.notice("output", text)


async def run_job(job: Job, config: RunConfig, progress: Progress | None = None) -> ScenarioResult:
    """One scenario against one head: a fresh shell and session, closed at the end."""
    scenario = job.scenario
    settings = dataclasses.replace(
        config.settings,
        org=job.org,
        head=job.head,
        data_tag=config.run_id,
        timeout=scenario.timeout or config.settings.timeout,
        messages=[],
    )
    view = _NoticeView()
    result = ScenarioResult(job)
    started = time.monotonic()
    shell = ObservingShell(settings, config.paths, view=view, env=dict(config.env))
    try:
        shell.load_plugins()
        await shell.start_plugins()
        failed = await _connect(shell.session)
        if failed is not None:
            result.status, result.message = failed
            result.steps = [StepResult(s, "skipped") for s in scenario.steps]
            return result
        shell.session.start(connected=True)
        steps = StepRunner(shell, settings, config.registry)
        for index, step in enumerate(scenario.steps):
            if progress is not None:
                progress.step(job, step)
            outcome = await steps.run(step)
            result.steps.append(outcome)
            if outcome.status in ("timeout", "error"):
                result.steps += [StepResult(s, "skipped") for s in scenario.steps[index + 1 :]]
                break
        result.status = _overall(result.steps)
        return result
    except Exception as exc:  # a plugin failing in strict mode, say: this run only ends
        result.status, result.message = "error", sanitize(f"{type(exc).__name__}: {exc}")
        result.steps += [StepResult(s, "skipped") for s in scenario.steps[len(result.steps) :]]
        return result
    finally:
        await _stop(shell)
        result.notices = view.notices
        result.duration = time.monotonic() - started


async def _stop(shell: Shell) -> None:
    """``Shell.stop`` without closing the process's shared HTTP clients: other scenarios
    may be logging in on them right now (``--jobs``); the run closes them at its end."""
    await shell.session.close()
    await shell.plugins.call("shell_exit", shell=shell)


def _overall(steps: list[StepResult]) -> str:
    statuses = {s.status for s in steps}
    for status in ("error", "timeout", "failed"):
        if status in statuses:
            return status
    return "passed"


async def _connect(session: Session) -> tuple[str, str] | None:
    """The first connection; ``(status, message)`` when it fails. High demand and a refused
    token get a retry with backoff (a developer organisation has few concurrent slots)."""
    try:
        await connect_retrying(session, initial=0.3)
    except JoinRefused as exc:
        return "refused", sanitize(str(exc))
    except SessionError as exc:
        return "error", sanitize(str(exc))
    return None
