"""Finds and loads plugins: simbench's own entry points first, then everyone else's.

Each entry point of the ``simbench`` group is imported and its hooks are called through pluggy
inside its own guard: a plugin that fails to import, whose hook raises (or calls ``sys.exit``),
that returns something that is not a measure or task class, or that claims a name another
plugin already registered, fails *as a whole*: none of its items are registered, it becomes a
warning and a ``FAILED`` row in ``simbench plugins``, and every other plugin still loads.

Two environment variables choose what loads; each takes comma-separated selectors, a selector
being an entry-point name (``cka``), a distribution name (``simbench-example-plugin``) or one
plugin's label ``DIST:ENTRY_POINT`` (``simbench:cka``):

- ``SIMBENCH_PLUGINS``: load only the plugins selected (as datasette's variable of that name);
- ``SIMBENCH_DISABLE``: load every plugin except those selected (e.g. one of two plugins that
  claim the same measure name).

Tasks are plugins too (the built-in ones are the ``tasks`` entry point), so these variables mean
the same for tasks as for measures, and every task lookup by name goes through
:meth:`Registry.task` / :meth:`Registry.make_task`.
"""

from __future__ import annotations

import dataclasses
import os
import reprlib
import time
import warnings
from collections.abc import Iterable, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pluggy

from simbench import hookspecs
from simbench.access import ACCESSIBLE, FAMILIES, RECORDING
from simbench.errors import (
    AccessError,
    PluginError,
    PluginWarning,
    RegistryError,
    SimbenchError,
    TaskError,
    did_you_mean,
)
from simbench.markers import PROJECT
from simbench.measure import Measure

if TYPE_CHECKING:
    from simbench.result import Score
    from simbench.tasks.base import Task

GROUP = PROJECT
OWN_DIST = "simbench"
ONLY_VAR = "SIMBENCH_PLUGINS"
DISABLE_VAR = "SIMBENCH_DISABLE"

#: exceptions a plugin must never turn into the end of a simbench command: everything except
#: the user's Ctrl-C and generator shutdown (``SystemExit`` included)
NOT_CONTAINED = (KeyboardInterrupt, GeneratorExit)

T = TypeVar("T")


@dataclasses.dataclass
class PluginInfo:
    """One plugin as loaded (or not): where it came from and what it registered."""

    name: str
    dist: str
    version: str
    module: str
    measures: list[str] = dataclasses.field(default_factory=list)
    tasks: list[str] = dataclasses.field(default_factory=list)
    error: str | None = None

    @property
    def label(self) -> str:
        return f"{self.dist}:{self.name}"

    def selected_by(self, selectors: Iterable[str]) -> bool:
        """True when a selector names this plugin (entry point, distribution or label)."""
        return bool({self.name, self.dist, self.label} & set(selectors))


@dataclasses.dataclass(frozen=True)
class Registration(Generic[T]):
    """One registered item (a measure, or a task class) and the plugin that provided it."""

    name: str
    item: T
    plugin: PluginInfo


class Registry:
    """Every loaded measure and task, and which plugin provided it."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self._measures: dict[str, Registration[Measure]] = {}
        self._tasks: dict[str, Registration[type[Task]]] = {}
        self.plugins: list[PluginInfo] = []

    # ---- what is registered -------------------------------------------------------------
    @property
    def measures(self) -> dict[str, Measure]:
        """Name -> measure, in load order (a fresh dict: changing it changes nothing)."""
        return {name: r.item for name, r in self._measures.items()}

    @property
    def tasks(self) -> dict[str, type[Task]]:
        """Name -> task class, in load order (a fresh dict: changing it changes nothing)."""
        return {name: r.item for name, r in self._tasks.items()}

    # ---- loading ------------------------------------------------------------------------
    def load_entry_points(self, only: Iterable[str] | None = None,
                          disable: Iterable[str] = ()) -> None:
        """Load every ``simbench`` entry point (own distribution first), each in isolation.

        ``only``: selectors of the plugins to load (``None``: all); ``disable``: selectors of
        plugins to skip. See the module docstring for what a selector is.
        """
        eps = sorted(entry_points(group=GROUP),
                     key=lambda ep: (_dist_name(ep) != OWN_DIST, _dist_name(ep), ep.name))
        wanted = None if only is None else _selectors(only)
        skipped = _selectors(disable)
        for ep in eps:
            info = PluginInfo(ep.name, _dist_name(ep),
                              ep.dist.version if ep.dist is not None else "?", ep.value)
            if (wanted is not None and not info.selected_by(wanted)) or info.selected_by(skipped):
                continue
            try:
                module = ep.load()
            except NOT_CONTAINED:
                raise
            except BaseException as exc:  # a broken third-party plugin must not break simbench
                what = _describe(exc) if isinstance(exc, SystemExit) else _exc_text(exc)
                self._fail(info, f"import failed: {what}")
                continue
            self.add_plugin(module, info)

    def add_plugin(self, plugin: Any, info: PluginInfo) -> PluginInfo:
        """Register one plugin object and its measures and tasks: all of them, or none.

        Its hooks are called for this plugin alone and every item is checked (type, metadata,
        unique names) before any is inserted; a failure leaves the registry as it was and marks
        ``info`` failed (a :class:`PluginWarning`)."""
        self.plugins.append(info)
        stage, registered = "registration failed:", False
        try:
            self.pm.register(plugin, name=info.label)
            registered = True
            self.pm.check_pending()
            _refuse_unmarked_hooks(plugin)
            stage = "hook"
            measures = self._call_hook("simbench_measures", plugin)
            tasks = self._call_hook("simbench_tasks", plugin)
            stage = "checking its items"
            for m in measures:
                _check_measure(m, info)
            for t in tasks:
                _check_task(t, info)
            self._check_names("measure", [m.name for m in measures], self._measures, info)
            self._check_names("task", [t.name for t in tasks], self._tasks, info)
        except BaseException as exc:
            if registered:  # never unregister another plugin that holds the same label
                self.pm.unregister(name=info.label)
            if isinstance(exc, NOT_CONTAINED):
                raise
            if isinstance(exc, SimbenchError):
                text = str(exc).replace("\n  fix: ", "; fix: ")
            elif stage.endswith(":") and not isinstance(exc, SystemExit):
                text = f"{stage} {_exc_text(exc)}"
            else:
                text = f"{stage} {_describe(exc)}"
            self._fail(info, text)
            return info
        for m in measures:
            self._measures[m.name] = Registration(m.name, m, info)
            info.measures.append(m.name)
        for t in tasks:
            self._tasks[t.name] = Registration(t.name, t, info)
            info.tasks.append(t.name)
        return info

    def _call_hook(self, hook: str, plugin: object) -> list[Any]:
        """``hook`` of ``plugin`` alone, called through pluggy; its lists joined into one."""
        others = [p for p in self.pm.get_plugins() if p is not plugin]
        caller = self.pm.subset_hook_caller(hook, remove_plugins=others)
        out: list[Any] = []
        for result in caller():
            if not isinstance(result, (list, tuple)):
                raise PluginError(f"plugin hook {hook} returned {_short(result)}, not a list")
            out.extend(result)
        return out

    def _check_names(self, kind: str, names: Sequence[str], table: dict[str, Registration[Any]],
                     info: PluginInfo) -> None:
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise RegistryError(f"plugin '{info.label}' registers the {kind} name "
                                    f"'{name}' twice", fix="give each item its own name")
            seen.add(name)
            if name in table:
                other = table[name].plugin
                raise RegistryError(
                    f"duplicate {kind} name '{name}': already provided by plugin "
                    f"'{other.label}', so plugin '{info.label}' was not loaded",
                    fix=f"uninstall one of the two distributions (pip uninstall {info.dist}), "
                    f"or skip one plugin: {DISABLE_VAR}={info.label} keeps "
                    f"'{other.label}', {DISABLE_VAR}={other.label} keeps '{info.label}'",
                )

    def _fail(self, info: PluginInfo, error: str) -> None:
        info.error = " ".join(error.split())
        if info not in self.plugins:
            self.plugins.append(info)
        warnings.warn(f"simbench plugin '{info.label}' failed to load: {info.error}",
                      PluginWarning, stacklevel=3)

    # ---- lookups ------------------------------------------------------------------------
    def measure(self, name: str) -> Measure:
        """The measure called ``name``, or the one a community id names (see
        :mod:`simbench.aliases`: its parameters' defaults are the id's); an unknown name
        suggests the closest known one."""
        if name in self._measures:
            return self._measures[name].item
        from simbench.aliases import AliasedMeasure, resolve, unknown_measure

        alias = resolve(name)
        if alias is None or alias.measure not in self._measures:
            raise unknown_measure(name, self._measures, fix_suffix=_with_filter_note)
        return AliasedMeasure(alias, self._measures[alias.measure].item)

    def registered(self, name: str) -> Registration[Measure]:
        """The measure registered as exactly ``name`` (a canonical name: no community id is
        resolved), with its plugin; unknown: its plugin did not load in this process."""
        if name not in self._measures:
            raise RegistryError(f"measure '{name}' is not registered in this process",
                                field="measure",
                                fix=_with_filter_note("install its plugin where the jobs run "
                                                      "(see `simbench plugins`)"))
        return self._measures[name]

    def plugin_of(self, measure: str) -> PluginInfo:
        """The plugin that provided the measure called ``measure`` (or a community id's)."""
        return self._measures[self.measure(measure).name].plugin

    def task(self, name: str) -> type[Task]:
        """The task class called ``name``; an unknown name lists the known ones."""
        if name not in self._tasks:
            raise TaskError(f"unknown task '{name}'", field="task",
                            fix=_with_filter_note(did_you_mean(name, self._tasks, sort=False,
                                                               command="simbench tasks")))
        return self._tasks[name].item

    def task_plugin_of(self, task: str) -> PluginInfo:
        """The plugin that provided the task called ``task``."""
        self.task(task)
        return self._tasks[task].plugin

    def make_task(self, task: str | Task | type[Task]) -> Task:
        """A task instance: ``task`` itself when it is one, else its class instantiated (a
        name is looked up with :meth:`task`)."""
        from simbench.tasks.base import Task

        if isinstance(task, Task):
            return task
        if isinstance(task, type) and issubclass(task, Task):
            return task()
        if not isinstance(task, str):
            raise TaskError(f"cannot use {_short(task)} as a task", field="task",
                            fix="pass a task name (see `simbench tasks`) or a Task")
        return self.task(task)()

    def check_access(self, measure: Measure, systems: Sequence[Any]) -> None:
        """Refuse, with a message a user can act on, a measure asked of systems it cannot use."""
        n = len(systems)
        hi = measure.max_systems
        if n < measure.min_systems or (hi is not None and n > hi):
            want = f"{measure.min_systems}" if hi == measure.min_systems else (
                f"{measure.min_systems} or more" if hi is None else f"{measure.min_systems} to {hi}")
            raise AccessError(f"measure '{measure.name}' takes {want} systems, got {n}",
                              field="systems")
        for i, system in enumerate(systems):
            need = measure.access_for(i)
            if need == ACCESSIBLE and system.access != ACCESSIBLE:
                alternatives = [r.item.name for r in self._measures.values()
                                if r.item.family == "causal" and RECORDING in r.item.access]
                hint = (f"'{alternatives[0]}' aligns a network with a recording-only system"
                        if alternatives else "use a correlative measure (cka, rsa)")
                raise AccessError(
                    f"measure '{measure.name}' must intervene on system {i + 1} "
                    f"('{system.system_id}'), which is a recording and cannot be run",
                    file=getattr(system, "path", None),
                    fix=f"pass a network (a zoo id or checkpoint) there; {hint}",
                )


def run_measure(measure: Measure, systems: Sequence[Any], *, site: str, task: str | None,
                seed: int, device: str, params: dict[str, Any]) -> Score:
    """Run ``measure`` (looked up already) on resolved ``systems`` under guard, with
    ``params`` resolved by :meth:`Measure.resolve_params`, and fill in the Score's provenance.

    The systems' number and access are checked; the systems' own tasks only when the measure
    needs one (a recording's task attr, e.g. Brain-Score's, need not be registered for a
    correlative measure). The measure gets the caller's task override only: systems trained
    on different tasks keep their own. Whatever the plugin does (raise, ``sys.exit``, return
    something that is not a ``Score``) comes back as a
    :class:`~simbench.errors.SimbenchError` naming the plugin; the thread settings are restored
    afterwards (:func:`simbench.runtime.restore_threads`).
    """
    from simbench import runtime
    from simbench.devices import resolve_device
    from simbench.result import Score, provenance

    reg = get_registry()
    plugin = reg.registered(measure.name).plugin
    reg.check_access(measure, systems)
    if measure.needs_task and task is None and not all(s.task for s in systems):
        raise SimbenchError(f"measure '{measure.name}' needs a task and a system names none",
                            field="task", fix="pass --task NAME (see `simbench tasks`)")
    if task is None and measure.needs_task:
        for s in systems:
            reg.task(str(s.task))
    what = f"measure '{measure.name}' (plugin '{plugin.label}')"
    fix = f"report it to the authors of '{plugin.dist}'"
    dev = resolve_device(device)
    start = time.perf_counter()
    try:
        result = measure.score(systems, site=site, task=task, seed=seed, device=dev, **params)
    except (SimbenchError, *NOT_CONTAINED):
        raise  # a SimbenchError already says what to do
    except BaseException as exc:  # sys.exit included
        raise PluginError(f"{what} {_describe(exc)}", site=site, fix=fix) from exc
    finally:
        runtime.restore_threads()  # a notebook's own torch work runs as before
    if not isinstance(result, Score):
        raise PluginError(f"{what} returned {type(result).__name__} "
                          f"{reprlib.repr(result)} instead of a simbench.Score",
                          site=site, fix=fix)
    if result.ci is not None and not result.has_interval:
        # (nan, nan), e.g. a bootstrap without resamples: say why instead of "[nan, nan]"
        result.ci = None
        result.attrs.setdefault("ci_note", "the measure gave no finite interval (no bootstrap "
                                "resamples, e.g. n_boot = 0, or too few stimuli)")
    tasks = sorted({str(s.task) for s in systems if s.task is not None})
    for key, value in {"params": params, "seed": seed,
                       "task": task or (",".join(tasks) if tasks else None),
                       "runtime_s": time.perf_counter() - start, "plugin": plugin.label,
                       **provenance(dev), **runtime.provenance()}.items():
        result.attrs.setdefault(key, value)  # what the measure set wins
    return result


def _describe(exc: BaseException) -> str:
    """``called sys.exit(7)`` for a ``SystemExit``, else ``raised TypeName: message``."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})"
    return f"raised {_exc_text(exc)}"


def _exc_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _short(obj: Any) -> str:
    """A type and a short repr, for messages about what a plugin returned."""
    return f"{type(obj).__name__} {reprlib.repr(obj)}"


def _refuse_unmarked_hooks(plugin: Any) -> None:
    """A hook-named function without ``@simbench.hookimpl`` would be ignored silently: refuse."""
    for hook in ("simbench_measures", "simbench_tasks"):
        impl = getattr(plugin, hook, None)
        if callable(impl) and not hasattr(impl, f"{PROJECT}_impl"):
            raise PluginError(f"{hook} is not decorated with @simbench.hookimpl",
                              fix="add `@simbench.hookimpl` above it")


def _check_measure(m: Any, info: PluginInfo) -> None:
    if not isinstance(m, Measure):
        raise PluginError(f"plugin '{info.label}' returned {_short(m)} from simbench_measures, "
                          "which is not a simbench.Measure instance")
    for attr in ("name", "family", "access"):
        if not hasattr(m, attr):
            raise PluginError(f"measure {type(m).__name__} from plugin '{info.label}' "
                              f"does not declare '{attr}'")
    if m.family not in FAMILIES:
        raise PluginError(f"measure '{m.name}' from plugin '{info.label}': family must be "
                          f"'causal' or 'correlative', not {m.family!r}")


def _check_task(t: Any, info: PluginInfo) -> None:
    from simbench.tasks.base import Task

    if not (isinstance(t, type) and issubclass(t, Task)):
        raise PluginError(f"plugin '{info.label}' returned {_short(t)} from simbench_tasks, "
                          "which is not a subclass of simbench.tasks.base.Task")
    if not isinstance(getattr(t, "name", None), str):
        raise PluginError(f"task {t.__name__} from plugin '{info.label}' does not declare "
                          "'name'")


def _selectors(values: Iterable[str]) -> set[str]:
    return {v.strip() for v in values if v.strip()}


def _env_list(var: str) -> list[str] | None:
    value = os.environ.get(var)
    return None if value is None or not value.strip() else value.split(",")


def _with_filter_note(fix: str) -> str:
    """Say so when an environment variable kept some plugins (and their names) out."""
    active = [f"{v}={os.environ[v]}" for v in (ONLY_VAR, DISABLE_VAR) if os.environ.get(v)]
    return f"{fix}; note: {' and '.join(active)} limits which plugins load" if active else fix


def _dist_name(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else "?"


_REGISTRY: Registry | None = None


def get_registry(*, refresh: bool = False) -> Registry:
    """The process-wide registry, built on first use (``SIMBENCH_PLUGINS`` and
    ``SIMBENCH_DISABLE`` choose which plugins load)."""
    global _REGISTRY
    if _REGISTRY is None or refresh:
        reg = Registry()
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            reg.load_entry_points(_env_list(ONLY_VAR), _env_list(DISABLE_VAR) or ())
        _REGISTRY = reg
    return _REGISTRY


def task_by_name(task: str | Task | type[Task]) -> Task:
    """A task instance by name (or the task itself), looked up in the process-wide registry."""
    return get_registry().make_task(task)


__all__ = ["DISABLE_VAR", "ONLY_VAR", "PluginInfo", "Registration", "Registry",
           "get_registry", "run_measure", "task_by_name"]
