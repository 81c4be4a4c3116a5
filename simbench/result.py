"""The result of a measure: a value, its uncertainty, and everything needed to reproduce it.

:class:`Score` is what every ``Measure.score`` returns and what ``simbench.score(...)`` hands
back; :func:`provenance` is the machine and version facts stored with it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import platform
import sys
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # xarray costs ~0.4 s to import; plugins import this module at load time
    import xarray as xr


@dataclasses.dataclass(kw_only=True)
class Score:
    """One measure's verdict on a set of systems (build it with keyword arguments).

    ``value`` is the headline number; ``ci`` a (low, high) bootstrap interval over stimuli (or
    over held-out interventions, for causal measures), ``None`` when there is none (a measure
    says why in ``attrs["ci_note"]``); ``breakdown`` holds labelled detail such as the source x
    target IIA matrix of MAS; ``attrs`` holds parameters, seed, versions, device and runtime.
    """

    measure: str
    value: float
    systems: tuple[str, ...]
    site: str | None = None
    ci: tuple[float, float] | None = None
    n_samples: int = 0
    breakdown: dict[str, xr.DataArray] = dataclasses.field(default_factory=dict)
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: mean and standard deviation of the score's null distribution (None: no null drawn)
    null_mean: float | None = None
    null_sd: float | None = None
    #: (1 + #{null at least as extreme as the score}) / (1 + null_size); never 0
    p_value: float | None = None
    #: how many null samples were drawn, and how (e.g. "1000 uniform random permutations ...")
    null_size: int | None = None
    null_method: str | None = None

    @property
    def has_null(self) -> bool:
        """True when a null distribution was drawn for this score (``p_value`` is set)."""
        return self.p_value is not None

    def null_text(self) -> str:
        """``p = 0.0010 (null 0.1200 ± 0.0300, 1000 permutations)``, or ``""`` without a null."""
        if not self.has_null:
            return ""
        kind = "draws" if self.null_method and "permutation" not in self.null_method \
            else "permutations"
        return (f"p = {_bound(self.p_value, '.4g')} (null {_bound(self.null_mean)} ± "
                f"{_bound(self.null_sd)}, {self.null_size or 0} {kind})")

    @property
    def has_interval(self) -> bool:
        """True when ``ci`` holds at least one finite bound."""
        return self.ci is not None and any(b is not None and math.isfinite(float(b))
                                           for b in self.ci)

    def interval_text(self) -> str:
        """``[0.5000, 0.7500]``, or ``(no CI: <why>)`` when there is no interval and a measure
        said why; ``""`` otherwise. A missing or non-finite bound prints as ``nan``/``inf``."""
        if self.has_interval:
            assert self.ci is not None
            return f"[{_bound(self.ci[0])}, {_bound(self.ci[1])}]"
        note = self.attrs.get("ci_note")
        return f"(no CI: {note})" if note else ""

    def __str__(self) -> str:
        ci = self.interval_text()
        null = self.null_text()
        return (f"{self.measure} = {_bound(self.value)}{' ' + ci if ci else ''} "
                f"(n = {self.n_samples}){'; ' + null if null else ''}")

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
            **({} if not self.has_null else {
                "null_mean": _num(self.null_mean), "null_sd": _num(self.null_sd),
                "p_value": _num(self.p_value), "null_size": self.null_size,
                "null_method": self.null_method}),
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
            null_size=None if data.get("null_size") is None else int(data["null_size"]),
            null_method=data.get("null_method"),
            # no null drawn: None; a non-finite null value: NaN
            **({} if data.get("p_value") is None else
               {k: _float(data.get(k)) for k in ("null_mean", "null_sd", "p_value")}),
        )

    def to_dataset(self) -> xr.Dataset:
        """The score as an xarray Dataset (value, ci and breakdown variables, attrs)."""
        import xarray as xr

        data = {"value": xr.DataArray(self.value)}
        if self.ci is not None:
            data["ci"] = xr.DataArray(np.array(self.ci, dtype=float), dims=["bound"],
                                      coords={"bound": ["low", "high"]})
        data.update(self.breakdown)
        attrs = {"measure": self.measure, "systems": json.dumps(list(self.systems)),
                 "site": self.site or "", "n_samples": self.n_samples,
                 "attrs": json.dumps(_jsonable(self.attrs))}
        if self.has_null:
            attrs.update(p_value=float(self.p_value or math.nan), null_size=self.null_size or 0,
                         null_mean=_float(self.null_mean), null_sd=_float(self.null_sd),
                         null_method=self.null_method or "")
        return xr.Dataset(data, attrs=attrs)


#: the previous release's positional order of Score's fields
_OLD_ORDER = ("measure", "value", "systems", "site", "ci", "n_samples", "breakdown", "attrs")
_keyword_init = Score.__init__


@functools.wraps(_keyword_init)
def _init(self: Score, *args: Any, **kwargs: Any) -> None:
    """Score(measure=..., value=..., systems=..., ...); the previous release's positional form
    (``Score(name, value, systems, site=...)``) works for one more release, with a
    ``DeprecationWarning``."""
    if args:
        if len(args) > len(_OLD_ORDER):
            raise TypeError(f"Score() takes at most {len(_OLD_ORDER)} positional arguments "
                            f"({', '.join(_OLD_ORDER)}); pass them by keyword")
        given = dict(zip(_OLD_ORDER, args))
        twice = sorted(set(given) & set(kwargs))
        if twice:
            raise TypeError(f"Score() got multiple values for {', '.join(twice)}")
        warnings.warn("Score with positional arguments is deprecated and stops working in the "
                      "next release: pass them by keyword, Score(measure=..., value=..., "
                      f"systems=...) (here: {', '.join(given)})", DeprecationWarning,
                      stacklevel=2)
        kwargs.update(given)
    _keyword_init(self, **kwargs)


Score.__init__ = _init  # type: ignore[method-assign]


def provenance(device: str | None = None) -> dict[str, Any]:
    """Versions and machine facts stored with every score (``device``: where it ran)."""
    from simbench.version import package_version

    out = {"simbench_version": package_version(), "python": platform.python_version(),
           "numpy": np.__version__, "machine": platform.machine(), **cpu_facts()}
    torch = sys.modules.get("torch")  # a correlative score need not load torch for this
    if torch is not None:
        out["torch"] = torch.__version__
        out["cpu_capability"] = str(torch.backends.cpu.get_cpu_capability())
    if device is not None:
        out["device"] = device
    return out


@functools.cache
def cpu_facts() -> dict[str, Any]:
    """The processor a score's timings belong to: its model name (where the OS says it) and
    logical core count. Run times, and the last bits of float results, differ between CPUs
    (instruction sets, core counts), so a store of timings is read against its CPU."""
    name = platform.processor()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        name = next((line.split(":", 1)[1].strip() for line in f
                     if line.startswith("model name")), name)
    return {"cpu": name or "unknown", "cpu_cores": os.cpu_count()}


def _bound(x: Any, spec: str = ".4f") -> str:
    """A number for the terminal (4 decimals; ``.4g`` for a p-value), or nan/inf; a missing
    one (None) reads nan."""
    if x is None:
        return "nan"
    x = float(x)
    return format(x, spec) if math.isfinite(x) else str(x)


def _float(x: float | None) -> float:
    """Inverse of :func:`_num`: JSON null (a non-finite value) back to NaN."""
    return math.nan if x is None else float(x)


def _num(x: float | None) -> float | None:
    """A number for JSON: None for a missing or non-finite one (JSON has no NaN)."""
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


__all__ = ["Score", "provenance"]
