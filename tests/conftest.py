"""Shared fixtures: small valid recordings on disk, and registries built from test plugins.

Nothing here depends on the built-in measures (other plugins may be mid-change): tests that
score something use the example plugin under ``tests/example_plugin`` or the tiny measures
defined below, registered through the same ``Registry.add_plugin`` path entry points use.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import simbench
import simbench.registry as registry_module
from simbench.measure import Measure, Param
from simbench.recording import Recording, save_recording, site_dataset
from simbench.registry import PluginInfo, Registry
from simbench.result import Score

TESTS = Path(__file__).parent
EXAMPLE_PLUGIN = TESTS / "example_plugin"
N_STIM, N_TIME, N_UNIT = 24, 5, 6
SIMBENCH = str(Path(sys.executable).parent / "simbench")


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            drop: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it (``drop``: variables to unset)."""
    full_env = {k: v for k, v in os.environ.items() if k not in drop}
    full_env.update(env or {})
    return subprocess.run([SIMBENCH, *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd, timeout=120)


# ---- recordings ---------------------------------------------------------------------------
def make_site(
    system_id: str = "a",
    *,
    site: str = "hidden",
    n_stim: int = N_STIM,
    n_time: int = N_TIME,
    n_unit: int = N_UNIT,
    seed: int = 0,
    ids: Sequence[str] | None = None,
    pad_last: int = 0,
) -> xr.Dataset:
    """A valid site dataset: random activity, tokens, a `count` variable, and optional padding.

    ``pad_last`` marks the last steps of every odd stimulus invalid and fills them with NaN, so
    a test can check padding never reaches a measure.
    """
    rng = np.random.default_rng(seed)
    activity = rng.normal(size=(n_stim, n_time, n_unit))
    valid = np.ones((n_stim, n_time), dtype=bool)
    if pad_last:
        valid[1::2, -pad_last:] = False
        activity[~valid] = np.nan
    tokens = np.where(valid, "x", "<pad>")
    count = np.cumsum(valid, axis=1)
    return site_dataset(
        activity,
        stimulus_ids=list(ids) if ids is not None else [f"s{i:03d}" for i in range(n_stim)],
        site=site, system_id=system_id, task="counting", tokens=tokens, valid=valid,
        variables={"count": count},
    )


def rotated_copy(ds: xr.Dataset, system_id: str, *, seed: int = 1, scale: float = 3.0) -> xr.Dataset:
    """``ds`` with its activity rotated, scaled and shifted: Procrustes similarity 1."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(ds.sizes["unit"], ds.sizes["unit"])))
    out = ds.copy(deep=True)
    out["activity"] = ds["activity"] @ xr.DataArray(q * scale, dims=("unit", "unit_out"))
    out["activity"] = out["activity"].rename(unit_out="unit") + 1.5
    out.attrs["system_id"] = system_id
    return out


def write_recording(path: Path, *sites: xr.Dataset, system_id: str | None = None) -> Path:
    """Save site datasets (keyed by their ``site`` attr) as one recording file."""
    sid = system_id or sites[0].attrs["system_id"]
    rec = Recording(sid, {ds.attrs["site"]: ds for ds in sites}, task="counting")
    return save_recording(rec, path)


def write_raw(path: Path, sites: dict[str, xr.Dataset], **attrs: Any) -> Path:
    """Write a file *without* validation, to make the broken files the loader must reject."""
    tree = {"/": xr.Dataset(attrs={"schema": "simbench-recording/1", **attrs})}
    tree.update({f"/{name}": ds for name, ds in sites.items()})
    xr.DataTree.from_dict(tree).to_netcdf(path, engine="netcdf4")
    return path


def score_spec(root: Path, text: str, *, done: int) -> tuple[Any, Path]:
    """Write spec ``text`` into ``root``, run all its jobs in this process into a real store
    there, assert none failed and ``done`` finished; the loaded spec and the store's path."""
    from simbench.bench.jobs import prepare
    from simbench.bench.runner import run_spec
    from simbench.bench.spec import load_spec
    from simbench.bench.store import Store

    path = root / "mini.toml"
    path.write_text(text)
    spec = load_spec(path)
    store_path = root / "store.sqlite"
    with Store(store_path) as store:
        summary = run_spec(spec, store, jobs=prepare(spec), progress=False)
    assert summary.failed == [] and summary.done == done
    return spec, store_path


def pip_install_child(tmp_path: Path, package: Path, **env_extra: str
                      ) -> tuple[Path, dict[str, str]]:
    """`pip install` the package at ``package`` into a fresh venv, offline; its python and env.

    The venv is created from this interpreter without pip (fast); a ``.pth`` file makes this
    project's site directories (the venv's and the system's) site directories of it, so
    simbench, pip and setuptools import there while the package lands in the new venv only.
    The package is copied outside the repo first so no build/ or egg-info lands there.
    """
    import shutil
    import site
    import subprocess
    import sys
    import sysconfig

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True).stdout.strip()
    parents = [sysconfig.get_path("purelib"), *site.getsitepackages()]
    (Path(purelib) / "_simbench_parent.pth").write_text("".join(
        f"import site; site.addsitedir({p!r})\n" for p in dict.fromkeys(parents)))
    source = tmp_path / package.name
    shutil.copytree(package, source, ignore=shutil.ignore_patterns("__pycache__", "build",
                                                                   "*.egg-info"))
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", **env_extra}
    for var in ("SIMBENCH_PLUGINS", "SIMBENCH_DISABLE", "PYTHONPATH"):
        env.pop(var, None)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", str(source)], check=True, env=env, cwd=tmp_path)
    return python, env


@pytest.fixture
def pair_files(tmp_path: Path) -> tuple[Path, Path]:
    """Two recordings, `a.nc` and `b.nc`, where b is a rotated, scaled, shifted copy of a."""
    a = make_site("a")
    b = rotated_copy(a, "b")
    return write_recording(tmp_path / "a.nc", a), write_recording(tmp_path / "b.nc", b)


# ---- plugins ------------------------------------------------------------------------------
class Causal(Measure):
    """A causal measure that must intervene on both systems (for access checks)."""

    name = "toy_causal"
    family = "causal"
    access = ("accessible", "accessible")
    description = "test-only: needs two networks"

    def score(self, systems: Sequence[Any], **kw: Any) -> Score:  # pragma: no cover
        raise AssertionError("check_access must refuse before score runs")


class Broken(Measure):
    """A correlative measure whose computation crashes (for PluginError wrapping)."""

    name = "toy_broken"
    family = "correlative"
    access = ("recording", "recording")
    params = (Param("intersect", False, "unused"),)
    description = "test-only: raises inside score"

    def score(self, systems: Sequence[Any], **kw: Any) -> Score:
        raise ZeroDivisionError("the plugin's own bug")


class ToyPlugin:
    """A plugin object holding arbitrary measures, registered through ``add_plugin``."""

    def __init__(self, *measures: Measure) -> None:
        self._measures = list(measures)

    @simbench.hookimpl
    def simbench_measures(self) -> list[Measure]:
        return self._measures


def info(name: str, dist: str | None = None) -> PluginInfo:
    """A PluginInfo as load_entry_points would build it for entry point ``name``."""
    return PluginInfo(name, dist or f"{name}-dist", "1.0", f"tests.{name}")


@pytest.fixture
def example_module(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The example plugin package, imported from its source directory (not installed)."""
    monkeypatch.syspath_prepend(str(EXAMPLE_PLUGIN))
    import simbench_example_plugin

    return simbench_example_plugin


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch, example_module: Any) -> Iterator[Registry]:
    """The process-wide registry replaced by one holding the example plugin and toy measures."""
    reg = Registry()
    reg.add_plugin(example_module, info("procrustes", "simbench-example-plugin"))
    reg.add_plugin(ToyPlugin(Causal(), Broken()), info("toys"))
    monkeypatch.setattr(registry_module, "_REGISTRY", reg)
    yield reg


@pytest.fixture
def fake_dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Path]]:
    """Install plugin distributions the cheap way: a module plus a ``.dist-info`` on sys.path.

    ``importlib.metadata`` discovers them exactly as it discovers pip-installed ones, so
    ``Registry.load_entry_points`` exercises its real path. Returns the directory, which a
    subprocess can use as ``PYTHONPATH``.
    """
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    added: list[str] = []

    def make(dist: str, module: str, source: str, entry: str | None = None) -> Path:
        (root / f"{module}.py").write_text(textwrap.dedent(source))
        info_dir = root / f"{dist.replace('-', '_')}-1.0.dist-info"
        info_dir.mkdir()
        (info_dir / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info_dir / "entry_points.txt").write_text(f"[simbench]\n{entry or module} = {module}\n")
        added.append(module)
        importlib.invalidate_caches()  # directory listings and metadata paths are cached
        return root

    yield make
    for module in added:
        sys.modules.pop(module, None)


GOOD_PLUGIN = '''
    import simbench
    from simbench.measure import Measure

    class Const(Measure):
        name = "{name}"
        family = "correlative"
        access = ("recording", "recording")

    @simbench.hookimpl
    def simbench_measures():
        return [Const()]
'''


@pytest.fixture
def recs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory of small real recordings for harness tests, with a fresh plugin registry
    and no results store named by the environment."""
    from bench_helpers import fresh_registry, make_recordings

    fresh_registry(monkeypatch)
    monkeypatch.delenv("SIMBENCH_STORE", raising=False)
    make_recordings(tmp_path)
    return tmp_path
