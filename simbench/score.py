"""The result of a measure: a value, its uncertainty, and everything needed to reproduce it."""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import sys
import types
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # xarray costs ~0.4 s to import; plugins import this module at load time
    import xarray as xr


@dataclasses.dataclass
class Score:
    """One measure's verdict on a set of systems.

    ``value`` is the headline number; ``ci`` a (low, high) bootstrap interval over stimuli (or
    over held-out interventions, for causal measures); ``breakdown`` holds labelled detail such
    as the source x target IIA matrix of MAS; ``attrs`` holds parameters, seed, versions,
    device and runtime.
    """

    measure: str
    value: float
    systems: tuple[str, ...]
    site: str | None = None
    ci: tuple[float, float] | None = None
    n_samples: int = 0
    breakdown: dict[str, xr.DataArray] = dataclasses.field(default_factory=dict)
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        ci = f" [{self.ci[0]:.4f}, {self.ci[1]:.4f}]" if self.ci else ""
        return f"{self.measure} = {self.value:.4f}{ci} (n = {self.n_samples})"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data; :meth:`from_dict` inverts it."""
        return {
            "measure": self.measure,
            "value": _num(self.value),
            "ci": None if self.ci is None else [_num(self.ci[0]), _num(self.ci[1])],
            "n_samples": int(self.n_samples),
            "systems": list(self.systems),
            "site": self.site,
            "breakdown": {k: v.to_dict() for k, v in self.breakdown.items()},
            "attrs": _jsonable(self.attrs),
        }

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Score:
        import xarray as xr

        return cls(
            measure=data["measure"],
            value=_float(data["value"]),
            systems=tuple(data["systems"]),
            site=data.get("site"),
            ci=None if data.get("ci") is None else (_float(data["ci"][0]), _float(data["ci"][1])),
            n_samples=int(data.get("n_samples", 0)),
            breakdown={k: xr.DataArray.from_dict(v) for k, v in data.get("breakdown", {}).items()},
            attrs=dict(data.get("attrs", {})),
        )

    def to_dataset(self) -> xr.Dataset:
        """The score as an xarray Dataset (value, ci and breakdown variables, attrs)."""
        import xarray as xr

        data = {"value": xr.DataArray(self.value)}
        if self.ci is not None:
            data["ci"] = xr.DataArray(np.array(self.ci), dims=["bound"],
                                      coords={"bound": ["low", "high"]})
        for k, v in self.breakdown.items():
            data[k] = v
        attrs = {"measure": self.measure, "systems": json.dumps(list(self.systems)),
                 "site": self.site or "", "n_samples": self.n_samples,
                 "attrs": json.dumps(_jsonable(self.attrs))}
        return xr.Dataset(data, attrs=attrs)


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    n_units: int,
    *,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(indices)`` over ``n_units`` resampled units.

    ``statistic`` receives an index array (units drawn with replacement) and returns a float.
    Units are stimuli: time steps of one stimulus are not independent, so they move together.
    """
    if n_boot <= 0 or n_units < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xB007]))
    stats = np.array([statistic(rng.integers(0, n_units, n_units)) for _ in range(n_boot)])
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return (math.nan, math.nan)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return (float(lo), float(hi))


def binomial_ci(successes: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson interval for an accuracy (e.g. IIA over n held-out interventions)."""
    if n <= 0:
        return (math.nan, math.nan)
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + level / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def provenance(device: str | None = None) -> dict[str, Any]:
    """Versions and machine facts stored with every score."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        code = version("simbench")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        code = "0+unknown"
    out = {"simbench_version": code, "python": platform.python_version(),
           "numpy": np.__version__, "machine": platform.machine()}
    if device is not None:
        out["device"] = device
    return out


def _float(x: float | None) -> float:
    """Inverse of :func:`_num`: JSON null (a non-finite value) back to NaN."""
    return math.nan if x is None else float(x)


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


class _CallableModule(types.ModuleType):
    """This module, callable as :func:`simbench.api.score`.

    Importing ``simbench.score`` sets the package attribute ``simbench.score`` to this module,
    which would shadow the lazily exported function ``simbench.score(...)``. Calling the module
    forwards to the function, so both spellings work whatever was imported first.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Score:
        from simbench.api import score

        return score(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
