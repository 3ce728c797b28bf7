"""Smoke test for benchmarks/: every benchmark runs with tiny counts and yields its figures.

No timing assertions: only that each figure is a finite positive number with a baseline and a
ratio, so the benchmarks keep working as the code changes.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

EXPECTED = {
    "start-up": 3,
    # The wscat rows need wscat (npm), which a fresh machine does not have: a skipped row
    # (with the reason) counts as a row, so the suite passes with or without it.
    "message path": 6,
    "message path (wscat or skipped)": 1,
    "hook dispatch": 4,
    "memory": 5,  # + 1 wscat row
    "scale": 3,
    "scenario runner": 1,
}


def test_every_benchmark_runs_quick(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    payload = json.loads(out.read_text())
    results = payload["results"]
    figures = [r for r in results if "skipped" not in r]
    skipped = [r for r in results if "skipped" in r]
    for figure in figures:
        for key in ("value", "baseline", "ratio"):
            value = figure[key]
            assert isinstance(value, int | float), figure
            assert math.isfinite(value) and value > 0, (key, figure)
        assert figure["unit"] and figure["baseline_name"], figure
        assert figure["met"] in (True, False, None), figure
        if figure["target"]:
            assert figure["met"] is not None, figure
        # the printed table carries every figure as a ratio with its baseline
        assert figure["name"] in proc.stdout
    for row in skipped:
        assert row["skipped"] and row["name"] in proc.stdout
    by_area: dict[str, int] = {}
    for figure in figures:
        by_area[figure["area"]] = by_area.get(figure["area"], 0) + 1
    wscat_rows = [r for r in results if "wscat" in r["name"]]
    by_area["message path (wscat or skipped)"] = sum(
        1 for r in wscat_rows if r["area"] == "message path"
    )
    if not shutil.which("wscat"):
        assert wscat_rows and all("skipped" in r for r in wscat_rows), wscat_rows
    for area, count in EXPECTED.items():
        assert by_area.get(area, 0) >= count, (area, by_area)
    targets = [f for f in figures if f["target"]]
    assert len(targets) >= 12, [f["name"] for f in targets]
