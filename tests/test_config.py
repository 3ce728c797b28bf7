"""Tests for unith_shell.config: precedence, profiles, errors, paths and private files."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from unith_shell.config import (
    ConfigError,
    Paths,
    Settings,
    ensure_private_dir,
    load_settings,
    open_private,
    paths,
)

posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    path.chmod(mode)
    return path


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    return tmp_path / "config.toml"


# --------------------------------------------------------------------------- precedence


def test_defaults_when_no_file(cfg: Path) -> None:
    result = load_settings(env={}, config_file=cfg)
    assert result.settings == Settings()
    assert result.settings.base_url == "https://chat-origin.api.unith.live"
    assert result.settings.head == "aiko"
    assert result.config_file is None
    assert result.profiles == []
    assert result.warnings == []


def test_file_overrides_defaults(cfg: Path) -> None:
    write(cfg, 'head = "filehead"\ntimeout = 5\ntext_only = true\nplugins = ["a", "b"]\n')
    result = load_settings(env={}, config_file=cfg)
    s = result.settings
    assert (s.head, s.timeout, s.text_only, s.plugins) == ("filehead", 5.0, True, ["a", "b"])
    assert isinstance(s.timeout, float)  # ints are accepted for floats, and become floats
    assert s.org == "unith"  # untouched keys keep their defaults
    assert result.config_file == cfg


def test_env_overrides_file(cfg: Path) -> None:
    write(cfg, 'head = "filehead"\norg = "fileorg"\ntimeout = 5\n')
    env = {"UNITH_HEAD": "envhead", "UNITH_SHELL_TIMEOUT": "7.5", "UNITH_ORG": ""}
    s = load_settings(env=env, config_file=cfg).settings
    assert s.head == "envhead"
    assert s.timeout == 7.5
    assert s.org == "fileorg"  # an empty environment value is ignored


def test_flags_override_env(cfg: Path) -> None:
    write(cfg, 'head = "filehead"\n')
    env = {"UNITH_HEAD": "envhead", "UNITH_API_KEY": "envkey"}
    flags = {"head": "flaghead", "api_key": None, "local": True}
    s = load_settings(flags, env=env, config_file=cfg).settings
    assert s.head == "flaghead"
    assert s.api_key == "envkey"  # None flag values are ignored
    assert s.local is True


def test_all_env_vars(cfg: Path) -> None:
    env = {
        "UNITH_BASE_URL": "http://127.0.0.1:9",
        "UNITH_ORG": "o",
        "UNITH_HEAD": "h",
        "UNITH_API_KEY": "k",
        "UNITH_USERNAME": "u",
        "UNITH_PASSWORD": "p",
        "UNITH_SHELL_STRICT_PLUGINS": "1",
        "UNITH_SHELL_TRACE_PLUGINS": "1",
        "UNITH_SHELL_TIMEOUT": "3",
    }
    s = load_settings(env=env, config_file=cfg).settings
    assert (s.base_url, s.org, s.head) == ("http://127.0.0.1:9", "o", "h")
    assert (s.api_key, s.username, s.password) == ("k", "u", "p")
    assert s.strict_plugins is True
    assert s.trace_plugins is True
    assert s.timeout == 3.0


def test_env_bool_zero_turns_off_file_value(cfg: Path) -> None:
    write(cfg, "strict_plugins = true\n")
    s = load_settings(env={"UNITH_SHELL_STRICT_PLUGINS": "0"}, config_file=cfg).settings
    assert s.strict_plugins is False


@pytest.mark.parametrize("value", ["soon", "nan", "-1", "0"])
def test_bad_timeout_env(cfg: Path, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={"UNITH_SHELL_TIMEOUT": value}, config_file=cfg)
    message = str(info.value)
    assert message.startswith("UNITH_SHELL_TIMEOUT:")
    assert "\n" not in message


def test_bad_bool_env(cfg: Path) -> None:
    with pytest.raises(ConfigError, match="UNITH_SHELL_TRACE_PLUGINS"):
        load_settings(env={"UNITH_SHELL_TRACE_PLUGINS": "maybe"}, config_file=cfg)


def test_unknown_flag_key_is_a_programming_error(cfg: Path) -> None:
    with pytest.raises(ValueError, match="nonsense"):
        load_settings({"nonsense": 1}, env={}, config_file=cfg)


def test_bad_flag_value(cfg: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--timeout: "):
        load_settings({"timeout": -2.0}, env={}, config_file=cfg)


# --------------------------------------------------------------------------- file format


def test_kebab_case_keys(cfg: Path) -> None:
    write(cfg, 'base-url = "http://x.test"\ntext-only = true\n[profiles.p]\nrest-timeout = 2\n')
    result = load_settings({"profile": "p"}, env={}, config_file=cfg)
    assert result.settings.base_url == "http://x.test"
    assert result.settings.text_only is True
    assert result.settings.rest_timeout == 2.0


def test_both_spellings_of_a_key_is_an_error(cfg: Path) -> None:
    write(cfg, 'base_url = "http://a"\nbase-url = "http://b"\n')
    with pytest.raises(ConfigError, match="same setting"):
        load_settings(env={}, config_file=cfg)


def test_unknown_key(cfg: Path) -> None:
    write(cfg, 'head = "x"\ntimeuot = 3\n')
    with pytest.raises(ConfigError) as info:
        load_settings(env={}, config_file=cfg)
    message = str(info.value)
    assert message.startswith(f"{cfg}:2: ")
    assert "timeuot" in message
    assert "did you mean 'timeout'" in message


def test_wrong_type(cfg: Path) -> None:
    write(cfg, '# comment\n\ntimeout = "soon"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(env={}, config_file=cfg)
    assert str(info.value).startswith(f"{cfg}:3: timeout must be a number")


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("text_only = 1\n", "text_only"),  # no int for a bool
        ("max_frame_size = 1.5\n", "max_frame_size"),  # no float for an int
        ("timeout = true\n", "timeout"),  # no bool for a float
        ('plugins = "one"\n', "plugins"),  # a list needs an array
        ("head = 3\n", "head"),
    ],
)
def test_wrong_types_rejected(cfg: Path, text: str, field: str) -> None:
    write(cfg, text)
    with pytest.raises(ConfigError, match=f"^{re.escape(str(cfg))}:1: {field} must be"):
        load_settings(env={}, config_file=cfg)


def test_wrong_type_in_profile_points_at_profile_line(cfg: Path) -> None:
    write(
        cfg,
        """\
        timeout = 3
        [profiles.a]
        head = "ok"
        [profiles.b]
        org = "x"
        timeout = "soon"
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_settings(env={}, config_file=cfg)  # every profile is checked, chosen or not
    message = str(info.value)
    assert message.startswith(f"{cfg}:6: ")
    assert "[profiles.b]" in message


def test_messages_and_profile_not_allowed_in_file(cfg: Path) -> None:
    write(cfg, 'messages = ["hi"]\n')
    with pytest.raises(ConfigError, match="unknown key 'messages'"):
        load_settings(env={}, config_file=cfg)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('head = "a"\norg = "b"\nbroken line here\n', 3),
        ('head = "a"\n\n\n\ntimeout = \n', 5),
        ('[profiles.x]\nhead = "a"\nhead = "b"\n', 3),
    ],
)
def test_malformed_toml_is_one_line_with_path_and_line(cfg: Path, text: str, line: int) -> None:
    write(cfg, text)
    with pytest.raises(ConfigError) as info:
        load_settings(env={}, config_file=cfg)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{cfg}:{line}: ")
    assert "(at line" not in message  # the position moved to the front
    assert len(message) > len(f"{cfg}:{line}: ")  # and the problem is still there


def test_expected_equals_message(cfg: Path) -> None:
    write(cfg, 'head = "a"\n\nbroken line\n')
    with pytest.raises(ConfigError) as info:
        load_settings(env={}, config_file=cfg)
    assert str(info.value) == f"{cfg}:3: Expected '=' after a key in a key/value pair"


def test_invalid_utf8(cfg: Path) -> None:
    cfg.write_bytes(b'head = "a"\norg = "\xff"\n')
    with pytest.raises(ConfigError, match=f"^{re.escape(str(cfg))}:2: not valid UTF-8"):
        load_settings(env={}, config_file=cfg)


def test_config_file_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(str(tmp_path))}: cannot read"):
        load_settings(env={}, config_file=tmp_path)


# --------------------------------------------------------------------------- profiles

PROFILES = """\
head = "top"
org = "toporg"
{extra}
[profiles.work]
head = "workhead"

[profiles."demo"]
head = "demohead"
local = true
"""


def test_profiles_listed_and_not_applied_unless_chosen(cfg: Path) -> None:
    write(cfg, PROFILES.format(extra=""))
    result = load_settings(env={}, config_file=cfg)
    assert result.profiles == ["work", "demo"]
    assert result.settings.head == "top"
    assert result.settings.profile is None


def test_profile_via_flag(cfg: Path) -> None:
    write(cfg, PROFILES.format(extra=""))
    env = {"UNITH_SHELL_PROFILE": "demo"}
    s = load_settings({"profile": "work"}, env=env, config_file=cfg).settings
    assert s.head == "workhead"  # the flag beats the environment
    assert s.org == "toporg"  # the profile applies on top of the top-level keys
    assert s.profile == "work"


def test_profile_via_env(cfg: Path) -> None:
    write(cfg, PROFILES.format(extra='default_profile = "work"'))
    s = load_settings(env={"UNITH_SHELL_PROFILE": "demo"}, config_file=cfg).settings
    assert (s.head, s.local, s.profile) == ("demohead", True, "demo")


def test_profile_via_default_profile(cfg: Path) -> None:
    write(cfg, PROFILES.format(extra='default_profile = "work"'))
    s = load_settings(env={}, config_file=cfg).settings
    assert (s.head, s.profile) == ("workhead", "work")


def test_env_and_flags_beat_profile(cfg: Path) -> None:
    write(cfg, PROFILES.format(extra=""))
    s = load_settings(env={"UNITH_HEAD": "envhead"}, config_file=cfg).settings
    assert s.head == "envhead"
    s = load_settings({"profile": "demo", "local": False}, env={}, config_file=cfg).settings
    assert s.local is False


def test_unknown_profile(cfg: Path) -> None:
    write(cfg, PROFILES.format(extra=""))
    with pytest.raises(ConfigError) as info:
        load_settings({"profile": "nope"}, env={}, config_file=cfg)
    message = str(info.value)
    assert "'nope'" in message
    assert "--profile" in message
    assert "work, demo" in message


def test_unknown_profile_from_env_without_file(cfg: Path) -> None:
    with pytest.raises(ConfigError, match=r"UNITH_SHELL_PROFILE.*no config file"):
        load_settings(env={"UNITH_SHELL_PROFILE": "nope"}, config_file=cfg)


def test_unknown_default_profile_points_at_its_line(cfg: Path) -> None:
    write(cfg, 'head = "x"\ndefault_profile = "ghost"\n[profiles.real]\n')
    with pytest.raises(ConfigError, match=f"^{re.escape(str(cfg))}:2: default_profile 'ghost'"):
        load_settings(env={}, config_file=cfg)


# --------------------------------------------------------------------------- secrets


def test_repr_masks_secrets() -> None:
    s = Settings(api_key="sk-verysecret123", password="hunter2-pw")
    for text in (repr(s), str(s), repr([s]), f"{s}"):
        assert "sk-verysecret123" not in text
        assert "hunter2-pw" not in text
        assert "api_key='***'" in text
    assert "api_key=''" in repr(Settings(api_key=""))  # an empty key is shown as empty


@posix_only
def test_readable_api_key_warns(cfg: Path) -> None:
    write(cfg, 'api_key = "sk-1"\n', mode=0o644)
    warnings = load_settings(env={}, config_file=cfg).warnings
    assert warnings == [
        f"{cfg} holds an api key and is readable by other users; run: chmod 600 {cfg}"
    ]


@posix_only
def test_readable_password_in_profile_warns(cfg: Path) -> None:
    write(cfg, '[profiles.p]\npassword = "pw"\n', mode=0o640)
    warnings = load_settings(env={}, config_file=cfg).warnings
    assert len(warnings) == 1
    assert "readable by other users" in warnings[0]


@posix_only
def test_private_api_key_file_does_not_warn(cfg: Path) -> None:
    write(cfg, 'api_key = "sk-1"\n', mode=0o600)
    assert load_settings(env={}, config_file=cfg).warnings == []


@posix_only
def test_readable_file_without_secrets_does_not_warn(cfg: Path) -> None:
    write(cfg, 'head = "x"\napi_key = ""\n', mode=0o644)
    assert load_settings(env={}, config_file=cfg).warnings == []


# --------------------------------------------------------------------------- paths


def test_unith_shell_home_moves_everything(tmp_path: Path) -> None:
    p = paths({"UNITH_SHELL_HOME": str(tmp_path)})
    assert p == Paths(tmp_path / "config", tmp_path / "data", tmp_path / "state")
    assert p.config_file == tmp_path / "config" / "config.toml"
    assert p.history_file == tmp_path / "state" / "history"
    assert p.plugins_dir == tmp_path / "config" / "plugins"
    assert p.transcripts_dir == tmp_path / "data" / "transcripts"


def test_platform_dirs_without_home(tmp_path: Path) -> None:
    p = paths({"UNITH_SHELL_HOME": ""})
    for folder in (p.config_dir, p.data_dir, p.state_dir):
        assert "unith-shell" in folder.parts
        assert not folder.is_relative_to(tmp_path)


def test_load_settings_uses_unith_shell_home(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    write(tmp_path / "config" / "config.toml", 'head = "homehead"\n')
    result = load_settings(env={"UNITH_SHELL_HOME": str(tmp_path)})
    assert result.settings.head == "homehead"
    assert result.config_file == tmp_path / "config" / "config.toml"


@posix_only
def test_ensure_private_dir(tmp_path: Path) -> None:
    made = ensure_private_dir(tmp_path / "a" / "b")
    assert made == tmp_path / "a" / "b"
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    # A folder that already exists is not the shell's to change.
    made.chmod(0o750)
    ensure_private_dir(made)
    assert stat.S_IMODE(made.stat().st_mode) == 0o750


@posix_only
def test_open_private_creates_0600(tmp_path: Path) -> None:
    target = tmp_path / "new" / "history"
    with open_private(target) as fh:
        fh.write("one\n")
    with open_private(target) as fh:  # append by default
        fh.write("two\n")
    assert target.read_text() == "one\ntwo\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700


@posix_only
def test_open_private_tightens_existing_file(tmp_path: Path) -> None:
    target = write(tmp_path / "transcript", "old\n", mode=0o644)
    with open_private(target, "w") as fh:
        fh.write("new\n")
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_open_private_rejects_read_modes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode"):
        open_private(tmp_path / "f", "r")


def test_import_stays_light(tmp_path: Path) -> None:
    code = (
        "import sys, unith_shell.config as c; c.load_settings();"
        "print(sorted(m for m in ('prompt_toolkit', 'websockets', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"UNITH_SHELL_HOME": str(tmp_path), "PATH": os.environ.get("PATH", "")},
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_a_mistyped_profiles_table_suggests_profiles(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[profile.work]\norg = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown key 'profile' \(did you mean 'profiles'\?\)"):
        load_settings({}, env={}, config_file=config)


# --------------------------------------------------------------------------- one source


def test_gap_grace_is_set_from_the_config_file_and_reaches_the_session(cfg: Path) -> None:
    from unith_shell.settings import session_options

    write(cfg, "gap_grace = 2.5\n")
    settings = load_settings(env={}, config_file=cfg).settings
    assert settings.gap_grace == 2.5
    assert session_options(settings).gap_grace == 2.5


def test_every_session_option_is_a_setting_with_the_same_default() -> None:
    import dataclasses

    from unith_shell.session import SessionOptions
    from unith_shell.settings import default_of, session_options

    settings_fields = {f.name for f in dataclasses.fields(Settings)}
    for option in dataclasses.fields(SessionOptions):
        assert option.name in settings_fields, f"SessionOptions.{option.name} is not a setting"
        if option.default is not dataclasses.MISSING:
            assert option.default == default_of(option.name), option.name
    # Every option is copied, none left at its own default.
    changed = Settings(
        base_url="http://127.0.0.1:1",
        org="o",
        head="h",
        timeout=7.0,
        gap_grace=3.0,
        max_parts=5,
        insecure=True,
        api_key="k",
    )
    options = session_options(changed)
    for option in dataclasses.fields(SessionOptions):
        assert getattr(options, option.name) == getattr(changed, option.name)


def test_every_flag_in_the_metadata_is_parsed_into_its_setting() -> None:
    from unith_shell.cli import build_parser
    from unith_shell.settings import FIELD_TYPES, flag_fields, meta

    parser = build_parser()
    for name in flag_fields():
        flag, hint = meta(name).flags[-1], FIELD_TYPES[name]
        if hint is bool:
            argv, expected = [flag], not meta(name).negated
        elif hint == list[str]:
            argv, expected = [flag, "a", flag, "b"], ["a", "b"]
        else:
            value = {int: "7", float: "2.5"}.get(hint, "word")
            argv, expected = [flag, value], hint(value) if hint in (int, float) else value
        assert getattr(parser.parse_args(argv), name) == expected, flag
        assert getattr(parser.parse_args([]), name) is None, f"{flag} must not default"


def test_every_environment_variable_in_the_metadata_sets_its_setting(cfg: Path) -> None:
    from unith_shell.settings import FIELD_TYPES, env_vars

    for var, name in env_vars().items():
        hint = FIELD_TYPES[name]
        if name == "profile":
            write(cfg, "[profiles.p]\n")
            raw, expected = "p", "p"
        else:
            raw = {bool: "1", int: "7", float: "2.5"}.get(hint, "word")
            expected = {bool: True, int: 7, float: 2.5}.get(hint, "word")
        settings = load_settings(env={var: raw}, config_file=cfg).settings
        assert getattr(settings, name) == expected, var


def test_help_shows_the_defaults_of_the_fields() -> None:
    from unith_shell.cli import build_parser
    from unith_shell.settings import flag_fields, meta, shown_default

    helps = {action.dest: action.help or "" for action in build_parser()._actions}
    shown = [name for name in flag_fields() if meta(name).show_default]
    assert {"timeout", "head", "max_parts"} <= set(shown)
    for name in shown:
        assert helps[name].endswith(f"(default: {shown_default(name)})"), name
    assert shown_default("timeout") == "30" and shown_default("prompt") == "'{head}> '"


def test_the_table_and_the_settings_fields_agree() -> None:
    """The table gives defaults and metadata, the dataclass the types: same names, same
    order, and the kind the flags use (read from the default) is the field's type."""
    import dataclasses

    from unith_shell.setting_table import TABLE, kind_of
    from unith_shell.settings import FIELD_TYPES

    assert [f.name for f in dataclasses.fields(Settings)] == list(TABLE)
    expected = {bool: bool, int: int, float: float, str: str | None, list: list[str]}
    for name in TABLE:
        hint = FIELD_TYPES[name]
        kind = kind_of(name)
        assert hint == expected[kind] or (kind is str and hint is str), name
        assert getattr(Settings(), name) == TABLE[name].default, name
    first, second = Settings(), Settings()
    first.plugins.append("x")
    assert second.plugins == [] and TABLE["plugins"].default == []


def test_help_imports_no_dataclasses() -> None:
    """--help stays cheap: the flags come from setting_table.py, which imports nothing."""
    code = (
        "import sys\nfrom unith_shell.cli import build_parser\nbuild_parser().format_help()\n"
        "print(sorted(m for m in ('dataclasses', 'inspect', 'typing', 'unith_shell.settings')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
