"""The validity report directory: the board as CSV, grid plot and text, and the cost per measure
(stored runtimes from a real store, one job run again for its time and peak memory)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import score_spec

from simbench.bench.store import Store
from simbench.calibration import costs as C
from simbench.calibration import validity as V
from simbench.calibration.report import write_report

SPEC = """
name = "mini_report"
sites = ["hidden"]
[systems]
gru1 = { zoo = "gru_multi_s1", arch = "gru", task = "multi_object" }
gru2 = { zoo = "gru_multi_s2", arch = "gru", task = "multi_object" }
gru3 = { zoo = "gru_multi_s3", arch = "gru", task = "multi_object" }
round1 = { zoo = "gru_rounding_s1", arch = "gru", task = "rounding" }
mod1 = { zoo = "gru_modulo_s1", arch = "gru", task = "modulo" }
[groups]
grus = { arch = "gru" }
[measures.cka]
n_stimuli = 120
n_boot = 0
[measures.rsa]
n_stimuli = 120
n_vectors = 120
n_draws = 2
[[pairs]]
name = "cross_task"
pairs = [["gru1", "round1"], ["gru1", "mod1"]]
[[pairs]]
name = "seeds"
pairs = [["gru1", "gru2"], ["gru1", "gru3"]]
"""


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    return score_spec(tmp_path_factory.mktemp("report"), SPEC, done=8)


@pytest.mark.slow
def test_costs_read_the_store_and_measure_one_seed_pair(scored) -> None:
    spec, path = scored
    with Store(path, create=False) as store:
        stored = C.stored_runtimes(spec, store)
        got = {c.variant: c for c in C.measure_costs(spec, store, variants=["cka"])}
        rows = [r for r in store.rows(status="done") if r["variant"] == "cka"]
    assert sorted(stored) == ["cka", "rsa"] and len(stored["cka"]) == 4
    assert sorted(stored["cka"]) == sorted(r["runtime_s"] for r in rows)
    cka = got["cka"]
    assert list(got) == ["cka"] and cka.status == "measured"
    assert cka.jobs == 4 and cka.stored_total_s == pytest.approx(sum(stored["cka"]))
    # the first pair of the "seeds" category is measured, though cross_task comes first
    assert cka.pair == "gru1~gru2" and cka.site == "hidden"
    assert cka.cpu_s is not None and cka.cpu_s > 0 and cka.wall_s >= 0.5 * cka.cpu_s
    # two networks and 120 recorded stimuli are resident during the job
    assert cka.peak_mib is not None and 0.1 < cka.peak_mib < 2000


def test_report_directory_has_the_table_the_plots_and_the_costs(scored, tmp_path: Path) -> None:
    spec, path = scored
    with Store(path, create=False) as store:
        board = V.validity_board(spec, store, layer_order=False, bias=False, n_boot=200)
        costs = C.measure_costs(spec, store, measure=False)
    files = write_report(board, tmp_path / "out", costs)
    names = sorted(f.name for f in files)
    assert names == ["README.md", "costs.csv", "separability.png", "validity.csv",
                     "validity.png", "validity.txt"]
    rows = list(csv.DictReader((tmp_path / "out" / "validity.csv").open()))
    # cka and rsa, then a row per registered measure the spec does not run
    from simbench.registry import get_registry

    assert len(rows) == len(get_registry().measures) * len(V.CHECKS)
    assert [r["variant"] for r in rows[::len(V.CHECKS)]][:2] == ["cka", "rsa"]
    sep = {r["variant"]: r for r in rows if r["check"] == "separability"}
    assert sep["cka"]["status"] in (V.PASSED, V.FAILED) and "AUC" in sep["cka"]["detail"]
    cost_rows = list(csv.DictReader((tmp_path / "out" / "costs.csv").open()))
    assert [r["variant"] for r in cost_rows] == ["cka", "rsa"]
    assert all(r["jobs"] == "4" and r["status"] == "not measured" for r in cost_rows)
    assert (tmp_path / "out" / "validity.png").read_bytes()[:4] == b"\x89PNG"
    text = (tmp_path / "out" / "validity.txt").read_text()
    assert "measure validity of spec 'mini_report'" in text and "cost per measure" in text


def test_cli_out_writes_the_report(scored, tmp_path: Path, capsys) -> None:
    from simbench.calibration.cli import main

    spec, path = scored
    rc = main(["validity", str(spec.path), "--store", str(path), "--no-bias",
               "--no-layer-order", "--out", str(tmp_path / "rep"), "--no-costs"])
    got = capsys.readouterr()
    assert rc == 0 and "report written to" in got.out
    assert (tmp_path / "rep" / "costs.csv").is_file()
    assert (tmp_path / "rep" / "validity.png").is_file()
    readme = (tmp_path / "rep" / "README.md").read_text()
    assert f"simbench validity {spec.path} --store {path} --no-layer-order --no-bias" in readme
    assert "- **separability**: passed by" in readme and "| cka |" in readme
