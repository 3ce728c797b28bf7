"""Reports of a test run: human (with progress), JSON Lines, JUnit XML and TAP.

Everything that came from a server (reply text, suggestions, error details, close reasons)
passes :mod:`unith_shell.sanitize` here, on its way to a terminal or a file.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from unith_shell.render import escape_text
from unith_shell.sanitize import json_line, sanitize
from unith_shell.scenario.model import Step
from unith_shell.scenario.runner import Job, Progress, ScenarioResult
from unith_shell.scenario.steps import StepResult

_MARK = {
    "passed": "PASS",
    "failed": "FAIL",
    "timeout": "TIME",
    "error": "ERR ",
    "refused": "BUSY",
    "skipped": "SKIP",
}


@dataclass(slots=True)
class Summary:
    results: Sequence[ScenarioResult]
    run_id: str
    elapsed: float
    repeat: int = 1

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    def line(self) -> str:
        words = [
            ("passed", "passed"),
            ("failed", "failed"),
            ("timeout", "timed out"),
            ("error", "could not connect"),
            ("refused", "refused (high demand)"),
            ("skipped", "skipped"),
        ]
        said = [f"{self.count(s)} {w}" for s, w in words if self.count(s) or s == "passed"]
        return f"{', '.join(said)} in {self.elapsed:.2f} s (run id {self.run_id})"


def _block(text: str, indent: str) -> str:
    """Server text for a report: escaped (one gate), every line indented."""
    lines = escape_text(text).split("\n") or [""]
    return ("\n" + indent).join(lines)


def _latency(step: StepResult) -> str:
    def ms(value: float | None) -> str:
        if value is None:
            return "none"
        return f"{value * 1000:.1f} ms" if value < 0.01 else f"{value * 1000:.0f} ms"

    return f"first part {ms(step.first_latency)}, last part {ms(step.total_latency)}"


def failure_text(result: ScenarioResult) -> str:
    """The details of a run that did not pass: step, assertion, expected, actual, latency."""
    job = result.job
    rep = f", run {job.repetition}" if job.repetition > 1 else ""
    # A file name is outside text too (a cloned scenario folder): through the gate.
    where = sanitize(job.scenario.where)
    out = [f"{_MARK[result.status].strip()} {sanitize(job.title)} ({where}{rep})"]
    if result.message:
        out.append(f"  {sanitize(result.message)}")
    for step in result.failed_steps:
        path = sanitize(str(job.scenario.path))
        out.append(f"  {sanitize(step.step.label)} at {path}:{step.step.line}")
        if step.message:
            out.append(f"    {sanitize(step.message)}")
        for failure in step.failures:
            where = f" (line {failure.line})" if failure.line else ""
            out.append(f"    {sanitize(failure.assertion)}{where}")
            out.append(f"      expected: {_block(failure.expected, ' ' * 16)}")
            out.append(f"      actual:   {_block(failure.actual, ' ' * 16)}")
        out.append(f"    latency: {_latency(step)}")
    for notice in result.notices[:10]:
        out.append(f"  notice: {sanitize(notice)}")
    return "\n".join(out)


def pass_rates(results: Sequence[ScenarioResult]) -> list[str]:
    """Per scenario and head, and per step: passed / ran (``--repeat``)."""
    groups: dict[tuple[str, str, str], list[ScenarioResult]] = {}
    for result in results:
        job = result.job
        groups.setdefault((str(job.scenario.path), job.scenario.name, job.head_key), []).append(
            result
        )
    lines: list[str] = []
    for runs in groups.values():
        ran = [r for r in runs if r.status != "skipped"]
        ok = sum(1 for r in ran if r.status == "passed")
        lines.append(f"{sanitize(runs[0].job.title)}: {_rate(ok, len(ran))}")
        for index, step in enumerate(runs[0].job.scenario.steps):
            outcomes = [r.steps[index] for r in ran if index < len(r.steps)]
            done = [s for s in outcomes if s.status != "skipped"]
            passed = sum(1 for s in done if s.status == "passed")
            lines.append(f"  {sanitize(step.label)}: {_rate(passed, len(done))}")
    return lines


def _rate(ok: int, total: int) -> str:
    percent = f" ({100 * ok / total:.0f}%)" if total else ""
    return f"{ok}/{total} passed{percent}"


class HumanReport(Progress):
    """Progress while running, then failures, pass rates and the summary.

    On a terminal the running scenarios share one status line, updated in place; finished
    ones are printed above it. Elsewhere, one plain line per finished scenario.
    """

    def __init__(self, out: TextIO, *, live: bool) -> None:
        self.out = out
        self.live = live
        self.running: dict[int, tuple[Job, int]] = {}

    def _status(self) -> None:
        if not self.live:
            return
        width = shutil.get_terminal_size((100, 24)).columns - 1
        items = [
            f"{sanitize(job.title)} step {step}/{len(job.scenario.steps)}"
            for job, step in self.running.values()
        ]
        text = f"running: {' · '.join(items)}" if items else ""
        self.out.write("\r\x1b[K" + text[:width])
        self.out.flush()

    def started(self, job: Job) -> None:
        self.running[id(job)] = (job, 0)
        self._status()

    def step(self, job: Job, step: Step) -> None:
        self.running[id(job)] = (job, step.index)
        self._status()

    def finished(self, result: ScenarioResult) -> None:
        self.running.pop(id(result.job), None)
        if self.live:
            self.out.write("\r\x1b[K")
        self.out.write(result_line(result) + "\n")
        self._status()

    def report(self, summary: Summary) -> None:
        if self.live:
            self.out.write("\r\x1b[K")
        self.out.write(details(summary))
        self.out.flush()


def result_line(result: ScenarioResult) -> str:
    """``PASS name [org/head] (0.12 s)``: one finished scenario run."""
    job = result.job
    rep = f" run {job.repetition}" if job.repetition > 1 else ""
    line = f"{_MARK[result.status]} {sanitize(job.title)}{rep} ({result.duration:.2f} s)"
    if result.status in ("refused", "error") and result.message:
        line += f": {sanitize(result.message)}"
    return line


def details(summary: Summary) -> str:
    """What follows the progress lines: failures, pass rates (``--repeat``), the summary."""
    out: list[str] = []
    for result in summary.results:
        if result.status in ("failed", "timeout", "error"):
            out.append("\n" + failure_text(result) + "\n")
    if summary.repeat > 1:
        out.append("\npass rate\n")
        out.extend(f"  {line}\n" for line in pass_rates(summary.results))
    out.append(f"\n{summary.line()}\n")
    return "".join(out)


def human(summary: Summary) -> str:
    """The whole human report, for ``--output``: a line per run, then :func:`details`."""
    return "".join(result_line(r) + "\n" for r in summary.results) + details(summary)


def _result_obj(result: ScenarioResult) -> dict[str, object]:
    job = result.job
    return {
        "event": "scenario",
        "name": job.scenario.name,
        "file": str(job.scenario.path),
        "head": job.head_key,
        "repetition": job.repetition,
        "status": result.status,
        "message": result.message,
        "duration": round(result.duration, 4),
        "steps": [
            {
                "index": s.step.index,
                "kind": s.step.kind,
                "line": s.step.line,
                "status": s.status,
                "message": s.message,
                "first_latency": s.first_latency,
                "total_latency": s.total_latency,
                "failures": [
                    {
                        "assertion": f.assertion,
                        "expected": f.expected,
                        "actual": f.actual,
                        "line": f.line,
                    }
                    for f in s.failures
                ],
            }
            for s in result.steps
        ],
        "notices": result.notices,
    }


def json_lines(summary: Summary) -> str:
    """One JSON object per line: each scenario run, then the summary."""
    lines = [json_line(_result_obj(r)) for r in summary.results]
    counts = {s: summary.count(s) for s in _MARK}
    lines.append(
        json_line(
            {
                "event": "summary",
                "run_id": summary.run_id,
                "elapsed": round(summary.elapsed, 4),
                **counts,
            }
        )
    )
    return "\n".join(lines) + "\n"


def junit_xml(summary: Summary) -> str:
    """JUnit XML as CI systems read it: one suite, one test case per scenario run."""
    results = summary.results
    suite = ET.Element(
        "testsuite",
        name="unith-shell test",
        tests=str(len(results)),
        failures=str(summary.count("failed") + summary.count("timeout")),
        errors=str(summary.count("error") + summary.count("refused")),
        skipped=str(summary.count("skipped")),
        time=f"{summary.elapsed:.3f}",
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="run_id", value=sanitize(summary.run_id))
    for result in results:
        job = result.job
        name = job.scenario.name + (f" #{job.repetition}" if summary.repeat > 1 else "")
        case = ET.SubElement(
            suite,
            "testcase",
            classname=sanitize(f"{job.scenario.path.stem}.{job.head_key}"),
            name=sanitize(name),
            file=sanitize(str(job.scenario.path)),  # XML 1.0 allows no control character
            line=str(job.scenario.line),
            time=f"{result.duration:.3f}",
        )
        if result.status == "passed":
            continue
        if result.status == "skipped":
            ET.SubElement(case, "skipped", message=sanitize(result.message or "skipped"))
            continue
        first = next((f for s in result.failed_steps for f in s.failures), None)
        message = result.message or (
            f"{first.assertion}: expected {first.expected}" if first else result.status
        )
        tag = "failure" if result.status in ("failed", "timeout") else "error"
        element = ET.SubElement(case, tag, message=sanitize(message)[:500], type=result.status)
        element.text = failure_text(result)
    root = ET.Element("testsuites", name="unith-shell", tests=str(len(results)))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def tap(summary: Summary) -> str:
    """TAP version 13 with a YAML diagnostics block for each run that did not pass."""
    lines = ["TAP version 13", f"1..{len(summary.results)}", f"# run id: {summary.run_id}"]
    for number, result in enumerate(summary.results, 1):
        job = result.job
        title = sanitize(job.title).replace("#", "\\#")
        if job.repetition > 1:
            title += f" run {job.repetition}"
        if result.status == "passed":
            lines.append(f"ok {number} - {title}")
            continue
        if result.status == "skipped":
            lines.append(f"ok {number} - {title} # SKIP {sanitize(result.message)}")
            continue
        lines.append(f"not ok {number} - {title}")
        lines += ["  ---", f"  status: {result.status}", f"  file: {json_line(job.scenario.where)}"]
        if result.message:
            lines.append(f"  message: {json_line(result.message)}")
        failures = [(s, f) for s in result.failed_steps for f in s.failures]
        if failures:
            lines.append("  failures:")
        for step, failure in failures:
            lines += [
                f"    - step: {json_line(step.step.label)}",
                f"      assertion: {json_line(failure.assertion)}",
                f"      expected: {json_line(failure.expected)}",
                f"      actual: {json_line(failure.actual)}",
                f"      line: {failure.line}",
            ]
        lines.append("  ...")
    if summary.repeat > 1:
        lines += [f"# {line}" for line in pass_rates(summary.results)]
    lines.append(f"# {summary.line()}")
    return "\n".join(lines) + "\n"
