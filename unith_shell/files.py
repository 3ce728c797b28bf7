"""Where unith-shell keeps its files, and how it creates them: private folders (0700) and
private files (0600) whatever the umask, never through a symbolic link, and the OpenSSH-style
check of whether a file or folder may be trusted.

Imported on the ``--help`` path: only the standard library and ``platformdirs``.
"""

from __future__ import annotations

import errno
import os
import stat
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import platformdirs

__all__ = ["APP_NAME", "Paths", "ensure_private_dir", "open_private", "paths", "trust_problem"]

APP_NAME = "unith-shell"


@dataclass(frozen=True, slots=True)
class Paths:
    """Where unith-shell keeps its files."""

    config_dir: Path
    data_dir: Path
    state_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def history_file(self) -> Path:
        return self.state_dir / "history"

    @property
    def plugins_dir(self) -> Path:
        return self.config_dir / "plugins"

    @property
    def transcripts_dir(self) -> Path:
        return self.data_dir / "transcripts"


def paths(env: Mapping[str, str] | None = None) -> Paths:
    """The folders to use: all under ``$UNITH_SHELL_HOME`` if set, else the platform's."""
    env = os.environ if env is None else env
    home = env.get("UNITH_SHELL_HOME", "")
    if home:
        root = Path(home).expanduser()
        return Paths(
            config_dir=root / "config",
            data_dir=root / "data",
            state_dir=root / "state",
        )
    return Paths(
        config_dir=Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
        data_dir=Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
        state_dir=Path(platformdirs.user_state_dir(APP_NAME, appauthor=False)),
    )


def name_part(text: str) -> str:
    """``text`` as one safe part of a file name (or a head name made from one): letters,
    digits, ``-``, ``_`` and ``.`` kept, anything else ``_``; never empty."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text) or "_"


def _is_ours(st: os.stat_result) -> bool:
    getuid = getattr(os, "getuid", None)
    return getuid is None or st.st_uid == getuid()


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def ensure_private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` and every missing parent, each with mode 0700 whatever the umask.

    ``os.makedirs(mode=...)`` is masked by the umask, so each level is made here and then set
    to 0700 with ``fchmod``; folders that already existed are left as they are (not ours to
    change). Raises ``NotADirectoryError`` if ``path`` exists and is not a folder.
    """
    p = Path(path)
    missing: list[Path] = []
    level = p
    while not os.path.lexists(level) and level.parent != level:
        missing.append(level)
        level = level.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            continue  # made by someone else meanwhile: leave its mode alone
        if os.name != "nt":
            fd = os.open(folder, os.O_RDONLY | _DIRECTORY | _NOFOLLOW)
            try:
                os.fchmod(fd, 0o700)
            finally:
                os.close(fd)
    if not p.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(p))
    return p


_OPEN_FLAGS = {
    "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    "a+": os.O_RDWR | os.O_CREAT | os.O_APPEND,
    "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "w+": os.O_RDWR | os.O_CREAT | os.O_TRUNC,
    "x": os.O_WRONLY | os.O_CREAT | os.O_EXCL,
}


def open_private(
    path: str | os.PathLike[str],
    mode: str = "a",
    *,
    encoding: str = "utf-8",
    tighten_existing: bool = True,
) -> TextIO:
    """Open (creating if needed) a text file readable and writable only by its owner (0600).

    ``mode`` is one of ``a``, ``a+``, ``w``, ``w+``, ``x``. A missing parent folder is created
    with :func:`ensure_private_dir`. A symbolic link is never followed and anything but a
    regular file is refused (``OSError`` with a readable ``strerror``). A file created here is
    set to 0600 whatever the umask; an existing one of ours is tightened to 0600 only if
    ``tighten_existing`` (the shell's own files), never for a path the user named.
    """
    try:
        flags = _OPEN_FLAGS[mode]
    except KeyError:
        raise ValueError(f"open_private: unsupported mode {mode!r}") from None
    p = Path(path)
    if not p.parent.exists():
        ensure_private_dir(p.parent)
    # O_NONBLOCK: opening a FIFO for writing must not hang (it is refused just below).
    flags |= getattr(os, "O_CLOEXEC", 0) | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0)
    _refuse_special(p)
    created = True
    try:
        try:
            fd = os.open(p, flags | os.O_EXCL, 0o600)
        except FileExistsError:
            if mode == "x":
                raise
            created = False
            fd = os.open(p, flags & ~os.O_CREAT)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "is a symbolic link (not followed)", str(p)) from None
        raise
    try:
        if os.name != "nt":
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(errno.EINVAL, "not a regular file", str(p))
            if stat.S_IMODE(st.st_mode) != 0o600 and (created or tighten_existing) and _is_ours(st):
                os.fchmod(fd, 0o600)
            if hasattr(os, "set_blocking"):
                os.set_blocking(fd, True)
        return typing.cast(TextIO, os.fdopen(fd, mode, encoding=encoding))
    except BaseException:
        os.close(fd)
        raise


def _refuse_special(path: Path) -> None:
    """A clear error for a symbolic link or a non-file where a file is to be written."""
    try:
        st = os.lstat(path)
    except OSError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise OSError(errno.ELOOP, "is a symbolic link (not followed)", str(path))
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, "not a regular file", str(path))


def trust_problem(path: str | os.PathLike[str], st: os.stat_result | None = None) -> str | None:
    """Why code or settings in ``path`` must not be trusted, as OpenSSH's StrictModes sees it.

    Trusted: owned by the current user or root, and not writable by group or others. Returns
    one line naming the path and the fix, or None when ``path`` is fine (always on Windows).
    """
    if os.name == "nt":
        return None
    if st is None:
        st = os.stat(path)
    owner = st.st_uid
    if owner not in (os.getuid(), 0):
        return (
            f"{path} belongs to another user (uid {owner}); "
            "copy it to a folder of your own or have its owner remove it"
        )
    writable = st.st_mode & 0o022
    if writable:
        who = {0o020: "its group", 0o002: "other users"}.get(writable, "its group and others")
        return f"{path} is writable by {who}; run: chmod go-w {path}"
    return None
