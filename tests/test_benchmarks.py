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
    # asyncio rows (5), lock-step driver (2), allocator (4), REPL print path (1)
    "message path": 12,
    "message path (wscat or skipped)": 1,
    "message path (uvloop or skipped)": 1,
    "hook dispatch": 4,
    "memory": 7,  # idle, after /video and 20,000 turns for both modes, bare import (+ wscat)
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
    uvloop_rows = [r for r in results if "uvloop" in r["name"] and r["area"] == "message path"]
    by_area["message path (uvloop or skipped)"] = len(uvloop_rows)
    # Both sides on the same loop: every uvloop figure is against the raw client on uvloop.
    for row in uvloop_rows:
        assert "skipped" in row or "uvloop" in row["baseline_name"], row
    for name in ("mmap per read", "heap"):
        assert any(name in r["name"] for r in figures), name
    # the allocator's system calls on both sides (strace), or the reason they are missing
    assert any("memory system calls" in r["name"] for r in results), [r["name"] for r in results]
    # The measured shell is a regular install of this tree (a quick run without a way to build
    # the wheel goes on in place and says why), and the output says which.
    how = payload["environment"]["unith-shell"]
    assert how.startswith("installed copy of") or "(install failed: " in how, how
    assert f"unith-shell: {how}" in proc.stdout
    for area, count in EXPECTED.items():
        assert by_area.get(area, 0) >= count, (area, by_area)
    targets = [f for f in figures if f["target"]]
    assert len(targets) >= 12, [f["name"] for f in targets]
