"""The plugin API is simbench's top-level names, and the previous release's paths still work.

A plugin that imports only ``simbench.X`` names installs from a fresh directory and scores; one
written against the previous release's guide (``from simbench.score import Score,
bootstrap_ci``, ``Score`` built positionally) still loads and scores, with a
``DeprecationWarning`` that names the new path.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import warnings
from pathlib import Path

import pytest
from conftest import pip_install_child

import simbench

TOP_LEVEL = ("Measure", "Param", "Score", "pair_sites", "bootstrap_ci", "hookimpl",
             "SimbenchError", "ParameterError", "Recording", "load_recording",
             "open_recording", "save_recording", "site_dataset")

NEW_PLUGIN = '''
"""Correlation of two systems' centred row norms, written against the top-level API only."""
import numpy as np
from simbench import Measure, Param, ParameterError, Score, bootstrap_ci, hookimpl, pair_sites


def norm_corr(x, y, rows=None):
    rows = np.arange(len(x)) if rows is None else rows
    nx = np.linalg.norm(x[rows] - x[rows].mean(0), axis=1)
    ny = np.linalg.norm(y[rows] - y[rows].mean(0), axis=1)
    return float(np.corrcoef(nx, ny)[0, 1])


class NormCorr(Measure):
    name = "toy_norm_corr"
    family = "correlative"
    access = ("recording", "recording")
    symmetric = True
    higher_is_better = True
    range = (-1.0, 1.0)
    params = (Param("n_boot", 50, "bootstrap resamples of stimuli", low=0),)
    description = "correlation of the centred row norms (1 under rotation, scale and shift)"

    def score(self, systems, *, site, task, seed, device, n_boot=50, **_):
        a, b = systems
        paired = pair_sites(a.site_data(site), b.site_data(site),
                            names=(a.system_id, b.system_id))
        if len(paired.x) < 3:
            raise ParameterError("too few samples", field="site")

        def resampled(stimuli):
            rows = np.flatnonzero(np.isin(paired.stimulus, stimuli))
            return norm_corr(paired.x, paired.y, rows)

        ci = bootstrap_ci(resampled, paired.n_stimuli, n_boot=n_boot, seed=seed)
        return Score(measure=self.name, value=norm_corr(paired.x, paired.y),
                     systems=(a.system_id, b.system_id), site=site, ci=ci,
                     n_samples=len(paired.x))


@hookimpl
def simbench_measures():
    return [NormCorr()]
'''

# The previous release's README plugin guide, its imports and Score call as they were.
OLD_PLUGIN = '''
import numpy as np

import simbench
from simbench.measure import Measure, Param
from simbench.pairing import pair_sites
from simbench.score import Score, bootstrap_ci


def procrustes_similarity(x, y, weights=None):
    w = np.ones(len(x)) if weights is None else weights
    x = (x - np.average(x, axis=0, weights=w)) * np.sqrt(w)[:, None]
    y = (y - np.average(y, axis=0, weights=w)) * np.sqrt(w)[:, None]
    return float(np.linalg.svd(x.T @ y, compute_uv=False).sum()
                 / (np.linalg.norm(x) * np.linalg.norm(y)))


class OldProcrustes(Measure):
    name = "old_procrustes"
    family = "correlative"
    access = ("recording", "recording")
    symmetric = True
    higher_is_better = True
    range = (0.0, 1.0)
    params = (Param("n_boot", 50, "bootstrap resamples of stimuli", low=0),)

    def score(self, systems, *, site, task, seed, device, n_boot=50, **_):
        a, b = systems
        paired = pair_sites(a.site_data(site), b.site_data(site), names=(a.system_id, b.system_id))
        value = procrustes_similarity(paired.x, paired.y)

        def resampled(stimuli):
            counts = np.bincount(stimuli, minlength=paired.n_stimuli)
            return procrustes_similarity(paired.x, paired.y, counts[paired.stimulus])

        ci = bootstrap_ci(resampled, paired.n_stimuli, n_boot=n_boot, seed=seed)
        return Score(self.name, value, (a.system_id, b.system_id), site=site, ci=ci,
                     n_samples=len(paired.x))


@simbench.hookimpl
def simbench_measures():
    return [OldProcrustes()]
'''

SCORE = '''
import json, sys, simbench
s = simbench.score(sys.argv[1], sys.argv[2], sys.argv[3], site="hidden")
print(json.dumps({"value": s.value, "ci": s.ci, "plugin": s.attrs["plugin"]}))
'''


def test_the_plugin_api_is_the_top_level_names() -> None:
    from simbench.measure import Measure
    from simbench.pairing import pair_sites
    from simbench.result import Score
    from simbench.stats import bootstrap_ci

    missing = [n for n in TOP_LEVEL if not hasattr(simbench, n)]
    assert not missing and set(TOP_LEVEL) <= set(simbench.__all__)
    assert (simbench.Measure, simbench.Score, simbench.pair_sites, simbench.bootstrap_ci) == (
        Measure, Score, pair_sites, bootstrap_ci)


def test_the_old_score_module_path_warns_and_forwards() -> None:
    with pytest.warns(DeprecationWarning, match="use 'from simbench import Score'"):
        from simbench.score import Score
    with pytest.warns(DeprecationWarning, match="from simbench import bootstrap_ci"):
        from simbench.score import bootstrap_ci
    assert Score is simbench.Score and bootstrap_ci is simbench.bootstrap_ci
    assert callable(simbench.score) and simbench.score is simbench.api.score
    with pytest.raises(ImportError):
        from simbench.score import no_such_name  # noqa: F401


@pytest.mark.parametrize("module, name", [("modulo", "Modulo"), ("multi_object", "MultiObject"),
                                          ("rounding", "Rounding"), ("same_object", "SameObject")])
def test_the_previous_release_task_modules_warn_and_forward(module: str, name: str) -> None:
    import importlib
    import sys

    import simbench.tasks

    sys.modules.pop(f"simbench.tasks.{module}", None)
    with pytest.warns(DeprecationWarning, match=f"from simbench.tasks import {name}"):
        old = importlib.import_module(f"simbench.tasks.{module}")
    assert getattr(old, name) is getattr(simbench.tasks, name)


def test_score_takes_the_old_positional_form_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="pass them by keyword"):
        old = simbench.Score("m", 0.25, ("a", "b"), "hidden", (0.1, 0.4), 7)
    new = simbench.Score(measure="m", value=0.25, systems=("a", "b"), site="hidden",
                         ci=(0.1, 0.4), n_samples=7)
    assert old == new
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        simbench.Score(measure="m", value=0.25, systems=("a",))  # keywords: no warning
    with pytest.raises(TypeError, match="multiple values for value"):
        simbench.Score("m", 0.5, value=0.5, systems=("a",))


def _package(root: Path, name: str, source: str) -> Path:
    pkg = root / name
    (pkg / name).mkdir(parents=True)
    (pkg / name / "__init__.py").write_text(textwrap.dedent(source))
    (pkg / "pyproject.toml").write_text(textwrap.dedent(f'''
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{name.replace("_", "-")}"
        version = "0.1.0"

        [project.entry-points.simbench]
        {name} = "{name}"

        [tool.setuptools]
        packages = ["{name}"]
        '''))
    return pkg


def _install_and_score(tmp_path: Path, name: str, source: str, measure: str,
                       files: tuple[Path, Path]) -> tuple[dict, str]:
    src = _package(tmp_path / "src", name, source)
    python, env = pip_install_child(tmp_path / name, src, OMP_NUM_THREADS="1",
                                    PYTHONWARNINGS="default::DeprecationWarning")
    done = subprocess.run([str(python), "-c", SCORE, measure, *map(str, files)], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


@pytest.mark.slow
def test_a_plugin_of_top_level_names_installs_from_a_fresh_directory_and_scores(
        tmp_path: Path, pair_files: tuple[Path, Path]) -> None:
    out, err = _install_and_score(tmp_path, "toy_norm_corr_plugin", NEW_PLUGIN,
                                  "toy_norm_corr", pair_files)
    assert out["value"] == pytest.approx(1.0, abs=1e-6)  # b is a rotated, scaled, shifted a
    assert out["plugin"].startswith("toy-norm-corr-plugin")
    assert out["ci"] is not None and out["ci"][0] <= out["ci"][1] <= 1.0 + 1e-9
    assert "simbench" not in "".join(line for line in err.splitlines()
                                     if "DeprecationWarning" in line)


@pytest.mark.slow
def test_a_plugin_of_the_previous_release_still_scores_with_deprecation_warnings(
        tmp_path: Path, pair_files: tuple[Path, Path]) -> None:
    out, err = _install_and_score(tmp_path, "old_procrustes_plugin", OLD_PLUGIN,
                                  "old_procrustes", pair_files)
    assert out["value"] == pytest.approx(1.0, abs=1e-6)
    assert "use 'from simbench import Score'" in err
    assert "use 'from simbench import bootstrap_ci'" in err
    assert "Score with positional arguments is deprecated" in err
