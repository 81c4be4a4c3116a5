"""Finds and loads plugins: simbench's own entry points first, then everyone else's.

Each entry point of the ``simbench`` group loads inside its own ``try``: a plugin that fails to
import or whose hook raises becomes a warning and a line in ``simbench plugins``; the rest still
load. Names must be unique across plugins. ``SIMBENCH_PLUGINS`` (comma-separated entry-point or
distribution names) restricts which plugins load, as datasette's variable of the same idea does.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import warnings
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from simbench import hookspecs
from simbench.errors import (
    AccessError,
    PluginError,
    PluginWarning,
    RegistryError,
    SimbenchError,
)
from simbench.measure import Measure

GROUP = "simbench"
OWN_DIST = "simbench"


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


class Registry:
    """Every loaded measure and task, and which plugin provided it."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.measures: dict[str, Measure] = {}
        self.tasks: dict[str, type] = {}
        self.plugins: list[PluginInfo] = []
        self.provider: dict[str, PluginInfo] = {}

    # ---- loading ------------------------------------------------------------------------
    def load_entry_points(self, only: Iterable[str] | None = None) -> None:
        eps = list(entry_points(group=GROUP))
        eps.sort(key=lambda ep: (_dist_name(ep) != OWN_DIST, _dist_name(ep), ep.name))
        wanted = None if only is None else {w.strip() for w in only if w.strip()}
        for ep in eps:
            if wanted is not None and ep.name not in wanted and _dist_name(ep) not in wanted:
                continue
            info = PluginInfo(ep.name, _dist_name(ep), _dist_version(ep), ep.value)
            try:
                module = ep.load()
            except Exception as exc:  # a broken third-party plugin must not break simbench
                self._fail(info, f"import failed: {type(exc).__name__}: {exc}")
                continue
            self.add_plugin(module, info)

    def add_plugin(self, plugin: Any, info: PluginInfo) -> PluginInfo:
        """Register one plugin object and collect its registrations, isolated from the others."""
        self.plugins.append(info)
        try:
            self.pm.register(plugin, name=info.label)
            self.pm.check_pending()
        except Exception as exc:
            if self.pm.has_plugin(info.label):
                self.pm.unregister(name=info.label)
            self._fail(info, f"registration failed: {exc}")
            return info
        try:
            measures = _call(plugin, "simbench_measures")
            tasks = _call(plugin, "simbench_tasks")
            for m in measures:
                _check_measure(m, info)
        except SimbenchError as exc:
            self.pm.unregister(name=info.label)
            self._fail(info, str(exc))
            return info
        except Exception as exc:
            self.pm.unregister(name=info.label)
            self._fail(info, f"hook raised {type(exc).__name__}: {exc}")
            return info
        for kind, items, table in (("measure", measures, self.measures), ("task", tasks, self.tasks)):
            for item in items:
                if item.name in table:
                    other = self.provider[f"{kind}:{item.name}"]
                    raise RegistryError(
                        f"duplicate {kind} name '{item.name}': provided by plugin "
                        f"'{other.label}' and by plugin '{info.label}'",
                        fix=f"uninstall one of them, or restrict loading with "
                        f"SIMBENCH_PLUGINS={other.name} (or ={info.name})",
                    )
                table[item.name] = item
                self.provider[f"{kind}:{item.name}"] = info
                (info.measures if kind == "measure" else info.tasks).append(item.name)
        return info

    def _fail(self, info: PluginInfo, error: str) -> None:
        info.error = error
        if info not in self.plugins:
            self.plugins.append(info)
        warnings.warn(f"simbench plugin '{info.label}' failed to load: {error}", PluginWarning,
                      stacklevel=3)

    # ---- lookups ------------------------------------------------------------------------
    def measure(self, name: str) -> Measure:
        """The measure called ``name``; an unknown name suggests the closest known one."""
        if name not in self.measures:
            raise RegistryError(f"unknown measure '{name}'", field="measure",
                                fix=_suggest(name, self.measures, "simbench measures"))
        return self.measures[name]

    def task(self, name: str) -> type:
        """The task class called ``name``; an unknown name lists the known ones."""
        if name not in self.tasks:
            raise RegistryError(f"unknown task '{name}'", field="task",
                                fix=_suggest(name, self.tasks, "simbench tasks"))
        return self.tasks[name]

    def plugin_of(self, measure: str) -> PluginInfo:
        return self.provider[f"measure:{measure}"]

    def check_access(self, measure: Measure, systems: list) -> None:
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
            if need == "accessible" and system.access != "accessible":
                alternatives = [m.name for m in self.measures.values()
                                if m.family == "causal" and "recording" in m.access]
                hint = (f"'{alternatives[0]}' aligns a network with a recording-only system"
                        if alternatives else "use a correlative measure (cka, rsa)")
                raise AccessError(
                    f"measure '{measure.name}' must intervene on system {i + 1} "
                    f"('{system.system_id}'), which is a recording and cannot be run",
                    file=getattr(system, "path", None),
                    fix=f"pass a network (a zoo id or checkpoint) there; {hint}",
                )


def _call(plugin: Any, hook: str) -> list:
    impl = getattr(plugin, hook, None)
    return list(impl() or []) if callable(impl) else []


def _check_measure(m: Any, info: PluginInfo) -> None:
    if not isinstance(m, Measure):
        raise PluginError(f"plugin '{info.label}' returned {m!r} from simbench_measures, "
                          "which is not a simbench.Measure instance")
    for attr in ("name", "family", "access"):
        if not hasattr(m, attr):
            raise PluginError(f"measure {type(m).__name__} from plugin '{info.label}' "
                              f"does not declare '{attr}'")
    if m.family not in ("causal", "correlative"):
        raise PluginError(f"measure '{m.name}' from plugin '{info.label}': family must be "
                          f"'causal' or 'correlative', not {m.family!r}")


def _suggest(name: str, known: Iterable[str], command: str) -> str:
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    head = f"did you mean '{close[0]}'? " if close else ""
    return f"{head}known: {', '.join(known) or '(none)'} (see `{command}`)"


def _dist_name(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else "?"


def _dist_version(ep: EntryPoint) -> str:
    return ep.dist.version if ep.dist is not None else "?"


_REGISTRY: Registry | None = None


def get_registry(*, refresh: bool = False) -> Registry:
    """The process-wide registry, built on first use (``SIMBENCH_PLUGINS`` restricts it)."""
    global _REGISTRY
    if _REGISTRY is None or refresh:
        reg = Registry()
        only = os.environ.get("SIMBENCH_PLUGINS")
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            reg.load_entry_points(only.split(",") if only else None)
        _REGISTRY = reg
    return _REGISTRY


def get_measure(name: str) -> Measure:
    return get_registry().measure(name)


def get_task(name: str) -> type:
    return get_registry().task(name)
