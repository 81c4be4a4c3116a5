"""Orthogonal Procrustes similarity: a complete simbench measure plugin in one module.

Two systems' activity at one site is paired sample by sample (same stimulus, same time step,
padding dropped), centred and scaled to unit Frobenius norm. The similarity is the nuclear
norm of X^T Y, i.e. 1 - d^2 / 2 where d is the Procrustes distance after the best rotation:
1 when one system is a rotated, scaled, translated copy of the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import simbench
from simbench.measure import Measure, Param
from simbench.pairing import pair_sites
from simbench.result import Score
from simbench.stats import bootstrap_ci


def procrustes_similarity(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Nuclear norm of X^T Y after (weighted) centring and scaling to unit norm."""
    w = np.ones(len(x)) if weights is None else weights
    x = (x - np.average(x, axis=0, weights=w)) * np.sqrt(w)[:, None]
    y = (y - np.average(y, axis=0, weights=w)) * np.sqrt(w)[:, None]
    norm = np.linalg.norm(x) * np.linalg.norm(y)
    if norm == 0:
        return float("nan")
    return float(np.linalg.svd(x.T @ y, compute_uv=False).sum() / norm)


class Procrustes(Measure):
    """Orthogonal Procrustes similarity between two systems' paired latents."""

    name = "procrustes"
    family = "correlative"
    access = ("recording", "recording")  # activity is enough; networks work too
    symmetric = True
    higher_is_better = True
    range = (0.0, 1.0)
    params = (
        Param("n_boot", 200, "bootstrap resamples of stimuli for the confidence interval", low=0),
        Param("intersect", False, "use only the stimuli both systems share"),
    )
    citation = "Schönemann (1966), Psychometrika 31:1-10; Williams et al. (2021), NeurIPS"
    description = "orthogonal Procrustes similarity (1 = equal up to rotation, scale, shift)"

    def score(
        self,
        systems: Sequence[Any],
        *,
        site: str,
        task: str | None,
        seed: int,
        device: str,
        n_boot: int = 200,
        intersect: bool = False,
        **_: Any,
    ) -> Score:
        a, b = systems
        paired = pair_sites(a.site_data(site), b.site_data(site), intersect=intersect,
                            names=(a.system_id, b.system_id))
        value = procrustes_similarity(paired.x, paired.y)

        def resampled(stimuli: np.ndarray) -> float:
            # Resample whole stimuli: each sample weighs as often as its stimulus was drawn.
            counts = np.bincount(stimuli, minlength=paired.n_stimuli)
            return procrustes_similarity(paired.x, paired.y, counts[paired.stimulus])

        ci = bootstrap_ci(resampled, paired.n_stimuli, n_boot=n_boot, seed=seed)
        return Score(measure=self.name, value=value, systems=(a.system_id, b.system_id),
                     site=site, ci=ci, n_samples=len(paired.x))


@simbench.hookimpl
def simbench_measures() -> list[Measure]:
    """Register the measure; simbench calls this once when it loads plugins."""
    return [Procrustes()]
