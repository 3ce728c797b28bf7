"""Conversation scenarios: YAML (or JSON) scripts of steps and assertions, run against a head.

``unith-shell test PATH...`` runs them (:mod:`.cli`); ``pytest -p unith_shell.pytest_plugin``
collects them as pytest items. Modules, one job each:

- :mod:`.model`: the parsed scenario (steps, expectations, captures) as dataclasses;
- :mod:`.loader`: files -> scenarios, with ``file:line: problem; did you mean ...?`` errors;
- :mod:`.assertions`: the assertion registry, :class:`Reply` and :class:`Outcome`;
- :mod:`.builtin`: the bundled plugin registering the built-in assertions;
- :mod:`.steps`: what each step kind does;
- :mod:`.runner`: one fresh shell and session per scenario run, the matrix, jobs, repeats;
- :mod:`.report`: human, JSON Lines, JUnit XML and TAP output.
"""

from __future__ import annotations

from unith_shell.scenario.assertions import Outcome, Reply

__all__ = ["Outcome", "Reply"]
