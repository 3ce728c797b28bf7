"""Code and settings are only loaded from places nobody else can change (OpenSSH's StrictModes):
plugin folders and files, the config file, and not the current directory under ``python -m``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support import UNITH_SHELL, Make, cli_env
from unith_shell.config_file import load_settings
from unith_shell.plugins import PluginError, Plugins
from unith_shell.settings import ConfigError

pytestmark = pytest.mark.timeout(60)

MARKER_PLUGIN = """
from pathlib import Path
from unith_shell import hookimpl

Path({marker!r}).write_text("imported")


@hookimpl
def register_commands(register):
    pass
"""

posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX modes and owners")


def _plugin(folder: Path, name: str, marker: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(MARKER_PLUGIN.format(marker=str(marker)))
    path.chmod(0o644)
    return path


@posix_only
@pytest.mark.parametrize("mode", [0o664, 0o646, 0o666])
async def test_a_plugin_file_others_can_write_is_skipped(
    make: Make, shell_home: Path, tmp_path: Path, mode: int
) -> None:
    folder = shell_home / "config" / "plugins"
    marker = tmp_path / "imported"
    path = _plugin(folder, "planted", marker)
    path.chmod(mode)
    _plugin(folder, "fine", tmp_path / "fine-imported")
    h = await make(env={"UNITH_SHELL_PLUGINS": None}, connect=False)
    assert not marker.exists()
    assert "planted" not in h.shell.plugins.infos
    assert "fine" in h.shell.plugins.infos  # the safe file in the same folder loads
    [line] = [line for line in h.lines if "planted" in line]
    assert str(path) in line and f"chmod go-w {path}" in line


@posix_only
@pytest.mark.parametrize("where", ["config folder", "--plugins-dir"])
async def test_a_plugins_folder_others_can_write_is_skipped_whole(
    make: Make, shell_home: Path, tmp_path: Path, where: str
) -> None:
    folder = shell_home / "config" / "plugins" if where == "config folder" else tmp_path / "extra"
    marker = tmp_path / "imported"
    _plugin(folder, "planted", marker)
    folder.chmod(0o777)
    dirs = [str(folder)] if where == "--plugins-dir" else []
    h = await make(env={"UNITH_SHELL_PLUGINS": None}, plugins_dirs=dirs, connect=False)
    assert not marker.exists()
    [line] = [line for line in h.lines if str(folder) in line]
    assert line.endswith(f"is writable by its group and others; run: chmod go-w {folder}")


@posix_only
async def test_a_plugin_owned_by_another_user_is_skipped(
    make: Make, shell_home: Path, tmp_path: Path
) -> None:
    if os.getuid() != 0:
        pytest.skip("only root can give a file to another user")  # runs as root in CI here
    folder = shell_home / "config" / "plugins"
    marker = tmp_path / "imported"
    path = _plugin(folder, "foreign", marker)
    os.chown(path, 54321, 54321)
    h = await make(env={"UNITH_SHELL_PLUGINS": None}, connect=False)
    assert not marker.exists()
    [line] = [line for line in h.lines if "foreign" in line]
    assert "belongs to another user (uid 54321)" in line


@posix_only
def test_strict_mode_raises_for_an_untrusted_plugin(tmp_path: Path) -> None:
    folder = tmp_path / "plugins"
    _plugin(folder, "planted", tmp_path / "imported").chmod(0o666)
    plugins = Plugins(strict=True, notify=lambda text: None)
    with pytest.raises(PluginError, match="chmod go-w"):
        plugins.load_folder(folder, None)
    assert not (tmp_path / "imported").exists()


@posix_only
def test_trust_problem_accepts_private_and_read_only_files(tmp_path: Path) -> None:
    from unith_shell.files import trust_problem

    path = tmp_path / "f"
    path.write_text("")
    for mode in (0o600, 0o644, 0o755, 0o400):
        path.chmod(mode)
        assert trust_problem(path) is None
    path.chmod(0o620)
    assert trust_problem(path) == f"{path} is writable by its group; run: chmod go-w {path}"
    path.chmod(0o602)
    assert trust_problem(path) == f"{path} is writable by other users; run: chmod go-w {path}"


@posix_only
@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_config_file_others_can_write_is_refused_in_one_line(tmp_path: Path, what: str) -> None:
    home = tmp_path / "home"
    config = home / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('head = "planted"\nplugins = ["evil"]\n')
    config.chmod(0o600)
    (config if what == "file" else config.parent).chmod(0o666 if what == "file" else 0o777)
    weak = config if what == "file" else config.parent
    with pytest.raises(ConfigError) as raised:
        load_settings(env={"UNITH_SHELL_HOME": str(home)})
    assert str(raised.value).startswith(f"config file refused: {weak} is writable by")
    assert str(raised.value).endswith(f"run: chmod go-w {weak}")
    result = subprocess.run(
        [*UNITH_SHELL, "--local"],
        input="hi\n",
        env=cli_env(home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"unith-shell: {raised.value}"
    assert result.stdout == ""


def test_python_m_does_not_import_plugins_from_the_current_directory(tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    marker = tmp_path / "imported"
    (cwd / "evilmod.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text('plugins = ["evilmod"]\n')
    result = subprocess.run(
        [*UNITH_SHELL, "plugins"],
        cwd=cwd,
        env=cli_env(home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert not marker.exists()
    assert "plugin 'evilmod' failed to load: ModuleNotFoundError" in result.stderr
