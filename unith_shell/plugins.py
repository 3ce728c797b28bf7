"""The plugin manager: loading (bundled, entry points, local files) and isolated hook calls.

Load order: bundled plugins; entry points in group ``unith_shell``, each loaded on its own;
every ``*.py`` in ``<config dir>/plugins/`` and in each ``--plugins-dir`` (only from a folder
and a file owned by the user or root that group and others cannot write); each ``--plugin``.
``UNITH_SHELL_PLUGINS`` (comma-separated names) is an allowlist for the discovered ones
(entry points and plugin folders); set but empty means bundled only. ``--no-plugins`` loads
bundled plugins only.

Hooks are called through pluggy's own loop, so its semantics hold (order, tryfirst/trylast,
new-style ``wrapper=True`` on the hooks in :data:`hookspecs.WRAPPABLE`, ``optionalhook``,
firstresult); what the shell does not support is refused at registration in one line. Each
implementation is guarded, so one broken plugin is reported and disabled for that hook while
the others keep working.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace
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
        context: Callable[[str], Any] | None = None,
    ) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.strict = strict
        #: (implementation, untraced guard, traced guard) of every guarded implementation:
        #: tracing swaps the guards, so that the untraced one pays nothing for it.
        self._guards: list[tuple[pluggy.HookImpl, Callable[..., Any], Callable[..., Any]]] = []
        self._trace = trace
        self.hook_timeout = hook_timeout
        self.notify: Notify = notify or (lambda text: print(text, file=sys.stderr))
        #: The plugin's own ``ctx`` for an implementation that asks for it (the shell's).
        self.context: Callable[[str], Any] = context or (lambda name: None)
        self.infos: dict[str, PluginInfo] = {}
        self.load_errors: list[str] = []
        #: ``hook.NAME``: ``None`` while nobody implements hook NAME (the one check the shell
        #: makes on the message path), else ``dispatch(**kwargs)``, which calls it and returns
        #: an awaitable, or ``None`` when there is nothing to await. Rebuilt when a plugin is
        #: registered or removed.
        self.hook = SimpleNamespace()
        #: Hooks with at least one implementation.
        self.active: frozenset[str] = frozenset()
        self._changed()

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
        writable by group or others (:func:`unith_shell.files.trust_problem`). Anything
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
        from unith_shell.files import trust_problem

        try:
            problem = trust_problem(path)
        except OSError as exc:
            problem = f"{path}: cannot check: {exc.strerror or exc}"
        if problem is None:
            return True
        self._load_problem(f"{what} skipped: {problem}")
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
        self._load_problem(f"plugin {name!r}{where} failed to load: {_one_line(exc)}", exc)

    def _load_problem(self, line: str, cause: BaseException | None = None) -> None:
        """A plugin that is not loaded: one line, kept for ``/plugins``; raised when strict."""
        self.load_errors.append(line)
        if self.strict:
            raise PluginError(line) from cause
        self.notify(line)

    def _register_module(
        self, plugin: object, name: str, source: str, *, version: str = "", path: str = ""
    ) -> bool:
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:
            self._load_failed(name, exc, path=path)
            return False
        refusal = self._refusal(plugin)
        if refusal is not None:
            self.pm.unregister(plugin)
            self._load_problem(
                f"plugin {name!r}{f' ({path})' if path else ''} failed to load: {refusal}"
            )
            return False
        if not version and isinstance(plugin, ModuleType):
            version = str(getattr(plugin, "__version__", ""))
        hooks = []
        for caller in self.pm.get_hookcallers(plugin) or []:
            if not caller.has_spec():
                continue  # an optionalhook for a hook this shell does not have: never called
            hooks.append(caller.name)
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin:
                    self._guard(impl, caller.name)
        self.infos[name] = PluginInfo(name, source, version, path, sorted(hooks))
        self._changed()
        return True

    def _refusal(self, plugin: object) -> str | None:
        """Why the shell cannot honour a registered plugin's markers, in a few words."""
        for caller in self.pm.get_hookcallers(plugin) or []:
            for impl in caller.get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                hook = caller.name
                if not caller.has_spec():
                    if not impl.optionalhook:
                        return f"{hook}: no such hook (mark it optionalhook=True if optional)"
                elif impl.hookwrapper:
                    return f"{hook}: old-style hookwrapper=True is not supported; use wrapper=True"
                elif impl.wrapper and hook not in hookspecs.WRAPPABLE:
                    allowed = ", ".join(sorted(hookspecs.WRAPPABLE))
                    return f"{hook}: wrapper=True is not supported here (only on {allowed})"
        return None

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
        self._guards = [g for g in self._guards if g[0].plugin_name != name]
        self._changed()

    # ---- calling -----------------------------------------------------------------------------
    #
    # Calls go through pluggy's own loop (``HookCaller.__call__``), so ordering, tryfirst and
    # trylast, new-style wrappers and firstresult are pluggy's. Isolation lives in one place:
    # each implementation's function is replaced at registration by a guard
    # (:meth:`_guard`) that reports and disables a failing one, and hands an awaitable result
    # back as a deferred coroutine; the dispatcher awaits those in order after pluggy's
    # loop (as datasette does). No awaitable, no await.

    def _changed(self) -> None:
        dispatch: dict[str, HookDispatch | None] = {}
        for name in HOOK_NAMES:
            caller = getattr(self.pm.hook, name)
            dispatch[name] = self._dispatcher(caller) if caller.get_hookimpls() else None
        self.hook = SimpleNamespace(**dispatch)
        self.active = frozenset(name for name, d in dispatch.items() if d is not None)

    @property
    def trace(self) -> bool:
        """One line per implementation called (``/plugins trace on``)."""
        return self._trace

    @trace.setter
    def trace(self, on: bool) -> None:
        self._trace = on
        for impl, fast, traced in self._guards:
            if impl.function in (fast, traced):  # not disabled meanwhile
                setattr(impl, "function", traced if on else fast)  # noqa: B010

    def has(self, hook: str) -> bool:
        """True if at least one plugin implements ``hook``."""
        return hook in self.active

    def _dispatcher(self, caller: pluggy.HookCaller) -> HookDispatch:
        def dispatch(**kwargs: Any) -> Awaitable[None] | None:
            deferred = _deferred(caller, kwargs)
            return _await_all(deferred) if deferred else None

        return dispatch

    def _caller(self, hook: str, only: str | None) -> pluggy.HookCaller | None:
        """Hook ``hook`` of every plugin, or of plugin ``only``; ``None`` if nobody has it."""
        caller: pluggy.HookCaller = getattr(self.pm.hook, hook)
        if only is not None:
            plugin = self.pm.get_plugin(only)
            if plugin is None:
                return None
            others = [p for p in self.pm.get_plugins() if p is not plugin]
            caller = self.pm.subset_hook_caller(hook, remove_plugins=others)
        return caller if caller.get_hookimpls() else None

    async def call(self, hook: str, *, only: str | None = None, **kwargs: Any) -> None:
        """Call ``hook`` (in pluggy's order, isolated) and await what it returns.

        ``only`` limits the call to one plugin (a plugin loaded late gets ``shell_start``).
        """
        caller = self._caller(hook, only)
        if caller is not None:
            await _await_all(_deferred(caller, kwargs))

    def call_now(self, hook: str, *, only: str | None = None, **kwargs: Any) -> None:
        """Like :meth:`call`, for hooks that run while plugins load (``register_commands``,
        ``register_assertions``): an awaitable result is closed unawaited, in one line."""
        caller = self._caller(hook, only)
        if caller is None:
            return
        for item in _deferred(caller, kwargs):
            _close(item.awaitable)
            plugin = item.impl.plugin_name
            self.notify(
                f"plugin {plugin!r}: {hook} must be a plain function; its awaitable was discarded"
            )

    def _guard(self, impl: pluggy.HookImpl, hook: str) -> None:
        """Replace ``impl.function`` by an isolating guard (see the class comment)."""
        function = impl.function
        plugin = impl.plugin_name
        names = tuple(impl.argnames)
        ctx_at = names.index("ctx") if "ctx" in names else -1
        if impl.wrapper:
            setattr(impl, "function", self._guard_wrapper(impl, hook, function, ctx_at))  # noqa: B010
            return
        rule = hookspecs.IN_PLACE.get(hook)
        target_at = -1
        added = False
        if rule is not None:
            if rule.arg in names:
                target_at = names.index(rule.arg)
            else:  # the guard needs the argument even if the implementation does not
                setattr(impl, "argnames", (*names, rule.arg))  # noqa: B010 (Final in pluggy)
                target_at, added = len(names), True
        manager = self

        def fail(exc: BaseException, target: Any, snapshot: Any, timeout: bool = False) -> None:
            if rule is not None and target is not None:
                rule.restore(target, snapshot)
            manager._hook_failed(impl, hook, exc, timeout=timeout)

        simple = ctx_at < 0 and rule is None and not getattr(impl, "kwargnames", ())

        if simple:
            guarded_simple = _fast_guard(
                function,
                len(names),
                lambda exc: fail(exc, None, None),
                lambda result: _Deferred(manager, impl, hook, result, None, None),
            )
            self._install(impl, guarded_simple, self._traced(impl, hook, guarded_simple))
            return

        def guarded(*args: Any, **kwargs: Any) -> Any:
            target = args[target_at] if target_at >= 0 else None
            if rule is not None and rule.stop(target):
                return None  # an earlier implementation ended it (before_send: cancelled)
            if added or ctx_at >= 0:
                args_list = list(args[:-1] if added else args)
                if ctx_at >= 0:
                    args_list[ctx_at] = manager.context(plugin)
                args = tuple(args_list)
            snapshot = rule.snapshot(target) if rule is not None else None
            try:
                result = function(*args, **kwargs)
            except Exception as exc:
                fail(exc, target, snapshot)
                return None
            if result is not None and inspect.isawaitable(result):
                return _Deferred(manager, impl, hook, result, target, rule)
            return result

        self._install(impl, guarded, self._traced(impl, hook, guarded))

    def _install(
        self, impl: pluggy.HookImpl, fast: Callable[..., Any], traced: Callable[..., Any]
    ) -> None:
        self._guards.append((impl, fast, traced))
        setattr(impl, "function", traced if self._trace else fast)  # noqa: B010

    def _traced(
        self, impl: pluggy.HookImpl, hook: str, guarded: Callable[..., Any]
    ) -> Callable[..., Any]:
        """``guarded`` plus one trace line per call (an awaitable's when it is done)."""

        def traced(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            result = guarded(*args, **kwargs)
            if type(result) is not _Deferred:  # an awaitable is traced when it is done
                self._trace_line(hook, impl.plugin_name, started, result)
            return result

        return traced

    def _guard_wrapper(
        self, impl: pluggy.HookImpl, hook: str, function: Callable[..., Any], ctx_at: int
    ) -> Callable[..., Generator[None, Any, Any]]:
        """A new-style wrapper, isolated: a failing one steps aside (the inner call runs)."""
        manager = self

        def guarded_wrapper(*args: Any, **kwargs: Any) -> Generator[None, Any, Any]:
            if ctx_at >= 0:
                args = (*args[:ctx_at], manager.context(impl.plugin_name), *args[ctx_at + 1 :])
            try:
                gen = function(*args, **kwargs)
                next(gen)
            except Exception as exc:
                if isinstance(exc, StopIteration):
                    exc = RuntimeError("the wrapper did not yield")
                manager._hook_failed(impl, hook, exc)
                return (yield)
            try:
                result = yield
            except Exception as inner:
                return gen.throw(inner)  # StopIteration's value is the new result
            try:
                gen.send(result)
            except StopIteration as stop:
                return stop.value
            except Exception as exc:
                manager._hook_failed(impl, hook, exc)
                return result
            gen.close()
            manager._hook_failed(impl, hook, RuntimeError("the wrapper yielded twice"))
            return result

        return guarded_wrapper

    async def _finish(
        self,
        impl: pluggy.HookImpl,
        hook: str,
        awaitable: Awaitable[Any],
        target: Any,
        rule: hookspecs.InPlace | None,
    ) -> Any:
        """Await one implementation's awaitable, within the time limit, isolated."""
        if rule is not None and rule.stop(target):
            _close(awaitable)
            return None
        snapshot = rule.snapshot(target) if rule is not None else None
        started = time.perf_counter()
        try:
            result = await asyncio.wait_for(_awaitable(awaitable), self.hook_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if rule is not None and snapshot is not None:
                rule.restore(target, snapshot)
            self._hook_failed(impl, hook, exc, timeout=isinstance(exc, TimeoutError))
            return None
        if self._trace:
            self._trace_line(hook, impl.plugin_name, started, result)
        return result

    def _trace_line(self, hook: str, plugin: str, started: float, result: Any) -> None:
        ms = (time.perf_counter() - started) * 1000
        self.notify(f"trace: {hook} -> {plugin} ({ms:.2f} ms) = {result!r:.60}")

    def _hook_failed(
        self, impl: pluggy.HookImpl, hook: str, exc: BaseException, timeout: bool = False
    ) -> None:
        plugin = impl.plugin_name
        why = f"did not finish within {self.hook_timeout:g} s" if timeout else _one_line(exc)
        if self.strict:
            raise PluginError(f"plugin {plugin!r} failed in {hook}: {why}") from exc
        # Disabled for this hook: the implementation becomes a no-op (a wrapper steps aside).
        setattr(impl, "function", _transparent if impl.wrapper else _nothing)  # noqa: B010
        info = self.infos.get(plugin)
        if info is not None and hook not in info.disabled_hooks:
            info.disabled_hooks.append(hook)
        self.notify(f"plugin {plugin!r} failed in {hook}: {why}; {hook} disabled for it")


HookDispatch = Callable[..., "Awaitable[None] | None"]


#: The guard of a plain implementation, compiled for its number of arguments: on the message
#: path a fixed signature costs less than ``*args`` (see benchmarks/hooks.py).
_FAST_GUARD = """
def guarded({params}):
    try:
        result = function({params})
    except Exception as exc:
        fail(exc)
        return None
    if result is None:
        return None
    if isawaitable(result):
        return defer(result)
    return result
"""


_GUARD_CODE: dict[int, Any] = {}


def _fast_guard(
    function: Callable[..., Any],
    arity: int,
    fail: Callable[[Exception], None],
    defer: Callable[[Any], Any],
) -> Callable[..., Any]:
    code = _GUARD_CODE.get(arity)
    if code is None:  # compiled once per number of arguments
        params = ", ".join(f"a{i}" for i in range(arity))
        code = _GUARD_CODE[arity] = compile(
            _FAST_GUARD.format(params=params), "<unith_shell guard>", "exec"
        )
    namespace: dict[str, Any] = {
        "function": function,
        "fail": fail,
        "defer": defer,
        "isawaitable": inspect.isawaitable,
    }
    exec(code, namespace)
    guarded: Callable[..., Any] = namespace["guarded"]
    return guarded


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


def _transparent(*args: Any, **kwargs: Any) -> Generator[None, Any, Any]:
    return (yield)


class _Deferred:
    """An implementation's awaitable, returned by its guard; awaited (isolated, with the
    time limit) after pluggy's loop."""

    __slots__ = ("awaitable", "hook", "impl", "manager", "rule", "target")

    def __init__(
        self,
        manager: Plugins,
        impl: pluggy.HookImpl,
        hook: str,
        awaitable: Awaitable[Any],
        target: Any,
        rule: hookspecs.InPlace | None,
    ) -> None:
        self.manager = manager
        self.impl = impl
        self.hook = hook
        self.awaitable = awaitable
        self.target = target
        self.rule = rule

    def run(self) -> Coroutine[Any, Any, Any]:
        return self.manager._finish(self.impl, self.hook, self.awaitable, self.target, self.rule)


def _deferred(caller: pluggy.HookCaller, kwargs: dict[str, Any]) -> list[_Deferred]:
    """Call the hook through pluggy; return the awaitables its implementations handed back."""
    kwargs["ctx"] = None  # each implementation that asks for ctx gets its own
    results = caller(**kwargs)
    if not results:
        return []
    if type(results) is not list:  # a firstresult hook
        results = [results]
    return [r for r in results if type(r) is _Deferred]


async def _await_all(deferred: list[_Deferred]) -> None:
    for index, item in enumerate(deferred):
        try:
            await item.run()
        except BaseException:
            for rest in deferred[index + 1 :]:
                _close(rest.awaitable)
            raise


def _close(awaitable: Awaitable[Any]) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()


async def _awaitable(value: Awaitable[Any]) -> Any:
    return await value


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
