"""The plugin manager: loading (bundled, entry points, local files) and isolated hook calls.

Load order: bundled plugins; entry points in group ``unith_shell``, each loaded on its own;
every ``*.py`` in ``<config dir>/plugins/`` and in each ``--plugins-dir`` (only from a folder
and a file owned by the user or root that group and others cannot write); each ``--plugin``.
``UNITH_SHELL_PLUGINS`` (comma-separated names) is an allowlist for the discovered ones
(entry points and plugin folders); set but empty means bundled only. ``--no-plugins`` loads
bundled plugins only.

Hooks are called one implementation at a time (in pluggy's order), so that one broken
plugin is reported and disabled for that hook while the others keep working.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from unith_shell import hookspecs

BUNDLED = (
    "unith_shell.builtins.core",
    "unith_shell.builtins.plugins_cmd",
    "unith_shell.builtins.head",
    "unith_shell.builtins.video",
    "unith_shell.builtins.log",
)
ENTRY_POINT_GROUP = "unith_shell"
HOOK_NAMES = tuple(
    name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "unith_shell_spec")
)


@dataclass(slots=True)
class PluginInfo:
    name: str
    source: str  # "bundled", "entry point", "local file", "command line"
    version: str = ""
    path: str = ""
    hooks: list[str] = field(default_factory=list)
    disabled_hooks: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "path": self.path,
            "hooks": list(self.hooks),
            "disabled_hooks": list(self.disabled_hooks),
        }


def allowlist(env: Mapping[str, str]) -> set[str] | None:
    """``UNITH_SHELL_PLUGINS`` as a set of names; ``None`` when unset (everything allowed)."""
    raw = env.get("UNITH_SHELL_PLUGINS")
    return None if raw is None else {n.strip() for n in raw.split(",") if n.strip()}


class PluginError(Exception):
    """A plugin failed in strict mode."""


Notify = Callable[[str], None]


class Plugins:
    """One pluggy PluginManager plus what unith-shell adds: sources, isolation, tracing."""

    def __init__(
        self,
        *,
        strict: bool = False,
        trace: bool = False,
        hook_timeout: float = 5.0,
        notify: Notify | None = None,
    ) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.strict = strict
        self.trace = trace
        self.hook_timeout = hook_timeout
        self.notify: Notify = notify or (lambda text: print(text, file=sys.stderr))
        self.infos: dict[str, PluginInfo] = {}
        self.load_errors: list[str] = []
        self._impls: dict[str, list[pluggy.HookImpl]] = {}
        #: Hooks with at least one enabled implementation. The shell tests membership before
        #: every call, so a hook nobody implements costs one set lookup on the message path.
        self.active: frozenset[str] = frozenset()
        self._disabled: set[tuple[str, str]] = set()

    # ---- loading -----------------------------------------------------------------------------

    def load_all(
        self,
        *,
        env: Mapping[str, str],
        plugins_dirs: Iterable[Path] = (),
        extra: Iterable[str] = (),
        no_plugins: bool = False,
    ) -> None:
        for module_name in BUNDLED:
            self._register_module(
                importlib.import_module(module_name), module_name.rsplit(".")[-1], "bundled"
            )
        if no_plugins:
            return
        allow = allowlist(env)
        self.load_entry_points(allow)
        for folder in plugins_dirs:
            self.load_folder(folder, allow)
        for spec in extra:
            self.load_spec(spec)

    def load_entry_points(self, allow: set[str] | None) -> None:
        if allow is not None and not allow:
            return  # nothing may load: skip the scan of every installed distribution (~10 ms)
        # Imported here: importlib.metadata pulls in email, zipfile, csv (~1 MiB, ~5 ms).
        from importlib import metadata

        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if allow is not None and ep.name not in allow:
                continue
            if ep.name in self.infos:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # one broken plugin must not stop the shell
                self._load_failed(ep.name, exc)
                continue
            version = ep.dist.version if ep.dist is not None else ""
            self._register_module(plugin, ep.name, "entry point", version=version)

    def load_folder(self, folder: Path, allow: set[str] | None) -> None:
        """Load every ``*.py`` of ``folder``, if the folder and the file are trusted.

        Trusted as OpenSSH's StrictModes has it: owned by the current user or root, and not
        writable by group or others (:func:`unith_shell.config.trust_problem`). Anything
        else is skipped with one line naming the path and the fix; strict mode raises.
        """
        if not folder.is_dir():
            return
        if not self._trusted(folder, "plugins folder"):
            return
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("_"):
                continue
            if allow is not None and path.stem not in allow:
                continue
            if not self._trusted(path, f"plugin {path.stem!r}"):
                continue
            self.load_file(path, source="local file")

    def _trusted(self, path: Path, what: str) -> bool:
        from unith_shell.config import trust_problem

        try:
            problem = trust_problem(path)
        except OSError as exc:
            problem = f"{path}: cannot check: {exc.strerror or exc}"
        if problem is None:
            return True
        line = f"{what} skipped: {problem}"
        self.load_errors.append(line)
        if self.strict:
            raise PluginError(line)
        self.notify(line)
        return False

    def load_file(self, path: Path, source: str = "local file") -> bool:
        name = path.stem
        if name in self.infos:
            self.notify(f"plugin {name!r} from {path} skipped: the name is taken")
            return False
        module_name = f"unith_shell_plugins.{name}"
        try:
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot import {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        except BaseException as exc:  # SyntaxError, SystemExit, anything: isolate it
            sys.modules.pop(module_name, None)
            if isinstance(exc, KeyboardInterrupt):
                raise
            self._load_failed(name, exc, path=str(path))
            return False
        return self._register_module(module, name, source, path=str(path))

    def load_spec(self, spec: str) -> bool:
        """``--plugin MODULE_OR_PATH``."""
        path = Path(spec).expanduser()
        if spec.endswith(".py") or path.is_file():
            return self.load_file(path, source="command line")
        try:
            module = importlib.import_module(spec)
        except Exception as exc:
            self._load_failed(spec, exc)
            return False
        return self._register_module(module, spec.rsplit(".", 1)[-1], "command line")

    def _load_failed(self, name: str, exc: BaseException, path: str = "") -> None:
        where = f" ({path})" if path else ""
        line = f"plugin {name!r}{where} failed to load: {_one_line(exc)}"
        self.load_errors.append(line)
        if self.strict:
            raise PluginError(line) from exc
        self.notify(line)

    def _register_module(
        self, plugin: object, name: str, source: str, *, version: str = "", path: str = ""
    ) -> bool:
        try:
            self.pm.register(plugin, name=name)
            unknown = [
                impl.function.__name__
                for impls in self.pm.get_hookcallers(plugin) or []
                for impl in ([] if impls.has_spec() else impls.get_hookimpls())
            ]
            if unknown:
                self.pm.unregister(plugin)
                raise pluggy.PluginValidationError(
                    plugin, f"unknown hook(s): {', '.join(sorted(set(unknown)))}"
                )
        except Exception as exc:
            self._load_failed(name, exc, path=path)
            return False
        if not version and isinstance(plugin, ModuleType):
            version = str(getattr(plugin, "__version__", ""))
        hooks = sorted(
            caller.name for caller in self.pm.get_hookcallers(plugin) or [] if caller.has_spec()
        )
        self.infos[name] = PluginInfo(name, source, version, path, hooks)
        self._changed()
        return True

    def add(self, plugin: object, name: str, source: str = "added at run time") -> bool:
        """Register an object with ``@hookimpl`` methods while the shell runs (``/log on``).

        Its hooks take effect for the next call; :meth:`unregister` removes it again, so a
        hook that only such an object implements costs nothing once it is gone.
        """
        return self._register_module(plugin, name, source)

    def unregister(self, name: str) -> None:
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin, name=name)
        self.infos.pop(name, None)
        self._disabled = {d for d in self._disabled if d[0] != name}
        self._changed()

    # ---- calling -----------------------------------------------------------------------------

    def impls(self, hook: str) -> list[pluggy.HookImpl]:
        """Implementations of ``hook`` in call order, without disabled ones (cached)."""
        cached = self._impls.get(hook)
        if cached is None:
            caller = getattr(self.pm.hook, hook)
            # pluggy calls the last registered first, tryfirst before, trylast after.
            cached = [
                impl
                for impl in reversed(caller.get_hookimpls())
                if (impl.plugin_name, hook) not in self._disabled
            ]
            self._impls[hook] = cached
        return cached

    def has(self, hook: str) -> bool:
        return hook in self.active

    def _changed(self) -> None:
        self._impls.clear()
        self.active = frozenset(name for name in HOOK_NAMES if self.impls(name))

    async def call(
        self,
        hook: str,
        kwargs: dict[str, Any],
        *,
        stop: Callable[[], bool] | None = None,
        only: str | None = None,
    ) -> list[Any]:
        """Call every implementation of ``hook`` in order, isolated; return their results.

        ``stop`` is checked after each implementation (``before_send`` stops on a cancel).
        ``only`` limits the call to one plugin (used for late ``shell_start``).
        """
        results: list[Any] = []
        # Only before_send's message can be half-changed by a failing hook; keep the
        # per-implementation cost of the other hooks to the call itself.
        message = kwargs.get("message")
        trace = self.trace
        snapshot: dict[str, Any] = {}
        started = 0.0
        for impl in self.impls(hook):
            if only is not None and impl.plugin_name != only:
                continue
            if message is not None:
                snapshot = _snapshot(kwargs)
            if trace:
                started = time.perf_counter()
            try:
                result = impl.function(*[kwargs[arg] for arg in impl.argnames])
                if result is not None and inspect.isawaitable(result):
                    result = await asyncio.wait_for(_awaitable(result), self.hook_timeout)
            except asyncio.CancelledError:
                raise
            except TimeoutError as exc:
                self._hook_failed(impl.plugin_name, hook, exc, kwargs, snapshot, timeout=True)
                continue
            except Exception as exc:
                self._hook_failed(impl.plugin_name, hook, exc, kwargs, snapshot)
                continue
            if trace:
                ms = (time.perf_counter() - started) * 1000
                self.notify(f"trace: {hook} -> {impl.plugin_name} ({ms:.2f} ms) = {result!r:.60}")
            results.append(result)
            if stop is not None and stop():
                break
        return results

    def _hook_failed(
        self,
        plugin: str,
        hook: str,
        exc: BaseException,
        kwargs: dict[str, Any],
        snapshot: dict[str, Any],
        timeout: bool = False,
    ) -> None:
        _restore(kwargs, snapshot)
        why = f"did not finish within {self.hook_timeout:g} s" if timeout else _one_line(exc)
        if self.strict:
            raise PluginError(f"plugin {plugin!r} failed in {hook}: {why}") from exc
        self._disabled.add((plugin, hook))
        self._changed()
        info = self.infos.get(plugin)
        if info is not None and hook not in info.disabled_hooks:
            info.disabled_hooks.append(hook)
        self.notify(f"plugin {plugin!r} failed in {hook}: {why}; {hook} disabled for it")


async def _awaitable(value: Any) -> Any:
    return await value


def _snapshot(kwargs: dict[str, Any]) -> dict[str, Any]:
    """What a failing hook may have half-changed: ``message.text`` for ``before_send``."""
    message = kwargs.get("message")
    if message is not None and hasattr(message, "text"):
        return {"text": message.text, "cancelled": getattr(message, "cancelled", None)}
    return {}


def _restore(kwargs: dict[str, Any], snapshot: dict[str, Any]) -> None:
    message = kwargs.get("message")
    if message is not None and snapshot:
        message.text = snapshot["text"]
        if hasattr(message, "cancelled"):
            message.cancelled = snapshot["cancelled"]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
