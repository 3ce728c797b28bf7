"""Settings for unith-shell, resolved as defaults < config file < environment < flags.

This module is imported on the ``--version`` / ``--help`` path, so it uses only the standard
library and ``platformdirs``.

The config file is TOML (``config.toml`` in the config folder). Top-level keys set the
:class:`Settings` fields (snake_case or kebab-case names); ``[profiles.NAME]`` tables hold the
same keys and apply on top of the top-level ones when that profile is chosen with
``--profile NAME``, ``UNITH_SHELL_PROFILE=NAME`` or a top-level ``default_profile = "NAME"``.
"""

from __future__ import annotations

import errno
import math
import os
import re
import stat
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TextIO

import platformdirs

from unith_shell.errors import UserError

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

APP_NAME = "unith-shell"

_MASK = "***"


class ConfigError(UserError):
    """A problem with the configuration; ``str()`` is always a single line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


@dataclass(slots=True, repr=False)
class Settings:
    """Everything the shell needs to know, after all layers are merged."""

    base_url: str = "https://chat-origin.api.unith.live"
    org: str = "unith"
    head: str = "aiko"
    api_key: str = ""
    # The public anonymous credentials of Unith's example client.
    username: str = "anonymous"
    password: str = "Password1"
    text_only: bool = False
    data_tag: str | None = None
    timeout: float = 30.0
    connect_timeout: float = 10.0
    rest_timeout: float = 15.0
    prompt: str = "{head}> "
    keep_alive: bool = True
    reconnect_initial: float = 0.2
    reconnect_max: float = 10.0
    max_frame_size: int = 1048576
    # Bounds on what a server can make the client hold or wait for (see docs/configuration.md).
    max_parts: int = 10000
    max_body_size: int = 2097152
    handshake_timeout: float = 30.0
    download_timeout: float = 300.0
    max_download_size: int = 536870912
    insecure: bool = False
    local: bool = False
    json: bool = False
    messages: list[str] = field(default_factory=list)
    profile: str | None = None
    history: bool = True
    no_plugins: bool = False
    plugins: list[str] = field(default_factory=list)
    plugins_dirs: list[str] = field(default_factory=list)
    strict_plugins: bool = False
    trace_plugins: bool = False

    def _safe_value(self, name: str) -> object:
        value: object = getattr(self, name)
        if name in _SECRET_FIELDS:
            return _MASK if value else ""
        if name == "base_url" and isinstance(value, str) and "@" in value:
            from unith_shell.urls import display_url  # a user:pass@ URL keeps its secret

            return display_url(value)
        return value

    def __repr__(self) -> str:
        parts = ", ".join(f"{f.name}={self._safe_value(f.name)!r}" for f in fields(self))
        return f"{type(self).__name__}({parts})"

    __str__ = __repr__

    def display_items(self) -> list[tuple[str, object]]:
        """(name, value) pairs safe to show: the api key as "set"/"not set", the password masked."""
        items: list[tuple[str, object]] = []
        for f in fields(self):
            if f.name == "api_key":
                items.append((f.name, "set" if self.api_key else "not set"))
            elif f.name == "password":
                items.append((f.name, _MASK if self.password else "not set"))
            elif f.name == "base_url":
                from unith_shell.urls import display_url  # a user:pass@ URL keeps its secret

                items.append((f.name, display_url(self.base_url)))
            else:
                items.append((f.name, getattr(self, f.name)))
        return items


_SECRET_FIELDS = frozenset({"api_key", "password"})
_FIELD_TYPES: dict[str, Any] = typing.get_type_hints(Settings)
# Fields that make no sense in a config file: `profile` is chosen with `default_profile`,
# `messages` are the one-shot messages given on the command line.
_NOT_IN_FILE = frozenset({"profile", "messages"})
_FILE_KEYS = frozenset(_FIELD_TYPES) - _NOT_IN_FILE


# --------------------------------------------------------------------------- paths


@dataclass(frozen=True, slots=True)
class Paths:
    """Where unith-shell keeps its files."""

    config_dir: Path
    data_dir: Path
    state_dir: Path
    cache_dir: Path

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
            cache_dir=root / "cache",
        )
    return Paths(
        config_dir=Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
        data_dir=Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
        state_dir=Path(platformdirs.user_state_dir(APP_NAME, appauthor=False)),
        cache_dir=Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)),
    )


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


# --------------------------------------------------------------------------- values


def _type_name(value: object) -> str:
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "table",
    }.get(type(value), type(value).__name__)


def _coerce(name: str, value: object) -> object:
    """Check ``value`` against the type of field ``name``; raise ValueError with the problem."""
    hint = _FIELD_TYPES[name]
    if hint is bool:
        if isinstance(value, bool):
            return value
        expected = "true or false"
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
            return value
        expected = "an integer"
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
            if not math.isfinite(number) or number <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
            return number
        expected = "a number"
    elif hint is str or hint == str | None:
        if isinstance(value, str) or (value is None and hint is not str):
            return value
        expected = "a string"
    elif hint == list[str]:
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return list(value)
        expected = "an array of strings"
    else:  # pragma: no cover - guarded by the tests over every field
        raise AssertionError(f"unhandled type {hint!r} for {name}")
    raise ValueError(f"{name} must be {expected}, got {_type_name(value)} {value!r}")


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

_ENV_VARS: dict[str, str] = {
    "UNITH_BASE_URL": "base_url",
    "UNITH_ORG": "org",
    "UNITH_HEAD": "head",
    "UNITH_API_KEY": "api_key",
    "UNITH_USERNAME": "username",
    "UNITH_PASSWORD": "password",
    "UNITH_SHELL_STRICT_PLUGINS": "strict_plugins",
    "UNITH_SHELL_TRACE_PLUGINS": "trace_plugins",
    "UNITH_SHELL_TIMEOUT": "timeout",
    "UNITH_SHELL_MAX_PARTS": "max_parts",
}


def _from_env(env: Mapping[str, str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for var, name in _ENV_VARS.items():
        raw = env.get(var, "")
        if not raw:
            continue
        hint = _FIELD_TYPES[name]
        parsed: object = raw
        if hint is bool:
            word = raw.strip().lower()
            if word not in _TRUE and word not in _FALSE:
                raise ConfigError(f"{var}: expected 1 or 0 (true/false), got {raw!r}")
            parsed = word in _TRUE
        elif hint is float:
            try:
                parsed = float(raw)
            except ValueError:
                raise ConfigError(f"{var}: expected a number of seconds, got {raw!r}") from None
        elif hint is int:
            word = raw.strip()
            if not word.isdigit() or len(word) > 18:
                raise ConfigError(f"{var}: expected a positive integer, got {raw!r}")
            parsed = int(word)
        try:
            values[name] = _coerce(name, parsed)
        except ValueError as exc:
            raise ConfigError(f"{var}: {exc}") from None
    return values


# --------------------------------------------------------------------------- config file


@dataclass(slots=True)
class LoadResult:
    """What :func:`load_settings` found."""

    settings: Settings
    warnings: list[str] = field(default_factory=list)
    config_file: Path | None = None
    profiles: list[str] = field(default_factory=list)


_TOML_POS = re.compile(r"\s*\(at line (\d+), column \d+\)\s*$")
_TOML_LINE = re.compile(r"\s*\(at line (\d+)")


def _key_pattern(key: str) -> str:
    k = re.escape(key)
    return rf"""(?:{k}|"{k}"|'{k}')"""


def _line_of(text: str, key: str, profile: str | None = None) -> int | None:
    """The 1-based line where ``key`` is assigned (inside ``[profiles.<profile>]`` if given)."""
    lines = text.splitlines()
    start, stop = 0, len(lines)
    header = re.compile(r"^\s*\[")
    if profile is None:
        # Top-level keys come before the first table header.
        for i, line in enumerate(lines):
            if header.match(line):
                stop = i
                break
    else:
        table = re.compile(rf"^\s*\[\s*profiles\s*\.\s*{_key_pattern(profile)}\s*\]")
        for i, line in enumerate(lines):
            if table.match(line):
                start = i + 1
                break
        else:
            # Maybe written as dotted keys, e.g. `profiles.work.head = "x"`.
            dotted = re.compile(
                rf"^\s*profiles\s*\.\s*{_key_pattern(profile)}\s*\.\s*{_key_pattern(key)}\s*="
            )
            for i, line in enumerate(lines):
                if dotted.match(line):
                    return i + 1
            return None
        for i in range(start, len(lines)):
            if header.match(lines[i]):
                stop = i
                break
    assign = re.compile(rf"^\s*{_key_pattern(key)}\s*=")
    for i in range(start, stop):
        if assign.match(lines[i]):
            return i + 1
    return None


class _ConfigFile:
    """A parsed config file, with error messages that point at the offending line."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text
        import tomllib  # only when there is a file to read

        try:
            self.data: dict[str, Any] = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            message = str(exc).splitlines()[0] if str(exc) else "invalid TOML"
            match = _TOML_LINE.search(message)
            problem = _TOML_POS.sub("", message).strip()
            if match:
                raise ConfigError(f"{path}:{match.group(1)}: {problem}") from None
            raise ConfigError(f"{path}: {problem}") from None

    def error(
        self, problem: str, key: str | None = None, profile: str | None = None
    ) -> ConfigError:
        line = _line_of(self.text, key, profile) if key is not None else None
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        return ConfigError(f"{where}: {problem}")

    def table_values(self, table: Mapping[str, Any], profile: str | None) -> dict[str, object]:
        """Validate one table of settings (top level or a profile) into field values."""
        where = f" in [profiles.{profile}]" if profile is not None else ""
        values: dict[str, object] = {}
        seen: dict[str, str] = {}
        for key, value in table.items():
            if profile is None and key in ("profiles", "default_profile"):
                continue
            name = key.replace("-", "_")
            if name not in _FILE_KEYS:
                raise self.error(f"unknown key {key!r}{where}{_suggest(key)}", key, profile)
            if name in seen:
                raise self.error(
                    f"{key!r} and {seen[name]!r} set the same setting{where}", key, profile
                )
            seen[name] = key
            try:
                values[name] = _coerce(name, value)
            except ValueError as exc:
                raise self.error(f"{exc}{where}", key, profile) from None
        return values

    def profile_tables(self) -> dict[str, Mapping[str, Any]]:
        profiles = self.data.get("profiles", {})
        if not isinstance(profiles, dict):
            raise self.error("'profiles' must be a table of [profiles.NAME] tables", "profiles")
        for name, table in profiles.items():
            if not isinstance(table, dict):
                raise self.error(
                    f"profiles.{name} must be a table, got {_type_name(table)}", "profiles"
                )
        return profiles

    def default_profile(self) -> str | None:
        value = self.data.get("default_profile")
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(
                f"default_profile must be a string, got {_type_name(value)}", "default_profile"
            )
        return value or None

    def holds_secret(self, profiles: Mapping[str, Mapping[str, Any]]) -> tuple[bool, bool]:
        """(holds an api key, holds a password) anywhere in the file."""
        tables: list[Mapping[str, Any]] = [self.data, *profiles.values()]
        keys = [t.get("api_key") or t.get("api-key") for t in tables]
        passwords = [t.get("password") for t in tables]
        return any(keys), any(passwords)


def _suggest(key: str) -> str:
    import difflib  # only on the error path

    candidates = sorted({*_FILE_KEYS, "profiles", "default_profile"})
    close = difflib.get_close_matches(key.replace("-", "_"), candidates, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _read_config(path: Path) -> tuple[_ConfigFile, os.stat_result] | None:
    try:
        with path.open("rb") as fh:
            st = os.fstat(fh.fileno())
            raw = fh.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    # Settings choose where the shell connects and which plugins it loads: like OpenSSH, read
    # them only from a file (and folder) that nobody but the user (or root) can change.
    try:
        problem = trust_problem(path, st) or trust_problem(path.parent)
    except OSError as exc:
        raise ConfigError(f"{path.parent}: cannot check: {exc.strerror or exc}") from None
    if problem:
        raise ConfigError(f"config file refused: {problem}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not valid UTF-8") from None
    return _ConfigFile(path, text), st


def _secret_warning(path: Path, st: os.stat_result, api_key: bool, password: bool) -> str | None:
    if os.name == "nt" or not (api_key or password) or not (st.st_mode & 0o077):
        return None
    what = "an api key" if api_key else "a password"
    return f"{path} holds {what} and is readable by other users; run: chmod 600 {path}"


# --------------------------------------------------------------------------- loading


def _flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> LoadResult:
    """Resolve the settings: defaults < config file (< chosen profile) < environment < flags.

    ``flags`` holds only what the user gave, keyed by :class:`Settings` field name; None values
    are ignored. ``env`` defaults to ``os.environ``; ``config_file`` to ``paths(env).config_file``.
    Raises :class:`ConfigError` for anything wrong, with a one-line message.
    """
    env = os.environ if env is None else env
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    unknown = sorted(set(given) - set(_FIELD_TYPES))
    if unknown:
        raise ValueError(f"load_settings: unknown flag keys {unknown}")

    path = paths(env).config_file if config_file is None else Path(config_file)
    warnings: list[str] = []
    values: dict[str, object] = {}
    profile_names: list[str] = []

    # The profile: flag, then environment, then the file's default_profile.
    profile: str | None = None
    profile_source = ""
    if given.get("profile"):
        profile, profile_source = str(given["profile"]), "--profile"
    elif env.get("UNITH_SHELL_PROFILE"):
        profile, profile_source = env["UNITH_SHELL_PROFILE"], "UNITH_SHELL_PROFILE"

    loaded = _read_config(path)
    read_path: Path | None = None
    if loaded is not None:
        cfg, st = loaded
        read_path = path
        tables = cfg.profile_tables()
        profile_names = list(tables)
        values.update(cfg.table_values(cfg.data, None))
        # Check every profile, not only the chosen one, so mistakes show up early.
        profile_values = {name: cfg.table_values(t, name) for name, t in tables.items()}
        if profile is None:
            profile = cfg.default_profile()
            if profile is not None and profile not in tables:
                raise cfg.error(
                    f"default_profile {profile!r} is not a profile in this file"
                    f"{_known(profile_names)}",
                    "default_profile",
                )
        if profile is not None:
            if profile not in tables:
                raise ConfigError(
                    f"unknown profile {profile!r} (from {profile_source}): "
                    f"not in {path}{_known(profile_names)}"
                )
            values.update(profile_values[profile])
        warning = _secret_warning(path, st, *cfg.holds_secret(tables))
        if warning:
            warnings.append(warning)
    elif profile is not None:
        raise ConfigError(
            f"unknown profile {profile!r} (from {profile_source}): "
            f"there is no config file at {path}"
        )

    values.update(_from_env(env))

    for name, value in given.items():
        if name == "profile":
            continue
        try:
            values[name] = _coerce(name, value)
        except ValueError as exc:
            raise ConfigError(f"{_flag_name(name)}: {exc}") from None

    values["profile"] = profile
    settings = Settings()
    for name, value in values.items():
        setattr(settings, name, value)
    return LoadResult(
        settings=settings, warnings=warnings, config_file=read_path, profiles=profile_names
    )


def _known(names: list[str]) -> str:
    return f" (profiles: {', '.join(names)})" if names else " (it defines no profiles)"
