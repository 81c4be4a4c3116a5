"""CLMAS: recorded parties, counterfactual-latent matching, the CL loss, bad recordings, and the
findings (on the shipped zoo and the simulated population; skipped while they are missing).

Mechanics run on freshly built (untrained) GRUs with tiny step caps; the findings use small
versions of the benchmark runs (benchmarks/test_bench_clmas.py has the full-size figures).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from simbench.errors import ParameterError, RecordingError, SimbenchError
from simbench.interventions.cl_engine import CLEngine
from simbench.interventions.cl_loss import cl_fit, cl_loss
from simbench.interventions.engine import Engine, EngineConfig, Party
from simbench.interventions.maps import OrthogonalStitchMap, SubspaceMap
from simbench.interventions.recorded import party_from_arrays, recorded_party
from simbench.interventions.runners import make_runner
from simbench.interventions.states import StateIndex, counterfactual_states
from simbench.recording import Recording, site_dataset
from simbench.systems import RecordedSystem
from simbench.systems.torch import TorchSystem
from simbench.tasks import VOCAB, Arithmetic, MultiObject
from simbench.zoo.models import ModelConfig, build_model

ROOT = Path(__file__).resolve().parents[1]
POPULATION = ROOT / "recordings" / "population_gru_multi.nc"
ALIGN = ROOT / "recordings" / "alignments"
EVAL = dict(n_train=64, n_val=32, n_test=300, pool_size=300, record_n=600, progress=False,
            device="cpu")


def _saved(name: str) -> str:
    path = ALIGN / name
    assert path.exists(), (f"{path.name} is shipped under recordings/alignments (retrain: "
                           "benchmarks/test_bench_clmas.py with "
                           "SIMBENCH_BENCH_SAVE=recordings/alignments)")
    return str(path)


TINY = dict(n_train=128, n_val=32, n_test=32, max_steps=2, eval_every=2, pool_size=96,
            progress=False)
# twenty steps on zoo GRUs: seconds, and far enough for CLMAS to beat its shuffled control
ZOO_BUDGET = dict(n_train=512, n_val=64, n_test=64, pool_size=200, batch_size=64, lr=1e-2,
                  max_steps=20, eval_every=20, progress=False, device="cpu", seed=0)


def _make_population_module():
    spec = importlib.util.spec_from_file_location("make_population",
                                                  ROOT / "recordings" / "make_population.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def gru(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(ModelConfig(arch="gru")).eval()


def net(seed: int) -> TorchSystem:
    return TorchSystem(gru(seed), "multi_object", system_id=f"gru{seed}")


def recording_of(model: torch.nn.Module, n: int = 120, seed: int = 0, **changes) -> Recording:
    """A schema recording of ``model``'s hidden state; ``changes`` edit coords before saving."""
    task = MultiObject()
    stim = task.sample(n, seed, counts="all")
    with torch.no_grad():
        _, rec = model.run(torch.as_tensor(stim.tokens), record=("hidden",))
    tokens = np.asarray(VOCAB)[stim.tokens]
    variables = dict(stim.variables)
    for key, fn in changes.items():
        if key == "tokens":
            tokens = fn(tokens)
        else:
            variables = fn(variables)
    ds = site_dataset(rec["hidden"].numpy(), stimulus_ids=stim.ids, site="hidden",
                      system_id="rec", task="multi_object", tokens=tokens,
                      valid=stim.tokens != 0, variables=variables)
    return Recording("rec", {"hidden": ds}, task="multi_object")


@pytest.fixture(scope="module")
def population_module():
    return _make_population_module()


# ---- the loss and the matching ------------------------------------------------------------------
def test_cl_loss_is_half_cosine_distance_plus_mse():
    g = torch.Generator().manual_seed(0)
    h, c = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    cos = torch.nn.functional.cosine_similarity(h, c, dim=-1)
    want = (0.5 * ((1 - cos) + ((h - c) ** 2).mean(-1))).mean()
    torch.testing.assert_close(cl_loss(h, c), want)
    assert float(cl_loss(c, c)) == pytest.approx(0.0, abs=1e-6)
    fit = cl_fit(c, c)
    assert fit["r2"] == pytest.approx(1.0) and fit["cosine"] == pytest.approx(1.0)


def test_matched_latents_have_the_counterfactual_state():
    """Every matched recorded state has exactly the causal variables of the counterfactual:
    the target's values at the patched step with count set to the source's."""
    a, b = net(0), RecordedSystem(recording_of(gru(1), n=200))
    eng = clmas_engine(a, b, eps=0.5)
    for (s, t), m in eng.matches["train"].items():
        iv = eng.data["train"][(s, t)].iv
        want = counterfactual_states(eng.parties[s].pools["train"], eng.parties[t].pools["train"],
                                     iv.src_idx, iv.spos, iv.tgt_idx, iv.tpos)
        var = eng.parties[t].pools["train"].stimuli.variables
        for name in ("count", "phase"):
            np.testing.assert_array_equal(var[name][m.idx.numpy(), m.pos.numpy()], want[name])
        # count really comes from the source, phase from the target
        np.testing.assert_array_equal(want["count"],
                                      eng.parties[s].pools["train"].values[iv.src_idx, iv.spos])


def test_missing_states_are_counted():
    pool = party_from_arrays("r", MultiObject(), "count",
                             *_arrays(gru(0), n=60, counts=[1, 2, 3]), seed=0,
                             values=(1, 3)).pools["train"]  # only counts 1-3 are recorded
    idx = StateIndex(pool, "train")
    states = {"count": np.array([2, 9, 9, 12]), "phase": np.array([0, 0, 0, 1])}
    with pytest.raises(RecordingError) as err:
        idx.match(states, np.random.default_rng(0))
    msg = str(err.value)
    assert "3 of 4 counterfactuals" in msg and "count=9, phase=0 (2 counterfactuals)" in msg
    assert "2 missing states" in msg and "stimuli" in msg


def _arrays(model, n, counts="all", seed=0):
    stim = MultiObject().sample(n, seed, counts=counts)
    with torch.no_grad():
        _, rec = model.run(torch.as_tensor(stim.tokens), record=("hidden",))
    return stim.tokens, rec["hidden"].numpy(), stim.variables


def clmas_engine(a, b, *, eps, **cfg_changes) -> CLEngine:
    task = MultiObject()
    pa = Party(a.system_id, task, "count", 128, make_runner(a.model, "hidden"))
    pb = recorded_party(b, site="hidden", task=task, variable="count", seed=0)
    cfg = EngineConfig(**{**dict(n_train=256, n_val=64, n_test=64, pool_size=128, max_steps=4,
                                 eval_every=2, seed=0), **cfg_changes})
    return CLEngine([pa, pb], SubspaceMap([128, pb.width], 8, seed=0),
                    [(0, 0), (1, 0), (0, 1), (1, 1)], cfg, eps=eps,
                    behaviour=[(0, 0), (1, 0)], latent=[(0, 1), (1, 1)])


@pytest.mark.slow
def test_eps_zero_is_mas_with_the_recording_as_source():
    a, b = net(0), RecordedSystem(recording_of(gru(1)))
    eng = clmas_engine(a, b, eps=0.0)
    assert eng.trained == [(0, 0), (1, 0)]  # nothing into the recording is trained
    batches = {d: torch.arange(16) for d in eng.trained}
    torch.testing.assert_close(eng.step_loss(batches), Engine.step_loss(eng, batches))
    eng5 = clmas_engine(a, b, eps=0.5)
    both = {d: torch.arange(16) for d in eng5.trained}
    l_mas = Engine.step_loss(eng5, {d: r for d, r in both.items() if d[1] == 0})
    l_cl = torch.stack([cl_loss(*eng5.intervened_latents("train", d, r)[:2])
                        for d, r in both.items() if d[1] == 1]).mean()
    torch.testing.assert_close(eng5.step_loss(both), 0.5 * l_mas + 0.5 * l_cl)


@pytest.mark.slow
def test_negative_r2_keeps_the_best_state_and_stops_on_a_plateau():
    """The latent stitch validates on R^2, here negative (untrained networks) and going up and
    down (a large learning rate): training keeps the state of the best validation and stops on
    the plateau (old code kept the last state and ran to the step cap)."""
    a, b = net(0), RecordedSystem(recording_of(gru(1), n=120))
    task = MultiObject()
    pa = Party(a.system_id, task, "count", 128, make_runner(a.model, "hidden"))
    pb = recorded_party(b, site="hidden", task=task, variable="count", seed=0)
    cfg = EngineConfig(n_train=256, n_val=64, n_test=64, pool_size=128, max_steps=12,
                       eval_every=1, patience=3, lr=0.3, seed=0)
    eng = CLEngine([pa, pb], OrthogonalStitchMap([128, pb.width], [(0, 1)], seed=0), [(0, 1)],
                   cfg, eps=0.0, behaviour=[], latent=[(0, 1)])
    log = eng.train(progress=False)
    vals = [h["val"] for h in log.history]
    assert max(vals) < 0 and vals != sorted(vals)  # the case this test is about
    assert log.metric == "r2"
    assert log.stopped.startswith("plateau") and log.steps < cfg.max_steps
    assert log.best_val == max(vals)
    assert log.best_step == log.history[vals.index(max(vals))]["step"]
    assert eng.validation_score()[(0, 1)] == pytest.approx(max(vals), abs=1e-6)


@pytest.mark.slow
def test_clmas_scores_a_recording_without_running_it(population_module):
    """CLMAS between a zoo GRU and a recording of another (never run), twenty steps: IIA into
    the network from the recorded latents and the recording's own counterfactual-latent fit
    clearly beat the same activity with its states' labels permuted (the shuffled control)."""
    import simbench

    _zoo("gru_multi_s1", "gru_multi_s2")
    rec = TorchSystem.from_zoo("gru_multi_s2").record(n=300, seed=0)
    real, ctrl = (simbench.score("clmas", "gru_multi_s1", RecordedSystem(r), site="hidden",
                                 eps=0.5, k=16, **ZOO_BUDGET)
                  for r in (rec, population_module.shuffled(rec, seed=0)))
    a, b = "gru_multi_s1", "gru_multi_s2"
    assert real.attrs["mode"] == "recording" and real.attrs["lambda"] == pytest.approx(1.0)
    assert set(real.attrs["cl_fit"]) == {f"{a}->{b}", f"{b}->{b}"}
    assert real.breakdown["cl_fit"].dims == ("direction", "metric")
    assert np.isnan(real.breakdown["iia_trial"].sel(source=a, target=b))
    assert real.value == float(real.breakdown["iia_trial"].sel(source=b, target=a))
    assert real.attrs["train"]["val_metric"] == "iia+r2"
    assert real.value > ctrl.value + 0.15, (real.value, ctrl.value)
    fit_real = real.attrs["cl_fit"][f"{b}->{b}"]["r2"]
    fit_ctrl = ctrl.attrs["cl_fit"][f"{b}_shuffled->{b}_shuffled"]["r2"]
    assert fit_real > fit_ctrl + 0.5, (fit_real, fit_ctrl)


@pytest.mark.slow
def test_protocol_never_runs_the_held_out_network_while_training(monkeypatch):
    """--inaccessible: the network is recorded once, trained against as a recording, and run
    only after training to measure its true IIA (into it: A->B and B->B)."""
    import simbench
    from simbench.interventions import cl_engine

    a, b = net(0), net(1)
    calls = {"n": 0, "during": None}
    real_run = b.model.run

    def counting_run(*args, **kw):
        calls["n"] += 1
        return real_run(*args, **kw)

    monkeypatch.setattr(b.model, "run", counting_run)
    real_train = cl_engine.CLEngine.train

    def watched_train(self, **kw):
        before = calls["n"]
        out = real_train(self, **kw)
        calls["during"] = calls["n"] - before
        return out

    monkeypatch.setattr(cl_engine.CLEngine, "train", watched_train)
    s = simbench.score("clmas", a, b, site="hidden", task="multi_object", eps=0.5, k=4,
                       device="cpu", record_n=120, **TINY)
    assert calls["during"] == 0 and calls["n"] > 1
    assert set(s.attrs["true_iia_into_b"]) == {"gru0->gru1", "gru1->gru1"}
    assert not np.isnan(s.breakdown["iia_trial"].sel(source="gru0", target="gru1"))


def test_second_system_is_required_and_must_agree():
    from simbench_plugins.clmas import second_system

    with pytest.raises(ParameterError, match="needs a second system"):
        second_system([net(0)], "", "multi_object")
    with pytest.raises(ParameterError, match="names another system"):
        second_system([net(0), net(1)], "gru_multi_s9", "multi_object")


# ---- bad input -------------------------------------------------------------------------------
def test_eps_outside_unit_interval():
    from simbench.registry import get_registry

    m = get_registry().measure("clmas")
    for bad in ("1", "1.0", "-0.1", "2"):
        with pytest.raises(ParameterError, match=r"eps.*outside \[0, 1\)"):
            m.resolve_params({"eps": bad})
    a, b = net(0), RecordedSystem(recording_of(gru(1)))
    with pytest.raises(ParameterError, match="outside"):
        clmas_engine(a, b, eps=1.0)


def test_recording_missing_variable_coordinates_derives_them_from_its_tokens():
    """A variable the recording lacks is computed from its tokens; without tokens it cannot
    be, and the error names what is missing."""
    rec = recording_of(gru(1))
    full = recorded_party(RecordedSystem(rec), site="hidden", task=MultiObject(),
                          variable="count", seed=0)
    rec.sites["hidden"] = rec.sites["hidden"].drop_vars(["phase"])
    with pytest.warns(UserWarning, match="phase"):
        derived = recorded_party(RecordedSystem(rec), site="hidden", task=MultiObject(),
                                 variable="count", seed=0)
    assert derived.derived == ["phase"] and full.derived == []
    for split in full.pools:
        np.testing.assert_array_equal(derived.pools[split].joint.get("phase", 0),
                                      full.pools[split].joint.get("phase", 0))
    rec.sites["hidden"] = rec.sites["hidden"].drop_vars(["token"])
    with pytest.raises(RecordingError, match="'token'") as err:
        recorded_party(RecordedSystem(rec), site="hidden", task=MultiObject(), variable="count",
                       seed=0)
    assert "causal variables: count, phase" in str(err.value)


def test_values_the_task_cannot_produce():
    def bump(v):
        c = v["count"].copy()
        c[c == 20] = 25
        return {**v, "count": c}

    rec = recording_of(gru(1), n=200, count=bump)
    with pytest.raises(RecordingError, match=r"count = 25 \(\d+ steps\).*0\.\.20"):
        recorded_party(RecordedSystem(rec), site="hidden", task=MultiObject(),
                       variable="count", seed=0)


def test_values_that_disagree_with_the_causal_model():
    def off(v):
        return {**v, "count": np.where(v["count"] > 3, v["count"] - 1, v["count"])}

    rec = recording_of(gru(1), count=off)
    with pytest.raises(RecordingError, match="disagrees with task 'multi_object'"):
        recorded_party(RecordedSystem(rec), site="hidden", task=MultiObject(),
                       variable="count", seed=0)


def test_stimuli_from_another_task():
    rec = recording_of(gru(1), tokens=lambda t: np.where(t == "D1", "+", t))
    with pytest.raises(RecordingError, match=r"tokens task 'multi_object' never produces: '\+'"):
        recorded_party(RecordedSystem(rec), site="hidden", task=MultiObject(),
                       variable="count", seed=0)
    with pytest.raises(SimbenchError):  # an arithmetic recording read as arithmetic: no count
        recorded_party(RecordedSystem(rec), site="hidden", task=Arithmetic(),
                       variable="cumu_val", seed=0)


def test_too_few_stimuli_says_how_many():
    rec = recording_of(gru(1), n=20)
    with pytest.raises(RecordingError, match=r"has 20 stimuli.*at least 30"):
        recorded_party(RecordedSystem(rec), site="hidden", task=MultiObject(),
                       variable="count", seed=0)


def test_too_few_states_for_matching_says_what_is_missing():
    """A recording that starts after BOS lacks the state (count 0, phase 0) that counterfactuals
    setting count to 0 in the demo phase need: the error counts them."""
    rec = recording_of(gru(1), n=120)
    ds = rec.sites["hidden"]
    valid = ds["valid"].values.copy()
    valid[:, 0] = False
    rec.sites["hidden"] = ds.assign_coords(valid=(ds["valid"].dims, valid))
    with pytest.raises(RecordingError, match=r"counterfactuals need a recorded state") as err:
        clmas_engine(net(0), RecordedSystem(rec), eps=0.5)
    assert "count=0, phase=0" in str(err.value) and "usable steps" in str(err.value)


# ---- the simulated population ------------------------------------------------------------------
def test_shipped_population_follows_the_schema():
    from simbench.recording import load_recording

    assert POPULATION.stat().st_size < 2e6
    rec = load_recording(POPULATION)
    ds = rec.site("hidden")
    assert {"count", "phase", "token", "valid"} <= set(ds.coords)
    assert ds["activity"].dtype == np.int16 and ds.sizes["unit"] == 200
    assert rec.task == "multi_object" and rec.attrs["source_model"]
    party = recorded_party(RecordedSystem(rec), site="hidden", task=MultiObject(),
                           variable="count", seed=0)
    assert sum(len(p) for p in party.pools.values()) == ds.sizes["stimulus"]


def test_shuffled_control_keeps_labels_and_marginals(population_module):
    rec = recording_of(gru(1), n=60)
    shuf = population_module.shuffled(rec, seed=1)
    a, b = rec.sites["hidden"], shuf.sites["hidden"]
    valid = a["valid"].values
    assert (a["count"].values == b["count"].values).all()
    x, y = a["activity"].values[valid], b["activity"].values[valid]
    np.testing.assert_allclose(np.sort(x.ravel()), np.sort(y.ravel()))
    assert not np.allclose(x, y)


def _zoo(*ids):
    from simbench.zoo import read_manifest

    have = read_manifest()["models"]
    missing = [i for i in ids if i not in have]
    assert not missing, f"zoo models {missing} are shipped in recordings/zoo"


@pytest.mark.slow
def test_population_fit_beats_the_shuffled_control(population_module):
    """CLMAS against the simulated population fits counterfactual latents clearly better than
    against the same activity with its states' labels permuted (maps trained by the benchmark,
    shipped, evaluated here on held-out counterfactuals)."""
    _zoo("gru_multi_s1")
    import simbench
    from simbench.recording import load_recording

    rec = load_recording(POPULATION)
    ev = {k: v for k, v in EVAL.items() if k != "record_n"}
    fits = {}
    for label, r in (("population", rec), ("shuffled", population_module.shuffled(rec, seed=0))):
        s = simbench.score("clmas", "gru_multi_s1", r, site="hidden", eps=0.89, k=16,
                           load=_saved(f"clmas_{label}.safetensors"), **ev)
        fits[label] = {"a": s.attrs["cl_fit"][f"gru_multi_s1->{r.system_id}"],
                       "b": s.attrs["cl_fit"][f"{r.system_id}->{r.system_id}"], "iia": s.value}
    real, ctrl = fits["population"], fits["shuffled"]
    for d in ("a", "b"):  # into the population from the network and from itself
        assert real[d]["cosine"] > ctrl[d]["cosine"] and real[d]["r2"] > ctrl[d]["r2"], fits
    assert real["b"]["r2"] > ctrl["b"]["r2"] + 0.3, fits
    assert real["iia"] > ctrl["iia"] + 0.1, fits  # its recorded latents also drive the network

@pytest.mark.slow
def test_protocol_clmas_beats_the_stitches_into_the_inaccessible_network():
    """Evaluation protocol on gru_multi_s1 / gru_multi_s2 (maps trained by the benchmark with
    gru_multi_s2 treated as recording-only, shipped, evaluated here on fresh held-out
    counterfactuals): CLMAS's true IIA into the network it never ran while training beats the
    latent stitch and the behavioural stitch obtained without access to it (trained 2 -> 1 on
    gru_multi_s1's behaviour, pseudo-inverse used 1 -> 2)."""
    _zoo("gru_multi_s1", "gru_multi_s2")
    import simbench

    a, b = "gru_multi_s1", "gru_multi_s2"
    ev = {k: v for k, v in EVAL.items() if k != "record_n"}
    clmas = simbench.score("clmas", a, site="hidden", inaccessible=b, eps=0.89, k=16,
                           load=_saved("clmas_eps0.89.safetensors"), **EVAL)
    latent = simbench.score("latent_stitch", a, b, site="hidden",
                            load=_saved("latent_stitch.safetensors"), **EVAL)
    inverse = simbench.score("model_stitch", a, b, site="hidden", rank=2, via_inverse=True,
                             load=_saved("stitch_inverse_rank2.safetensors"), **ev)
    into_b = clmas.attrs["true_iia_into_b"][f"{a}->{b}"]
    assert into_b > latent.value > inverse.value, (into_b, latent.value, inverse.value)


@pytest.mark.slow
def test_protocol_accessible_direction_matches_mas():
    """At eps 0.5 the accessible direction keeps MAS-level IIA (at eps 0.89 the gap was
    0.052-0.055 at the shipped budget: the CL term then dominates the loss)."""
    _zoo("gru_multi_s1", "gru_multi_s2")
    import simbench

    a, b = "gru_multi_s1", "gru_multi_s2"
    clmas = simbench.score("clmas", a, site="hidden", inaccessible=b, eps=0.5, k=16,
                           load=_saved("clmas_eps0.5.safetensors"), **EVAL)
    ev = {k: v for k, v in EVAL.items() if k != "record_n"}
    mas = simbench.score("mas", a, b, site="hidden", k=16, load=_saved("mas_k16.safetensors"),
                         **ev)
    mas_b_to_a = float(mas.breakdown["iia_trial"].sel(source=b, target=a))
    assert abs(clmas.value - mas_b_to_a) <= 0.05, (clmas.value, mas_b_to_a)
