"""The shipped validity spec asks MAS for the swap mode each architecture needs: one position in a
recurrent network (its state carries the count forward), every position up to it in a transformer
(which recomputes from context), at its embedding; every check still has its pairs for every measure;
the directional causal baselines read their pairs the right way round; and the board has a row for
every registered measure, with the reason wherever a check does not apply."""

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
    # every correlative measure scores the transformer pairs too, and every pair of MAS; the
    # recurrent planted pairs also CLMAS and both stitches
    per_pair = Counter(j.systems for j in jobs)
    assert per_pair[("tf1", "tf1_planted")] == 13
    assert per_pair[("gru1", "gru1_planted")] == per_pair[("lstm1", "lstm1_planted")] == 16


def test_every_check_reads_pairs_that_exist_for_every_architecture() -> None:
    spec = load_spec("validity")
    cats = {g.name for g in spec.pair_groups}
    assert set(V.SAME_CATEGORIES) | set(V.DIFFERENT_CATEGORIES) <= cats
    for e in spec.expectations:
        for sel in (e.higher, e.lower):
            named = sel["category"]
            assert set([named] if isinstance(named, str) else named) <= cats, e.finding
    checks = Counter(e.finding.split(":", 1)[0] for e in spec.expectations)
    assert checks == {"planted identity": 3, "specificity": 3}


def test_the_cost_table_measures_a_seed_pair_of_every_measure() -> None:
    """costs.csv times one job per measure: a pair of seeds, the transformers' for MAS there."""
    from simbench.calibration.costs import _pick_jobs

    picked = _pick_jobs(load_spec("validity"), "seeds")
    assert picked["mas_stepwise"].systems == ("tf1", "tf2")
    assert picked["mas"].systems == picked["cka"].systems == ("gru1", "gru2")
    assert picked["clmas"].systems == picked["model_stitch"].systems == ("gru1", "gru2")
    assert len(picked) == 17


DIRECTIONAL = ("clmas", "model_stitch", "latent_stitch")


def test_directional_causal_measures_score_into_the_trained_network() -> None:
    """CLMAS scores IIA into system 1 (the recorded system 2 is the source); a stitch scores IIA
    into system 2. The untrained network is the source either way, never the network scored:
    into an untrained network (which cannot do the task) any IIA is near 0 for that reason."""
    spec = load_spec("validity")
    kind = {alias: s.tags.get("kind") for alias, s in spec.systems.items()}
    arch = {alias: s.tags.get("arch") for alias, s in spec.systems.items()}
    jobs = [j for j in prepare(spec) if j.measure in DIRECTIONAL]
    untrained = {}
    for j in jobs:
        assert {arch[a] for a in j.systems} <= {"gru", "lstm"}, j.describe()  # no transformer
        if "untrained" in {kind[a] for a in j.systems}:
            scored_into = j.systems[0] if j.measure == "clmas" else j.systems[1]
            assert kind[scored_into] == "trained", j.describe()
            untrained.setdefault(j.measure, set()).update(j.categories)
    assert untrained == {"clmas": {"untrained"}, "model_stitch": {"untrained_source"},
                         "latent_stitch": {"untrained_source"}}
    # the specificity checks read both untrained categories, so each direction is compared
    for e in spec.expectations:
        if e.finding.startswith("specificity") and "transformer" not in e.finding:
            assert set(e.lower["category"]) == {"untrained", "untrained_source"}, e.finding
    per_measure = Counter((j.measure, j.categories[0]) for j in jobs)
    for m in DIRECTIONAL:
        assert per_measure[(m, "self")] == per_measure[(m, "planted")] == 2
        assert per_measure[(m, "seeds")] == 4


def test_the_board_has_a_row_for_every_registered_measure(tmp_path) -> None:
    """On the shipped spec (an empty store: nothing scored yet), every registered measure has a
    row; DAS and crossnobis are not applicable to every check, each cell with its reason, in
    the text and in the CSV too."""
    import csv

    from simbench.bench.store import Store
    from simbench.calibration.applicability import NOT_APPLICABLE
    from simbench.registry import get_registry

    spec = load_spec("validity")
    with Store(tmp_path / "empty.sqlite") as store:
        board = V.validity_board(spec, store, layer_order=False, bias=False)
    registered = set(get_registry().measures)
    assert registered <= set(board.measures.values())
    assert {"das", "crossnobis"} <= set(NOT_APPLICABLE)
    for name in ("das", "crossnobis"):
        for check in V.CHECKS:
            r = board.results[(name, check)]
            assert r.status == V.NOT_APPLICABLE and r.detail == NOT_APPLICABLE[name]
        assert board.counts(name)[V.NOT_APPLICABLE] == len(V.CHECKS)
    assert "one network against its task's causal model" in NOT_APPLICABLE["das"]
    assert "repeated measurements" in NOT_APPLICABLE["crossnobis"]
    # every not-applicable cell of any measure gives a reason
    for (v, check), r in board.results.items():
        if r.status == V.NOT_APPLICABLE:
            assert len(r.detail) > 20, (v, check)
    # the spec's own variants come first, in spec order, the absent measures after them
    assert board.variants[:3] == ["cka", "cka_debiased", "cka_paper"]
    for m in DIRECTIONAL:
        assert m in board.variants[:len(spec.measures)]
    text = V.format_board(board)
    assert f"das / every check: {NOT_APPLICABLE['das']}" in text
    rows = list(csv.DictReader(V.write_csv(board, tmp_path / "v.csv").open()))
    das = [r for r in rows if r["measure"] == "das"]
    assert [r["check"] for r in das] == list(V.CHECKS)
    assert {(r["status"], r["detail"]) for r in das} == {(V.NOT_APPLICABLE,
                                                         NOT_APPLICABLE["das"])}


def test_a_measure_the_spec_does_not_run_is_not_run_with_the_reason(tmp_path) -> None:
    from simbench.bench.spec import parse_spec
    from simbench.bench.store import Store

    spec = parse_spec("""
name = "only_cka"
sites = ["hidden"]
[systems]
gru1 = { zoo = "gru_multi_s1", arch = "gru", task = "multi_object" }
gru2 = { zoo = "gru_multi_s2", arch = "gru", task = "multi_object" }
[measures.cka]
[[pairs]]
name = "seeds"
pairs = [["gru1", "gru2"]]
""")
    with Store(tmp_path / "empty.sqlite") as store:
        board = V.validity_board(spec, store, layer_order=False, bias=False)
        only = V.validity_board(spec, store, layer_order=False, bias=False,
                                every_measure=False)
    assert only.variants == ["cka"]
    r = board.results[("rsa", "specificity")]
    assert r.status == V.NOT_RUN and "spec 'only_cka' runs no variant of 'rsa'" in r.detail
    assert board.status("das", "planted identity") == V.NOT_APPLICABLE
