"""What the correlative measures (CKA, RSA) share on the simbench side, written once.

- :data:`PAIRING_PARAMS`: the parameters every correlative measure takes to pair two systems.
- :func:`paired_activity`: fetch both systems' activity at a site and pair it sample by sample
  (a network paired with a recording is recorded on the recording's own stimuli).
- :func:`no_interval_note`: the one wording of "no interval" (``ci=None`` and
  ``attrs["ci_note"]`` saying why and which parameter to change).
- :func:`make_score`: turning a value, an interval and attrs into a ``Score``.

The estimators themselves (``cka_estimators``, ``resampling``) know nothing of simbench. Only
numpy and simbench's core are imported here (no torch, no rsatoolbox), so loading the plugins
stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from simbench.errors import ParameterError, SimbenchError
from simbench.measure import Param
from simbench.pairing import Paired, pair_sites
from simbench.result import Score

DTYPES = ("float32", "float64")

#: Pairing parameters of every correlative measure.
PAIRING_PARAMS = (
    Param("n_stimuli", 1000, "stimuli a network (TorchSystem) records when paired with another "
          "network; paired with a recording, a network is recorded on the recording's own "
          "stimuli, and recordings use all theirs", low=1),
    Param("intersect", False, "use only the stimuli both systems share"),
)


def paired_activity(
    systems: Sequence[Any],
    site: str,
    *,
    n_stimuli: int | None,
    seed: int,
    intersect: bool,
    dtype: str | None = None,
) -> Paired:
    """Both systems' activity at ``site``, row-aligned on (stimulus id, time step).

    ``n_stimuli`` and ``seed`` tell a network (TorchSystem) how many stimuli to record and which;
    both systems get the same values, so their stimuli match. A network paired with a recording
    whose site has a ``token`` coordinate is recorded on that recording's own token sequences
    (decoded through the network's task vocabulary; its stimulus ids are kept), so the pair
    shares every stimulus whatever ``n`` the recording was made with. Recordings ignore
    ``n_stimuli`` and ``seed``. ``dtype`` None keeps float activity as stored (the estimators
    convert a block at a time), so aligned recordings are paired without a copy.
    """
    if dtype is not None and dtype not in DTYPES:
        raise ParameterError(f"dtype must be one of {DTYPES}, got {dtype!r}", field="dtype")
    a, b = systems
    recorded = [_recording_with_tokens(s, site) for s in (a, b)]
    if _is_network(a) != _is_network(b) and any(r is not None for r in recorded):
        from simbench.stimuli import stimuli_from_recording

        rec = next(r for r in recorded if r is not None)
        data = []
        for s in (a, b):
            if _is_network(s):
                stim = stimuli_from_recording(rec, s.task_def, site=site)
                data.append(s.record(stim, sites=[site]).site(site))
            else:
                data.append(s.site_data(site, n_stimuli=n_stimuli, seed=seed))
    elif _both_networks_on_different_tasks(a, b):
        # Networks trained on different tasks see the same inputs: the first system's stimuli
        # (a correlative measure compares responses to identical sequences).
        stim = a.task_def.sample(n_stimuli or 1000, seed, counts="all")
        data = [s.record(stim, sites=[site]).site(site) for s in (a, b)]
    else:
        data = [s.site_data(site, n_stimuli=n_stimuli, seed=seed) for s in (a, b)]
    names = (str(a.system_id), str(b.system_id))
    try:
        return pair_sites(data[0], data[1], intersect=intersect, names=names,
                          dtype=None if dtype is None else np.dtype(dtype).type)
    except SimbenchError as exc:
        if exc.site is None:  # say where: pair_sites knows the systems, not the site
            exc.site = site
            exc.args = (exc._render(),)
        raise


def _is_network(system: Any) -> bool:
    return hasattr(system, "record") and hasattr(system, "task_def")


def _recording_with_tokens(system: Any, site: str) -> Any:
    """The system's Recording when it is recording-only and its ``site`` has tokens, else None."""
    rec = getattr(system, "recording", None)
    if rec is None or _is_network(system) or site not in rec.sites:
        return None
    return rec if "token" in rec.sites[site].coords else None


def _both_networks_on_different_tasks(a: Any, b: Any) -> bool:
    return _is_network(a) and _is_network(b) and a.task != b.task


def no_interval_note(*, n_boot: int, n_units: int, n_finite: int, boot: str = "n_boot",
                     unit: str = "stimuli") -> str:
    """Why a resampling gave no interval, and which parameter to change.

    ``n_boot`` replicates were asked for over ``n_units`` units and ``n_finite`` came out
    finite; ``boot`` names the parameter that sets the number of replicates.
    """
    if n_boot <= 0:
        return f"no interval: {boot} = 0; set {boot} (e.g. 200) for an interval"
    if n_units < 2:
        return (f"no interval: the resampling is over {unit} and there is {n_units}; "
                f"record more {unit}")
    if n_boot < 2:
        return f"no interval: {boot} = {n_boot}; set {boot} to 2 or more (e.g. 200)"
    return (f"no interval: only {n_finite} of {n_boot} replicates were finite (too few "
            f"{unit} per replicate); record more {unit}")


def make_score(
    measure: str,
    systems: Sequence[Any],
    site: str,
    *,
    value: float,
    ci: tuple[float, float] | None,
    n_samples: int,
    breakdown: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> Score:
    """Assemble the ``Score`` of a correlative measure (``ci`` None: ``attrs`` has ci_note)."""
    return Score(
        measure=measure,
        value=float(value),
        systems=tuple(str(s.system_id) for s in systems),
        site=site,
        ci=ci,
        n_samples=int(n_samples),
        breakdown=dict(breakdown or {}),
        attrs=dict(attrs or {}),
    )
