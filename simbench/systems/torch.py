"""TorchSystem: any ``torch.nn.Module`` as an accessible system, sites addressed by module path.

A TorchSystem pairs a module with a task. Its sites are read and patched with forward hooks on
named submodules (module paths as ``named_modules()`` spells them, e.g. ``layers.0``), as pyvene
does; the zoo's models are TorchSystems whose native fast API (``run``/``generate`` with sites
``embedding``, ``hidden``, ...) is used directly.

What a user module must do: take a LongTensor of token ids [B, T] (ids of its task's vocabulary,
``task.vocab``) and return next-token logits [B, T, V] (a tensor, a tuple whose first item is the logits, or an
object with ``.logits`` as Hugging Face models return). A site's module must output [B, T, d] (or a
tuple whose first item is). A hook patch replaces the module's output, so every module *called
after it* sees the patch; a recurrent module that is called once on the whole sequence (nn.GRU)
cannot feed a patch back into its own recurrence: patch a per-step cell, or use the zoo's
native models, whose ``hidden`` patches continue the recurrence.

Example::

    system = TorchSystem(my_module, MultiObject(), sites={"hidden": "layers.0"})
    rec = system.record(n=1000, seed=0)      # a simbench Recording, every site
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from simbench.access import ACCESSIBLE, Access
from simbench.errors import CheckpointError, SiteError
from simbench.interventions.patch import hooked_sites
from simbench.registry import task_by_name
from simbench.tasks.base import EOS, PAD, Stimuli, Task

if TYPE_CHECKING:  # simbench.recording loads xarray (~0.5 s): only record() needs it
    from simbench.recording import Recording


class HookedModel(nn.Module):
    """A user module with the zoo models' uniform API (``run``, ``generate``, ``site_dims``),
    sites patched and read through forward hooks on module paths."""

    def __init__(self, module: nn.Module, sites: Mapping[str, str], *,
                 probe: Any = None) -> None:
        super().__init__()
        self.module = module
        #: one short token sequence [1, T] the site widths are probed with (its task's ids)
        self.probe = probe
        paths = dict(module.named_modules())
        missing = [p for p in sites.values() if p not in paths]
        if missing:
            avail = [p for p in paths if p]
            shown = ", ".join(avail[:60]) + (" ..." if len(avail) > 60 else "")
            raise SiteError(f"module path {missing[0]!r} does not exist in "
                            f"{type(module).__name__}", site=missing[0],
                            fix=f"module paths that exist: {shown or '(no submodules)'}")
        self.site_paths = dict(sites)
        self.sites = tuple(sites)

    @functools.cached_property
    def site_dims(self) -> dict[str, int]:
        """Width of each site, found by one probe forward pass the first time it is asked."""
        probe = torch.as_tensor(self.probe if self.probe is not None else [[1, 4, 3, 8, 2]],
                                device=_device_of(self.module))
        with torch.no_grad():
            _, rec = self.run(probe, record=self.sites)
        return {s: int(v.shape[-1]) for s, v in rec.items()}

    def forward(self, tokens: Tensor) -> Tensor:
        return self.run(tokens)[0]

    def run(self, tokens: Tensor, *, edits: Mapping[str, Any] | None = None,
            record: Sequence[str] = ()) -> tuple[Tensor, dict[str, Tensor]]:
        """Run the module with hook patches and reads at the named sites (see the zoo API)."""
        if unknown := [s for s in [*record, *(edits or {})] if s not in self.site_paths]:
            raise SiteError(f"no site {unknown[0]!r}", site=unknown[0],
                            fix=f"sites of this system: {', '.join(self.sites)}")
        with hooked_sites(self.module, self.site_paths, tokens, edits, record) as rec:
            out = self.module(tokens)
        logits = getattr(out, "logits", None)
        if logits is None:
            logits = out[0] if isinstance(out, tuple | list) else out
        return logits, rec

    @torch.no_grad()
    def generate(self, tokens: Tensor, start: int | Tensor, max_new: int | None = None, *,
                 response_mask: Tensor | None = None,
                 edits: Mapping[str, Any] | None = None, eos: int = EOS,
                 pad: int = PAD) -> Tensor:
        """Greedy generation, one full forward per generated step (same contract as the zoo;
        ``eos``/``pad``: the task's ids, which :class:`TorchSystem` passes; the defaults are
        the built-in vocabulary's)."""
        from simbench.zoo.models import generate_by_full_passes, prepare_generation

        return generate_by_full_passes(
            self.run, *prepare_generation(tokens, start, max_new, response_mask, edits,
                                          pad=pad), eos=eos, pad=pad)


class TorchSystem:
    """An accessible system: a torch module, a task, and named sites.

    ``sites`` maps site names to module paths (``{"hidden": "encoder.layers.0"}``); for a zoo
    model it defaults to the model's native sites. ``model`` is what measures run: the zoo model
    itself, or a :class:`HookedModel` around a user's module; both offer
    ``run(tokens, *, edits, record)``, ``generate(...)`` and ``site_dims``.

    ``task`` is the :class:`~simbench.tasks.base.Task` whose stimuli the module reads (a task
    name is accepted for convenience and looked up in the plugin registry); token ids are its
    vocabulary's. A zoo model whose config records another vocabulary size or other special
    ids than the task's is refused with a :class:`~simbench.errors.CheckpointError`.
    """

    access: Access = ACCESSIBLE

    def __init__(self, module: nn.Module, task: Task | str, *,
                 sites: Mapping[str, str] | None = None, system_id: str | None = None,
                 meta: Mapping[str, Any] | None = None) -> None:
        self.task_def: Task = task_by_name(task)  # a name: from the plugin registry
        self.task: str = self.task_def.name
        self.module = module.eval()
        self.meta = dict(meta or {})
        check_task_fits(getattr(module, "config", None), self.task_def,
                        what=system_id or self.meta.get("id") or type(module).__name__,
                        trained_on=self.meta.get("task"))
        if sites is None and getattr(module, "sites", None) and hasattr(module, "run"):
            self.model: nn.Module = module
        elif sites is None:
            raise SiteError(f"{type(module).__name__} has no native sites; name them",
                            fix="pass sites={'name': 'module.path', ...}; module paths: "
                            + ", ".join(p for p, _ in module.named_modules() if p)[:800])
        else:
            probe = self.task_def.sample(1, 0, counts="all").tokens
            self.model = HookedModel(module, sites, probe=probe)
        self.system_id = system_id or self.meta.get("id") or type(module).__name__.lower()

    # ---- constructors ---------------------------------------------------------------------
    @classmethod
    def from_zoo(cls, zoo_id: str, *, directory: str | Path | None = None,
                 device: str = "cpu") -> TorchSystem:
        """A shipped zoo model (sha256-verified) as a TorchSystem with id ``zoo_id``."""
        from simbench.zoo import load_model

        model, meta = load_model(zoo_id, directory=directory, device=device)
        return cls(model, meta["task"], system_id=zoo_id, meta=meta)

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, task: Task | str | None = None,
                        device: str = "cpu") -> TorchSystem:
        """A zoo-format checkpoint (safetensors + JSON sidecar) as a TorchSystem (``task``:
        the task of its stimuli; default the one its sidecar records)."""
        from simbench.zoo.checkpoint import load_checkpoint

        model, meta = load_checkpoint(path, device=device)
        name = task if task is not None else meta.get("task")
        if name is None:
            raise CheckpointError("the sidecar names no task and none was given",
                                  file=Path(path).with_suffix(".json"), field="task",
                                  fix='pass --task NAME, or add "task": NAME to the sidecar')
        chosen = task_by_name(name)
        check_task_fits(model.config, chosen, what=f"checkpoint {Path(path).name}", file=path,
                        trained_on=meta.get("task"))
        return cls(model, chosen, system_id=Path(path).stem, meta=meta)

    # ---- the System protocol --------------------------------------------------------------
    @property
    def sites(self) -> tuple[str, ...]:
        return tuple(self.model.sites)

    @property
    def site_dims(self) -> dict[str, int]:
        return dict(self.model.site_dims)

    def run(self, tokens: Any, *, edits: Mapping[str, Any] | None = None,
            record: Sequence[str] = ()) -> tuple[Tensor, dict[str, Tensor]]:
        """Patched teacher-forced pass (see :mod:`simbench.zoo.models` for the edit forms).

        Without ``edits`` it runs without autograd, so the logits and recorded activations do
        not require grad (``np.asarray(acts["hidden"])`` works); with ``edits`` gradients flow
        as usual (to edit tensors that require them)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and bool(edits)):
            return self.model.run(self._tensor(tokens), edits=edits, record=record)

    def generate(self, tokens: Any, start: Any, max_new: int | None = None, *,
                 response_mask: Any = None, edits: Mapping[str, Any] | None = None) -> Tensor:
        eos = self.task_def.eos
        return self.model.generate(self._tensor(tokens), start, max_new,
                                   response_mask=response_mask, edits=edits,
                                   eos=-1 if eos is None else eos, pad=self.task_def.pad)

    def _tensor(self, tokens: Any) -> Tensor:
        if isinstance(tokens, Tensor):
            return tokens
        return torch.as_tensor(self.task_def.check_tokens(tokens), device=_device_of(self.model))

    def record_like(self, recording: Any, site: str) -> Any:
        """``site``'s dataset on a recording's own sequences (decoded through this network's
        task vocabulary; their stimulus ids kept), so the two pair stimulus by stimulus."""
        from simbench.stimuli import stimuli_from_recording

        stim = stimuli_from_recording(recording, self.task_def, site=site)
        return self.record(stim, sites=[site]).site(site)

    @torch.no_grad()
    def record(self, stimuli: Stimuli | None = None, *, n: int = 1000, seed: int = 0,
               sites: Sequence[str] | None = None, batch_size: int = 1000,
               counts: Any = "all") -> Recording:
        """Record every site (or ``sites``) over ``stimuli`` (default: ``n`` stimuli drawn with
        ``seed`` over all counts) into a :class:`~simbench.recording.Recording` whose causal
        variables are coordinates. Given stimuli keep their ids (see :meth:`record_like`)."""
        from simbench.recording import Recording, site_dataset

        stim = stimuli if stimuli is not None else self.task_def.sample(n, seed, counts=counts)
        sites = tuple(sites) if sites is not None else self.sites
        if unknown := [s for s in sites if s not in self.sites]:
            raise SiteError(f"{self.system_id} has no site {unknown[0]!r}", site=unknown[0],
                            fix=f"sites: {', '.join(self.sites)}")
        tokens = torch.as_tensor(stim.tokens, device=_device_of(self.model))
        parts: dict[str, list[np.ndarray]] = {s: [] for s in sites}
        # Record in eval mode; give every submodule back the mode it had, also on an error.
        modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        try:
            for i in range(0, len(stim), batch_size):
                _, rec = self.model.run(tokens[i: i + batch_size], record=sites)
                for s in sites:
                    parts[s].append(rec[s].float().cpu().numpy())
        finally:
            for m, mode in modes:
                m.training = mode
        tok_str = self.task_def.token_strings(stim.tokens)
        valid = stim.tokens != self.task_def.pad
        attrs = {"n_stimuli": len(stim), "seed": seed if stimuli is None else -1,
                 "generator": "simbench.systems.torch.TorchSystem.record",
                 **{k: self.meta[k] for k in ("arch", "sha256", "accuracy") if k in self.meta}}
        datasets = {}
        for s in sites:
            act = np.concatenate(parts[s]).astype(np.float32)
            act[~valid] = 0.0  # padding is not activity; zero it so files compress and compare
            datasets[s] = site_dataset(act, stimulus_ids=stim.ids, site=s,
                                       system_id=self.system_id, task=self.task,
                                       tokens=tok_str, valid=valid, variables=stim.variables,
                                       attrs=attrs)
        return Recording(system_id=self.system_id, sites=datasets, task=self.task,
                         attrs={"access": "accessible", **attrs})

    def site_data(self, site: str, *, n_stimuli: int | None = None, seed: int = 0) -> Any:
        """One site's dataset over ``n_stimuli`` (default 1000) stimuli drawn with ``seed``."""
        return self.record(n=n_stimuli or 1000, seed=seed, sites=[site]).site(site)

    def __repr__(self) -> str:
        return f"TorchSystem({self.system_id!r}, task={self.task!r}, sites={list(self.sites)})"


def check_task_fits(config: Any, task: Task, *, what: str, file: Any = None,
                    trained_on: str | None = None) -> None:
    """Refuse a model whose config records another vocabulary than ``task``'s.

    A zoo model's config holds its task's vocabulary size and pad/end ids (the built-in
    vocabulary's when the sidecar predates those fields); a model without such a config (a
    user's module) is not checked. Raises :class:`CheckpointError` naming both sizes.
    """
    size = getattr(config, "vocab_size", None)
    if size is None:
        return
    origin = f" (trained on task '{trained_on}')" if trained_on else ""
    if int(size) != len(task.vocab):
        raise CheckpointError(
            f"{what}{origin} was built for a vocabulary of {size} tokens, but task "
            f"'{task.name}' has {len(task.vocab)} tokens", file=file, field="vocab_size",
            fix=f"use the network with a task of {size} tokens (its own: "
            f"{trained_on or 'see its sidecar'}), or train one for '{task.name}' with "
            f"`simbench zoo train --task {task.name}`")
    eos = task.eos
    want = {"pad_id": task.pad, "eos_id": -1 if eos is None else eos}
    for key, value in want.items():
        have = getattr(config, key, None)
        if have is not None and int(have) != value:
            raise CheckpointError(
                f"{what}{origin} uses {key} {have}, but task '{task.name}' has {value} "
                f"('{task.pad_token if key == 'pad_id' else task.eos_token}')", file=file,
                field=key, fix="use the network with the task it was trained on")


def _device_of(module: nn.Module) -> torch.device:
    """Where ``module``'s parameters live (the CPU for a module without any)."""
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


__all__ = ["HookedModel", "TorchSystem", "check_task_fits"]
