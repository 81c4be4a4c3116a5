"""Measures as plain functions of paired rows, for the calibration checks.

Checks such as the small-sample bias need an estimator as a function ``(x, y) -> float``. Two
routes: :func:`measure_estimator` runs any registered measure through ``simbench.score`` on
in-memory recordings (what users run, plugins included); :func:`linear_cka` calls the CKA
estimator of :mod:`simbench.estimators.cka` directly (fast, for checks with many draws).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Estimator = Callable[[np.ndarray, np.ndarray], float]


def linear_cka(*, debiased: bool = False) -> Estimator:
    """Linear CKA of paired rows (simbench's ``cka`` measure), biased or debiased HSIC."""
    from simbench.estimators.cka import cka

    def estimate(x: np.ndarray, y: np.ndarray) -> float:
        return cka(x, y, debiased=debiased).value

    return estimate


def measure_estimator(name: str, **params: object) -> Estimator:
    """Any registered measure as a function of paired rows, through ``simbench.score``.

    The rows become two in-memory recordings (one site, each row its own stimulus), so the
    measure runs exactly as it does on users' files. A measure's bootstrap is switched off
    (``n_boot=0``) unless ``params`` sets it: only the estimate is used.
    """
    from simbench.api import score
    from simbench.recording import Recording, site_dataset
    from simbench.registry import get_registry

    measure = get_registry().measure(name)
    if "n_boot" not in params and any(p.name == "n_boot" for p in measure.params):
        params = {**params, "n_boot": 0}

    def estimate(x: np.ndarray, y: np.ndarray) -> float:
        ids = [f"s{i}" for i in range(len(x))]
        recs = [Recording(system_id=sid, sites={"site": site_dataset(
            a, stimulus_ids=ids, site="site", system_id=sid)})
                for sid, a in (("x", x), ("y", y))]
        return score(name, *recs, site="site", device="cpu", **params).value

    return estimate


def correlative_estimators() -> dict[str, Estimator]:
    """Every registered correlative measure (built-in and plugins), with default parameters,
    except those that need more than paired rows (``needs_repeats``: repeated measurements,
    e.g. ``crossnobis``)."""
    from simbench.registry import get_registry

    reg = get_registry()
    return {m.name: measure_estimator(m.name) for m in reg.measures.values()
            if m.family == "correlative" and not getattr(m, "needs_repeats", False)}


def default_estimators() -> dict[str, Estimator]:
    """Every registered correlative measure, plus ``cka --debiased`` right after ``cka``."""
    out: dict[str, Estimator] = {}
    for name, fn in correlative_estimators().items():
        out[name] = fn
        if name == "cka":
            out["cka --debiased"] = measure_estimator("cka", debiased=True)
    return out
