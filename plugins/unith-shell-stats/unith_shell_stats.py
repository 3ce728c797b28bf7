"""unith-shell-stats: reply latency statistics, shown by ``/stats``.

An observing plugin: it changes nothing, it only listens to ``turn_complete``,
``on_connect`` and ``on_disconnect``, and keeps numbers in memory for this run.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from unith_shell import CommandError, hookimpl

__version__ = "0.1.0"

GREETING_ID = -1  # the greeting is a turn too; it answers no message of ours


@dataclass
class Stats:
    first: list[float] = field(default_factory=list)  # seconds to the first reply part
    total: list[float] = field(default_factory=list)  # seconds to the whole reply
    answered: int = 0
    failed: dict[str, int] = field(default_factory=dict)  # outcome -> count
    connects: int = 0
    disconnects: int = 0
    last_disconnect: str = ""

    def add(self, turn: Any) -> None:
        if turn.outcome in ("last", "choice"):
            self.answered += 1
            if turn.first_latency is not None:
                self.first.append(turn.first_latency)
            if turn.total_latency is not None:
                self.total.append(turn.total_latency)
        else:
            self.failed[turn.outcome] = self.failed.get(turn.outcome, 0) + 1

    def report(self) -> list[str]:
        failed = sum(self.failed.values())
        lines = [f"turns: {self.answered + failed} ({self.answered} answered, {failed} failed)"]
        if self.failed:
            lines.append("  failed: " + ", ".join(f"{k} {v}" for k, v in self.failed.items()))
        lines.append(f"  first part:  {summarize(self.first)}")
        lines.append(f"  whole reply: {summarize(self.total)}")
        lines.append(f"connects: {self.connects}, disconnects: {self.disconnects}")
        if self.last_disconnect:
            lines.append(f"  last disconnect: {self.last_disconnect}")
        return lines


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, round(pct / 100 * len(ordered) + 0.4999))
    return ordered[min(rank, len(ordered)) - 1]


def summarize(values: list[float]) -> str:
    if not values:
        return "-"
    ms = [v * 1000 for v in values]
    return (
        f"min {min(ms):.1f} ms, median {statistics.median(ms):.1f} ms, "
        f"p95 {percentile(ms, 95):.1f} ms, max {max(ms):.1f} ms (n={len(ms)})"
    )


STATS = Stats()


@hookimpl
def shell_start() -> None:
    """A new shell starts with fresh numbers."""
    global STATS
    STATS = Stats()


@hookimpl
def turn_complete(turn: Any) -> None:
    if turn.message_id != GREETING_ID:
        STATS.add(turn)


@hookimpl
def on_connect() -> None:
    STATS.connects += 1


@hookimpl
def on_disconnect(reason: str) -> None:
    STATS.disconnects += 1
    STATS.last_disconnect = reason


def stats_command(ctx: Any, arg: str) -> None:
    global STATS
    if arg.strip() == "reset":
        STATS = Stats()
        ctx.print("statistics reset")
    elif not arg.strip():
        for line in STATS.report():
            ctx.print(line)
    else:
        raise CommandError("usage: /stats [reset]")


@hookimpl
def register_commands(register: Any) -> None:
    register(
        "stats",
        stats_command,
        help="Reply latency statistics (first part, whole reply); /stats reset",
        usage="[reset]",
        complete=["reset"],
    )
