"""The recording schema: one system's activity at named sites, as xarray datasets.

A recording is one file per system with one group per site. Each site dataset holds a data
variable ``activity`` with dims (``stimulus``, ``time``, ``unit``) (``time`` may be absent for
static data) and coordinates:

- ``stimulus_id`` (stimulus): unique strings; two systems are paired on these.
- ``token`` (stimulus, time): the input at each step, as strings.
- ``valid`` (stimulus, time): bool, false on padding; padding never enters a measure.
- ``repeat`` (or ``run``), optional: which repeated measurement (partition) each step or
  stimulus belongs to, for measures that cross-validate over repeats (``crossnobis``); with
  ``condition`` (stimulus) when each stimulus id is one presentation of a condition. Not
  causal variables.
- causal variables, e.g. ``count``, ``phase`` (stimulus, time): their values after each step.

The root group's attrs hold ``schema`` (``simbench-recording/1``), ``system_id`` and ``task``,
all optional: ``system_id`` defaults to the file name's stem, ``task`` to none (causal measures
then need ``--task``), and a ``schema`` other than this one is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from simbench.errors import SiteError

SCHEMA = "simbench-recording/1"
ACTIVITY = "activity"
RESERVED_COORDS = ("stimulus_id", "token", "valid", "repeat", "run", "condition")


@dataclasses.dataclass
class Recording:
    """One system's recorded activity, site by site."""

    system_id: str
    sites: dict[str, xr.Dataset]
    task: str | None = None
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)
    path: Path | None = None

    def site(self, name: str) -> xr.Dataset:
        """The dataset of one site; an unknown site lists the ones that exist."""
        if name not in self.sites:
            raise SiteError(
                f"recording of '{self.system_id}' has no site '{name}'",
                file=self.path, site=name,
                fix=f"sites in this recording: {', '.join(sorted(self.sites)) or '(none)'}",
            )
        return self.sites[name]

    def variables(self, site: str) -> list[str]:
        """Causal-variable coordinates of a site (everything but the reserved coords)."""
        ds = self.site(site)
        return [c for c in ds.coords if c not in RESERVED_COORDS and c not in ds.dims]


def site_dataset(
    activity: np.ndarray,
    *,
    stimulus_ids: list[str] | np.ndarray,
    site: str,
    system_id: str,
    task: str | None = None,
    tokens: np.ndarray | None = None,
    valid: np.ndarray | None = None,
    variables: Mapping[str, np.ndarray] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Build one site's dataset in the schema from plain arrays.

    ``activity`` is [stimulus, time, unit] (or [stimulus, unit] for static data);
    ``tokens``, ``valid`` and each variable are [stimulus, time].
    """
    activity = np.asarray(activity)
    dims = ("stimulus", "time", "unit") if activity.ndim == 3 else ("stimulus", "unit")
    step_dims = dims[:-1]
    coords: dict[str, Any] = {"stimulus_id": ("stimulus", np.asarray(stimulus_ids, dtype=str))}
    if tokens is not None:
        coords["token"] = (step_dims, np.asarray(tokens, dtype=str))
    if valid is not None:
        coords["valid"] = (step_dims, np.asarray(valid, dtype=bool))
    for name, values in (variables or {}).items():
        coords[name] = (step_dims, np.asarray(values))
    site_attrs = {"system_id": system_id, "site": site, "schema": SCHEMA}
    if task is not None:
        site_attrs["task"] = task
    site_attrs.update(attrs or {})
    return xr.Dataset({ACTIVITY: (dims, activity)}, coords=coords, attrs=site_attrs)
