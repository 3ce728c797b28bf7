"""The console script: ``--version`` and ``--help`` answered before ``cli`` is imported.

``--help`` from a terminal at least :data:`unith_shell.cli.HELP_WIDTH` columns wide (or not a
terminal, 80 columns as argparse assumes) is the text in :mod:`unith_shell._help`, rendered
from ``build_parser()`` at that width; ``tests/test_cli.py`` checks that they are equal, so a
changed flag fails the suite until the text is rendered again
(``python -m unith_shell._help --write``). Anything else goes to ``cli.main``.
"""

import os
import sys

#: Equal to ``cli.HELP_WIDTH`` (a test checks it); not imported from there, which is the cost
#: this module avoids.
HELP_WIDTH = 80


def _columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size`` gives it (``$COLUMNS`` first),
    without importing shutil."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
        columns = columns or 80
    return columns


def main() -> int:
    argv = sys.argv[1:]
    if len(argv) == 1:
        flag = argv[0]
        if flag == "--version":
            from unith_shell import __version__

            print(f"unith-shell {__version__}")
            return 0
        if flag in ("--help", "-h") and _columns() >= HELP_WIDTH:
            from unith_shell import _help

            if tuple(sys.version_info[:2]) == _help.PYTHON:  # argparse's layout is per version
                sys.stdout.write(_help.HELP)
                return 0
    from unith_shell.cli import main as cli_main

    return cli_main(argv)
