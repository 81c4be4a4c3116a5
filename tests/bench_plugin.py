"""Small deterministic measures for the harness tests, loaded as a spec plugin file.

Specs in the tests name this file in ``plugins = [...]``; the harness registers it through
``Registry.add_plugin`` in the test process and again in every Dask worker, the same path a
user's own measure file takes. Nothing here is a mock: the measures read real recordings.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

import simbench
from simbench.measure import Measure, Param
from simbench.pairing import pair_sites
from simbench.result import Score
from simbench.stats import bootstrap_ci


def _linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean(0)
    y = y - y.mean(0)
    num = np.linalg.norm(x.T @ y) ** 2
    den = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(num / den) if den > 0 else float("nan")


class BenchLinear(Measure):
    """Linear CKA over paired samples (test-only copy, so tests do not depend on plugins/)."""

    name = "bench_linear"
    family = "correlative"
    access = ("recording", "recording")
    description = "test-only linear CKA with optional sleep and failure"
    params = (
        Param("n_boot", 20, "bootstrap resamples", low=0),
        Param("sleep", 0.0, "seconds to sleep first (for kill tests)", low=0.0),
        Param("fail", False, "raise instead of scoring"),
        Param("fail_on", "", "raise when this system id is scored"),
        Param("swallow", False, "catch Ctrl-C during the sleep and return -1 (as a training "
              "loop that keeps its best state would)"),
    )

    def score(self, systems: Sequence[Any], *, site: str, task: str | None, seed: int,
              device: str, n_boot: int, sleep: float, fail: bool, fail_on: str,
              swallow: bool) -> Score:
        if sleep:
            try:
                time.sleep(sleep)
            except KeyboardInterrupt:
                if not swallow:
                    raise
                return Score(measure=self.name, value=-1.0,
                             systems=tuple(s.system_id for s in systems), site=site)
        ids = [s.system_id for s in systems]
        if fail or (fail_on and fail_on in ids):
            raise RuntimeError(f"asked to fail on {ids}")
        paired = pair_sites(systems[0].site_data(site), systems[1].site_data(site))
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(paired.n_stimuli, size=max(2, paired.n_stimuli * 3 // 4),
                                  replace=False))
        rows = np.isin(paired.stimulus, keep)
        x, y, stim = paired.x[rows], paired.y[rows], paired.stimulus[rows]
        value = _linear_cka(x, y)
        uniq = np.unique(stim)

        def stat(idx: np.ndarray) -> float:
            sel = np.concatenate([np.flatnonzero(stim == uniq[i]) for i in idx])
            return _linear_cka(x[sel], y[sel])

        ci = bootstrap_ci(stat, len(uniq), n_boot=n_boot, seed=seed)
        return Score(measure=self.name, value=value, systems=tuple(ids), site=site, ci=ci,
                     n_samples=len(x))


class BenchProbe(BenchLinear):
    """``bench_linear`` that can misbehave on one job, for containment and concurrency tests.

    A job is named ``A~B@SITE`` (system ids and site).
    """

    name = "bench_probe"
    description = "test-only linear CKA that can hang, exit or log its executions"
    params = (
        *BenchLinear.params,
        Param("hang_on", "", "sleep forever on this job (timeout tests)"),
        Param("exit_on", "", "call sys.exit(3) on this job"),
        Param("log", "", "append one line per finished score to this file (counts executions)"),
    )

    def score(self, systems: Sequence[Any], *, site: str, seed: int, hang_on: str,
              exit_on: str, log: str, **kw: Any) -> Score:
        job = f"{'~'.join(s.system_id for s in systems)}@{site}"
        if job == hang_on:
            while True:
                time.sleep(3600)
        if job == exit_on:
            sys.exit(3)
        result = super().score(systems, site=site, seed=seed, **kw)
        if log:
            with open(log, "a") as fh:  # one short O_APPEND write: lines never interleave
                fh.write(f"{job} seed {seed} pid {os.getpid()}\n")
        return result


class BenchCausal(Measure):
    """Needs two networks: a spec asking it of a recording must be refused before running."""

    name = "bench_causal"
    family = "causal"
    access = ("accessible", "accessible")
    description = "test-only causal measure"

    def score(self, systems: Sequence[Any], **kw: Any) -> Score:  # pragma: no cover
        raise AssertionError("the spec check must refuse this before it runs")


class BenchConst(Measure):
    """Does nothing: what remains of a job's time is the harness's overhead."""

    name = "bench_const"
    family = "correlative"
    access = ("recording", "recording")
    description = "test-only trivial measure"
    params = (Param("value", 0.5, "the value to return"),)

    def score(self, systems: Sequence[Any], *, site: str, seed: int, value: float,
              **kw: Any) -> Score:
        return Score(measure=self.name, value=value,
                     systems=tuple(s.system_id for s in systems), site=site,
                     ci=(value - 0.1, value + 0.1), n_samples=1)


class BenchDistance(Measure):
    """A distance (lower is more similar): the leaderboard must flip its orderings."""

    name = "bench_distance"
    family = "correlative"
    access = ("recording", "recording")
    higher_is_better = False
    range = (0.0, 1.0)
    description = "test-only distance"

    def score(self, systems: Sequence[Any], *, site: str, **kw: Any) -> Score:
        return Score(measure=self.name, value=0.0,
                     systems=tuple(s.system_id for s in systems), site=site)


@simbench.hookimpl
def simbench_measures() -> list[Measure]:
    return [BenchLinear(), BenchProbe(), BenchCausal(), BenchConst(), BenchDistance()]
