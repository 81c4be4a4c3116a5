"""The benchmark harness: specs, jobs, the results store, executors and leaderboards.

A *spec* (TOML) names systems, measures (with parameter sweeps), sites, pairs and seeds, plus
the orderings a valid measure is expected to reproduce. :func:`~simbench.bench.spec.load_spec`
parses and validates it; :func:`~simbench.bench.jobs.expand` turns it into jobs with stable keys;
:func:`~simbench.bench.runner.run_spec` runs the jobs that are not yet in the
:class:`~simbench.bench.store.Store` (locally or on Dask); :mod:`~simbench.bench.leaderboard`
queries the store and :mod:`~simbench.bench.render` draws the result.
"""

from __future__ import annotations

from simbench.bench.jobs import Job, expand
from simbench.bench.spec import Spec, load_spec, parse_spec
from simbench.bench.store import Store

__all__ = ["Job", "Spec", "Store", "expand", "load_spec", "parse_spec"]
