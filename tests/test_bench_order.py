"""The harness runs the longest jobs first, so ``--workers N`` does not end on one long job.

Expected costs come from the store (the same job's runtime by any code, else its measure's
mean at that site) or, for a store that never ran them, a prior by measure family, scaled by the
architectures' cost weights and for stepwise patching. The stores here are synthetic: a rerun of
the shipped results must not change what these tests assert.
"""

from __future__ import annotations

import heapq
import sqlite3
from pathlib import Path

import pytest
from bench_helpers import spec_text, write_spec

from simbench.bench.jobs import expand, prepare
from simbench.bench.runner import expected_seconds, longest_first, run_spec
from simbench.bench.spec import load_spec
from simbench.bench.store import Store

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "benchmarks" / "specs" / "paper.toml"


def makespan(seconds: list[float], workers: int = 2) -> float:
    """When the last of ``seconds`` ends if each job goes to the first free worker in order."""
    free = [0.0] * workers
    for s in seconds:
        heapq.heappush(free, heapq.heappop(free) + s)
    return max(free)


@pytest.mark.slow
def test_paper_spec_starts_with_its_transformer_mas_pairs(tmp_path: Path) -> None:
    """From a store's runtimes, the longest jobs come first: a synthetic store over the paper
    spec's jobs (correlative 1 s, causal 60 s, the three GRU vs transformer MAS pairs 450-595 s,
    as the shipped store measured them) puts those three first. From the prior alone (a store
    that never ran the spec) they come first too: they are the only causal pairs with a
    transformer besides DAS on it. In spec order they start at job 70 of 158 (old code: spec
    order, no ``longest_first``)."""
    spec = load_spec(PAPER)
    jobs = expand(spec)
    long = {("gru1", "tf1"): 450.0, ("gru2", "tf1"): 520.0, ("gru3", "tf1"): 595.0}
    with Store(tmp_path / "synthetic.sqlite") as store:
        for j in jobs:
            seconds = 60.0 if j.meta["family"] == "causal" else 1.0
            if j.variant == "mas":
                seconds = long.get(j.systems, seconds)
            store.write(j, {"status": "done", "runtime_s": seconds, "score": {"value": 0.5}})
        ordered = longest_first(jobs, store, spec)
        cost = expected_seconds(jobs, store, spec)
    first = [(j.variant, j.systems) for j in ordered[:3]]
    assert first[0] == ("mas", ("gru3", "tf1"))
    assert set(first) == {("mas", pair) for pair in long}
    assert sorted(j.key for j in ordered) == sorted(j.key for j in jobs)
    assert [cost[j.key] for j in ordered] == sorted(cost.values(), reverse=True)
    # every job has a stored runtime: nothing fell back to a mean or the prior
    assert cost[ordered[0].key] == 595.0 and set(cost.values()) == {1.0, 60.0, *long.values()}
    # longest first is never worse than spec order on 2 workers (LPT: within 4/3 of optimal)
    spec_order = makespan([cost[j.key] for j in jobs])
    assert makespan([cost[j.key] for j in ordered]) <= spec_order

    prior = longest_first(jobs, None, spec)
    assert {j.systems for j in prior[:3]} == set(long)
    assert all(j.meta["family"] == "causal" for j in prior[:60])
    assert prior[-1].meta["family"] != "causal"


def test_a_run_starts_with_the_job_the_store_says_is_longest(recs: Path) -> None:
    """Run a spec once, make one job's stored runtime long (the others equal), run it again at another
    seed (new keys, same jobs): that job runs first, the rest in spec order (old code: spec
    order, so it ran fourth)."""
    first = load_spec(write_spec(recs, spec_text(seeds="[0]"), name="a.toml"))
    store_path = recs / "s.sqlite"
    with Store(store_path) as store:
        assert run_spec(first, store, progress=False).done == len(prepare(first))
    slow = prepare(first)[3]
    conn = sqlite3.connect(store_path)
    with conn:
        conn.execute("UPDATE results SET runtime_s = 1.0")  # ties keep spec order
        conn.execute("UPDATE results SET runtime_s = 50.0 WHERE key = ?", (slow.key,))
    conn.close()

    second = load_spec(write_spec(recs, spec_text(seeds="[1]"), name="b.toml"))
    jobs = prepare(second)
    with Store(store_path) as store:
        run_spec(second, store, progress=False)
        rows = {r["key"]: r for r in store.rows(status="done")}
    ran = sorted((rows[j.key]["finished"], j.variant, j.systems, j.site) for j in jobs)
    assert ran[0][1:] == (slow.variant, slow.systems, slow.site)
    rest = [(j.variant, j.systems, j.site) for j in jobs
            if (j.variant, j.systems, j.site) != ran[0][1:]]
    assert [r[1:] for r in ran[1:]] == rest
