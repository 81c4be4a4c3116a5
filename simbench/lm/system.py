"""A causal LM as a simbench system: run, patch, record.

:class:`LMSystem` satisfies :class:`~simbench.systems.System` (``site_data`` records the
system's prompts) and :class:`~simbench.systems.accessible.AccessibleSystem`: its ``model`` is
an :class:`LMModel`, which runs token ids with sites read and patched by forward hooks on module
paths. The Hugging Face model is held frozen (eval mode, no gradients) in float32.

Example::

    from simbench.lm import load_lm
    lm = load_lm("./lm_a", prompts="prompts.txt")        # a save_pretrained directory
    rec = lm.record(sites=["transformer.h.2"])            # (prompt, token position, unit)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from simbench.access import ACCESSIBLE, Access
from simbench.errors import SiteError, TaskError
from simbench.interventions.patch import hooked_sites
from simbench.lm import sites as lm_sites
from simbench.lm.text import context_length, encode_prompts, forward, pad_batch, pad_id
from simbench.recording import Recording, site_dataset
from simbench.tasks.continuation import Continuation, PromptSource


class LMModel(nn.Module):
    """A causal LM with the patchable-model API: ``run(tokens, edits=, record=)``.

    Sites are module paths or ``embedding``; ``site_dims`` lists ``embedding`` and the decoder
    layers (any other module path works in ``run`` too). ``attention_mask`` marks real tokens
    (default: all), positions count from each row's first real token.
    """

    def __init__(self, module: nn.Module, *, system_id: str = "model") -> None:
        super().__init__()
        self.module = module
        self.system_id = system_id
        self._dims: dict[str, int] = {}

    @property
    def sites(self) -> tuple[str, ...]:
        return tuple(lm_sites.known_sites(self.module))

    @property
    def site_dims(self) -> dict[str, int]:
        """Width of ``embedding`` and of every decoder layer (one probe pass, then cached)."""
        missing = [s for s in self.sites if s not in self._dims]
        if missing:
            self._probe(missing)
        return {s: self._dims[s] for s in self.sites}

    def width(self, site: str) -> int:
        """Width of any site (probed once)."""
        if site not in self._dims:
            self._probe([site])
        return self._dims[site]

    def _probe(self, sites: Sequence[str]) -> None:
        device = next(self.module.parameters()).device
        with torch.no_grad():
            _, rec = self.run(torch.zeros((1, 2), dtype=torch.long, device=device),
                              record=sites)
        self._dims.update({s: int(v.shape[-1]) for s, v in rec.items()})

    def path(self, site: str) -> str:
        return lm_sites.module_path(self.module, site, system_id=self.system_id)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.run(tokens)[0]

    def run(self, tokens: Tensor, *, edits: Mapping[str, Any] | None = None,
            record: Sequence[str] = (), attention_mask: Tensor | None = None
            ) -> tuple[Tensor, dict[str, Tensor]]:
        """Logits [B, T, V] and the recorded sites [B, T, d] (after patching); ``edits`` are
        those of :mod:`simbench.interventions.patch`."""
        mask = torch.ones_like(tokens) if attention_mask is None else attention_mask
        paths = {s: self.path(s) for s in [*record, *(edits or {})]}
        with hooked_sites(self.module, paths, tokens, edits, record) as rec:
            logits = forward(self.module, tokens, mask)
        return logits, rec


class LMSystem:
    """An accessible system: a Hugging Face causal LM (held frozen, in float32), its tokenizer
    and the :class:`~simbench.tasks.continuation.Continuation` whose prompts it records and is
    aligned on (a measure's ``prompts`` parameter overrides them)."""

    access: Access = ACCESSIBLE
    #: what :func:`simbench.lm.measure.is_language_model` looks for (no torch import needed)
    is_language_model = True

    def __init__(self, model: nn.Module, tokenizer: Any, *, system_id: str | None = None,
                 task: Continuation | None = None, path: str | Path | None = None) -> None:
        if not hasattr(model, "get_input_embeddings") or not hasattr(tokenizer, "get_vocab"):
            raise TaskError(f"{type(model).__name__} with {type(tokenizer).__name__} is not a "
                            "Hugging Face causal LM and tokenizer", field="systems",
                            fix="pass an AutoModelForCausalLM and its AutoTokenizer")
        self.module = model.float().eval()
        self.module.requires_grad_(False)
        self.tokenizer = tokenizer
        self.path = Path(path) if path is not None else None
        self.system_id = system_id or (self.path.name if self.path else
                                       type(model).__name__.lower())
        self.task_def = task if task is not None else Continuation()
        self.task = self.task_def.name
        self._model = LMModel(self.module, system_id=self.system_id)

    @classmethod
    def from_dir(cls, path: str | Path, *, task: Continuation | None = None,
                 system_id: str | None = None) -> LMSystem:
        """A ``save_pretrained`` directory (checked file by file; see :mod:`simbench.lm.load`)."""
        from simbench.lm.load import load_model_dir

        model, tokenizer = load_model_dir(path)
        return cls(model, tokenizer, task=task, path=path,
                   system_id=system_id or Path(path).resolve().name)

    def with_task(self, task: Continuation) -> LMSystem:
        """The same model and tokenizer with other prompts (a new system; this one is kept)."""
        return type(self)(self.module, self.tokenizer, system_id=self.system_id, task=task,
                          path=self.path)

    # ---- the System protocols ---------------------------------------------------------------
    @property
    def model(self) -> LMModel:
        return self._model

    @property
    def sites(self) -> tuple[str, ...]:
        return self._model.sites

    @property
    def site_dims(self) -> dict[str, int]:
        return self._model.site_dims

    @property
    def pad(self) -> int:
        return pad_id(self.tokenizer)

    @property
    def padding_side(self) -> str:
        return str(getattr(self.tokenizer, "padding_side", "right") or "right")

    @property
    def context(self) -> int | None:
        return context_length(self.module)

    def vocab(self) -> dict[str, int]:
        """token string -> id of the tokenizer."""
        return dict(self.tokenizer.get_vocab())

    def encode(self, prompts: Sequence[str], new_tokens: int = 0) -> list[list[int]]:
        """Token ids of ``prompts`` (context checked for ``new_tokens`` more tokens)."""
        return encode_prompts(self.tokenizer, prompts, new_tokens=new_tokens,
                              context=self.context, what=self.system_id)

    def prompts(self, override: Continuation | None = None) -> Continuation:
        """The task with prompts: ``override`` when given, else the system's own."""
        task = override if override is not None and override.prompts else self.task_def
        if not task.prompts:
            raise TaskError(f"'{self.system_id}' has no prompts", field="prompts",
                            fix="pass --prompts FILE (Python: prompts='file.txt', or "
                            "load_lm(path, prompts=[...]))")
        return task

    @torch.no_grad()
    def record(self, prompts: PromptSource | Continuation | None = None, *,
               sites: Sequence[str] | None = None, batch_size: int = 64) -> Recording:
        """Record ``sites`` (default: ``embedding`` and every decoder layer) over the prompts
        into a :class:`~simbench.recording.Recording`: (prompt, token position, unit), the
        prompt ids as ``stimulus_id``, the tokens as ``token`` strings."""
        task = (prompts if isinstance(prompts, Continuation) else
                Continuation(prompts) if prompts is not None else None)
        task = self.prompts(task)
        sites = tuple(sites) if sites is not None else self.sites
        for s in sites:
            self._model.path(s)  # unknown sites fail before anything runs
        ids = self.encode(task.prompts)
        acts, valid = self.run_sequences(ids, sites, max(len(s) for s in ids), batch_size)
        tokens = np.full(valid.shape, "", dtype=object)
        for i, seq in enumerate(ids):
            tokens[i, : len(seq)] = self.tokenizer.convert_ids_to_tokens(seq)
        attrs = {"n_stimuli": len(ids), "generator": "simbench.lm.system.LMSystem.record",
                 "prompts": task.origin, "tokens": "the prompts' own tokens (no continuation)"}
        datasets = {}
        for s in sites:
            datasets[s] = site_dataset(acts[s], stimulus_ids=task.prompt_ids, site=s,
                                       system_id=self.system_id, task=self.task,
                                       tokens=tokens.astype(str), valid=valid, attrs=attrs)
        return Recording(system_id=self.system_id, sites=datasets, task=self.task,
                         attrs={"access": "accessible", **attrs})

    @torch.no_grad()
    def run_sequences(self, ids: Sequence[Sequence[int]], sites: Sequence[str], width: int,
                      batch_size: int = 64) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """``sites`` over token sequences ``ids`` (float32 [n, width, d] each, zero past a
        sequence's end) and where each sequence is (bool [n, width])."""
        device = next(self.module.parameters()).device
        parts: dict[str, list[np.ndarray]] = {s: [] for s in sites}
        for i in range(0, len(ids), batch_size):
            tok, mask = pad_batch(ids[i: i + batch_size], self.pad, device=device)
            _, rec = self._model.run(tok, record=sites, attention_mask=mask)
            for s in sites:
                act = rec[s].float().cpu().numpy()
                parts[s].append(np.pad(act, ((0, 0), (0, width - act.shape[1]), (0, 0))))
        valid = np.zeros((len(ids), width), dtype=bool)
        for i, seq in enumerate(ids):
            valid[i, : len(seq)] = True
        acts = {s: np.concatenate(v).astype(np.float32) for s, v in parts.items()}
        for act in acts.values():
            act[~valid] = 0.0
        return acts, valid

    def site_data(self, site: str, *, n_stimuli: int | None = None, seed: int = 0) -> Any:
        """One site's dataset over the system's prompts (``n_stimuli``/``seed`` unused)."""
        if site not in self.sites:
            self._model.path(site)
        return self.record(sites=[site]).site(site)

    def record_like(self, recording: Any, site: str) -> Any:
        """``site``'s dataset on a recording's own token sequences (its prompts, read through
        this model's tokenizer), so the two pair stimulus by stimulus."""
        from simbench.lm.recorded import record_on_recording

        return record_on_recording(self, recording, site)

    def __repr__(self) -> str:
        return (f"LMSystem({self.system_id!r}, {type(self.module).__name__}, "
                f"{len(self.task_def.prompts)} prompts)")


def load_lm(model: str | Path | nn.Module, tokenizer: Any = None, *,
            prompts: PromptSource | None = None, new_tokens: int = 8,
            system_id: str | None = None) -> LMSystem:
    """An :class:`LMSystem` from a local directory, or from a (model, tokenizer) pair."""
    task = Continuation(prompts, new_tokens=new_tokens)
    if isinstance(model, (str, Path)):
        if tokenizer is not None:
            raise TaskError("a model directory holds its own tokenizer", field="tokenizer",
                            fix="pass the directory alone")
        from simbench.lm.load import hub_id_error, looks_like_hub_id

        if not Path(model).exists() and looks_like_hub_id(str(model)):
            raise hub_id_error(str(model))
        return LMSystem.from_dir(model, task=task, system_id=system_id)
    if tokenizer is None:
        raise SiteError("a model object needs its tokenizer", field="tokenizer",
                        fix="load_lm(model, tokenizer)")
    return LMSystem(model, tokenizer, task=task, system_id=system_id)


__all__ = ["LMModel", "LMSystem", "load_lm"]
