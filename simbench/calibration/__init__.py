"""Calibration of scores: permutation nulls, small-sample bias, planted identities, separability.

These pieces answer, for any similarity score, whether it is above what chance gives
(:mod:`~simbench.calibration.permutation`), how biased the estimator is at small sample sizes
(:mod:`~simbench.calibration.bias`), whether a measure recognises a network as identical to an
exact re-parametrization of itself (:mod:`~simbench.calibration.planted`), and how well its scores
separate same-task from different-task pairs (:mod:`~simbench.calibration.separation`).
Importing this package does not import torch.
"""

from __future__ import annotations

from simbench.calibration.bias import BIAS_NS, BiasTable, small_n_bias
from simbench.calibration.permutation import (
    NullError,
    NullResult,
    NullWarning,
    StimulusPermutations,
    bf16_native,
    gram_cka_null,
    linear_cka_null,
    p_value,
    permutation_null,
    require_permutable,
    rv_permutation_moments,
)
from simbench.calibration.planted import Reparametrized, reparametrize
from simbench.calibration.scoring import (
    NULL_KINDS,
    null_kind,
    null_param,
    require_null,
    with_null,
)
from simbench.calibration.separation import (
    Separability,
    format_separability,
    plot_separability,
    separability,
)

__all__ = [
    "BIAS_NS",
    "NULL_KINDS",
    "BiasTable",
    "NullError",
    "NullResult",
    "NullWarning",
    "Reparametrized",
    "Separability",
    "StimulusPermutations",
    "bf16_native",
    "format_separability",
    "gram_cka_null",
    "linear_cka_null",
    "null_kind",
    "null_param",
    "p_value",
    "permutation_null",
    "plot_separability",
    "reparametrize",
    "require_null",
    "require_permutable",
    "rv_permutation_moments",
    "separability",
    "small_n_bias",
    "with_null",
]
