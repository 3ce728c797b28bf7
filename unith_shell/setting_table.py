"""The table of settings: each one's default, environment variable, flag and help, once.

:class:`unith_shell.settings.Settings` (the typed dataclass) takes its defaults and metadata
from :data:`TABLE`; the command line flags (:func:`add_setting_flags`), the environment
variables read, the variables the tests clear and the checks on docs/configuration.md derive
from it too. It lives apart from the dataclass because ``--help`` needs it and importing
``dataclasses`` (and through it ``inspect``) costs more than the rest of ``--help``: this module
imports nothing at run time.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping, Sequence

__all__ = [
    "OTHER_ENV_VARS",
    "TABLE",
    "Meta",
    "add_setting_flags",
    "env_vars",
    "flag_fields",
    "kind_of",
    "shown_default",
]


class Meta:
    """One setting's default and everything known about it besides its type.

    The type is the :class:`Settings` field's annotation; the kind the flags need (bool, int,
    float, str or a list of str) is read from the default (:func:`kind_of`), and a test checks
    the two agree.
    """

    __slots__ = (
        "default",
        "env",
        "flags",
        "help",
        "in_file",
        "metavar",
        "negated",
        "secret",
        "show_default",
    )

    def __init__(
        self,
        default: bool | int | float | str | list[str] | None,
        *,
        env: str | None = None,
        flags: tuple[str, ...] = (),
        help: str = "",
        show_default: bool = False,
        metavar: str | None = None,
        negated: bool = False,
        in_file: bool = True,
        secret: bool = False,
    ) -> None:
        #: The default; a list is copied for each Settings.
        self.default = default
        #: The environment variable that sets it (None: none does).
        self.env = env
        #: Its command line flags, e.g. ``("--timeout",)`` or ``("-m", "--message")``.
        self.flags = flags
        #: The flag's ``--help`` line.
        self.help = help
        #: ``--help`` adds "(default: VALUE)".
        self.show_default = show_default
        #: The placeholder shown in ``--help`` for the flag's value.
        self.metavar = metavar
        #: A boolean flag that turns the setting off (``--no-history``).
        self.negated = negated
        #: May be set in the config file.
        self.in_file = in_file
        #: Never shown: masked in ``repr`` and ``/settings``.
        self.secret = secret


#: Every setting, in the order of the Settings fields.
TABLE: dict[str, Meta] = {
    "base_url": Meta(
        "https://chat-origin.api.unith.live",
        env="UNITH_BASE_URL",
        flags=("--base-url",),
        metavar="URL",
        help="REST base URL (default: Unith's chat-origin host)",
    ),
    "org": Meta(
        "unith", env="UNITH_ORG", flags=("--org",), help="organisation id", show_default=True
    ),
    "head": Meta("aiko", env="UNITH_HEAD", flags=("--head",), help="head id", show_default=True),
    "api_key": Meta(
        "",
        env="UNITH_API_KEY",
        flags=("--api-key",),
        metavar="KEY",
        help="the organisation's public api key (prefer UNITH_API_KEY or the config file)",
        secret=True,
    ),
    # The public anonymous credentials of Unith's example client.
    "username": Meta("anonymous", env="UNITH_USERNAME"),
    "password": Meta("Password1", env="UNITH_PASSWORD", secret=True),
    "text_only": Meta(False, flags=("--text-only",), help="ask for text-only replies"),
    "data_tag": Meta(None),
    "timeout": Meta(
        30.0,
        env="UNITH_SHELL_TIMEOUT",
        flags=("--timeout",),
        metavar="SECONDS",
        help="per-frame / per-turn timeout",
        show_default=True,
    ),
    "connect_timeout": Meta(10.0),
    "rest_timeout": Meta(15.0),
    "prompt": Meta(
        "{head}> ",
        flags=("--prompt",),
        help="prompt template; {head}, {org}, {alias}",
        show_default=True,
    ),
    "keep_alive": Meta(True),
    "reconnect_initial": Meta(0.2),
    "reconnect_max": Meta(10.0),
    "max_frame_size": Meta(1048576),
    # Bounds on what a server can make the client hold or wait for (docs/configuration.md).
    "max_parts": Meta(
        10000,
        env="UNITH_SHELL_MAX_PARTS",
        flags=("--max-parts",),
        metavar="N",
        help="most parts accepted in one reply, and the highest part_order + 1",
        show_default=True,
    ),
    "max_body_size": Meta(2097152),
    "handshake_timeout": Meta(30.0),
    # When a reply's is_last part is in but an earlier part never came, wait this long for it.
    "gap_grace": Meta(0.5),
    "download_timeout": Meta(300.0),
    "max_download_size": Meta(536870912),
    "insecure": Meta(
        False, flags=("--insecure",), help="do not verify TLS certificates (prints a warning)"
    ),
    "local": Meta(
        False,
        flags=("--local",),
        help="start the built-in local Unith server and talk to it (works offline)",
    ),
    "json": Meta(False, flags=("--json",), help="pipe mode: print one JSON object per event"),
    "messages": Meta(
        [],
        flags=("-m", "--message"),
        metavar="TEXT",
        help="send TEXT (repeatable), print the replies and exit",
        in_file=False,
    ),
    # Chosen with --profile, UNITH_SHELL_PROFILE or the file's `default_profile`: the file
    # does not set it as a setting.
    "profile": Meta(
        None,
        env="UNITH_SHELL_PROFILE",
        flags=("--profile",),
        metavar="NAME",
        help="use [profiles.NAME] from the config file",
        in_file=False,
    ),
    "history": Meta(
        True, flags=("--no-history",), negated=True, help="do not read or write the history file"
    ),
    "no_plugins": Meta(False, flags=("--no-plugins",), help="load bundled plugins only"),
    "plugins": Meta(
        [],
        flags=("--plugin",),
        metavar="MODULE_OR_PATH",
        help="load a plugin module or .py file (repeatable)",
    ),
    "plugins_dirs": Meta(
        [], flags=("--plugins-dir",), metavar="DIR", help="also load every *.py in DIR (repeatable)"
    ),
    "strict_plugins": Meta(False, env="UNITH_SHELL_STRICT_PLUGINS"),
    "trace_plugins": Meta(False, env="UNITH_SHELL_TRACE_PLUGINS"),
}

#: Environment variables that are not settings (docs/configuration.md lists them too).
OTHER_ENV_VARS = ("UNITH_SHELL_HOME", "UNITH_SHELL_PLUGINS", "NO_COLOR")


def kind_of(name: str) -> type:
    """bool, int, float, str or list, read from the default (None is an optional str)."""
    default = TABLE[name].default
    return str if default is None else type(default)


def shown_default(name: str) -> str:
    """The default of ``name`` as ``--help`` writes it."""
    value = TABLE[name].default
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and value != value.strip():
        return repr(value)
    return str(value)


def env_vars() -> dict[str, str]:
    """Environment variable -> setting name, for every setting that has one."""
    return {meta.env: name for name, meta in TABLE.items() if meta.env is not None}


def flag_fields() -> tuple[str, ...]:
    """The settings a command line flag can set, in table order."""
    return tuple(name for name, meta in TABLE.items() if meta.flags)


def add_setting_flags(
    parser: argparse.ArgumentParser,
    names: Sequence[str] | None = None,
    help: Mapping[str, str] | None = None,
) -> None:
    """Add the flag of each setting in ``names`` (default: every setting that has one), with
    its kind, placeholder and help from the table; ``help`` replaces a line where a command
    gives the setting its own meaning. A flag not given stays None, so only what the user
    typed reaches ``load_settings`` over the other layers."""
    reworded = help or {}
    for name in flag_fields() if names is None else names:
        meta = TABLE[name]
        kind = kind_of(name)
        text = reworded.get(name, meta.help)
        if meta.show_default and name not in reworded:
            text += f" (default: {shown_default(name)})"
        kwargs: dict[str, object] = {
            "dest": name,
            "help": text.replace("%", "%%"),  # argparse %-formats help
            "default": None,
        }
        if meta.metavar is not None:
            kwargs["metavar"] = meta.metavar
        if kind is bool:
            kwargs["action"] = "store_false" if meta.negated else "store_true"
        elif kind is list:
            kwargs["action"] = "append"
        elif kind is int or kind is float:
            kwargs["type"] = kind
        parser.add_argument(*meta.flags, **kwargs)  # type: ignore[arg-type]
