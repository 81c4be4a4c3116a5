"""Recordings too large to load: `simbench score cka/rsa` reads them a block of rows at a time.

Real netCDF files written by simbench's own writer; the memory simbench may assume is set small
through SIMBENCH_MEMORY_MB (or the measures' ``memory_mb``) so that a 5 MB recording counts as
"too large" and the tests stay fast. The out-of-core values must equal the in-memory ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import simbench
from simbench.cli import main
from simbench.errors import RecordingError, SimbenchError
from simbench.pairing import LazyRows, pair_sites
from simbench.recording import (
    Recording,
    is_lazy,
    load_or_open,
    load_recording,
    open_recording,
    save_recording,
    site_dataset,
)

S, T, U = 2000, 10, 64  # 20,000 paired rows of 64 float32 units: ~5 MB per file
SMALL_ENV = "4"  # MiB: 3 MiB may be used, less than either file


def _save(path: Path, system_id: str, act: np.ndarray, order: np.ndarray,
          valid: np.ndarray | None = None, ids: np.ndarray | None = None) -> Path:
    n, steps = act.shape[:2]
    ids = np.array([f"s{i:05d}" for i in range(n)]) if ids is None else ids
    valid = np.ones((n, steps), dtype=bool) if valid is None else valid
    ds = site_dataset(act[order], stimulus_ids=ids[order], site="hidden", system_id=system_id,
                      task="counting", tokens=np.full((len(order), steps), "x"),
                      valid=valid[order])
    return save_recording(Recording(system_id, {"hidden": ds}, task="counting"), path)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """a, b (related, same stimulus order) and b_shuffled (b's stimuli in another order)."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((S, T, U)) + 1.0).astype(np.float32)  # off-centre: means matter
    y = (0.3 * x @ rng.standard_normal((U, U)) + rng.standard_normal((S, T, U))).astype(
        np.float32)
    root = Path(tmp_path_factory.mktemp("scale"))
    return {"a": _save(root / "a.nc", "a", x, np.arange(S)),
            "b": _save(root / "b.nc", "b", y, np.arange(S)),
            "b_shuffled": _save(root / "b_shuffled.nc", "b", y, rng.permutation(S))}


def _cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[dict, str]:
    assert main(["score", *argv, "--site", "hidden", "--json"]) == 0
    out = capsys.readouterr()
    return json.loads(out.out), out.err


def _in_memory_cka(files: dict[str, Path], **params: object) -> float:
    return simbench.score("cka", str(files["a"]), str(files["b"]), site="hidden", n_boot=0,
                          **params).value


# ---- CKA through the CLI on recordings larger than the memory budget -------------------------
@pytest.mark.slow
def test_cli_scores_recordings_too_large_to_load(files, capsys, monkeypatch) -> None:
    """Both files exceed what simbench may use: the loader alone refuses them, the cka score
    reads them in blocks (with a progress bar) and gives the in-memory value."""
    full = _in_memory_cka(files)
    assert 0.3 < full < 0.95  # related, not identical: the comparison can fail
    monkeypatch.setenv("SIMBENCH_MEMORY_MB", SMALL_ENV)
    monkeypatch.setattr("simbench.runtime.progress_shown", lambda stream=None: True)  # a terminal
    with pytest.raises(RecordingError, match="declares"):  # the loader still protects
        load_recording(files["a"])
    score, err = _cli_json(capsys, "cka", str(files["a"]), str(files["b"]))
    assert score["value"] == pytest.approx(full, abs=1e-6)
    attrs = score["attrs"]
    assert attrs["form"] == "chunked" and attrs["activity_source"] == "read from the file"
    assert "exceeds the 3.0 MiB simbench may use" in attrs["chunked_reason"]
    assert attrs["blocks"] > 1 and score["ci"] is None and "chunked" in attrs["ci_note"]
    assert score["n_samples"] == S * T
    assert "CKA sums" in err and f"{attrs['blocks']}/{attrs['blocks']}" in err  # the bar


@pytest.mark.slow
def test_the_python_api_opens_recordings_too_large_to_load(files, monkeypatch) -> None:
    """``simbench.score`` with paths takes the same lazy route as the CLI (it refused before)."""
    full = _in_memory_cka(files)
    monkeypatch.setenv("SIMBENCH_MEMORY_MB", SMALL_ENV)
    s = simbench.score("cka", str(files["a"]), str(files["b"]), site="hidden")
    assert s.attrs["form"] == "chunked" and s.value == pytest.approx(full, abs=1e-6)
    with pytest.raises(RecordingError, match="declares"):  # measures that load whole refuse
        simbench.score("mas", str(files["a"]), "gru_multi_s1", site="hidden")


@pytest.mark.slow
def test_cli_pairs_a_shuffled_file_row_for_row(files, capsys, monkeypatch) -> None:
    """b's stimuli stored in another order: the lazy pairing reads them by id, so the value
    is the aligned one (pairing by position would give about 0)."""
    monkeypatch.setenv("SIMBENCH_MEMORY_MB", SMALL_ENV)
    aligned, _ = _cli_json(capsys, "cka", str(files["a"]), str(files["b"]))
    shuffled, _ = _cli_json(capsys, "cka", str(files["a"]), str(files["b_shuffled"]),
                            "--debiased", "false")
    assert shuffled["attrs"]["form"] == "chunked"
    assert shuffled["value"] == pytest.approx(aligned["value"], abs=1e-10)
    cosine, _ = _cli_json(capsys, "cka", str(files["a"]), str(files["b_shuffled"]),
                          "--kernel", "cosine", "--debiased", "true")
    monkeypatch.delenv("SIMBENCH_MEMORY_MB")
    assert cosine["value"] == pytest.approx(
        _in_memory_cka(files, kernel="cosine", debiased=True), abs=1e-6)


@pytest.mark.slow
def test_an_explicit_budget_chunks_activity_in_memory(files) -> None:
    """memory_mb below the paired activity: chunked even for loaded recordings, same value;
    the default budget leaves today's result (feature form, bootstrap interval) untouched."""
    a, b = str(files["a"]), str(files["b"])
    default = simbench.score("cka", a, b, site="hidden", n_boot=20)
    assert default.attrs["form"] == "feature" and default.ci is not None
    assert "chunked_reason" not in default.attrs
    small = simbench.score("cka", a, b, site="hidden", memory_mb=2, n_boot=20)
    assert small.attrs["form"] == "chunked" and small.attrs["activity_source"] == "in memory"
    assert "memory_mb = 2 MiB" in small.attrs["chunked_reason"]
    assert small.value == pytest.approx(default.value, abs=1e-9)
    forced = simbench.score("cka", a, b, site="hidden", form="chunked", chunk_rows=3000)
    assert forced.attrs["blocks"] == 7 and forced.value == pytest.approx(default.value, abs=1e-9)


def test_kernels_that_need_the_whole_activity_say_so(files, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SIMBENCH_MEMORY_MB", SMALL_ENV)
    for argv, what in ((["cka", "--kernel", "rbf"], "kernel rbf"),
                       (["cka_paper"], "the distance matrices"),
                       (["cka", "--form", "feature"], "form feature")):
        rc = main(["score", argv[0], str(files["a"]), str(files["b"]), *argv[1:],
                   "--site", "hidden"])
        err = capsys.readouterr().err
        assert rc != 0
        assert f"{argv[0]}: {what}" in err and "needs the paired activity in memory" in err
        assert "9.8 MiB" in err and "3.0 MiB" in err and "--kernel linear" in err


def test_a_measure_that_needs_activity_whole_is_refused_past_memory(files, monkeypatch) -> None:
    """pair_sites without lazy=True (what any other measure gets) reads a lazily opened file
    whole only when it fits, else the size error."""
    lazy_a, lazy_b = (open_recording(files[k]).site("hidden") for k in ("a", "b"))
    loaded = pair_sites(lazy_a, lazy_b)  # fits in this machine's memory: read whole
    assert isinstance(loaded.x, np.ndarray) and loaded.x.shape == (S * T, U)
    assert not is_lazy(load_or_open(files["a"]).site("hidden"))  # fits: loaded as before
    monkeypatch.setenv("SIMBENCH_MEMORY_MB", SMALL_ENV)
    with pytest.raises(RecordingError, match=r"paired activity is 9\.8 MiB.*needs it whole"):
        pair_sites(lazy_a, lazy_b)
    assert is_lazy(load_or_open(files["a"]).site("hidden"))


# ---- the lazy pairing itself ----------------------------------------------------------------
def test_lazy_pairing_reads_the_same_rows_as_the_loaded_one(tmp_path: Path) -> None:
    """Padding, a different order, extra stimuli (intersect): the lazy rows equal the loaded
    pairing's, in the same order, for slices and scattered row indices alike."""
    rng = np.random.default_rng(1)
    n, steps = 300, 6
    act = rng.standard_normal((n, steps, 5)).astype(np.float32)
    valid = rng.random((n, steps)) > 0.2
    ids = np.array([f"q{i:04d}" for i in range(n)])
    a = _save(tmp_path / "a.nc", "a", act, np.arange(n - 20), valid, ids)
    b = _save(tmp_path / "b.nc", "b", act[:, :, ::-1] * 2, rng.permutation(n), valid, ids)
    ref = pair_sites(load_recording(a).site("hidden"), load_recording(b).site("hidden"),
                     intersect=True)
    lazy = pair_sites(open_recording(a).site("hidden"), open_recording(b).site("hidden"),
                      intersect=True, lazy=True)
    assert isinstance(lazy.x, LazyRows) and lazy.lazy and lazy.x.shape == ref.x.shape
    np.testing.assert_array_equal(lazy.stimulus, ref.stimulus)
    np.testing.assert_array_equal(lazy.time, ref.time)
    np.testing.assert_array_equal(np.asarray(lazy.x), ref.x)
    np.testing.assert_array_equal(np.asarray(lazy.y), ref.y)
    rows = np.sort(rng.choice(ref.x.shape[0], 50, replace=False))
    np.testing.assert_array_equal(lazy.y[rows], ref.y[rows])
    np.testing.assert_array_equal(lazy.y[100:400], ref.y[100:400])


def test_non_finite_activity_is_named_when_its_block_is_read(tmp_path: Path) -> None:
    import netCDF4

    act = np.ones((40, 3, 4), dtype=np.float32) + np.arange(4)
    path = _save(tmp_path / "nan.nc", "n", act, np.arange(40))
    with netCDF4.Dataset(path, "a") as nc:  # a NaN written past the writer's validation
        nc["hidden"]["activity"][25, 1, 2] = np.nan
    ok = _save(tmp_path / "ok.nc", "o", np.ones((40, 3, 4)) + np.arange(4), np.arange(40))
    pair = pair_sites(open_recording(path).site("hidden"), open_recording(ok).site("hidden"),
                      lazy=True)
    assert pair.x[:60].shape == (60, 4)  # rows before the NaN read fine
    with pytest.raises(RecordingError, match="1 NaN/Inf activity values") as err:
        pair.x[60:90]
    assert err.value.file == str(path) and err.value.site == "hidden"
    assert "stimulus index 25, time 1" in str(err.value)


# ---- RSA: one RDM at a time past the budget ---------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("rdm_method,compare_method", [("cosine", "corr"),
                                                       ("correlation", "cosine")])
def test_blocked_rsa_equals_rsatoolbox_through_the_measure(files, rdm_method: str,
                                                           compare_method: str) -> None:
    a, b = str(files["a"]), str(files["b_shuffled"])
    kw = {"site": "hidden", "rdm_method": rdm_method, "compare_method": compare_method,
          "n_vectors": 700, "n_draws": 3}
    ref = simbench.score("rsa", a, b, **kw)
    blocked = simbench.score("rsa", a, b, memory_mb=4, **kw)  # 700^2 RDMs: ~11 MiB > 4 MiB
    assert "rdm_form" not in ref.attrs and blocked.attrs["rdm_form"] == "blocked"
    assert "one draw's RDMs over 700 samples" in blocked.attrs["blocked_reason"]
    assert 0 < blocked.attrs["block_rows"] < 700
    np.testing.assert_allclose(blocked.breakdown["per_draw"].values,
                               ref.breakdown["per_draw"].values, rtol=0, atol=1e-8)
    assert blocked.value == pytest.approx(ref.value, abs=1e-8)
    assert blocked.ci == pytest.approx(ref.ci, abs=1e-8) and 0.05 < abs(ref.value) < 0.99


@pytest.mark.slow
def test_rsa_reads_its_draws_from_a_lazily_opened_file(files) -> None:
    """Default protocol on recordings left in their files: each draw reads its rows, and the
    value is the loaded recordings' exactly."""
    kw = {"site": "hidden", "n_vectors": 300, "n_draws": 4}
    ref = simbench.score("rsa", str(files["a"]), str(files["b_shuffled"]), **kw)
    lazy = simbench.score("rsa", open_recording(files["a"]), open_recording(files["b_shuffled"]),
                          **kw)
    assert lazy.value == ref.value and lazy.ci == ref.ci


def test_rsa_rank_comparisons_over_budget_are_refused(files, capsys) -> None:
    rc = main(["score", "rsa", str(files["a"]), str(files["b"]), "--site", "hidden",
               "--n_vectors", "700", "--memory_mb", "4"])
    err = capsys.readouterr().err
    assert rc != 0 and "compare_method 'spearman' needs whole RDMs" in err
    assert "--compare-method corr" in err and "700 samples per draw" in err
    rc = main(["score", "rsa", str(files["a"]), str(files["b"]), "--site", "hidden",
               "--n_vectors", "700", "--memory_mb", "0.5", "--compare_method", "corr"])
    err = capsys.readouterr().err
    assert rc != 0 and "field 'memory_mb'" in err and "pass --memory-mb 3 or more" in err


# ---- bad budgets -----------------------------------------------------------------------------
def test_budgets_that_cannot_hold_the_accumulators_say_what_fits(files, capsys) -> None:
    a, b = str(files["a"]), str(files["b"])
    rc = main(["score", "cka", a, b, "--site", "hidden", "--memory_mb", "0.05"])
    err = capsys.readouterr().err
    assert rc != 0 and "field 'memory_mb'" in err
    assert "--memory-mb = 0.05 MiB does not hold the float64 accumulators of 64 x 64" in err
    assert "fix: pass --memory-mb 2 or more" in err
    rc = main(["score", "cka", a, b, "--site", "hidden", "--form", "chunked",
               "--memory_mb", "2", "--chunk_rows", "100000"])
    err = capsys.readouterr().err
    assert rc != 0 and "field 'chunk_rows'" in err and "chunk_rows = 100,000 needs" in err
    fits = int(err.split("pass --chunk-rows ")[1].split()[0])
    assert 300 < fits < 3000
    score = simbench.score("cka", a, b, site="hidden", form="chunked", memory_mb=2,
                           chunk_rows=fits)  # what the error says fits, fits
    assert score.attrs["chunk_rows"] == fits
    with pytest.raises(SimbenchError, match="null needs the paired activity in memory"):
        simbench.score("cka", a, b, site="hidden", memory_mb=2, null=10)


@pytest.mark.slow
def test_the_harness_scores_recordings_too_large_to_load(files, tmp_path: Path,
                                                           monkeypatch) -> None:
    """A spec naming two recordings too large to load: the harness plans and runs cka on them
    in blocks (the same value as in memory), as `simbench score` does."""
    from simbench.bench.runner import run_spec
    from simbench.bench.spec import load_spec
    from simbench.bench.store import Store

    full = _in_memory_cka(files)
    spec_path = tmp_path / "big.toml"
    spec_path.write_text(f"""
name = "big"
sites = ["hidden"]
[systems]
a = {{ recording = "{files['a']}" }}
b = {{ recording = "{files['b']}" }}
[measures.cka]
n_boot = 0
progress = false
[[pairs]]
name = "ab"
pairs = [["a", "b"]]
measures = ["cka"]
""")
    monkeypatch.setenv("SIMBENCH_MEMORY_MB", SMALL_ENV)
    with Store(tmp_path / "big.sqlite") as store:
        run_spec(load_spec(spec_path), store, workers=1, progress=False)
        rows = store.rows()
    assert len(rows) == 1 and rows[0]["status"] == "done"
    assert rows[0]["value"] == pytest.approx(full, abs=1e-6)
    assert json.loads(rows[0]["score"])["attrs"]["form"] == "chunked"
