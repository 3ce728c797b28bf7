"""docs/plugins.md keeps up with the code: every hook, switch and bundled command documented.

In the manner of datasette's tests/test_docs.py: adding a hookspec without a section fails.
"""

from __future__ import annotations

import ast
import dataclasses
import re

import pytest

from tests.support import REPO
from unith_shell import hookspecs
from unith_shell import settings as settings_module
from unith_shell.plugins import BUNDLED, HOOK_NAMES
from unith_shell.settings import Settings

DOC = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
HEADINGS = re.findall(r"^### `(\w+)`$", DOC, flags=re.MULTILINE)


def test_hook_names_are_found() -> None:
    assert {"register_commands", "before_send", "after_receive", "shell_start"} <= set(HOOK_NAMES)


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_every_hook_has_a_section(hook: str) -> None:
    assert hook in HEADINGS, f"docs/plugins.md has no '### `{hook}`' section"


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_every_section_names_each_argument(hook: str) -> None:
    spec = getattr(hookspecs, hook)
    section = DOC.split(f"### `{hook}`", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    arguments = spec.__code__.co_varnames[: spec.__code__.co_argcount]
    assert f"`{hook}({', '.join(arguments)})`" in section
    for argument in arguments:
        assert f"- `{argument}`" in section, f"{hook}: argument {argument} is not described"
    assert spec.__doc__ and ":param" in spec.__doc__  # and the hookspec itself says it too


def test_no_section_for_a_hook_that_does_not_exist() -> None:
    assert sorted(HEADINGS) == sorted(HOOK_NAMES)


@pytest.mark.parametrize(
    "needle",
    [
        "UNITH_SHELL_PLUGINS",
        "UNITH_SHELL_STRICT_PLUGINS=1",
        "UNITH_SHELL_TRACE_PLUGINS=1",
        "--no-plugins",
        "--plugins-dir DIR",
        "--plugin MODULE_OR_PATH",
        "/plugins trace on",
        "/plugins reload",
        "unith-shell plugins [--json]",
        "tryfirst=True",
        "trylast=True",
        "[project.entry-points.unith_shell]",
    ],
)
def test_switches_and_concepts_are_documented(needle: str) -> None:
    assert needle in DOC


def test_every_bundled_plugin_is_listed() -> None:
    for module in BUNDLED:
        assert f"`{module.rsplit('.', 1)[-1]}`" in DOC


def _examples() -> dict[str, str]:
    found = re.findall(r"<!-- example: (\S+) -->\n```\w+\n(.*?)```", DOC, flags=re.DOTALL)
    return dict(found)


def test_the_first_plugin_is_short_valid_and_uses_the_public_api() -> None:
    code = _examples()["shout.py"]
    ast.parse(code)
    assert len(code.strip().splitlines()) <= 16
    assert "from unith_shell import hookimpl" in code
    assert 'register("shout", shout' in code and "await ctx.session.send(arg.upper())" in code


def test_the_package_example_matches_the_real_example_packages() -> None:
    import tomllib

    doc = tomllib.loads(_examples()["pyproject.toml"])
    assert doc["build-system"]["build-backend"] == "hatchling.build"
    assert doc["project"]["entry-points"]["unith_shell"] == {"shout": "unith_shell_shout"}
    for folder in ("unith-shell-censor", "unith-shell-stats"):
        project = tomllib.loads((REPO / "plugins" / folder / "pyproject.toml").read_text())
        assert project["build-system"] == doc["build-system"]
        [(name, module)] = project["project"]["entry-points"]["unith_shell"].items()
        assert name == folder.removeprefix("unith-shell-")
        assert (REPO / "plugins" / folder / f"{module}.py").is_file()
        assert f"plugins/{folder}" in DOC
        assert (REPO / "plugins" / folder / "README.md").is_file()
        assert list((REPO / "plugins" / folder / "tests").glob("test_*.py"))


def test_code_quoted_from_the_censor_example_is_real() -> None:
    source = (REPO / "plugins" / "unith-shell-censor" / "unith_shell_censor.py").read_text()
    for line in (
        "message.text = CENSOR.apply(message.text)",
        "event.text = CENSOR.apply(event.text)",
    ):
        assert line in source and line in DOC


def test_public_names_listed_in_the_docs_are_importable() -> None:
    import unith_shell

    listed = re.search(
        r"Types for annotations are importable from `unith_shell`: (.*?)\.", DOC, re.S
    )
    assert listed is not None
    names = re.findall(r"`(\w+)`", listed.group(1))
    assert len(names) >= 10
    for name in names:
        assert getattr(unith_shell, name) is not None
    assert set(names) <= set(unith_shell.__all__)


def test_importing_the_public_names_stays_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, unith_shell; from unith_shell import hookimpl, UserMessage, Turn, Context; "
        "print(sorted(m for m in ('prompt_toolkit', 'websockets', 'httpx', 'aiohttp') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


CONFIG_DOC = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")


SETTINGS_ROWS = {
    m.group(1): [cell.strip() for cell in m.group(2).split("|", 3)]
    for m in re.finditer(r"^\| `(\w+)` \| (.*) \|$", CONFIG_DOC.split("## Settings", 1)[1], re.M)
}


def _documented_type(name: str) -> str:
    """The "type, default" cell docs/configuration.md must show for ``name``."""
    hint = settings_module.FIELD_TYPES[name]
    if hint == list[str]:
        return "list of str"
    kind = "str" if hint == str | None else hint.__name__
    default = settings_module.default_of(name)
    if default is None:
        shown = "none"
    elif isinstance(default, bool):
        shown = str(default).lower()
    elif isinstance(default, float):
        shown = f"{default:g}"
    elif default == "":
        shown = "empty"
    elif isinstance(default, str):
        shown = f"`{default}`"
    else:
        shown = str(default)
    return f"{kind}, {shown}"


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(Settings)])
def test_every_setting_has_a_row_derived_from_its_metadata(name: str) -> None:
    """Type, default, flags and environment variable in the doc are the code's (settings.py)."""
    assert name in SETTINGS_ROWS, f"docs/configuration.md has no row for {name}"
    kind, flags, env, meaning = SETTINGS_ROWS[name]
    info = settings_module.meta(name)
    assert kind == _documented_type(name)
    assert flags == ", ".join(f"`{flag}`" for flag in info.flags)
    assert env == (f"`{info.env}`" if info.env else "")
    assert meaning


def test_no_row_for_a_setting_that_does_not_exist() -> None:
    assert sorted(SETTINGS_ROWS) == sorted(f.name for f in dataclasses.fields(Settings))


@pytest.mark.parametrize(
    "variable", sorted([*settings_module.env_vars(), *settings_module.OTHER_ENV_VARS])
)
def test_every_environment_variable_is_in_the_configuration_doc(variable: str) -> None:
    assert f"`{variable}`" in CONFIG_DOC


def test_no_environment_variable_is_documented_that_the_code_does_not_read() -> None:
    known = {*settings_module.env_vars(), *settings_module.OTHER_ENV_VARS}
    assert set(re.findall(r"`(UNITH_\w+)", CONFIG_DOC)) <= known


def test_the_readme_module_table_matches_the_package() -> None:
    # Merges move code between modules; the architecture table must follow (`__main__.py`
    # and `py.typed` are not modules worth a row).
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("| module | job |", 1)[1].split("\n\n", 1)[0]
    rows = set(re.findall(r"^\| `([\w/.]+)` \|", section, flags=re.MULTILINE))
    package = REPO / "unith_shell"
    present = {p.name for p in package.glob("*.py") if p.name != "__main__.py"}
    present |= {f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").is_file()}
    assert rows == present
