"""The model zoo: trained GRUs, LSTMs and RoPE transformers for the task suite.

Shipped checkpoints live in ``recordings/zoo/`` (installed with simbench; safetensors + JSON sidecar each) with a
``manifest.json`` of sha256 sums; :func:`load_model` verifies them. Ids read
``{arch}_{task}_s{seed}`` with arch in gru/lstm/tf and task in multi/same/modulo/rounding/arith,
e.g. ``gru_multi_s1``. The architectures are registered in :mod:`simbench.zoo.archs` (one file
each). The language-model zoo (tiny GPT-2 directories in ``recordings/lm_zoo/``,
:mod:`simbench.zoo.lm_build`) is reached with :func:`lm_model_dir` and :func:`list_lm_models`.
Importing this package does not import torch; the functions do.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simbench.errors import CheckpointError, TaskError, TrainingError
from simbench.zoo.lm_build import LM_ZOO_DIR, list_lm_models, lm_model_dir
from simbench.zoo.manifest import (
    MANIFEST,
    MANIFEST_SCHEMA,
    ZOO_DIR,
    build_env,
    read_manifest,
    write_manifest,
    zoo_dir,
)

if TYPE_CHECKING:
    from simbench.tasks.base import Task
    from simbench.zoo.models import ZooModel
    from simbench.zoo.training import TrainConfig

#: trial accuracy (held-out counts and all counts) a model needs to enter the zoo
SHIP_ACCURACY = 0.99

#: (task, arch, seed) of every shipped model, in build order
ZOO_SPEC: tuple[tuple[str, str, int], ...] = (
    ("multi_object", "gru", 1), ("multi_object", "lstm", 1), ("multi_object", "gru", 2),
    ("multi_object", "lstm", 2), ("multi_object", "gru", 3),
    ("same_object", "gru", 1), ("same_object", "gru", 2),
    ("modulo", "gru", 1), ("modulo", "gru", 2),
    ("rounding", "gru", 1), ("rounding", "gru", 2),
    ("arithmetic", "gru", 1), ("arithmetic", "gru", 2),
    ("multi_object", "transformer", 1), ("multi_object", "transformer", 2),
)


def zoo_id(task: str, arch: str, seed: int) -> str:
    """``gru_multi_s1`` style id of a (task, arch, seed): the architecture's id prefix and the
    task's ``short_name`` (each its name where it has none, or is not registered)."""
    from simbench.registry import task_by_name
    from simbench.zoo.archs import find_arch

    found = find_arch(arch)
    with contextlib.suppress(TaskError):
        task = task_by_name(task).short_name or task
    return f"{found.id_prefix if found else arch}_{task}_s{seed}"


def list_models(directory: str | Path | None = None) -> list[dict[str, Any]]:
    """One dict per shipped model: id, task, arch, seed, sites, accuracy, n_params, sha256."""
    return [{"id": k, **v} for k, v in read_manifest(directory)["models"].items()]


def load_model(zoo_id: str, *, directory: str | Path | None = None,
               device: str = "cpu") -> tuple[ZooModel, dict[str, Any]]:
    """Load a shipped model by id after verifying its sha256 against the manifest."""
    from simbench.zoo.checkpoint import load_checkpoint

    models = read_manifest(directory)["models"]
    if zoo_id not in models:
        raise CheckpointError(f"no zoo model {zoo_id!r}", field="zoo_id",
                              fix=f"shipped ids: {', '.join(sorted(models)) or '(none)'}; "
                              "see `simbench zoo list`")
    entry = models[zoo_id]
    path = zoo_dir(directory) / entry["file"]
    model, meta = load_checkpoint(path, expected_sha256=entry["sha256"], device=device)
    return model, {"id": zoo_id, **meta}


def train(task: Task | str, arch: str, seed: int, device: str = "auto",
          **kwargs: Any) -> tuple[ZooModel, dict[str, Any]]:
    """Train one model (see :func:`simbench.zoo.training.train`)."""
    from simbench.zoo.training import train as _train

    return _train(task, arch, seed, device, **kwargs)


def build_one(task: str, arch: str, seed: int, *, directory: str | Path | None = None,
              device: str = "cpu", progress: bool = True, threads: int | None = 1,
              log: Any = None, retries: int = 2,
              config: TrainConfig | None = None) -> dict[str, Any]:
    """Train, save, reload, re-evaluate and add one model to the manifest; returns its entry.

    The recorded accuracy is measured on the weights as loaded back (after the float16 round
    trip). A model that misses :data:`SHIP_ACCURACY` is trained again from a later seed offset,
    at most ``retries`` times; if every attempt misses, :class:`TrainingError` is raised and
    neither the checkpoint nor the manifest is touched. ``config`` overrides the training
    settings (default: the ones the shipped model's sidecar recorded, else the architecture's).
    """
    from simbench.zoo.checkpoint import load_checkpoint, save_model
    from simbench.zoo.training import TrainConfig, evaluate
    from simbench.zoo.training import train as _train

    out = zoo_dir(directory)
    out.mkdir(parents=True, exist_ok=True)
    zid = zoo_id(task, arch, seed)
    # reproduce a shipped model with the settings its sidecar recorded
    shipped = ZOO_DIR / f"{zid}.json"
    recorded = json.loads(shipped.read_text()) if shipped.exists() else {}
    cfg = recorded.get("train_config")
    first = int(recorded.get("train_seed", seed))
    path = out / f"{zid}.safetensors"
    trial = out / f".{zid}.training.safetensors"  # the candidate, until it passes the bar
    misses = []
    try:
        for attempt in range(retries + 1):
            train_seed = first + 1000 * attempt
            attempt_cfg = (TrainConfig(**config.to_dict()) if config is not None
                           else TrainConfig(**cfg) if cfg else None)
            # final_eval=False: the accuracy that counts is measured below, on the weights
            # as loaded back from the float16 file
            model, meta = _train(task, arch, train_seed, device, config=attempt_cfg,
                                 progress=progress, threads=threads, log=log, final_eval=False)
            meta["seed"] = seed
            meta["train_seed"] = train_seed
            save_model(model, trial, meta)
            loaded, _ = load_checkpoint(trial)
            final = evaluate(loaded, task)
            meta.update(final, accuracy=final["heldout_trial_acc"])
            if min(final["heldout_trial_acc"], final["all_trial_acc"]) >= SHIP_ACCURACY:
                break
            misses.append(f"seed {train_seed}: held-out {final['heldout_trial_acc']:.4f}, "
                          f"all counts {final['all_trial_acc']:.4f} after {meta['steps']} steps")
        else:
            raise TrainingError(
                f"{zid} missed the zoo's bar of {SHIP_ACCURACY} trial accuracy in all "
                f"{retries + 1} attempts ({'; '.join(misses)}); nothing was written",
                file=path, fix="allow more steps (config.max_steps) or more retries, or train "
                "and inspect it yourself with `simbench zoo train`")
        side = save_model(loaded, path, meta)
    finally:
        for leftover in (trial, trial.with_suffix(".json")):
            leftover.unlink(missing_ok=True)
    entry = {"task": task, "arch": meta["arch"], "seed": seed, "file": path.name,
             "sha256": side["sha256"], "accuracy": side["accuracy"],
             "all_trial_acc": side["all_trial_acc"], "n_params": side["n_params"],
             "sites": list(loaded.sites), "train_seconds": side["train_seconds"],
             "steps": side["steps"], "built_with": build_env()}
    write_manifest({**read_manifest(directory)["models"], zid: entry}, directory)
    return entry


def rebuild(*, directory: str | Path | None = None, only: list[str] | None = None,
            device: str = "cpu", progress: bool = True, log: Any = None,
            skip_existing: bool = False) -> list[dict[str, Any]]:
    """Regenerate the shipped zoo deterministically from its seeds (CPU, one thread)."""
    entries = []
    have = read_manifest(directory)["models"]
    for task, arch, seed in ZOO_SPEC:
        zid = zoo_id(task, arch, seed)
        if (only and zid not in only) or (skip_existing and zid in have):
            continue
        entries.append(build_one(task, arch, seed, directory=directory, device=device,
                                 progress=progress, log=log))
    return entries


__all__ = ["LM_ZOO_DIR", "MANIFEST", "MANIFEST_SCHEMA", "SHIP_ACCURACY", "ZOO_DIR", "ZOO_SPEC",
           "build_one", "list_lm_models", "list_models", "lm_model_dir", "load_model",
           "read_manifest", "rebuild", "train", "write_manifest", "zoo_dir", "zoo_id"]
