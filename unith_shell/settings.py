"""Settings: every default once, with the facts that derive from it.

Each :class:`Settings` field carries a :class:`Meta` (its environment variable, its command
line flag and that flag's help, whether the config file may set it, whether it is a secret).
The command line flags (``cli.py``), the environment variables read by
:func:`settings_from_env`, the options of a session (:func:`session_options`), the list of
variables the tests clear, and the checks on docs/configuration.md all read these, so that a
setting is added in one place. Layering (defaults < config file < environment < flags) is in
``config_file.py``.

Imported on the ``--version`` / ``--help`` path: only the standard library.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

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


class ConfigError(Exception):
    """A problem with the configuration; ``str()`` is always a single line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


@dataclass(frozen=True, slots=True)
class Meta:
    """What is known about one setting besides its type and default."""

    #: The environment variable that sets it (None: none does).
    env: str | None = None
    #: Its command line flags, e.g. ``("--timeout",)`` or ``("-m", "--message")``.
    flags: tuple[str, ...] = ()
    #: The flag's ``--help`` line.
    help: str = ""
    #: ``--help`` adds "(default: VALUE)", the value taken from the field.
    show_default: bool = False
    #: The placeholder shown in ``--help`` for the flag's value.
    metavar: str | None = None
    #: A boolean flag that turns the setting off (``--no-history``).
    negated: bool = False
    #: May be set in the config file.
    in_file: bool = True
    #: Never shown: masked in ``repr`` and ``/settings``.
    secret: bool = False


def _meta(**info: Any) -> dict[str, Meta]:
    return {"unith": Meta(**info)}


def _setting(default: Any, **info: Any) -> Any:
    """A dataclass field with its :class:`Meta` (typed ``Any`` so a field keeps its own type)."""
    return field(default=default, metadata=_meta(**info))


@dataclass(slots=True, repr=False)
class Settings:
    """Everything the shell needs to know, after all layers are merged."""

    base_url: str = _setting(
        "https://chat-origin.api.unith.live",
        env="UNITH_BASE_URL",
        flags=("--base-url",),
        metavar="URL",
        help="REST base URL (default: Unith's chat-origin host)",
    )
    org: str = _setting(
        "unith", env="UNITH_ORG", flags=("--org",), help="organisation id", show_default=True
    )
    head: str = _setting(
        "aiko", env="UNITH_HEAD", flags=("--head",), help="head id", show_default=True
    )
    api_key: str = _setting(
        "",
        env="UNITH_API_KEY",
        flags=("--api-key",),
        metavar="KEY",
        help="the organisation's public api key (prefer UNITH_API_KEY or the config file)",
        secret=True,
    )
    # The public anonymous credentials of Unith's example client.
    username: str = _setting("anonymous", env="UNITH_USERNAME")
    password: str = _setting("Password1", env="UNITH_PASSWORD", secret=True)
    text_only: bool = _setting(False, flags=("--text-only",), help="ask for text-only replies")
    data_tag: str | None = _setting(None)
    timeout: float = _setting(
        30.0,
        env="UNITH_SHELL_TIMEOUT",
        flags=("--timeout",),
        metavar="SECONDS",
        help="per-frame / per-turn timeout",
        show_default=True,
    )
    connect_timeout: float = _setting(10.0)
    rest_timeout: float = _setting(15.0)
    prompt: str = _setting(
        "{head}> ",
        flags=("--prompt",),
        help="prompt template; {head}, {org}, {alias}",
        show_default=True,
    )
    keep_alive: bool = _setting(True)
    reconnect_initial: float = _setting(0.2)
    reconnect_max: float = _setting(10.0)
    max_frame_size: int = _setting(1048576)
    # Bounds on what a server can make the client hold or wait for (see docs/configuration.md).
    max_parts: int = _setting(
        10000,
        env="UNITH_SHELL_MAX_PARTS",
        flags=("--max-parts",),
        metavar="N",
        help="most parts accepted in one reply, and the highest part_order + 1",
        show_default=True,
    )
    max_body_size: int = _setting(2097152)
    handshake_timeout: float = _setting(30.0)
    # When a reply's is_last part is in but an earlier part never came, wait this long for it.
    gap_grace: float = _setting(0.5)
    download_timeout: float = _setting(300.0)
    max_download_size: int = _setting(536870912)
    insecure: bool = _setting(
        False,
        flags=("--insecure",),
        help="do not verify TLS certificates (prints a warning)",
    )
    local: bool = _setting(
        False,
        flags=("--local",),
        help="start the built-in local Unith server and talk to it (works offline)",
    )
    json: bool = _setting(
        False, flags=("--json",), help="pipe mode: print one JSON object per event"
    )
    messages: list[str] = field(
        default_factory=list,
        metadata=_meta(
            flags=("-m", "--message"),
            metavar="TEXT",
            help="send TEXT (repeatable), print the replies and exit",
            in_file=False,
        ),
    )
    # Chosen with --profile, UNITH_SHELL_PROFILE or the file's `default_profile`: the file
    # itself does not set it as a setting.
    profile: str | None = _setting(
        None,
        env="UNITH_SHELL_PROFILE",
        flags=("--profile",),
        metavar="NAME",
        help="use [profiles.NAME] from the config file",
        in_file=False,
    )
    history: bool = _setting(
        True,
        flags=("--no-history",),
        negated=True,
        help="do not read or write the history file",
    )
    no_plugins: bool = _setting(False, flags=("--no-plugins",), help="load bundled plugins only")
    plugins: list[str] = field(
        default_factory=list,
        metadata=_meta(
            flags=("--plugin",),
            metavar="MODULE_OR_PATH",
            help="load a plugin module or .py file (repeatable)",
        ),
    )
    plugins_dirs: list[str] = field(
        default_factory=list,
        metadata=_meta(
            flags=("--plugins-dir",), metavar="DIR", help="also load every *.py in DIR (repeatable)"
        ),
    )
    strict_plugins: bool = _setting(False, env="UNITH_SHELL_STRICT_PLUGINS")
    trace_plugins: bool = _setting(False, env="UNITH_SHELL_TRACE_PLUGINS")

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


FIELD_TYPES: dict[str, Any] = typing.get_type_hints(Settings)
_FIELDS: dict[str, Field[Any]] = {f.name: f for f in fields(Settings)}

#: Environment variables that are not settings (docs/configuration.md lists them too).
OTHER_ENV_VARS = ("UNITH_SHELL_HOME", "UNITH_SHELL_PLUGINS", "NO_COLOR")


def meta(name: str) -> Meta:
    """The :class:`Meta` of setting ``name``."""
    info: Meta = _FIELDS[name].metadata["unith"]
    return info


def default_of(name: str) -> object:
    """The default value of setting ``name``."""
    f = _FIELDS[name]
    if f.default_factory is not MISSING:
        return f.default_factory()
    return f.default


def shown_default(name: str) -> str:
    """The default of ``name`` as ``--help`` writes it."""
    value = default_of(name)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and value != value.strip():
        return repr(value)
    return str(value)


def env_vars() -> dict[str, str]:
    """Environment variable -> setting name, for every setting that has one."""
    return {m.env: name for name in _FIELDS if (m := meta(name)).env is not None}


def flag_fields() -> tuple[str, ...]:
    """The settings a command line flag can set, in field order."""
    return tuple(name for name in _FIELDS if meta(name).flags)


def file_keys() -> frozenset[str]:
    """The settings a config file may set."""
    return frozenset(name for name in _FIELDS if meta(name).in_file)


def add_setting_flags(
    parser: argparse.ArgumentParser,
    names: Sequence[str] | None = None,
    help: Mapping[str, str] | None = None,
) -> None:
    """Add the flag of each setting in ``names`` (default: every setting that has one), with
    its type, placeholder and help from the metadata; ``help`` replaces a line where a command
    gives the setting its own meaning. A flag not given stays None, so only what the user
    typed reaches ``load_settings`` over the other layers."""
    for name in flag_fields() if names is None else names:
        info = meta(name)
        hint = FIELD_TYPES[name]
        text = (help or {}).get(name, info.help)
        if info.show_default and name not in (help or {}):
            text += f" (default: {shown_default(name)})"
        kwargs: dict[str, Any] = {
            "dest": name,
            "help": text.replace("%", "%%"),  # argparse %-formats help
            "default": None,
        }
        if info.metavar is not None:
            kwargs["metavar"] = info.metavar
        if hint is bool:
            kwargs["action"] = "store_false" if info.negated else "store_true"
        elif hint == list[str]:
            kwargs["action"] = "append"
        elif hint in (int, float):
            kwargs["type"] = hint
        parser.add_argument(*info.flags, **kwargs)


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
