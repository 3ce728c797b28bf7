"""Settings: the typed dataclass the shell runs with, and what derives from it.

Each field's default and metadata (environment variable, flag, help, whether the config file
may set it, whether it is a secret) come from :data:`unith_shell.setting_table.TABLE`, written
once; the fields give the types. The environment variables read (:func:`settings_from_env`),
the session's options (:func:`session_options`), the flags (``setting_table.add_setting_flags``),
the variables the tests clear and the checks on docs/configuration.md all derive from them.
Layering (defaults < config file < environment < flags) is in ``config_file.py``.

``--help`` does not import this module (its flags come from ``setting_table.py``); it uses
only the standard library.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from unith_shell.errors import UserError
from unith_shell.setting_table import (
    OTHER_ENV_VARS,
    TABLE,
    Meta,
    add_setting_flags,
    env_vars,
    flag_fields,
    shown_default,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from unith_shell.session import SessionOptions

__all__ = [
    "FIELD_TYPES",
    "OTHER_ENV_VARS",
    "ConfigError",
    "Meta",
    "Settings",
    "add_setting_flags",
    "coerce",
    "default_of",
    "env_vars",
    "file_keys",
    "flag_fields",
    "meta",
    "session_options",
    "settings_from_env",
    "shown_default",
]

_MASK = "***"


class ConfigError(UserError):
    """A problem with the configuration; ``str()`` is always a single line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


def _from_table(name: str) -> Any:
    """The default of setting ``name`` from the table (typed ``Any`` so that the field keeps
    its annotated type)."""
    return TABLE[name].default


def _fresh_list(name: str) -> Callable[[], list[str]]:
    """A factory of copies of the list default of ``name``: each Settings gets its own."""
    default = TABLE[name].default
    assert isinstance(default, list)
    return default.copy


@dataclass(slots=True, repr=False)
class Settings:
    """Everything the shell needs to know, after all layers are merged (defaults, meaning:
    setting_table.py and docs/configuration.md)."""

    base_url: str = _from_table("base_url")
    org: str = _from_table("org")
    head: str = _from_table("head")
    api_key: str = _from_table("api_key")
    username: str = _from_table("username")
    password: str = _from_table("password")
    text_only: bool = _from_table("text_only")
    data_tag: str | None = _from_table("data_tag")
    timeout: float = _from_table("timeout")
    connect_timeout: float = _from_table("connect_timeout")
    rest_timeout: float = _from_table("rest_timeout")
    prompt: str = _from_table("prompt")
    keep_alive: bool = _from_table("keep_alive")
    reconnect_initial: float = _from_table("reconnect_initial")
    reconnect_max: float = _from_table("reconnect_max")
    max_frame_size: int = _from_table("max_frame_size")
    max_parts: int = _from_table("max_parts")
    max_body_size: int = _from_table("max_body_size")
    handshake_timeout: float = _from_table("handshake_timeout")
    gap_grace: float = _from_table("gap_grace")
    download_timeout: float = _from_table("download_timeout")
    max_download_size: int = _from_table("max_download_size")
    insecure: bool = _from_table("insecure")
    local: bool = _from_table("local")
    json: bool = _from_table("json")
    messages: list[str] = field(default_factory=_fresh_list("messages"))
    profile: str | None = _from_table("profile")
    history: bool = _from_table("history")
    no_plugins: bool = _from_table("no_plugins")
    plugins: list[str] = field(default_factory=_fresh_list("plugins"))
    plugins_dirs: list[str] = field(default_factory=_fresh_list("plugins_dirs"))
    strict_plugins: bool = _from_table("strict_plugins")
    trace_plugins: bool = _from_table("trace_plugins")

    def _safe_value(self, name: str) -> object:
        value: object = getattr(self, name)
        if meta(name).secret:
            return _MASK if value else ""
        if name == "base_url" and isinstance(value, str) and "@" in value:
            from unith_shell.urls import display_url  # a user:pass@ URL keeps its secret

            return display_url(value)
        return value

    def __repr__(self) -> str:
        parts = ", ".join(f"{f.name}={self._safe_value(f.name)!r}" for f in fields(self))
        return f"{type(self).__name__}({parts})"

    __str__ = __repr__


FIELD_TYPES: dict[str, Any] = typing.get_type_hints(Settings)


def meta(name: str) -> Meta:
    """The :class:`Meta` of setting ``name``."""
    return TABLE[name]


def default_of(name: str) -> object:
    """The default value of setting ``name`` (a fresh list for a list)."""
    default = TABLE[name].default
    return default.copy() if isinstance(default, list) else default


def file_keys() -> frozenset[str]:
    """The settings a config file may set."""
    return frozenset(name for name, info in TABLE.items() if info.in_file)


def session_options(settings: Settings) -> SessionOptions:
    """The session's options, each taken from the setting of the same name."""
    from unith_shell.session import SessionOptions

    return SessionOptions(**{f.name: getattr(settings, f.name) for f in fields(SessionOptions)})


# --------------------------------------------------------------------------- values


def type_name(value: object) -> str:
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "table",
    }.get(type(value), type(value).__name__)


def coerce(name: str, value: object) -> object:
    """Check ``value`` against the type of field ``name``; raise ValueError with the problem."""
    hint = FIELD_TYPES[name]
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
    raise ValueError(f"{name} must be {expected}, got {type_name(value)} {value!r}")


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def settings_from_env(env: Mapping[str, str]) -> dict[str, object]:
    """The settings ``env`` sets, checked. ``profile`` is left out: it is chosen before the
    config file is read (see ``config_file.load_settings``)."""
    values: dict[str, object] = {}
    for var, name in env_vars().items():
        raw = env.get(var, "")
        if not raw or name == "profile":
            continue
        hint = FIELD_TYPES[name]
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
            values[name] = coerce(name, parsed)
        except ValueError as exc:
            raise ConfigError(f"{var}: {exc}") from None
    return values
