"""Bring-your-own-experiment helpers: the example task plugin installed for real, tiny networks
trained on it, and the simulated "animal" of :mod:`simbench.simulate` (public API)."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import simbench.simulate as _simulate

TESTS = Path(__file__).parent
EXAMPLE_TASK = TESTS / "example_task_plugin"
BIN_WIDTH = _simulate.BIN_WIDTH  # s: one bin per token
TRIAL_GAP = _simulate.TRIAL_GAP  # s between trial starts (a trial is 10 bins = 0.5 s)


def pip_install_example_task(dest: Path) -> Path:
    """``pip install`` the example task package (offline, no dependencies) into ``dest/site``.

    The source is copied out of the repository first so no ``build/`` or egg-info lands there.
    Returns the site directory (for ``sys.path`` / ``PYTHONPATH``).
    """
    source = dest / "example_task_plugin"
    shutil.copytree(EXAMPLE_TASK, source, ignore=shutil.ignore_patterns(
        "__pycache__", "build", "*.egg-info"))
    site = dest / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--no-build-isolation", "--disable-pip-version-check", "--target", str(site),
                    str(source)], check=True, capture_output=True, cwd=dest, timeout=300)
    return site


def use_site(site: Path, monkeypatch: Any) -> Any:
    """Make an installed site directory visible to this process (and its children) and rebuild
    the plugin registry from the entry points; returns the registry."""
    import simbench.registry as registry_module

    monkeypatch.syspath_prepend(str(site))
    import os

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(site), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]))
    monkeypatch.delenv("SIMBENCH_PLUGINS", raising=False)
    monkeypatch.delenv("SIMBENCH_DISABLE", raising=False)
    importlib.invalidate_caches()
    monkeypatch.setattr(registry_module, "_REGISTRY", None)
    return registry_module.get_registry()


def train_tiny(task: Any, seed: int, *, steps: int = 300, d_model: int = 24) -> tuple[Any, dict]:
    """A small GRU trained for a few seconds on every condition of ``task``."""
    from simbench.zoo.models import ModelConfig
    from simbench.zoo.training import TrainConfig, train

    cfg = TrainConfig(max_steps=steps, eval_every=100, batch_size=64, warmup=10,
                      decay_steps=steps, lr=1e-2, train_counts="all")
    return train(task, "gru", seed, "cpu", config=cfg, progress=False, threads=1,
                 model_config=ModelConfig(d_model=d_model))


# the simulated animal is public: simbench.simulate (documented there)
hidden_states = _simulate.hidden_states
poisson_spike_times = _simulate.poisson_spike_times
simulate_animal = _simulate.simulate_animal
