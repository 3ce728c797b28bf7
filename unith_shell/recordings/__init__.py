"""Recordings: the ``/log`` transcript read back as a conversation, replayed, diffed and served.

- :mod:`.format`: the versioned file format (header line, frame lines), loading into turns.
- :mod:`.diff`: turn-by-turn comparison of two recordings (``unith-shell diff``).
- :mod:`.replay`: re-sending a recording's user turns to a head (``unith-shell replay``).
- :mod:`.scenario`: a recording as a scenario for ``unith-shell test``.
- :mod:`.cli`: the argument parsers of ``replay`` and ``diff``.

The local server's ``recorded/<name>`` heads live in :mod:`unith_shell.server.recorded`.
This package's own module holds only what ``--help`` needs (kept cheap to import).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: How a served recording matches an incoming message to a recorded turn (server/recorded.py).
#: Here, not in a submodule, so that ``--help`` can list them without importing anything.
MATCH_MODES = ("order", "text", "similar")


def _factor(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"not a speed factor (0 or more): {text!r}")
    return value


def add_served_options(parser: Any) -> None:
    """``--recordings DIR`` and how those recordings answer (serve, --local, replay)."""
    add = parser.add_argument
    add(
        "--recordings",
        metavar="DIR",
        help="serve each recording in DIR as the head recorded/<name>",
    )
    add(
        "--speed",
        type=_factor,
        default=None,
        metavar="FACTOR",
        help="recorded heads: recorded delays times FACTOR (1; 0 = no delays)",
    )
    add(
        "--match",
        choices=MATCH_MODES,
        default=None,
        help="recorded heads: match a message to a recorded turn by order, text or similar (order)",
    )
