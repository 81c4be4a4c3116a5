"""Community measure ids (the similarity repository's) as aliases of simbench measures."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from recording_helpers import save

import simbench
from simbench.aliases import ALIASES, resolve
from simbench.bench.jobs import expand
from simbench.bench.spec import parse_spec
from simbench.bench.worker import run_job
from simbench.cli import main
from simbench.errors import RegistryError
from simbench.registry import get_registry

EXPECTED = {
    "procrustes-angular": ("procrustes_angular", {}),
    "cca-angular": ("shape_metric", {"alpha": 0.0}),
    "shape_metric-alpha=0.25-distance=angular": ("shape_metric", {"alpha": 0.25}),
    "svcca-var=0.99": ("svcca", {"var": 0.99}),
    "svcca-var95": ("svcca", {"var": 0.95}),
    "pwcca-score": ("pwcca", {}),
    "mutual_knn-topk=10": ("mutual_knn", {"k": 10}),
    "cknna-topk=5": ("cknna", {"k": 5}),
    "ridge-lambda=1-pearsonr-cv=5folds": ("ridge", {"alpha": 1.0, "n_folds": 5}),
    "ridge-lambda1-pearson_r#5folds_cv": ("ridge", {"alpha": 1.0, "n_folds": 5}),
    "cka-kernel=linear-hsic=song-score": ("cka", {"debiased": True}),
    "cka-hsic_gretton": ("cka", {}),
    "cka-kernel=(rbf-sigma=1.0)-hsic=gretton-score": ("cka", {"kernel": "rbf",
                                                              "rbf_sigma": 1.0}),
    "rsa-correlation-spearman": ("rsa", {"rdm_method": "correlation",
                                         "compare_method": "spearman"}),
    "rsa-rdm=squared_euclidean-compare=corr": ("rsa", {"rdm_method": "euclidean",
                                                       "compare_method": "corr"}),
}


def test_at_least_ten_ids_resolve_to_registered_measures_and_params():
    reg = get_registry()
    for cid, (name, params) in EXPECTED.items():
        alias = resolve(cid)
        assert alias is not None and (alias.measure, alias.params) == (name, params), cid
        m = reg.measure(cid)
        assert m.name == name and reg.plugin_of(cid).name == reg.plugin_of(name).name
        for key, value in params.items():
            assert m.param(key).default == value
    assert len(ALIASES) >= 10
    assert all(a.measure in reg.measures for a in ALIASES)


def test_score_with_an_alias_equals_the_measure_with_its_params(tmp_path):
    r = np.random.default_rng(0)
    a = r.normal(size=(40, 3, 6))
    pa = save(tmp_path / "a.nc", "A", a)
    pb = save(tmp_path / "b.nc", "B", a @ r.normal(size=(6, 6)) + r.normal(size=a.shape))
    via = simbench.score("svcca-var=0.9", str(pa), str(pb), site="hidden", n_boot=0)
    direct = simbench.score("svcca", str(pa), str(pb), site="hidden", n_boot=0, var=0.9)
    assert via.value == pytest.approx(direct.value, abs=1e-12)
    assert via.measure == "svcca" and via.attrs["alias"] == "svcca-var=0.9"
    assert via.attrs["params"]["var"] == 0.9
    # the user's parameters still win over the id's
    over = simbench.score("svcca-var=0.9", str(pa), str(pb), site="hidden", n_boot=0, var=1.0)
    assert over.attrs["params"]["var"] == 1.0
    assert main(["score", "procrustes-angular", str(pa), str(pb), "--site", "hidden",
                 "--n_boot", "0", "--json"]) == 0


def test_a_spec_may_name_a_community_id():
    text = """
[systems]
a = "x.nc"
b = "y.nc"
[measures."svcca-var=0.99"]
[measures.knn]
measure = "mutual_knn-topk=10"
k = 5
[[pairs]]
name = "p"
between = [["a"], ["b"]]
sites = ["hidden"]
"""
    spec = parse_spec(text, registry=get_registry())
    svcca = spec.measures["svcca-var=0.99"]
    assert svcca.measure == "svcca" and svcca.params["var"] == (0.99,)
    knn = spec.measures["knn"]
    assert knn.measure == "mutual_knn" and knn.params["k"] == (5,)  # the spec's own k wins


def test_a_spec_resolves_its_ids_once_and_its_jobs_run_by_canonical_name(tmp_path):
    """The spec turns a community id into (measure, parsed parameters) when it is loaded; the
    jobs carry that canonical name and every parameter resolved, and a worker runs them by an
    exact registry lookup, which takes no community id."""
    r = np.random.default_rng(1)
    a = r.normal(size=(30, 2, 5))
    save(tmp_path / "a.nc", "A", a)
    save(tmp_path / "b.nc", "B", a @ r.normal(size=(5, 5)) + r.normal(size=a.shape))
    spec = parse_spec("""
[systems]
a = "a.nc"
b = "b.nc"
[measures."svcca-var=0.9"]
n_boot = 0
[[pairs]]
name = "p"
between = [["a"], ["b"]]
sites = ["hidden"]
""", path=tmp_path / "spec.toml", registry=get_registry())
    (job,) = expand(spec)
    assert job.label == "svcca-var=0.9" and job.measure == "svcca"
    defaults = {p.name: p.default for p in get_registry().measure("svcca").params}
    assert job.params == {**defaults, "var": 0.9, "n_boot": 0}
    outcome = run_job(job, "cpu")
    assert outcome["status"] == "done", outcome.get("error")
    direct = simbench.score("svcca", tmp_path / "a.nc", tmp_path / "b.nc", site="hidden",
                            n_boot=0, var=0.9, device="cpu")
    assert outcome["score"]["value"] == pytest.approx(direct.value, abs=1e-12)
    assert outcome["score"]["measure"] == "svcca"
    reg = get_registry()
    assert reg.registered("svcca").plugin is reg.plugin_of("svcca-var=0.9")
    with pytest.raises(RegistryError, match="not registered in this process"):
        reg.registered("svcca-var=0.9")
    lost = run_job(dataclasses.replace(job, measure="svcca-var=0.9"), "cpu")
    assert lost["status"] == "failed" and "not registered in this process" in lost["error"]


def test_unknown_community_id_says_so_and_suggests_the_nearest():
    with pytest.raises(RegistryError, match="not a community id simbench implements") as info:
        get_registry().measure("procrustes-angulr")
    assert "did you mean 'procrustes-angular'" in str(info.value)
    with pytest.raises(RegistryError, match="not a community id"):
        get_registry().measure("bures_distance-score")


def test_cli_lists_the_table(capsys):
    assert main(["measures", "--aliases"]) == 0
    out = capsys.readouterr().out
    assert "procrustes-angular" in out and "mutual_knn-topk=K" in out
    assert main(["measures", "--aliases", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"id": "svcca-var99", "measure": "svcca", "params": "var=0.99", "note": ""} in rows
