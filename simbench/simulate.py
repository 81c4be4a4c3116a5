"""A simulated "animal": a recording of Poisson units driven by a network, for trying
recording-only measures (CLMAS, CKA, RSA) end to end before real data exist.

Its spikes are binned back as a lab's sorted units would be (:func:`simulate_animal`). With
``control=True`` the units fire as much and as variably but ignore what the trial showed, so a
measure should score the control near chance::

    import simbench
    from simbench.simulate import simulate_animal

    net = simbench.TorchSystem.from_zoo("gru_multi_s1")
    stim = net.task_def.sample(400, seed=7, counts="all")
    animal = simulate_animal(net, net.task_def, stim, seed=0)        # a Recording
    simbench.save_recording(animal, "animal.nc")
    # simbench score clmas gru_multi_s2 animal.nc --site hidden
"""

from __future__ import annotations

from typing import Any

import numpy as np

BIN_WIDTH = 0.05  #: s: one bin per token
TRIAL_GAP = 1.0  #: s between trial starts (at least: a longer trial gets 0.5 s after it)
RATE_HZ = 60.0  #: mean firing rate: 3 spikes per 50 ms bin on average


def hidden_states(network: Any, tokens: np.ndarray, site: str = "hidden") -> np.ndarray:
    """A network's activity at ``site`` after every token, float64 [n, T, d], without
    gradients (``network``: a :class:`~simbench.TorchSystem` or a zoo model)."""
    import torch

    tensor = torch.as_tensor(np.asarray(tokens))
    with torch.no_grad():
        _, rec = network.run(tensor, record=(site,))
    return rec[site].detach().float().cpu().numpy().astype(np.float64)


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


def simulate_animal(network: Any, task: Any, stimuli: Any, *, seed: int, units: int = 60,
                    system_id: str = "animal", control: bool = False, site: str = "hidden",
                    rate_hz: float = RATE_HZ, bin_width: float = BIN_WIDTH,
                    trial_gap: float | None = None) -> Any:
    """A :class:`~simbench.Recording` (site ``"hidden"``) of ``units`` Poisson units driven by
    ``network``'s activity at ``site`` on ``stimuli`` (a task's :class:`Stimuli`).

    Each unit's rate is a softplus of a fixed random projection of the state, scaled to a mean
    of ``rate_hz``; spikes are drawn per bin of ``bin_width`` s (one per token), trials start
    ``trial_gap`` s apart, and the spikes are binned back by :func:`simbench.from_spike_times`.
    The recording carries the task's tokens, causal variables and stimulus ids, so causal
    measures can match it to ``task``. ``control``: each trial's state comes from another
    trial (a fixed permutation). Same ``seed``, same spikes.
    """
    from simbench.importers import from_spike_times

    h = hidden_states(network, stimuli.tokens, site)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xB10]))
    if control:
        h = h[rng.permutation(len(h))]
    w = rng.standard_normal((h.shape[-1], units)) / np.sqrt(h.shape[-1])
    z = h @ w
    z = (z - z.mean((0, 1))) / (z.std((0, 1)) + 1e-8)
    soft = np.logaddexp(0.0, 1.5 * z - 0.5)
    rates = rate_hz * soft / soft.mean()
    duration = stimuli.tokens.shape[1] * bin_width
    gap = trial_gap if trial_gap is not None else max(TRIAL_GAP, duration + 0.5)
    starts = np.arange(len(stimuli)) * gap
    times, unit_idx = poisson_spike_times(rates, starts, bin_width, rng)
    return from_spike_times(
        (times, unit_idx), starts, bin_width=bin_width,
        trial_duration=duration, system_id=system_id, site="hidden",
        task=task.name, tokens=task.token_strings(stimuli.tokens), pad_token=task.pad_token,
        variables=dict(stimuli.variables), stimulus_ids=stimuli.ids,
        unit_ids=list(range(units)))


__all__ = ["BIN_WIDTH", "RATE_HZ", "TRIAL_GAP", "hidden_states", "poisson_spike_times",
           "simulate_animal"]
