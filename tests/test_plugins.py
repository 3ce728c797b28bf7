"""The plugin system end to end: hooks in a real session, transforms, isolation, switches.

Shells run in-process against the real local server (``server`` fixture); the CLI tests run
``python -m unith_shell`` in a subprocess. The example packages in ``plugins/`` are installed
into this interpreter's environment by the session fixture ``installed_examples`` when they
are missing or stale, so the entry-point tests are honest in any environment.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO, UNITH_SHELL, Harness, Make, cli_env, fixture
from unith_shell import hookimpl
from unith_shell.plugins import BUNDLED, PluginError
from unith_shell.protocol import ResponsePart, UserMessage
from unith_shell.server import LocalServer
from unith_shell.turn import Turn

pytestmark = pytest.mark.timeout(60)

BUNDLED_NAMES = {name.rsplit(".", 1)[-1] for name in BUNDLED}
MESSAGE_PATH_HOOKS = {"before_send", "after_receive", "on_frame", "turn_complete"}


def calls_of(h: Harness, name: str = "recorder") -> list[tuple[str, dict[str, Any]]]:
    module = h.shell.plugins.pm.get_plugin(name)
    calls: list[tuple[str, dict[str, Any]]] = module.CALLS
    return calls


def named(calls: list[tuple[str, dict[str, Any]]], hook: str) -> list[dict[str, Any]]:
    return [args for name, args in calls if name == hook]


# ---- every hook, in a real session ----------------------------------------------------------


async def test_every_hook_fires_with_the_right_arguments(make: Make, server: LocalServer) -> None:
    h = await make(plugins=(fixture("recorder"),))
    shell, session = h.shell, h.shell.session
    calls = calls_of(h)
    order = [name for name, _ in calls]
    # Load, start, connect: in that order, each once.
    assert order[:2] == ["register_commands", "shell_start"]
    assert named(calls, "shell_start")[0]["shell"] is shell
    [connected] = named(calls, "on_connect")
    assert connected["session"] is session and connected["head"] == "aiko"
    handshake = named(calls, "on_frame")[0]
    assert handshake["direction"] == "out" and handshake["session"] is session
    assert json.loads(handshake["data"])["token"] == session.credentials.access_token
    greeting_parts = [
        a["event"] for a in named(calls, "after_receive") if isinstance(a["event"], ResponsePart)
    ]
    assert any("I'm Aiko" in part.text for part in greeting_parts)
    [greeting] = named(calls, "turn_complete")
    assert greeting["turn"].message_id == -1 and greeting["turn"].outcome == "last"

    calls.clear()
    turn = await h.say("hello hooks")
    [before] = named(calls, "before_send")
    assert isinstance(before["message"], UserMessage)
    assert before["text"] == "hello hooks" and before["session"] is session
    out = [json.loads(a["data"]) for a in named(calls, "on_frame") if a["direction"] == "out"]
    assert out == [server.received[-1]]  # exactly the frame the server got
    assert out[0]["text"] == "hello hooks" and out[0]["id"] == turn.message_id
    incoming = [json.loads(a["data"]) for a in named(calls, "on_frame") if a["direction"] == "in"]
    parts = [a["event"] for a in named(calls, "after_receive")]
    assert len(parts) == len(incoming)  # every parsed frame reached after_receive
    answers = [p for p in parts if isinstance(p, ResponsePart)]
    assert {p.input_message_id for p in answers} == {turn.message_id}
    assert answers[-1].is_last
    [done] = named(calls, "turn_complete")
    assert done["turn"] is turn and done["session"] is session
    assert isinstance(turn, Turn) and "hello hooks" in turn.text and turn.outcome == "last"
    # The plugin's command works in the same shell.
    assert await h.run("/recorded hi") == ["recorder says hi"]

    # The server drops the connection: on_disconnect with a reason, then on_connect again.
    calls.clear()
    await server.drop_all()
    await h.wait_for(lambda: len(named(calls, "on_connect")) == 1)
    [dropped] = named(calls, "on_disconnect")
    assert dropped["session"] is session
    assert isinstance(dropped["reason"], str) and dropped["reason"]

    await shell.stop()
    assert named(calls, "shell_exit") == [{"shell": shell}]


async def test_before_send_transform_changes_what_the_server_receives(make: Make) -> None:
    h = await make(plugins=(fixture("transform"),))
    turn = await h.say("hello there")
    assert h.sent_texts() == ["HELLO THERE"]
    assert turn.prompt == "HELLO THERE"
    assert "You said “HELLO THERE”" in h.text


async def test_after_receive_transform_changes_what_is_shown(
    make: Make, server: LocalServer
) -> None:
    h = await make(plugins=(fixture("transform"),))
    # The greeting was shown through the async after_receive hook, labelled with the alias.
    assert "Aiko: [t] Hi, I'm Aiko, a digital human on your local Unith server." in h.lines
    await h.say("x")
    reply = [line for line in h.lines if "You said" in line]
    assert reply and all("[t] You said" in line for line in reply)


async def test_cancel_drops_the_message_and_stops_later_plugins(
    make: Make, server: LocalServer
) -> None:
    # transform is registered last, so it runs first; the recorder comes after it.
    h = await make(plugins=(fixture("recorder"), fixture("transform")))
    calls = calls_of(h)
    calls.clear()
    assert await h.shell.send("cancel me please") is None
    assert "! not sent: the transform plugin said no" in h.lines
    assert named(calls, "before_send") == []
    await h.say("fine")
    assert h.sent_texts() == ["FINE"]  # the cancelled one never reached the server


async def test_order_follows_pluggy_tryfirst_and_trylast(make: Make) -> None:
    h = await make()

    def tagger(tag: str, **marks: bool) -> object:
        class Tagger:
            @hookimpl(**marks)
            def before_send(self, message: UserMessage) -> None:
                message.text += f" {tag}"

        return Tagger()

    plugins = h.shell.plugins
    assert plugins.add(tagger("first", tryfirst=True), "first")
    assert plugins.add(tagger("x"), "x")
    assert plugins.add(tagger("y"), "y")
    assert plugins.add(tagger("last", trylast=True), "last")
    await h.say("m")
    # tryfirst, then the last registered first, then trylast.
    assert h.sent_texts() == ["m first y x last"]


async def test_a_hook_nobody_implements_is_never_called(make: Make) -> None:
    h = await make()
    plugins = h.shell.plugins
    assert not any(plugins.has(hook) for hook in MESSAGE_PATH_HOOKS)
    called: list[str] = []
    # pluggy's own monitoring sees every hook call that reaches the plugin manager.
    undo = plugins.pm.add_hookcall_monitoring(
        lambda hook, impls, kwargs: called.append(hook), lambda *args: None
    )
    try:
        await h.say("plain")
        assert called == []
        # Once a plugin implements one, it is called (the dispatch follows registration).
        assert plugins.add(type("P", (), {"turn_complete": hookimpl(lambda self: None)})(), "p")
        await h.say("again")
        assert called == ["turn_complete"]
    finally:
        undo()


# ---- broken plugins -------------------------------------------------------------------------


async def test_plugins_that_fail_to_load_are_reported_and_skipped(
    make: Make, shell_home: Path
) -> None:
    folder = shell_home / "config" / "plugins"
    folder.mkdir(parents=True)
    for name in ("broken_import", "unknown_hook", "transform"):
        shutil.copyfile(fixture(name), folder / f"{name}.py")  # mode from the umask
    (folder / "broken_syntax.py").write_text("def oops(:\n    pass\n")
    allow = "broken_import,broken_syntax,unknown_hook,transform"
    h = await make(env={"UNITH_SHELL_PLUGINS": allow})
    failures = [line for line in h.lines if "failed to load" in line]
    assert len(failures) == 3, failures
    for name, why in [
        ("broken_import", "RuntimeError: broken_import exploded while importing"),
        ("broken_syntax", "SyntaxError"),
        ("unknown_hook", "before_sned"),
    ]:
        [line] = [f for f in failures if f"plugin {name!r}" in f]
        assert why in line and "\n" not in line
    # The good one in the same folder loaded, and the shell works.
    assert set(h.shell.plugins.infos) == BUNDLED_NAMES | {"transform"}
    await h.say("still working")
    assert h.sent_texts() == ["STILL WORKING"]
    listing = await h.run("/plugins")
    assert sum("failed to load" in line for line in listing) == 3


async def test_a_raising_hook_is_disabled_for_that_hook_only(make: Make) -> None:
    h = await make(plugins=(fixture("raising_hook"), fixture("transform")))
    counts = h.shell.plugins.pm.get_plugin("raising_hook").COUNTS
    # after_receive raised on the greeting's first frame: reported once, then disabled.
    assert counts["after_receive"] == 1
    [line] = [x for x in h.lines if "failed in after_receive" in x]
    assert line == (
        "! plugin 'raising_hook' failed in after_receive: "
        "KeyError: 'raising_hook broke in after_receive'; after_receive disabled for it"
    )
    await h.say("hello")
    # Its half-made change is undone; the other plugin's change stays: nothing is lost.
    assert h.sent_texts() == ["HELLO"]
    assert any("failed in before_send: ValueError: raising_hook broke" in x for x in h.lines)
    await h.say("again")
    assert h.sent_texts() == ["HELLO", "AGAIN"]
    assert counts == {"before_send": 1, "after_receive": 1}
    assert sum("raising_hook" in x and "failed" in x for x in h.lines) == 2
    # Its command and the other plugin's hooks keep working.
    assert await h.run("/stillhere") == ["raising_hook command still works"]
    assert any("[t] You said “AGAIN”" in x for x in h.lines)
    listing = await h.run("/plugins")
    assert "    disabled after errors: after_receive, before_send" in listing


async def test_a_hanging_async_hook_times_out_and_the_message_goes_out(make: Make) -> None:
    h = await make(plugins=(fixture("hanging_hook"),))
    h.shell.plugins.hook_timeout = 0.3
    turn = await h.say("patience")
    assert h.sent_texts() == ["patience"]
    assert turn.outcome == "last"
    assert (
        "! plugin 'hanging_hook' failed in before_send: did not finish within 0.3 s; "
        "before_send disabled for it"
    ) in h.lines
    await h.say("fast now")  # disabled: no second wait
    assert h.sent_texts() == ["patience", "fast now"]


async def test_a_failing_command_is_reported_and_the_shell_goes_on(make: Make) -> None:
    h = await make()

    def boom(ctx: Any, arg: str) -> None:
        raise RuntimeError("kaboom")

    class Cmd:
        @hookimpl
        def register_commands(self, register: Any) -> None:
            register("boom", boom)

    h.shell.plugins.add(Cmd(), "cmd")
    h.shell.register_commands_of("cmd")
    assert await h.run("/boom") == ["error: /boom (plugin 'cmd') failed: RuntimeError: kaboom"]
    await h.say("after")
    assert h.sent_texts() == ["after"]


async def test_strict_mode_reraises(make: Make, server: LocalServer) -> None:
    with pytest.raises(PluginError, match="broken_import"):
        await make(plugins=(fixture("broken_import"),), strict_plugins=True, connect=False)
    h = await make(plugins=(fixture("raising_hook"),), strict_plugins=True, connect=False)
    with pytest.raises(PluginError, match=r"raising_hook.*after_receive"):
        await h.shell.session.connect()


# ---- where plugins come from ----------------------------------------------------------------


def _fill_plugins_dir(home: Path) -> Path:
    folder = home / "config" / "plugins"
    folder.mkdir(parents=True, exist_ok=True)
    # copyfile: the umask decides the mode, not the checkout (git may check files out 0664).
    shutil.copyfile(fixture("recorder"), folder / "recorder.py")
    shutil.copyfile(fixture("transform"), folder / "transform.py")
    (folder / "_private.py").write_text("raise RuntimeError('never loaded')\n")
    return folder


async def test_allowlist_selects_folder_plugins(make: Make, shell_home: Path) -> None:
    _fill_plugins_dir(shell_home)
    everything = await make(env={"UNITH_SHELL_PLUGINS": None}, connect=False)
    assert {"recorder", "transform"} <= set(everything.shell.plugins.infos)
    assert everything.shell.plugins.infos["transform"].source == "local file"
    assert not any("never loaded" in line for line in everything.lines)
    only = await make(env={"UNITH_SHELL_PLUGINS": "transform, nothing-else"}, connect=False)
    assert set(only.shell.plugins.infos) == BUNDLED_NAMES | {"transform"}
    empty = await make(env={"UNITH_SHELL_PLUGINS": ""}, connect=False)
    assert set(empty.shell.plugins.infos) == BUNDLED_NAMES


async def test_plugins_dir_and_plugin_flags(make: Make, tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    shutil.copyfile(fixture("transform"), extra / "transform.py")
    h = await make(plugins_dirs=[str(extra)], env={"UNITH_SHELL_PLUGINS": "transform"})
    assert h.shell.plugins.infos["transform"].path == str(extra / "transform.py")
    # --plugin takes a module name too, and ignores the allowlist (it was asked for by name).
    sys.path.insert(0, str(Path(fixture("recorder")).parent))
    try:
        m = await make(plugins=("recorder",), connect=False)
    finally:
        sys.path.remove(str(Path(fixture("recorder")).parent))
        sys.modules.pop("recorder", None)
    assert m.shell.plugins.infos["recorder"].source == "command line"


async def test_no_plugins_loads_bundled_only(make: Make, shell_home: Path) -> None:
    _fill_plugins_dir(shell_home)
    h = await make(
        no_plugins=True, plugins=(fixture("hanging_hook"),), env={"UNITH_SHELL_PLUGINS": None}
    )
    assert set(h.shell.plugins.infos) == BUNDLED_NAMES
    await h.say("plain")
    assert h.sent_texts() == ["plain"]


async def test_tracing_from_settings_and_from_the_command(make: Make) -> None:
    h = await make(plugins=(fixture("transform"),), trace_plugins=True)
    await h.say("traced")
    traces = [line for line in h.lines if "trace: " in line]
    assert any(line.startswith("! trace: before_send -> transform (") for line in traces)
    assert any("trace: after_receive -> transform" in line for line in traces)
    assert await h.run("/plugins trace off") == ["hook tracing off"]
    start = len(h.lines)
    await h.say("quiet")
    assert not any("trace: " in line for line in h.lines[start:])
    await h.run("/plugins trace on")
    await h.say("loud")
    assert any("trace: before_send -> transform" in line for line in h.lines[start:])


# ---- the command line: a local file, installed packages -------------------------------------


def _docs_example(marker: str) -> str:
    text = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
    start = text.index(f"<!-- example: {marker} -->")
    body = text[text.index("\n", text.index("```", start)) + 1 :]
    return body[: body.index("```")]


def _run_cli(args: list[str], home: Path, timeout: float = 30, **env: str | None) -> Any:
    full = cli_env(home)
    for key, value in env.items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    return subprocess.run(
        [*UNITH_SHELL, *args], env=full, capture_output=True, text=True, timeout=timeout
    )


def test_the_docs_shout_example_works_from_the_plugins_folder(tmp_path: Path) -> None:
    home = tmp_path / "user"
    folder = home / "config" / "plugins"
    folder.mkdir(parents=True)
    (folder / "shout.py").write_text(_docs_example("shout.py"), encoding="utf-8")
    # A user's environment: no allowlist at all.
    result = _run_cli(
        ["--local", "-m", "/shout hi there", "-m", "/help shout"],
        home,
        UNITH_SHELL_PLUGINS=None,
    )
    assert result.returncode == 0, result.stderr
    assert "You said “HI THERE”" in result.stdout
    assert "/shout TEXT\n  Send a message in capitals\n  from plugin: shout" in result.stdout


def _installed_matches(dist_name: str, module: str, source: Path) -> bool:
    try:
        metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        return False
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return False
    installed = Path(spec.origin)
    # An editable install points at the source itself; a copy must be up to date.
    return installed.resolve() == source.resolve() or installed.read_bytes() == source.read_bytes()


EXAMPLES = {
    "unith-shell-censor": "unith_shell_censor",
    "unith-shell-stats": "unith_shell_stats",
}


@pytest.fixture(scope="session")
def installed_examples(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Make the example packages findable by their entry points; yields env for subprocesses.

    ``.ci/run`` installs them into its venv. Elsewhere (the README's test command) they are
    installed into a temporary folder put on the path for this test session only: running the
    tests must never add plugins to the user's own environment.
    """
    stale = [
        name
        for name, module in EXAMPLES.items()
        if not _installed_matches(name, module, REPO / "plugins" / name / f"{module}.py")
    ]
    if not stale:
        yield {}
        return
    target = tmp_path_factory.mktemp("example-plugins")
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target)]
    if importlib.util.find_spec("hatchling") is not None:
        command.append("--no-build-isolation")  # offline: use the installed backend
    command += [str(REPO / "plugins" / name) for name in EXAMPLES]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    try:
        yield {"PYTHONPATH": str(target)}
    finally:
        sys.path.remove(str(target))
        importlib.invalidate_caches()


def test_installed_examples_are_found_by_their_entry_points(
    installed_examples: dict[str, str], tmp_path: Path
) -> None:
    extra = installed_examples
    names = {ep.name: ep.value for ep in metadata.entry_points(group="unith_shell")}
    assert names["censor"] == "unith_shell_censor" and names["stats"] == "unith_shell_stats"
    result = _run_cli(["plugins", "--json"], tmp_path, UNITH_SHELL_PLUGINS=None, **extra)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["stats"]["source"] == "entry point" and rows["stats"]["version"] == "0.1.0"
    assert rows["stats"]["commands"] == ["stats"]
    assert rows["censor"]["hooks"] == [
        "after_receive",
        "before_send",
        "register_commands",
        "shell_start",
    ]


def test_installed_examples_work_in_a_running_shell(
    installed_examples: dict[str, str], tmp_path: Path
) -> None:
    # No allowlist, no flags: installing was the only step.
    result = _run_cli(
        ["--local", "-m", "well darn", "-m", "/stats"],
        tmp_path,
        UNITH_SHELL_PLUGINS=None,
        **installed_examples,
    )
    assert result.returncode == 0, result.stderr
    assert "You said “well d***”" in result.stdout  # censor, on the way out
    assert "turns: 1 (1 answered, 0 failed)" in result.stdout  # stats' command
    assert "connects: 1, disconnects: 0" in result.stdout


def test_allowlist_and_no_plugins_apply_to_entry_points(
    installed_examples: dict[str, str], tmp_path: Path
) -> None:
    result = _run_cli(
        ["--local", "-m", "well darn", "-m", "/stats"],
        tmp_path,
        UNITH_SHELL_PLUGINS="stats",
        **installed_examples,
    )
    assert result.returncode == 0, result.stderr
    assert "You said “well darn”" in result.stdout  # censor not loaded
    assert "turns: 1 (1 answered, 0 failed)" in result.stdout
    result = _run_cli(
        ["--local", "--no-plugins", "-m", "/stats"],
        tmp_path,
        UNITH_SHELL_PLUGINS=None,
        **installed_examples,
    )
    assert "unknown command /stats" in result.stderr
    assert "turns:" not in result.stdout


async def test_retry_resends_what_the_user_typed_not_the_transformed_text(
    make: Make, server: LocalServer, tmp_path: Path
) -> None:
    plugin = tmp_path / "bang.py"
    plugin.write_text(
        "from unith_shell import hookimpl\n\n\n"
        "@hookimpl\ndef before_send(message):\n    message.text += '!'\n",
        encoding="utf-8",
    )
    server.set_fault("nlp-exception")
    h = await make(plugins=(str(plugin),))
    turn = await h.say("hi")
    assert not turn.ok and turn.prompt == "hi!" and turn.input == "hi"
    await h.run("/retry")
    await h.wait_for(lambda: len(h.sent_texts()) == 2)
    assert h.sent_texts() == ["hi!", "hi!"]  # the plugin ran once on each, not twice
