"""The Python entry point: ``simbench.score("cka", a, b, site="hidden")``.

This is the layer that turns what a user passes into simbench objects (:func:`resolve_system`:
a path, a zoo id, a recording or a system) and calls a plugin's measure under guard: whatever
the plugin does (raise, ``sys.exit``, return something that is not a ``Score``) comes back as a
:class:`~simbench.errors.SimbenchError` naming the plugin.
"""

from __future__ import annotations

import reprlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simbench import runtime
from simbench.devices import resolve_device
from simbench.errors import PluginError, RecordingError, SimbenchError
from simbench.recording import Recording, load_recording
from simbench.registry import contained_call, get_registry
from simbench.result import Score, provenance
from simbench.systems import RecordedSystem, System

if TYPE_CHECKING:
    from simbench.tasks.base import Task

RECORDING_SUFFIXES = (".nc", ".nc4", ".cdf", ".h5")


def resolve_system(spec: object, *, task: str | Task | None = None) -> System:
    """Turn what a user passes into a :class:`~simbench.systems.System`.

    A :class:`~simbench.recording.Recording` or a recording path (``.nc``) becomes a
    :class:`~simbench.systems.RecordedSystem`; a ``.safetensors`` checkpoint or a zoo id a
    :class:`~simbench.systems.torch.TorchSystem` (``task``: the task of its stimuli, default its
    own); a System is returned as is.
    """
    if isinstance(spec, Recording):
        return RecordedSystem(spec)
    if isinstance(spec, System) and not isinstance(spec, (str, Path)):
        return spec
    if not isinstance(spec, (str, Path)):
        raise SimbenchError(f"cannot use {reprlib.repr(spec)} as a system",
                            fix="pass a recording path (.nc), a zoo id, a Recording or a System")
    path = Path(spec)
    if path.suffix in RECORDING_SUFFIXES or path.exists():
        if path.suffix == ".safetensors":
            from simbench.systems.torch import TorchSystem

            return TorchSystem.from_checkpoint(path, task=task)
        return RecordedSystem(load_recording(path))
    try:
        from simbench.systems.torch import TorchSystem
    except ImportError as exc:  # pragma: no cover - torch is a dependency
        raise RecordingError(f"'{spec}' is not a file and torch is unavailable: {exc}") from None
    return TorchSystem.from_zoo(str(spec))


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
    :class:`~simbench.systems.System` objects. ``device`` is resolved once (``auto``: CUDA when
    torch sees a GPU) and the device used is recorded in ``attrs["device"]`` unless the measure
    set it. Unknown parameters, systems the measure cannot use and errors raised inside a
    plugin all come back as :class:`SimbenchError`.
    """
    runtime.configure_threads()  # before anything here loads torch; a user's choice wins
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
            reg.task(str(s.task))
    dev = resolve_device(device)
    plugin = reg.plugin_of(measure)
    what = f"measure '{measure}' (plugin '{plugin.label}')"
    fix = f"report it to the authors of '{plugin.dist}'"
    start = time.perf_counter()
    try:
        result = contained_call(what, lambda: m.score(resolved, site=site, task=task, seed=seed,
                                                      device=dev, **resolved_params),
                                site=site, fix=fix)
    finally:
        runtime.restore_threads()  # a notebook's own torch work runs as before
    if not isinstance(result, Score):
        raise PluginError(f"{what} returned {type(result).__name__} "
                          f"{reprlib.repr(result)} instead of a simbench.Score",
                          site=site, fix=fix)
    result.attrs.setdefault("params", resolved_params)
    result.attrs.setdefault("seed", seed)
    result.attrs.setdefault("task", task or ",".join(sorted({str(s.task) for s in resolved})))
    result.attrs.setdefault("runtime_s", time.perf_counter() - start)
    result.attrs.setdefault("plugin", plugin.label)
    for key, value in {**provenance(dev), **runtime.provenance()}.items():
        result.attrs.setdefault(key, value)
    return result


__all__ = ["resolve_system", "score"]
