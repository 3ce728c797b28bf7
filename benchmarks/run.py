"""Run every benchmark and print each figure next to its baseline from the same run.

    python benchmarks/run.py            # the full run (a few minutes)
    python benchmarks/run.py --quick    # tiny counts: checks that every benchmark works
    python benchmarks/run.py --only hooks,memory --json out.json
    python benchmarks/run.py --source /path/to/other/tree   # measure another checkout

The measured unith-shell is a regular (non-editable) install of the tree, byte code
compiled, made once per run in a temporary folder (``pip install --no-deps --target``; about
2 s); ``--in-place`` runs this environment's own console script instead (an editable install
runs the work tree). The output says which. If the install fails, the full run stops; a
``--quick`` run goes on in place and says why.

Areas: startup, message_path, hooks, memory, scale, scenario_runner. Every measured client
runs in its own process against the local server in another (``python -m unith_shell serve
--port 0``; scenario_runner compares two in-process variants against it);
variants are interleaved and repeated, and figures are medians. Timings are for comparing
with the baselines printed beside them; absolute numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, TARGET, Figure, Result, Skipped, fmt, install_target, temp_dir

AREAS = ("startup", "message_path", "hooks", "memory", "scale", "scenario_runner")


def environment() -> dict[str, str]:
    try:
        import uvloop  # noqa: F401

        loop = "asyncio rows (uvloop blocked in both sides), uvloop rows"
    except ImportError:
        loop = "asyncio only (uvloop not installed: pip install '.[speed]')"
    wscat = shutil.which("wscat")
    version = "not installed"
    if wscat:
        version = subprocess.run([wscat, "--version"], capture_output=True, text=True).stdout
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
        "event loop": loop,
        "wscat": version.strip(),
    }


def table(results: list[Result]) -> str:
    lines = []
    area = ""
    for result in results:
        if result.area != area:
            area = result.area
            lines.append(f"\n== {area} ==")
        if isinstance(result, Skipped):
            lines.append(f"  {result.name}: SKIPPED ({result.why})")
            continue
        met = {True: "MET", False: "MISSED", None: "-"}[result.met]
        target = f"  target {result.target}: {met}" if result.target else ""
        lines.append(
            f"  {result.name}: {fmt(result.value)} {result.unit}"
            f"  vs {result.baseline_name}: {fmt(result.baseline)} {result.unit}"
            f"  = {result.ratio:.2f}x{target}"
        )
        if result.note:
            lines.append(f"      ({result.note})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts (a smoke test)")
    parser.add_argument("--only", help=f"comma-separated areas ({', '.join(AREAS)})")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="run this environment's console script instead of installing the tree first",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=REPO,
        help="the tree to install and measure (default: this checkout)",
    )
    args = parser.parse_args(argv)
    areas = AREAS if not args.only else tuple(a.strip() for a in args.only.split(","))
    unknown = [a for a in areas if a not in AREAS]
    if unknown:
        parser.error(f"unknown area(s): {', '.join(unknown)}")
    with temp_dir("unith-bench-install-") as install:
        if not args.in_place:
            try:
                install_target(install, args.source.resolve())
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired, RuntimeError) as exc:
                stderr = getattr(exc, "stderr", None) or b""
                why = (stderr.decode(errors="replace").strip().splitlines() or [str(exc)])[-1]
                if not args.quick or args.source.resolve() != REPO:
                    # The full run measures what users run, or nothing.
                    print(f"run.py: cannot install {args.source}: {why[:300]}", file=sys.stderr)
                    return 1
                TARGET.how += f" (install failed: {why[:200]})"
        elif args.source.resolve() != REPO:
            parser.error("--source needs an install (drop --in-place)")
        return _run(args, areas)


def _run(args: argparse.Namespace, areas: tuple[str, ...]) -> int:
    env = environment()
    env["unith-shell"] = TARGET.how
    print("unith-shell benchmarks" + (" (--quick: tiny counts, figures are noise)" * args.quick))
    for key, value in env.items():
        print(f"  {key}: {value}")
    results: list[Result] = []
    started = time.perf_counter()
    for area in areas:
        module = importlib.import_module(area)
        t0 = time.perf_counter()
        got: list[Result] = module.run(quick=args.quick)
        results.extend(got)
        print(table(got))
        print(f"  [{area}: {time.perf_counter() - t0:.1f} s]", flush=True)
    figures = [r for r in results if isinstance(r, Figure)]
    missed = [f for f in figures if f.met is False]
    print(
        f"\n{len(figures)} figures in {time.perf_counter() - started:.0f} s; "
        f"targets met: {sum(f.met is True for f in figures)}, missed: {len(missed)}"
    )
    for figure in missed:
        print(
            f"  MISSED {figure.area}: {figure.name} ({figure.ratio:.2f}x, {fmt(figure.value)} "
            f"{figure.unit}; target {figure.target})"
        )
    if args.json:
        payload = {
            "quick": args.quick,
            "environment": env,
            "results": [r.as_dict() for r in results],
        }
        Path(args.json).write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
