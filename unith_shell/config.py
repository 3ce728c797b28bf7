"""Re-exports, so that ``from unith_shell.config import ...`` keeps working.

The code lives in :mod:`unith_shell.settings` (Settings, their metadata, the environment),
:mod:`unith_shell.config_file` (the TOML file, profiles, :func:`load_settings`) and
:mod:`unith_shell.files` (Paths; private folders and files). New code imports from those.
"""

from __future__ import annotations

from unith_shell.config_file import LoadResult, load_settings
from unith_shell.files import (
    APP_NAME,
    Paths,
    ensure_private_dir,
    open_private,
    paths,
    trust_problem,
)
from unith_shell.settings import ConfigError, Settings

__all__ = [
    "APP_NAME",
    "ConfigError",
    "LoadResult",
    "Paths",
    "Settings",
    "ensure_private_dir",
    "load_settings",
    "open_private",
    "paths",
    "trust_problem",
]
