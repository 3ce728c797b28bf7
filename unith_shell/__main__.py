import os
import sys


def _drop_cwd_from_path() -> None:
    """``python -m unith_shell`` puts the current directory first on ``sys.path``: a
    ``--plugin NAME`` (or any later import) could then run ./NAME.py planted there."""
    if sys.flags.safe_path or not sys.path:
        return
    try:
        cwd = os.getcwd()
    except OSError:  # the current directory was removed
        cwd = ""
    if sys.path[0] in ("", cwd):
        del sys.path[0]


_drop_cwd_from_path()  # before anything else is imported

from unith_shell._entry import main  # noqa: E402

raise SystemExit(main())
