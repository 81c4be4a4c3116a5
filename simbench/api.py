"""The Python entry point: ``simbench.score("cka", a, b, site="hidden")``."""

from __future__ import annotations

import time
from typing import Any

from simbench.errors import PluginError, SimbenchError
from simbench.registry import get_registry
from simbench.score import Score, provenance
from simbench.systems import System, resolve_system


def score(
    measure: str,
    *systems: object,
    site: str,
    task: str | None = None,
    seed: int = 0,
    device: str = "auto",
    **params: Any,
) -> Score:
    """Score ``systems`` with the measure called ``measure`` at ``site``.

    Systems may be recording paths (.nc), zoo ids, :class:`~simbench.recording.Recording` or
    :class:`~simbench.systems.System` objects. Unknown parameters, systems the measure cannot
    use and errors raised inside a plugin all come back as :class:`SimbenchError`.
    """
    reg = get_registry()
    m = reg.measure(measure)
    resolved: list[System] = [resolve_system(s, task=task) for s in systems]
    reg.check_access(m, resolved)
    resolved_params = m.resolve_params(params)
    # Check the task name when the user gave one or the measure needs one; a recording's own
    # task attr (e.g. Brain-Score data) need not be a registered task for a correlative measure.
    # The measure gets the user's task override only: systems trained on different tasks keep
    # their own (each side's counterfactuals come from its own task's causal model).
    if m.needs_task and task is None and not all(s.task for s in resolved):
        raise SimbenchError(f"measure '{measure}' needs a task and a system names none",
                            field="task", fix="pass --task NAME (see `simbench tasks`)")
    if task is not None:
        reg.task(task)  # unknown task names fail here, with suggestions
    elif m.needs_task:
        for s in resolved:
            reg.task(s.task)
    dev = device
    if m.family == "causal" or device != "auto":
        from simbench.devices import resolve_device

        dev = resolve_device(device)
    start = time.perf_counter()
    try:
        result = m.score(resolved, site=site, task=task, seed=seed, device=dev, **resolved_params)
    except SimbenchError:
        raise
    except Exception as exc:
        plugin = reg.plugin_of(measure)
        raise PluginError(f"measure '{measure}' (plugin '{plugin.label}') raised "
                          f"{type(exc).__name__}: {exc}", site=site,
                          fix=f"report it to the authors of '{plugin.dist}'") from exc
    result.attrs.setdefault("params", resolved_params)
    result.attrs.setdefault("seed", seed)
    result.attrs.setdefault("task", task or ",".join(sorted({str(s.task) for s in resolved})))
    result.attrs.setdefault("runtime_s", time.perf_counter() - start)
    result.attrs.setdefault("plugin", reg.plugin_of(measure).label)
    for key, value in provenance(dev).items():
        result.attrs.setdefault(key, value)
    return result
