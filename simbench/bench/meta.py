"""Measure metadata for the boards, kept in the store so that viewing results runs no code.

A leaderboard needs a few facts about each measure (:func:`_normalise`). Those live on the
measure objects that plugins provide, and importing a plugin to *draw* a store someone sent you
would run their code, so the facts are written into the store when the jobs run
(:func:`record_measures`) and read back from there (:func:`board_meta`).

A store written before simbench kept them falls back to simbench's own built-in measures
(trusted: they ship with simbench) and, for any other measure, to neutral assumptions derived
from the stored rows, with a note saying so. Nothing named by a spec is ever imported here.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterable, Mapping
from typing import Any


def describe(measure: Any, plugin: Any = None) -> dict[str, Any]:
    """A measure's metadata as plain JSON data (infinite range ends as ``null``)."""
    out = dict(measure.describe())
    lo, hi = (float(x) for x in measure.range)
    out["range"] = [lo if math.isfinite(lo) else None, hi if math.isfinite(hi) else None]
    if plugin is not None:
        out["plugin"] = f"{plugin.dist} {plugin.version}"
    return out


def record_measures(spec: Any, store: Any) -> None:
    """Write the metadata of every measure ``spec`` names into ``store``, where the spec's jobs
    run (the registry then holds the spec's plugins)."""
    from simbench.registry import get_registry

    registry = get_registry()
    names = sorted({m.measure for m in spec.measures.values()})  # canonical: no community ids
    entries = [registry.registered(name) for name in names if name in registry.measures]
    store.record_measures({e.name: describe(e.item, e.plugin) for e in entries})


@functools.cache
def builtin_measures() -> dict[str, dict[str, Any]]:
    """Metadata of the measures simbench itself ships (its own entry points, nothing else)."""
    from simbench.registry import OWN_DIST, Registry

    reg = Registry()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg.load_entry_points([OWN_DIST])
    return {name: describe(m, reg.plugin_of(name)) for name, m in reg.measures.items()
            if reg.plugin_of(name).dist == OWN_DIST}


def board_meta(stored: Mapping[str, Mapping[str, Any]], names: Iterable[str],
               rows: Iterable[Mapping[str, Any]] = ()) -> tuple[dict[str, dict[str, Any]],
                                                               list[str]]:
    """The metadata of each measure in ``names`` (stored, else built-in, else assumed from the
    stored rows: symmetric unless both orders of a pair were scored, the numbers of systems the
    rows show), and notes on what had to be assumed."""
    names = sorted(set(names))
    out: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    missing = [n for n in names if n not in stored]
    builtin = builtin_measures() if missing else {}
    rows = list(rows)
    for name in names:
        if name in stored:
            out[name] = _normalise(stored[name], "stored")
        elif name in builtin:
            out[name] = _normalise(builtin[name], "built-in")
        else:
            out[name] = _assumed(name, [r for r in rows if r["measure"] == name])
            notes.append(f"measure '{name}': the store holds no metadata for it (written "
                         "before simbench kept it); assumed higher = more similar and no "
                         "declared range")
    return out, notes


def _normalise(data: Mapping[str, Any], origin: str) -> dict[str, Any]:
    lo, hi = (data.get("range") or [None, None])[:2]
    systems = data.get("systems") or [2, 2]
    params = {p["name"]: {"default": p.get("default"), "type": p.get("type")}
              for p in data.get("params") or []}
    return {
        "family": str(data.get("family", "unknown")),
        "higher_is_better": bool(data.get("higher_is_better", True)),
        "range": (-math.inf if lo is None else float(lo), math.inf if hi is None else float(hi)),
        "symmetric": bool(data.get("symmetric", True)),
        "systems": (int(systems[0]), None if systems[1] is None else int(systems[1])),
        "params": params,
        "description": str(data.get("description") or ""),
        "citation": str(data.get("citation") or ""),
        "origin": origin,
    }


def _assumed(name: str, rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    tuples = {tuple(r["systems"]) for r in rows}
    sizes = sorted({len(t) for t in tuples}) or [2]
    symmetric = not any(t[::-1] in tuples for t in tuples if len(t) == 2 and t[0] != t[1])
    facts = _normalise({"symmetric": symmetric, "systems": [sizes[0], sizes[-1]]}, "assumed")
    return {**facts, "params": None}  # unknown: rows match on the parameters the spec writes
