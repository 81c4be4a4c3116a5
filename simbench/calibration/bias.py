"""Small-sample bias of correlative estimators: what they report for unrelated systems.

Two systems whose activity is independent have population similarity 0 under CKA and RSA, but
an estimator computed on n samples need not average 0. Biased linear CKA is pulled towards 1
when units are many compared to samples (at n = 32 with 64 units per system it averages about
0.67); the unbiased HSIC estimator (Song et al. 2012) stays near 0. :func:`small_n_bias` measures
this on independent standard Gaussian data over a range of n, the same data for every estimator
(seeded), and returns a :class:`BiasTable` that prints as a table.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from simbench.errors import ParameterError
from simbench.seeds import rng

#: sample sizes of the bias check
BIAS_NS: tuple[int, ...] = (32, 64, 128, 256, 1024)
#: random stream tag of the bias check's data
BIAS_STREAM = 0xB1A5


@dataclasses.dataclass(frozen=True)
class BiasTable:
    """Each estimator's values on independent data: ``values[name]`` is [len(ns), draws]."""

    ns: tuple[int, ...]
    units: tuple[int, int]
    values: dict[str, np.ndarray]

    def mean(self, name: str, n: int) -> float:
        """Average value of ``name`` at sample size ``n`` (its bias: the truth is 0)."""
        return float(np.nanmean(self._row(name, n)))

    def sd(self, name: str, n: int) -> float:
        return float(np.nanstd(self._row(name, n), ddof=1))

    def se(self, name: str, n: int) -> float:
        """Standard error of :meth:`mean`."""
        row = self._row(name, n)
        return self.sd(name, n) / math.sqrt(max(1, int(np.isfinite(row).sum())))

    def _row(self, name: str, n: int) -> np.ndarray:
        if name not in self.values:
            raise ParameterError(f"no estimator {name!r} in this table", field="name",
                                 fix=f"estimators: {', '.join(self.values)}")
        if n not in self.ns:
            raise ParameterError(f"n = {n} was not measured", field="n",
                                 fix=f"sample sizes: {', '.join(map(str, self.ns))}")
        return self.values[name][self.ns.index(n)]

    def rows(self) -> list[dict[str, Any]]:
        """One record per (estimator, n): mean (the bias), sd, se, draws."""
        return [{"estimator": name, "n": n, "mean": self.mean(name, n), "sd": self.sd(name, n),
                 "se": self.se(name, n), "draws": int(np.isfinite(self._row(name, n)).sum())}
                for name in self.values for n in self.ns]

    def format(self) -> str:
        """A text table: one row per estimator, one column per n, ``mean ± se``."""
        head = ["estimator", *(f"n={n}" for n in self.ns)]
        body = [[name, *(f"{self.mean(name, n):+.3f} ± {self.se(name, n):.3f}"
                         for n in self.ns)] for name in self.values]
        widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
        draws = self.values[next(iter(self.values))].shape[1] if self.values else 0
        lines = [f"mean on independent Gaussian data ({self.units[0]} and {self.units[1]} "
                 f"units, {draws} draws per n; the truth is 0)"]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
                  for r in [head, *body]]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def small_n_bias(
    estimators: Mapping[str, Callable[[np.ndarray, np.ndarray], float]] | None = None,
    *,
    ns: Sequence[int] = BIAS_NS,
    units: int | tuple[int, int] = 64,
    draws: int = 20,
    seed: int = 0,
) -> BiasTable:
    """Average of each estimator on independent Gaussian data [n, units] per system, per n.

    ``estimators`` maps a name to a function of paired rows ``(x, y) -> float`` (default: every
    registered correlative measure with its default parameters, run through ``simbench.score``,
    plus ``cka --debiased``; see ``simbench.calibration.estimators.measure_estimator`` to add
    parameters). Every estimator sees the same ``draws`` data sets per n, drawn from ``seed``.
    """
    if estimators is None:
        from simbench.calibration.estimators import default_estimators

        estimators = default_estimators()
    if draws < 2:
        raise ParameterError(f"draws must be at least 2 (for a spread), got {draws}",
                             field="draws")
    dx, dy = (units, units) if isinstance(units, int) else units
    ns = tuple(int(n) for n in ns)
    if not ns or min(ns) < 4:
        raise ParameterError(f"sample sizes must be at least 4, got {ns}", field="ns")
    values = {name: np.empty((len(ns), draws)) for name in estimators}
    for i, n in enumerate(ns):
        for k in range(draws):
            gen = rng(seed, BIAS_STREAM, n, k)
            x = gen.standard_normal((n, dx))
            y = gen.standard_normal((n, dy))
            for name, fn in estimators.items():
                values[name][i, k] = float(fn(x, y))
    return BiasTable(ns, (dx, dy), values)


__all__ = ["BIAS_NS", "BiasTable", "small_n_bias"]
