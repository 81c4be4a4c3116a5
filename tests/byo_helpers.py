"""Bring-your-own-experiment helpers: the example task plugin installed for real, tiny networks
trained on it, and a simulated "animal" recorded as spike times.

The animal is a population of Poisson neurons whose rates are a fixed random mixture of a
network's hidden state on each trial, turned into spike times (uniform within each bin) and
binned back by :func:`simbench.from_spike_times`, as a lab's sorted units would be. Its control
takes each trial's rates from another trial (a fixed permutation), so its units fire as much
and as variably but ignore the trial's flashes.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

TESTS = Path(__file__).parent
EXAMPLE_TASK = TESTS / "example_task_plugin"
BIN_WIDTH = 0.05  # s: one bin per token
TRIAL_GAP = 1.0  # s between trial starts (a trial is 10 bins = 0.5 s)


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


def hidden_states(model: Any, tokens: np.ndarray) -> np.ndarray:
    """A zoo model's hidden state after every token, float64 [n, T, d]."""
    import torch

    with torch.no_grad():
        _, rec = model.run(torch.as_tensor(tokens), record=("hidden",))
    return rec["hidden"].float().numpy().astype(np.float64)


def poisson_spike_times(rates_hz: np.ndarray, starts: np.ndarray, bin_width: float,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Spike times (s) and unit indices of Poisson neurons with rates [trial, bin, unit] (Hz),
    each spike placed uniformly within its bin; sorted by unit, then time."""
    counts = rng.poisson(rates_hz * bin_width)
    trial, step, unit = np.nonzero(counts)
    k = counts[trial, step, unit]
    t0 = np.repeat(starts[trial] + step * bin_width, k)
    times = t0 + rng.uniform(0.0, bin_width, size=t0.size) * 0.999
    units = np.repeat(unit, k)
    order = np.lexsort((times, units))
    return times[order], units[order]


def simulate_animal(model: Any, task: Any, stim: Any, *, seed: int, units: int = 60,
                    system_id: str = "animal", control: bool = False) -> Any:
    """A Recording of Poisson units driven by ``model``'s hidden state on ``stim`` (each
    trial's own state; with ``control``, another trial's), made through from_spike_times."""
    from simbench import from_spike_times

    h = hidden_states(model, stim.tokens)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xB10]))
    if control:
        h = h[rng.permutation(len(h))]
    w = rng.standard_normal((h.shape[-1], units)) / np.sqrt(h.shape[-1])
    z = h @ w
    z = (z - z.mean((0, 1))) / (z.std((0, 1)) + 1e-8)
    soft = np.logaddexp(0.0, 1.5 * z - 0.5)
    rates = 60.0 * soft / soft.mean()  # Hz: 3 spikes per 50 ms bin on average
    starts = np.arange(len(stim)) * TRIAL_GAP
    times, unit_idx = poisson_spike_times(rates, starts, BIN_WIDTH, rng)
    return from_spike_times(
        (times, unit_idx), starts, bin_width=BIN_WIDTH,
        trial_duration=stim.tokens.shape[1] * BIN_WIDTH, system_id=system_id, site="hidden",
        task=task.name, tokens=task.token_strings(stim.tokens), pad_token=task.pad_token,
        variables=dict(stim.variables), stimulus_ids=stim.ids, unit_ids=list(range(units)))
