"""CKA and cka_paper: invariances, forms, the debiased estimator, kernels, seeds, API and CLI.

Reference values are computed here from the textbook formulas (numpy, written independently of
the plugin), on real netCDF recordings where the measure is called through simbench.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from recording_helpers import save
from scipy.spatial.distance import pdist, squareform

import simbench
from simbench.errors import SimbenchError
from simbench.estimators.cka import cka, distance_cka
from simbench.estimators.resampling import bootstrap_counts

N_STIM, N_TIME = 40, 6




def rotate(x: np.ndarray, seed: int = 1, scale: float = 2.5, shift: float = 4.0) -> np.ndarray:
    """x rotated by a random orthogonal matrix, scaled isotropically and translated."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(x.shape[-1], x.shape[-1])))
    return scale * x @ q + shift


def textbook_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al. eq. (biased HSIC): tr(KHLH) / sqrt(tr(KHKH) tr(LHLH)), K = XX'."""
    n = len(x)
    H = np.eye(n) - np.ones((n, n)) / n
    K, L = H @ x @ x.T @ H, H @ y @ y.T @ H
    return float(np.sum(K * L) / np.sqrt(np.sum(K * K) * np.sum(L * L)))


def textbook_hsic_u(K: np.ndarray, L: np.ndarray) -> float:
    """The unbiased HSIC estimator of Song et al. (2012), eq. (5), literally."""
    n = len(K)
    Kt, Lt = K - np.diag(np.diag(K)), L - np.diag(np.diag(L))
    one = np.ones(n)
    return float((np.trace(Kt @ Lt) + (one @ Kt @ one) * (one @ Lt @ one) / ((n - 1) * (n - 2))
                  - 2 / (n - 2) * (one @ Kt @ Lt @ one)) / (n * (n - 3)))


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_STIM, N_TIME, 12))
    y = np.concatenate([x[..., :4] @ rng.normal(size=(4, 9)), rng.normal(size=(N_STIM, N_TIME, 9))],
                       axis=-1)
    return {"x": x, "y": y, "stim": np.repeat(np.arange(N_STIM), N_TIME)}


# ---- correctness ------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("form", ["feature", "gram"])
@pytest.mark.parametrize("debiased", [False, True])
def test_one_for_rotated_scaled_translated_copy(data, form, debiased):
    x = data["x"].reshape(-1, 12)
    assert cka(x, rotate(x), form=form, debiased=debiased).value == pytest.approx(1, abs=1e-10)
    assert cka(x, data["y"].reshape(-1, 18), form=form).value < 0.9


def test_one_end_to_end_on_recordings(tmp_path, data):
    a = save(tmp_path / "A.nc", "a", data["x"])
    b = save(tmp_path / "B.nc", "b", rotate(data["x"]))
    s = simbench.score("cka", a, b, site="hidden")
    assert s.value == pytest.approx(1, abs=1e-10)
    assert s.n_samples == N_STIM * N_TIME and s.systems == ("a", "b")


def test_linear_matches_textbook(data):
    x, y = data["x"].reshape(-1, 12), data["y"].reshape(-1, 18)
    assert cka(x, y).value == pytest.approx(textbook_linear_cka(x, y), abs=1e-12)


@pytest.mark.parametrize("kernel", ["linear", "cosine"])
@pytest.mark.parametrize("debiased", [False, True])
def test_feature_and_gram_forms_agree(data, kernel, debiased):
    x, y = data["x"].reshape(-1, 12), data["y"].reshape(-1, 18)
    kw = {"kernel": kernel, "debiased": debiased, "stimulus": data["stim"], "n_boot": 20,
          "seed": 5}
    f, g = cka(x, y, form="feature", **kw), cka(x, y, form="gram", **kw)
    assert (f.form, g.form) == ("feature", "gram")
    assert abs(f.value - g.value) < 1e-6
    np.testing.assert_allclose(f.replicates, g.replicates, atol=1e-6)  # bootstrap too


def test_auto_form_picks_the_cheaper_one():
    rng = np.random.default_rng(1)
    assert cka(rng.normal(size=(500, 10)), rng.normal(size=(500, 10))).form == "feature"
    assert cka(rng.normal(size=(20, 300)), rng.normal(size=(20, 300))).form == "gram"


def test_debiased_matches_song_unbiased_hsic_by_hand():
    # n = 6 samples, hand-sized: CKA_u = HSIC_u(K, L) / sqrt(HSIC_u(K, K) HSIC_u(L, L)).
    x = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [3.0, 1.0], [0.0, 0.0], [2.0, 3.0]])
    y = np.array([[2.0], [1.0], [0.0], [4.0], [1.0], [3.0]])
    xc, yc = x - x.mean(0), y - y.mean(0)
    K, L = xc @ xc.T, yc @ yc.T
    want = textbook_hsic_u(K, L) / np.sqrt(textbook_hsic_u(K, K) * textbook_hsic_u(L, L))
    for form in ("feature", "gram"):
        assert cka(x, y, debiased=True, form=form).value == pytest.approx(want, abs=1e-12)
    assert cka(x, y, debiased=True).value != pytest.approx(cka(x, y).value, abs=1e-3)


def test_debiased_removes_the_pull_towards_one_of_many_units():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(60, 500)), rng.normal(size=(60, 500))  # independent
    assert cka(x, y).value > 0.8  # biased CKA: high for unrelated data when d >> n
    assert abs(cka(x, y, debiased=True).value) < 0.1


def test_kernels(data):
    x, y = data["x"].reshape(-1, 12), data["y"].reshape(-1, 18)
    rng = np.random.default_rng(3)
    for kernel in ("linear", "cosine", "rbf"):
        assert cka(x, x, kernel=kernel).value == pytest.approx(1, abs=1e-10)
        assert 0 <= cka(x, y, kernel=kernel).value <= 1
        assert cka(x, rng.normal(size=x.shape), kernel=kernel).value < 0.3
    # cosine = linear kernel of unit rows; rotation and scaling (not translation) leave it at 1
    assert cka(x, rotate(x, shift=0.0), kernel="cosine").value == pytest.approx(1, abs=1e-10)
    # RBF as Kornblith et al.'s gram_rbf (sigma = threshold * sqrt(median squared distance))
    def gram_rbf(a, threshold):
        sq = squareform(pdist(a, "sqeuclidean"))
        return np.exp(-sq / (2 * threshold**2 * np.median(sq)))

    H = np.eye(len(x)) - 1 / len(x)
    for sigma in (0.5, 2.0):
        K, L = H @ gram_rbf(x, sigma) @ H, H @ gram_rbf(y, sigma) @ H
        want = np.sum(K * L) / np.sqrt(np.sum(K * K) * np.sum(L * L))
        assert cka(x, y, kernel="rbf", rbf_sigma=sigma).value == pytest.approx(want, abs=1e-10)


def test_float32_close_to_float64(data):
    x, y = data["x"].reshape(-1, 12) + 10, data["y"].reshape(-1, 18)  # offset: centring matters
    v64 = cka(x, y).value
    assert cka(x, y, dtype="float32").value == pytest.approx(v64, abs=1e-5)
    assert cka(x, y, dtype="float32", form="gram").value == pytest.approx(v64, abs=1e-5)


def test_a_bootstrap_replicate_is_cka_of_resampled_stimuli(data):
    x, y, stim = data["x"].reshape(-1, 12), data["y"].reshape(-1, 18), data["stim"]
    res = cka(x, y, stimulus=stim, n_boot=3, seed=9)
    counts = bootstrap_counts(N_STIM, 3, 9)
    for b in range(3):
        rows = np.concatenate([np.flatnonzero(stim == s) for s in range(N_STIM)
                               for _ in range(int(counts[b, s]))])
        assert res.replicates[b] == pytest.approx(textbook_linear_cka(x[rows], y[rows]), abs=1e-10)


def test_many_stimuli_bootstrap_random_groups(monkeypatch, data):
    import simbench.estimators.cka as mod

    monkeypatch.setattr(mod, "MAX_UNITS", 8)
    monkeypatch.setattr(mod, "MIN_UNITS", 4)
    x, y, stim = data["x"].reshape(-1, 12), data["y"].reshape(-1, 18), data["stim"]
    res = cka(x, y, stimulus=stim, n_boot=30)
    assert res.attrs["bootstrap_units"] == f"8 random groups of {N_STIM} stimuli"
    assert res.value == pytest.approx(textbook_linear_cka(x, y), abs=1e-12)
    assert np.std(res.replicates) > 0


def test_seeds_change_only_the_sampling(tmp_path, data):
    a = save(tmp_path / "A.nc", "a", data["x"])
    b = save(tmp_path / "B.nc", "b", data["y"])
    s0, s0b, s1 = (simbench.score("cka", a, b, site="hidden", seed=s, n_boot=50)
                   for s in (0, 0, 1))
    assert (s0.value, s0.ci) == (s0b.value, s0b.ci)
    assert s1.value == s0.value and s1.ci != s0.ci  # the estimate has no randomness
    assert s0.ci[0] < s0.value < s0.ci[1]
    # the Gram form with a row subsample: the value itself depends on the seed
    g0, g1 = (simbench.score("cka", a, b, site="hidden", seed=s, kernel="rbf", max_samples=100,
                             n_boot=0) for s in (0, 1))
    assert g0.value != g1.value and g0.n_samples == 100


def test_constant_activity_is_a_clear_error(tmp_path, data):
    a = save(tmp_path / "A.nc", "a", data["x"])
    b = save(tmp_path / "B.nc", "b", np.ones_like(data["x"]))
    with pytest.raises(SimbenchError, match="does not vary"):
        simbench.score("cka", a, b, site="hidden", n_boot=0)


# ---- cka_paper ----------------------------------------------------------------------------------
def test_cka_paper(data):
    x, y = data["x"].reshape(-1, 12), data["y"].reshape(-1, 18)
    z = lambda a: (a - a.mean(0)) / a.std(0, ddof=1)  # noqa: E731
    # our reading of the paper's code, written out: align the centred distance matrices
    H = np.eye(len(x)) - 1 / len(x)
    Dx, Dy = H @ squareform(pdist(z(x))) @ H, H @ squareform(pdist(z(y))) @ H
    want = np.sum(Dx * Dy) / np.sqrt(np.sum(Dx * Dx) * np.sum(Dy * Dy))
    assert distance_cka(x, y).value == pytest.approx(want, abs=1e-10)
    assert 0 < want < 1 and want != pytest.approx(cka(x, y).value, abs=1e-3)
    # squared distances: exactly linear CKA of the z-scored data
    assert distance_cka(x, y, metric="sqeuclidean").value == pytest.approx(
        textbook_linear_cka(z(x), z(y)), abs=1e-10)
    # z-scoring makes it blind to per-unit scale, shift and order
    perm = np.random.default_rng(0).permutation(12)
    assert distance_cka(x, x[:, perm] * np.arange(1, 13) - 3).value == pytest.approx(1, abs=1e-10)


# ---- API, CLI and start-up ------------------------------------------------------------------------
def test_api_and_cli_json(tmp_path, capsys, data):
    from simbench.cli import main

    a = save(tmp_path / "A.nc", "a", data["x"])
    b = save(tmp_path / "B.nc", "b", data["y"])
    s = simbench.score("cka", a, b, site="hidden", n_boot=30)
    x, y = data["x"].reshape(-1, 12), data["y"].reshape(-1, 18)
    assert s.value == pytest.approx(textbook_linear_cka(x, y), abs=1e-12)
    assert s.attrs["form"] == "feature" and s.attrs["bootstrap_units"] == f"{N_STIM} stimuli"
    assert main(["score", "cka", str(a), str(b), "--site", "hidden", "--json", "--n_boot", "30"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["measure"] == "cka" and out["n_samples"] == N_STIM * N_TIME
    assert out["value"] == pytest.approx(s.value, abs=1e-12)
    assert out["ci"] == pytest.approx(list(s.ci), abs=1e-12)
    assert main(["score", "cka_paper", str(a), str(b), "--site", "hidden", "--n_boot", "0"]) == 0
    assert "cka_paper(a, b) at site 'hidden'" in capsys.readouterr().out


def test_networks_on_different_tasks_are_recorded_on_the_same_stimuli():
    """A Multi-Object GRU and a Rounding GRU see the same input sequences, so CKA pairs them
    (each task names its stimuli differently; recorded separately they would share none)."""
    import simbench

    score = simbench.score("cka", "gru_multi_s1", "gru_rounding_s1", site="hidden",
                           n_stimuli=60, n_boot=0)
    same = simbench.score("cka", "gru_multi_s1", "gru_multi_s2", site="hidden", n_stimuli=60,
                          n_boot=0)
    assert score.n_samples == same.n_samples  # identical sequences, identical valid steps
    assert 0.0 < score.value < 1.0


# ---- memory: no copies, a bootstrap budget, the same numbers --------------------------------
def _float32_pair(tmp_path):
    """Float32 recordings (what networks record); the old path copied them to float64."""
    rng = np.random.default_rng(42)
    x = rng.normal(size=(120, 5, 24)).astype(np.float32) + 3
    y = (np.tanh(x @ rng.normal(size=(24, 16))) + 0.5 * rng.normal(size=(120, 5, 16))
         ).astype(np.float32)
    return save(tmp_path / "a.nc", "a", x), save(tmp_path / "b.nc", "b", y), x, y


# Values and intervals of the path that copied both systems to float64 before estimating
# (simbench before the estimators read float32 data a block at a time).
COPYING_PATH = [
    ("cka", {}, 0.17479407080571888, (0.16078999977724626, 0.19158991717332727)),
    ("cka", {"kernel": "cosine"}, 0.17870847534313272, (0.16609361095907316, 0.19608337437910772)),
    ("cka", {"debiased": True}, 0.1529080397387231, (0.13797100149189384, 0.1702000266148727)),
    ("cka", {"kernel": "rbf", "max_samples": 300}, 0.22624822171018133,
     (0.20500494491616206, 0.2548814458138656)),
    ("cka", {"form": "gram", "max_samples": 0}, 0.17479407080571896,
     (0.16078999977724637, 0.19158991717332738)),
    ("cka", {"dtype": "float32"}, 0.1747940709554807, (0.16078999895012724, 0.1915899151587015)),
    ("cka_paper", {"max_samples": 400}, 0.23388813185626126,
     (0.2063422349729086, 0.2614905296770902)),
]


@pytest.mark.parametrize(("measure", "kw", "value", "ci"), COPYING_PATH)
def test_values_equal_the_copying_path(tmp_path, measure, kw, value, ci):
    a, b, _, _ = _float32_pair(tmp_path)
    s = simbench.score(measure, a, b, site="hidden", **kw)
    tol = 1e-6 if kw.get("dtype") == "float32" else 1e-12
    assert s.value == pytest.approx(value, abs=tol)
    assert s.ci == pytest.approx(ci, abs=tol)


def test_random_groups_gather_rows_without_reordering_the_data(monkeypatch, tmp_path):
    """Random groups of stimuli are read by index, not by a reordered copy: same replicates as
    the copying path (percentiles frozen from it) and each one the textbook CKA of its rows."""
    import simbench.estimators.cka as mod
    from simbench.estimators.resampling import stimulus_groups

    monkeypatch.setattr(mod, "MAX_UNITS", 16)
    _, _, x, y = _float32_pair(tmp_path)
    x, y, stim = x.reshape(-1, 24), y.reshape(-1, 16), np.repeat(np.arange(120), 5)
    frozen = {"linear": [0.17494266, 0.19326806, 0.21935245],
              "cosine": [0.17934002, 0.19633011, 0.2203924]}
    for kernel, want in frozen.items():
        res = cka(x, y, stimulus=stim, n_boot=50, seed=3, kernel=kernel)
        assert res.attrs["bootstrap_units"] == "16 random groups of 120 stimuli"
        np.testing.assert_allclose(np.percentile(res.replicates, [2.5, 50, 97.5]), want,
                                   atol=1e-8)
    res = cka(x, y, stimulus=stim, n_boot=3, seed=3)
    group, _ = stimulus_groups(stim, 120, 16, 3)
    counts = bootstrap_counts(16, 3, 3)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    for b in range(3):
        rows = np.concatenate([np.flatnonzero(group == g) for g in range(16)
                               for _ in range(int(counts[b, g]))])
        assert res.replicates[b] == pytest.approx(textbook_linear_cka(x64[rows], y64[rows]),
                                                  abs=1e-10)


@pytest.mark.slow
def test_the_bootstrap_stays_in_its_memory_budget(tmp_path):
    """Fewer bootstrap units under a small budget; none below MIN_UNITS, and then ci_note
    names the budget that would do, which does."""
    from simbench.estimators.cka import MIN_UNITS, bootstrap_unit_bytes

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3, 512)).astype(np.float32)
    y = (x + rng.normal(size=x.shape)).astype(np.float32)
    a, b = save(tmp_path / "a.nc", "a", x), save(tmp_path / "b.nc", "b", y)
    kw = {"site": "hidden", "form": "feature", "n_boot": 20}
    unit, fixed = bootstrap_unit_bytes(512, 512, False, itemsize=4)
    assert unit > 6 * 2**20  # each unit's moments: three 512 x 512 float64 matrices
    s = simbench.score("cka", a, b, boot_memory_mb=160, **kw)
    fits = (160 * 2**20 - fixed) // unit
    assert MIN_UNITS <= fits < 40
    assert s.attrs["bootstrap_units"] == f"{fits} random groups of 40 stimuli" and s.ci
    small = simbench.score("cka", a, b, boot_memory_mb=16, **kw)
    assert small.ci is None and small.value == s.value
    note = small.attrs["ci_note"]
    assert note.startswith("no interval") and "boot_memory_mb = 16" in note
    need = int(note.split("raise boot_memory_mb to ")[1].split(",")[0])
    assert need == -(-(MIN_UNITS * unit + fixed) // 2**20)
    enough = simbench.score("cka", a, b, boot_memory_mb=need, **kw)
    assert enough.ci is not None
    assert enough.attrs["bootstrap_units"] == f"{MIN_UNITS} random groups of 40 stimuli"


def test_every_missing_interval_says_why(tmp_path, data):
    a = save(tmp_path / "A.nc", "a", data["x"])
    b = save(tmp_path / "B.nc", "b", data["y"])
    for measure in ("cka", "cka_paper"):
        s = simbench.score(measure, a, b, site="hidden", n_boot=0)
        assert s.ci is None and "n_boot = 0" in s.attrs["ci_note"]
    one_a = save(tmp_path / "one_a.nc", "a", data["x"][:1])  # one stimulus, six steps
    one_b = save(tmp_path / "one_b.nc", "b", data["y"][:1])
    s = simbench.score("cka", one_a, one_b, site="hidden")
    assert s.ci is None and "there is 1; record more stimuli" in s.attrs["ci_note"]
    s = simbench.score("cka", a, b, site="hidden", n_boot=30)
    assert s.ci is not None and "ci_note" not in s.attrs


def test_the_device_it_ran_on_is_recorded(tmp_path, data):
    """``auto`` is resolved: attrs name the device the products ran on."""
    a = save(tmp_path / "A.nc", "a", data["x"])
    b = save(tmp_path / "B.nc", "b", data["y"])
    for measure in ("cka", "cka_paper"):
        s = simbench.score(measure, a, b, site="hidden", n_boot=0, device="auto")
        assert s.attrs["device"] == "cpu"  # this machine has no GPU visible to the tests
    cpu = simbench.score("cka", a, b, site="hidden", n_boot=0, device="cpu")
    assert cpu.attrs["device"] == "cpu"


@pytest.mark.gpu
def test_cuda_is_recorded_with_its_index(tmp_path, data):
    import torch
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    a = save(tmp_path / "A.nc", "a", data["x"])
    b = save(tmp_path / "B.nc", "b", data["y"])
    for form in ("feature", "gram"):
        gpu = simbench.score("cka", a, b, site="hidden", n_boot=20, device="auto", form=form)
        cpu = simbench.score("cka", a, b, site="hidden", n_boot=20, device="cpu", form=form)
        assert gpu.attrs["device"] == f"cuda:{torch.cuda.current_device()}"
        assert gpu.value == pytest.approx(cpu.value, abs=1e-6)


def test_estimators_tasks_and_the_correlative_plugins_import_light():
    """One fresh interpreter, importing layer by layer: the estimators need neither torch nor
    xarray nor the plugins; the tasks no torch; the CKA and RSA plugins neither torch nor
    rsatoolbox (each is loaded when a score needs it)."""
    code = (
        "import json, sys\n"
        "def loaded(*names):\n"
        "    return sorted({m.split('.')[0] for m in sys.modules} & set(names))\n"
        "import simbench.estimators.cka, simbench.estimators.resampling\n"
        "out = [loaded('torch', 'simbench_plugins', 'xarray')]\n"
        "import simbench.tasks\n"
        "out.append(loaded('torch'))\n"
        "import simbench_plugins.cka, simbench_plugins.rsa\n"
        "out.append(loaded('torch', 'rsatoolbox'))\n"
        "print(json.dumps(out))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [[], [], []]
