"""Simulate a recording-only neural population that solves Multi-Object, and write it as netCDF.

What it is: ``UNITS`` (200) "neurons" whose firing rates are a fixed nonlinear mixture of a
held-out zoo GRU's hidden state (``gru_multi_s3`` by default: not one of the networks the
findings align it with), with Poisson spike counts per time bin (one bin per token):

    z    = standardise(h W)          W: 128 x 200 Gaussian, fixed by the seed
    rate = MEAN_RATE * softplus(GAIN * z + OFFSET) / mean(softplus(...))
    spikes ~ Poisson(rate)           int16 counts, zero on padding

Stimuli: ``N_STIMULI`` (600) Multi-Object sequences over all counts 1..20 (seeded). The file
follows the recording schema (README): site ``hidden`` with ``activity`` (stimulus, time,
unit), coordinates ``stimulus_id``, ``token`` (strings), ``valid`` and the task's causal
variables ``count`` and ``phase`` after every step; attrs say how it was generated. CLMAS uses
nothing else: the population is never "run".

Regenerate (deterministic for a given seed and model):

    .venv/bin/python recordings/make_population.py [--model gru_multi_s3] [--seed 0]

A shuffled control (the same activity with its states' labels permuted) is made on the fly by
:func:`shuffled` (the tests use it); it is not shipped.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "population_gru_multi.nc"
MODEL = "gru_multi_s3"
TASK = "multi_object"
N_STIMULI = 600
UNITS = 200
GAIN = 1.5
OFFSET = -0.5
MEAN_RATE = 1.5  # spikes per bin, averaged over units and steps
SITE = "hidden"


def simulate(model: Any, *, seed: int = 0, n: int = N_STIMULI, units: int = UNITS,
             model_id: str = MODEL, system_id: str = "population_gru_multi") -> Any:
    """A :class:`~simbench.recording.Recording` of the simulated population (see module)."""
    import torch

    from simbench.recording import Recording, site_dataset
    from simbench.registry import task_by_name

    task = task_by_name(TASK)
    stim = task.sample(n, seed + 2025, counts="all")
    with torch.no_grad():
        _, rec = model.run(torch.as_tensor(stim.tokens), record=(SITE,))
    h = rec[SITE].float().numpy().astype(np.float64)  # [n, T, d]
    valid = stim.tokens != task.pad
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x90B]))
    w = rng.standard_normal((h.shape[-1], units)) / np.sqrt(h.shape[-1])
    z = h @ w
    mu, sd = z[valid].mean(0), z[valid].std(0) + 1e-8
    z = (z - mu) / sd
    soft = np.logaddexp(0.0, GAIN * z + OFFSET)
    rate = MEAN_RATE * soft / soft[valid].mean()
    spikes = rng.poisson(rate).astype(np.int16)
    spikes[~valid] = 0
    ds = site_dataset(
        spikes, stimulus_ids=np.array([f"pop-{i:04d}" for i in range(n)]), site=SITE,
        system_id=system_id, task=TASK, tokens=task.token_strings(stim.tokens), valid=valid,
        variables={k: v.astype(np.int16) for k, v in stim.variables.items()},
        attrs={"units": "spikes per bin (one bin per token)"})
    attrs = {"generator": "recordings/make_population.py", "seed": seed, "source_model": model_id,
             "mixture": f"rate = {MEAN_RATE} * softplus({GAIN} z + {OFFSET}) / mean, z = "
             "standardised random projection of the hidden state; Poisson counts",
             "n_units": units}
    return Recording(system_id=system_id, sites={SITE: ds}, task=TASK, attrs=attrs)


def shuffled(recording: Any, seed: int = 0, system_id: str | None = None) -> Any:
    """The control: activity vectors permuted across all valid (stimulus, step) states.

    Tokens and causal variables stay where they are (they remain consistent with each other),
    but no recorded vector belongs to its state any more, so nothing aligns beyond chance.
    """
    from simbench.recording import Recording

    out = {}
    for name, ds in recording.sites.items():
        act = ds["activity"].values.copy()
        valid = ds["valid"].values
        rows, cols = np.nonzero(valid)
        perm = np.random.default_rng(seed).permutation(len(rows))
        act[rows, cols] = act[rows[perm], cols[perm]]
        out[name] = ds.assign(activity=(ds["activity"].dims, act))
    return Recording(system_id=system_id or f"{recording.system_id}_shuffled", sites=out,
                     task=recording.task, attrs={**recording.attrs, "control": "shuffled"})


def write(recording: Any, path: Path = OUT) -> Path:
    """Validate, then write with zlib compression (11 MB of int16 counts -> ~1.2 MB)."""
    import xarray as xr

    from simbench.recording import SCHEMA, validate_site
    from simbench.recording.io import netcdf_attrs

    tree = {"/": xr.Dataset(attrs=netcdf_attrs({"schema": SCHEMA,
                                                 "system_id": recording.system_id,
                                                 "task": recording.task,
                                                 **recording.attrs}))}
    encoding = {}
    for name, ds in recording.sites.items():
        validate_site(ds, file=path, site=name)
        tree[f"/{name}"] = ds.assign_attrs(netcdf_attrs(ds.attrs))
        enc: dict[str, dict[str, Any]] = {
            str(c): ({"dtype": "S1", "zlib": True} if ds[c].dtype.kind == "U" else {"zlib": True})
            for c in ds.coords}  # fixed-width chars: vlen strings cannot be compressed
        enc["activity"] = {"zlib": True, "complevel": 6, "shuffle": True}
        encoding[f"/{name}"] = enc
    tmp = path.with_name(path.name + ".part")
    xr.DataTree.from_dict(tree).to_netcdf(tmp, engine="netcdf4", encoding=encoding)
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=MODEL, help="zoo id of the held-out GRU")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    from simbench.zoo import load_model

    model, _ = load_model(args.model)
    path = write(simulate(model.eval(), seed=args.seed, model_id=args.model), args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
