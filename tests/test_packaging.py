"""A plain (non-editable) install carries everything a new user runs.

The README installs editable, which would hide a subpackage or a data file missing from the
wheel; these tests build the real wheel, install it into a directory of its own and use it from
outside the source tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from simbench.bench.spec import tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _packages_on_disk() -> set[str]:
    """Dotted name of every package directory the project maps, as setuptools would see it."""
    names = set()
    for package, directory in PYPROJECT["package-dir"].items():
        base = ROOT / directory
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base).parts
            names.add(".".join((package, *rel)))
    return names


def test_pyproject_lists_every_package() -> None:
    """A subpackage left out of ``packages`` installs editable but is missing from the wheel."""
    listed = set(PYPROJECT["packages"])
    assert _packages_on_disk() <= listed, sorted(_packages_on_disk() - listed)
    for data_dir in ("zoo", "alignments"):
        assert f"simbench_recordings.{data_dir}" in listed


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(out / "dist"), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = (out / "dist").glob("simbench-*.whl")
    site = out / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return site


PROBE = textwrap.dedent("""
    import importlib, json, pkgutil, sys
    import simbench, simbench_plugins
    for pkg in (simbench, simbench_plugins):
        for mod in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            importlib.import_module(mod.name)
    from simbench.registry import get_registry
    from simbench.resources import recordings_dir, shipped_specs
    from simbench.zoo import ZOO_DIR, load_model
    from simbench.bench.jobs import prepare
    from simbench.bench.spec import load_spec
    model, meta = load_model("gru_multi_s1")
    demo = load_spec("demo")
    print(json.dumps({
        "simbench": simbench.__file__, "plugins": simbench_plugins.__file__,
        "zoo": str(ZOO_DIR), "population": str(recordings_dir() / "population_gru_multi.nc"),
        "models": len(list(ZOO_DIR.glob("*.safetensors"))),
        "alignments": len(list((recordings_dir() / "alignments").glob("*.safetensors"))),
        "specs": {k: str(v) for k, v in shipped_specs().items()},
        "measures": sorted(get_registry().measures),
        "demo_jobs": len(prepare(demo)), "accuracy": meta["heldout_trial_acc"],
    }))
""")


@pytest.mark.slow
def test_wheel_runs_outside_the_source_tree(installed_wheel: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(installed_wheel), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("simbench", "plugins", "zoo", "population"):
        assert got[key].startswith(str(installed_wheel)), (key, got[key])
    assert Path(got["population"]).is_file()
    assert got["models"] == 15 and got["alignments"] >= 15
    assert set(got["specs"]) >= {"demo", "paper"}
    assert all(p.startswith(str(installed_wheel)) for p in got["specs"].values())
    assert {"cka", "cka_paper", "rsa", "mas", "das", "clmas", "model_stitch",
            "latent_stitch"} <= set(got["measures"])
    assert got["demo_jobs"] == 16
    assert got["accuracy"] >= 0.99  # the checkpoint loaded and its sha256 matched


def _shipped_jobs(name: str) -> str:
    """'done/total' of a shipped store against its spec, as the board prints it."""
    from simbench.bench.leaderboard import build
    from simbench.bench.spec import load_spec
    from simbench.bench.store import Store

    spec = load_spec(ROOT / "benchmarks" / "specs" / f"{name}.toml", trusted=False)
    with Store(ROOT / "benchmarks" / "results" / f"{name}.sqlite", create=False) as store:
        board = build(spec, store)
    assert 0 < board.done <= board.total
    return f"{board.done}/{board.total}"


@pytest.mark.slow
def test_shipped_leaderboards_from_the_wheel(installed_wheel: Path, tmp_path: Path) -> None:
    """`simbench leaderboard paper|lm_toxicity` from a plain install, in an empty directory:
    the shipped stores are installed with the wheel, read, and nothing is written."""
    env = {**os.environ, "PYTHONPATH": str(installed_wheel), "OMP_NUM_THREADS": "1"}
    env.pop("SIMBENCH_STORE", None)
    code = "import sys; from simbench.cli import main; sys.exit(main(sys.argv[1:]))"
    # the lm_toxicity counts come from its shipped store and spec (partial or complete)
    for name, jobs in (("paper", "158/158"), ("lm_toxicity", _shipped_jobs("lm_toxicity"))):
        done = subprocess.run([sys.executable, "-c", code, "leaderboard", name, "--board",
                               "validity"], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert f"{jobs} jobs" in done.stdout
        assert f"{installed_wheel}/simbench_results/{name}.sqlite" in done.stderr
    assert not any(tmp_path.iterdir())  # nothing written where it ran
