"""The config file (TOML, with profiles) and the layering of every source of settings.

Settings are resolved as defaults < config file (< chosen profile) < environment < flags.
Top-level keys of ``config.toml`` (in the config folder) set the :class:`Settings` fields
(snake_case or kebab-case names); ``[profiles.NAME]`` tables hold the same keys and apply on
top of the top-level ones when that profile is chosen with ``--profile NAME``,
``UNITH_SHELL_PROFILE=NAME`` or a top-level ``default_profile = "NAME"``.

Imported on the ``--help`` path: only the standard library and ``platformdirs``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unith_shell.files import paths, trust_problem
from unith_shell.settings import (
    FIELD_TYPES,
    ConfigError,
    Settings,
    coerce,
    file_keys,
    meta,
    settings_from_env,
    type_name,
)

__all__ = ["LoadResult", "load_settings"]

_FILE_KEYS = file_keys()
_PROFILE_VAR = meta("profile").env or ""


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
                values[name] = coerce(name, value)
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
                    f"profiles.{name} must be a table, got {type_name(table)}", "profiles"
                )
        return profiles

    def default_profile(self) -> str | None:
        value = self.data.get("default_profile")
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(
                f"default_profile must be a string, got {type_name(value)}", "default_profile"
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
    flags = meta(name).flags
    return flags[-1] if flags else "--" + name.replace("_", "-")


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
    unknown = sorted(set(given) - set(FIELD_TYPES))
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
    elif env.get(_PROFILE_VAR):
        profile, profile_source = env[_PROFILE_VAR], _PROFILE_VAR

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

    values.update(settings_from_env(env))

    for name, value in given.items():
        if name == "profile":
            continue
        try:
            values[name] = coerce(name, value)
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
