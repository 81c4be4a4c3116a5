"""The one place calibration reaches into the built-in measures' array-level functions.

Checks such as the small-sample bias need an estimator as a plain function of paired rows
``(x, y) -> float``. Those functions live with the measures (the ``simbench_plugins`` package);
importing them here, lazily and only here, keeps a move of those functions a one-line change.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Estimator = Callable[[np.ndarray, np.ndarray], float]


def linear_cka(*, debiased: bool = False) -> Estimator:
    """Linear CKA of paired rows (simbench's ``cka`` measure), biased or debiased HSIC."""
    from simbench_plugins.cka import cka

    def estimate(x: np.ndarray, y: np.ndarray) -> float:
        return cka(x, y, debiased=debiased).value

    return estimate


def rsa(*, rdm_method: str = "cosine", compare_method: str = "spearman") -> Estimator:
    """RSA of paired rows (simbench's ``rsa`` measure) on all rows, one draw."""
    from simbench_plugins.rsa import rsa as _rsa

    def estimate(x: np.ndarray, y: np.ndarray) -> float:
        return _rsa(x, y, rdm_method=rdm_method, compare_method=compare_method,
                    n_vectors=x.shape[0], n_draws=1).value

    return estimate


def default_estimators() -> dict[str, Estimator]:
    """The built-in correlative estimators, by the name a user would run them under."""
    return {"cka": linear_cka(), "cka --debiased": linear_cka(debiased=True), "rsa": rsa()}
