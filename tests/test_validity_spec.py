"""The shipped validity spec asks MAS for the swap mode each architecture needs: one position in a
recurrent network (its state carries the count forward), every position up to it in a transformer
(which recomputes from context), at its embedding; every check still has its pairs for every measure."""

from __future__ import annotations

from collections import Counter

from simbench.bench.jobs import prepare
from simbench.bench.spec import load_spec
from simbench.calibration import validity as V


def test_mas_swaps_stepwise_in_transformers_and_at_one_position_in_recurrent_networks() -> None:
    spec = load_spec("validity")
    jobs = prepare(spec)
    mas = [j for j in jobs if j.measure == "mas"]
    arch = {alias: s.tags.get("arch") for alias, s in spec.systems.items()}
    for j in mas:
        archs = {arch[a] for a in j.systems}
        assert j.params["stepwise"] == ("transformer" in archs), j.describe()
        # the transformer's swaps feed its input: in the residual stream they are recomputed away
        assert j.site == ("embedding" if j.params["stepwise"] else "hidden"), j.describe()
        assert "transformer" not in archs or archs == {"transformer"}, j.describe()
    tf = sorted(j.categories[0] for j in mas if j.params["stepwise"])
    assert tf == ["planted_tf", "seeds_tf", "self_tf", "untrained_tf"]
    # every correlative measure scores the transformer pairs too, and every pair of MAS
    per_pair = Counter(j.systems for j in jobs)
    assert per_pair[("tf1", "tf1_planted")] == per_pair[("gru1", "gru1_planted")] == 13


def test_every_check_reads_pairs_that_exist_for_every_architecture() -> None:
    spec = load_spec("validity")
    cats = {g.name for g in spec.pair_groups}
    assert set(V.SAME_CATEGORIES) | set(V.DIFFERENT_CATEGORIES) <= cats
    for e in spec.expectations:
        for sel in (e.higher, e.lower):
            assert sel["category"] in cats, e.finding
    checks = Counter(e.finding.split(":", 1)[0] for e in spec.expectations)
    assert checks == {"planted identity": 3, "specificity": 3}


def test_the_cost_table_measures_a_seed_pair_of_every_measure() -> None:
    """costs.csv times one job per measure: a pair of seeds, the transformers' for MAS there."""
    from simbench.calibration.costs import _pick_jobs

    picked = _pick_jobs(load_spec("validity"), "seeds")
    assert picked["mas_stepwise"].systems == ("tf1", "tf2")
    assert picked["mas"].systems == picked["cka"].systems == ("gru1", "gru2")
    assert len(picked) == 14
