"""The Python entry point: ``simbench.score("cka", a, b, site="hidden")``.

This is the layer that turns what a user passes into simbench objects (:func:`resolve_system`:
a path, a zoo id, a recording or a system) and calls a plugin's measure under guard: whatever
the plugin does (raise, ``sys.exit``, return something that is not a ``Score``) comes back as a
:class:`~simbench.errors.SimbenchError` naming the plugin.
"""

from __future__ import annotations

import reprlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simbench import runtime
from simbench.access import ACCESSIBLE
from simbench.devices import resolve_device
from simbench.errors import (
    CheckpointError,
    ParameterError,
    PluginError,
    RecordingError,
    SimbenchError,
)
from simbench.recording import Recording, load_or_open, load_recording
from simbench.registry import contained_call, get_registry
from simbench.result import Score, provenance
from simbench.systems import RecordedSystem, System

if TYPE_CHECKING:
    from simbench.tasks.base import Task

RECORDING_SUFFIXES = (".nc", ".nc4", ".cdf", ".h5")


def resolve_system(spec: object, *, task: str | Task | None = None,
                   lazy: bool = False) -> System:
    """Turn what a user passes into a :class:`~simbench.systems.System`.

    A :class:`~simbench.recording.Recording` or a recording path (``.nc``) becomes a
    :class:`~simbench.systems.RecordedSystem`; a ``.safetensors`` checkpoint or a zoo id a
    :class:`~simbench.systems.torch.TorchSystem` (``task``: the task of its stimuli, default its
    own); a directory (``save_pretrained``: config, safetensors weights, tokenizer) a
    language model, :class:`~simbench.lm.system.LMSystem` (``task``: a
    :class:`~simbench.tasks.continuation.Continuation` with its prompts), and so does the name
    of a zoo language model (``lm_toxic_s1``: its checked directory); a System is returned as
    is. A model id that is no local path (``gpt2``, ``org/name``) is refused: simbench
    loads from disk only. ``lazy``: a recording file too large to load is opened with its
    activity left in the file (for measures that read activity a block of rows at a time);
    otherwise such a file is refused.
    """
    if isinstance(spec, Recording):
        return RecordedSystem(spec)
    if isinstance(spec, System) and not isinstance(spec, (str, Path)):
        return spec
    if not isinstance(spec, (str, Path)):
        raise SimbenchError(f"cannot use {reprlib.repr(spec)} as a system",
                            fix="pass a recording path (.nc), a zoo id, a Recording or a System")
    path = Path(spec)
    if not path.is_dir():
        path = zoo_lm_dir(spec) or path
    if path.is_dir():  # a save_pretrained directory: a language model
        from simbench.lm.load import check_model_dir

        check_model_dir(path)
        from simbench.lm.system import LMSystem

        return LMSystem.from_dir(path, task=_continuation(task))
    if path.suffix in RECORDING_SUFFIXES or path.exists():
        if path.suffix == ".safetensors":
            from simbench.systems.torch import TorchSystem

            return TorchSystem.from_checkpoint(path, task=task)
        return RecordedSystem(load_or_open(path) if lazy else load_recording(path))
    from simbench.lm.load import hub_id_error, looks_like_hub_id

    if "/" in str(spec) and looks_like_hub_id(str(spec)):  # zoo ids have no '/'
        raise hub_id_error(str(spec))
    try:
        from simbench.systems.torch import TorchSystem
    except ImportError as exc:  # pragma: no cover - torch is a dependency
        raise RecordingError(f"'{spec}' is not a file and torch is unavailable: {exc}") from None
    try:
        return TorchSystem.from_zoo(str(spec))
    except CheckpointError as exc:
        if exc.field == "zoo_id" and looks_like_hub_id(str(spec)):
            raise hub_id_error(str(spec), also=" nor a zoo id (see `simbench zoo list`)"
                               ) from None
        raise


def zoo_lm_dir(spec: str | Path) -> Path | None:
    """The verified directory of the zoo language model called ``spec`` (``lm_toxic_s1``: see
    `simbench zoo list --lm`), or None when ``spec`` names none.

    A local path wins: a directory called ``lm_toxic_s1`` in the working directory is that
    directory, as everywhere else a path is given.
    """
    from simbench.zoo.lm_build import LM_NAMES

    if str(spec) not in LM_NAMES or Path(spec).exists():
        return None
    from simbench.zoo.lm_build import lm_model_dir

    return lm_model_dir(str(spec))


def _continuation(task: object) -> Any:
    """The language-model task a model directory is loaded with: ``task`` when it is a
    :class:`~simbench.tasks.continuation.Continuation`, else one without prompts."""
    from simbench.tasks.continuation import Continuation

    return task if isinstance(task, Continuation) else Continuation()


def lm_task(prompts: Any = None, new_tokens: int | None = None) -> Any:
    """The :class:`~simbench.tasks.continuation.Continuation` that ``prompts`` (a file, a list
    or a generator) and ``new_tokens`` ask for, or None when neither is given."""
    if prompts is None and new_tokens is None:
        return None
    from simbench.tasks.continuation import DEFAULT_NEW_TOKENS, Continuation

    return Continuation(prompts, new_tokens=DEFAULT_NEW_TOKENS if new_tokens is None
                        else new_tokens)


def with_lm_task(systems: Sequence[System], task: Any) -> list[System]:
    """Language models given ``task`` (their prompts); refuses prompts without a language
    model."""
    if task is None:
        return list(systems)
    from simbench.lm.kind import is_language_model

    if not any(is_language_model(s) for s in systems):
        raise ParameterError("prompts and new_tokens apply to language models, and no system "
                             "is one", field="prompts",
                             fix="drop --prompts/--new-tokens, or pass model directories")
    return [s.with_task(task) if is_language_model(s) else s  # type: ignore[attr-defined]
            for s in systems]


class _PendingNetwork:
    """A network named by a zoo id or checkpoint, not loaded yet (loading imports torch and
    takes seconds): it stands in for the access check, so a measure asked of the wrong kinds of
    system fails before anything heavy runs."""

    access = ACCESSIBLE
    task = None

    def __init__(self, spec: str | Path) -> None:
        self.spec = spec
        self.system_id = str(spec)
        self.path = spec if Path(spec).suffix == ".safetensors" else None


def _names_network(spec: object) -> bool:
    """True when :func:`resolve_system` would load a network for ``spec`` (a zoo id or a
    ``.safetensors`` checkpoint), False for recordings, systems and anything it refuses."""
    if not isinstance(spec, (str, Path)):
        return False
    path = Path(spec)
    if path.suffix == ".safetensors" or path.is_dir():
        return True
    return not (path.suffix in RECORDING_SUFFIXES or path.exists())


def resolve_systems(measure: str, systems: Sequence[object], *,
                    task: str | None = None, lm: Any = None) -> list[System]:
    """Resolve ``systems`` for ``measure``, cheapest checks first.

    Recordings are loaded and validated, the number and access of the systems checked against
    the measure and the task name looked up *before* any network (zoo id or checkpoint) is
    loaded: a bad recording or a wrong measure fails in well under a second instead of after
    torch and the zoo have loaded. ``lm`` (see :func:`lm_task`): the prompts language models
    are given.
    """
    reg = get_registry()
    m = reg.measure(measure)
    lazy = bool(getattr(m, "lazy_activity", False))  # reads activity by blocks of rows
    early: list[Any] = [_PendingNetwork(s) if _names_network(s)
                        else resolve_system(s, task=task, lazy=lazy)
                        for s in systems]  # type: ignore[arg-type]
    reg.check_access(m, early)
    if task is not None:
        reg.task(task)  # unknown task names fail here, with suggestions
    resolved: list[System] = [resolve_system(s.spec, task=task)
                              if isinstance(s, _PendingNetwork) else s for s in early]
    resolved = with_lm_task(resolved, lm)
    reg.check_access(m, resolved)
    return resolved


def score(
    measure: str,
    *systems: object,
    site: str | None = None,
    task: str | None = None,
    seed: int = 0,
    device: str = "auto",
    prompts: Any = None,
    new_tokens: int | None = None,
    **params: Any,
) -> Score:
    """Score ``systems`` with the measure called ``measure`` at ``site``.

    Systems may be recording paths (.nc), zoo ids, :class:`~simbench.recording.Recording` or
    :class:`~simbench.systems.System` objects. ``device`` is resolved once (``auto``: CUDA when
    torch sees a GPU) and the device used is recorded in ``attrs["device"]`` unless the measure
    set it. Unknown parameters, systems the measure cannot use and errors raised inside a
    plugin all come back as :class:`SimbenchError`. Parameters and recordings are checked
    before any network is loaded.

    ``site`` may be left out only when every system is a language model: they are then compared
    at ``embedding`` (see :mod:`simbench.lm.measure`).

    Language models (``save_pretrained`` directories or :class:`~simbench.lm.LMSystem`) are
    aligned on ``prompts`` (a text file with one prompt per line, a list, or a generator) and
    continue each by ``new_tokens`` greedy tokens.

    One value per parameter: a list or a comma-separated string (a sweep) is refused with a
    :class:`~simbench.errors.ParameterError` pointing to :func:`sweep`, so ``score`` always
    returns one :class:`Score`.
    """
    runtime.configure_threads()  # before anything here loads torch; a user's choice wins
    reg = get_registry()
    m = reg.measure(measure)
    resolved_params = m.resolve_params(params)
    resolved = resolve_systems(measure, systems, task=task, lm=lm_task(prompts, new_tokens))
    if site is None:  # language models default to their embedding (simbench.lm.measure)
        from simbench.lm.kind import default_site

        site = default_site(resolved)
        if site is None:
            raise ParameterError("no site given", field="site",
                                 fix="pass site=... (--site NAME), e.g. 'hidden'; only "
                                 "language models have a default site ('embedding')")
    # Check the task name when the user gave one or the measure needs one; a recording's own
    # task attr (e.g. Brain-Score data) need not be a registered task for a correlative measure.
    # The measure gets the user's task override only: systems trained on different tasks keep
    # their own (each side's counterfactuals come from its own task's causal model).
    if m.needs_task and task is None and not all(s.task for s in resolved):
        raise SimbenchError(f"measure '{measure}' needs a task and a system names none",
                            field="task", fix="pass --task NAME (see `simbench tasks`)")
    if task is None and m.needs_task:
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
    if result.ci is not None and not result.has_interval:
        # A (nan, nan) pair from a bootstrap with no resamples: no interval, and say why, as the
        # built-in measures do, instead of printing "[nan, nan]".
        result.ci = None
        result.attrs.setdefault("ci_note", "the measure gave no finite interval (no bootstrap "
                                "resamples, e.g. n_boot = 0, or too few stimuli)")
    result.attrs.setdefault("params", resolved_params)
    result.attrs.setdefault("seed", seed)
    tasks = sorted({str(s.task) for s in resolved if s.task is not None})
    result.attrs.setdefault("task", task or (",".join(tasks) if tasks else None))
    result.attrs.setdefault("runtime_s", time.perf_counter() - start)
    result.attrs.setdefault("plugin", plugin.label)
    for key, value in {**provenance(dev), **runtime.provenance()}.items():
        result.attrs.setdefault(key, value)
    return result


def sweep(
    measure: str,
    *systems: object,
    site: str | None = None,
    task: str | None = None,
    seed: int = 0,
    device: str = "auto",
    prompts: Any = None,
    new_tokens: int | None = None,
    **params: Any,
) -> list[Score]:
    """Score ``systems`` once per parameter combination: the CLI's ``--k 1,2,4`` from Python.

    A parameter sweeps when its value is a list (``alpha=[0.1, 1, 10]``) or a comma-separated
    string (``"0.1,1,10"``, ``kernel="linear,cosine"``); several swept parameters give their
    full product, the first varying slowest. Every value is checked before anything runs, the
    systems are resolved once, and the result is a list of :class:`Score` in sweep order, each
    with its parameters in ``attrs["params"]``. Parameters with one value are passed to every
    run unchanged (a sweep of nothing returns one Score in a list).
    """
    m = get_registry().measure(measure)
    _, grid = m.sweep_grid(params)
    resolved = resolve_systems(measure, systems, task=task, lm=lm_task(prompts, new_tokens))
    return [score(measure, *resolved, site=site, task=task, seed=seed, device=device, **combo)
            for combo in grid]


__all__ = ["lm_task", "resolve_system", "resolve_systems", "score", "sweep", "with_lm_task",
           "zoo_lm_dir"]
