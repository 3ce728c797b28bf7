"""Recordings: the ``/log`` transcript read back as a conversation, replayed, diffed and served.

- :mod:`.format`: the versioned file format (header line, frame lines), loading into turns.
- :mod:`.diff`: turn-by-turn comparison of two recordings (``unith-shell diff``).
- :mod:`.replay`: re-sending a recording's user turns to a head (``unith-shell replay``).
- :mod:`.scenario`: a recording as a scenario for ``unith-shell test``.
- :mod:`.cli`: the argument parsers of ``replay`` and ``diff``.

The local server's ``recorded/<name>`` heads live in :mod:`unith_shell.server.recorded`.
"""

#: How a served recording matches an incoming message to a recorded turn (server/recorded.py).
#: Here, not in a submodule, so that ``--help`` can list them without importing anything.
MATCH_MODES = ("order", "text", "similar")
