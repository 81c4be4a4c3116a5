"""The Python entry point: ``simbench.score("cka", a, b, site="hidden")``.

This is the layer a user calls: it checks the parameters, turns what the user passes into
systems (:mod:`simbench.systems.resolve`: a path, a zoo id, a recording, a system) and runs the
plugin's measure under guard (:func:`simbench.registry.run_measure`): whatever the plugin does
(raise, ``sys.exit``, return something that is not a ``Score``) comes back as a
:class:`~simbench.errors.SimbenchError` naming the plugin.
"""

from __future__ import annotations

from typing import Any

from simbench import runtime
from simbench.errors import ParameterError
from simbench.registry import get_registry, run_measure
from simbench.result import Score
from simbench.systems.resolve import (
    lm_task,
    resolve_system,
    resolve_systems,
    with_lm_task,
    zoo_lm_dir,
)


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
    m = get_registry().measure(measure)  # a name or a community id; unknown: did you mean
    resolved_params = m.resolve_params(params)
    resolved = resolve_systems(measure, systems, task=task, lm=lm_task(prompts, new_tokens))
    if site is None:  # language models default to their embedding (simbench.lm.measure)
        from simbench.lm.kind import default_site

        site = default_site(resolved)
        if site is None:
            raise ParameterError("no site given", field="site",
                                 fix="pass site=... (--site NAME), e.g. 'hidden'; only "
                                 "language models have a default site ('embedding')")
    return run_measure(m, resolved, site=site, task=task, seed=seed, device=device,
                       params=resolved_params)


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

    Takes :func:`score`'s arguments. A parameter sweeps when its value is a list
    (``alpha=[0.1, 1, 10]``) or a comma-separated string (``kernel="linear,cosine"``); several
    give their full product, the first varying slowest. Every value is checked before anything
    runs and the systems are resolved once; the result is one :class:`Score` per combination,
    in order, its parameters in ``attrs["params"]`` (a sweep of nothing: one Score in a list).
    """
    _, grid = get_registry().measure(measure).sweep_grid(params)
    resolved = resolve_systems(measure, systems, task=task, lm=lm_task(prompts, new_tokens))
    return [score(measure, *resolved, site=site, task=task, seed=seed, device=device, **combo)
            for combo in grid]


__all__ = ["lm_task", "resolve_system", "resolve_systems", "score", "sweep", "with_lm_task",
           "zoo_lm_dir"]
