"""A captured training step: the engine's step compiled once per length bucket.

On a GPU the training step of two zoo GRUs is hundreds of tiny kernels, so launches bound it.
:func:`captured_loss` compiles the step's loss with ``torch.compile`` (on CUDA in
``reduce-overhead`` mode: the whole step replayed as CUDA graphs; on the CPU, what the tests
run, with inductor's default mode). A compiled graph needs fixed shapes, so a step's
continuation length is padded up to a *length bucket* (a multiple of :data:`LENGTH_QUANTUM`,
at most the data's longest), each compiled once. Padding changes nothing: a padded position
lies past every row's last determined token, its mask is False, and a recurrence is causal.

What can be captured: the engine's own objective (:meth:`Engine.step_loss`, not CLMAS's),
single-position interventions and targets whose runner continues a recurrence (the zoo's GRU
and LSTM). Anything else, or a compilation that fails, runs the eager step; ``capture="on"``
says why with a warning. The data the step reads keep fixed addresses, so a CUDA graph reads
them in place; only the step's row indices are copied in at every replay.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from simbench.errors import ParameterError
from simbench.interventions.runners import RecurrentRunner

Engine = Any
"""A :class:`simbench.interventions.engine.Engine` (not imported: the engine imports this)."""

CAPTURE_MODES = ("auto", "on", "off")
#: continuation lengths are padded up to a multiple of this (and at most the data's longest)
LENGTH_QUANTUM = 16
#: dynamo's recompilation limit while a captured step runs: every length bucket of every
#: engine in one process is a recompilation of the same function
RECOMPILE_LIMIT = 256

#: environment variables: the mode where ``EngineConfig.capture`` is None; the compiler
#: backend (``inductor``; ``aot_eager`` traces without generating code, for quick checks);
#: ``1`` to unroll the recurrence into the graph (see :class:`CapturedStep`)
MODE_ENV, BACKEND_ENV, UNROLL_ENV = "SIMBENCH_CAPTURE", "SIMBENCH_CAPTURE_BACKEND", \
    "SIMBENCH_CAPTURE_UNROLL"

LossFn = Callable[[dict[tuple[int, int], Any]], Tensor]


class CaptureWarning(UserWarning):
    """The captured step could not be used; the eager step runs instead."""


def wanted(capture: str, device: str) -> bool:
    """Whether ``capture`` (``auto``, ``on``, ``off``) asks for the captured step on
    ``device``: ``auto`` captures on CUDA only (on a CPU the eager step's length buckets do
    less arithmetic than one padded compiled call)."""
    if capture not in CAPTURE_MODES:
        raise ParameterError(f"capture = {capture!r} is not one of {', '.join(CAPTURE_MODES)}",
                             field="capture", fix="use auto (CUDA only), on or off")
    if capture == "auto":
        return torch.device(device).type == "cuda"
    return capture == "on"


def unsupported(engine: Engine, base: type) -> str | None:
    """Why ``engine``'s step cannot be captured (None: it can); ``base``: the engine class
    whose step the capture redoes."""
    for name in ("step_loss", "patched_logits", "behaviour_loss"):  # what the capture redoes
        if getattr(type(engine), name) is not getattr(base, name):
            return f"{type(engine).__name__} has its own {name} (its objective differs)"
    if engine.cfg.stepwise:
        return "stepwise interventions"
    for _, t in engine.trained:
        runner = engine.parties[t].runner
        if not isinstance(runner, RecurrentRunner):
            return (f"target '{engine.parties[t].system_id}' is not a recurrent network "
                    f"({type(runner).__name__})")
    return None


def length_bucket(length: int, longest: int, quantum: int = LENGTH_QUANTUM) -> int:
    """``length`` rounded up to a multiple of ``quantum``, at most ``longest`` (the longest
    continuation of the data, itself at least ``length``)."""
    return min(max(longest, length), quantum * math.ceil(length / quantum))


def captured_loss(engine: Engine, base: type, capture: str | None = None) -> LossFn | None:
    """The captured step loss of ``engine`` (called as :meth:`Engine.step_loss`; ``base``: the
    class whose step it redoes), or None where the mode (``capture``, ``engine.cfg.capture``,
    $SIMBENCH_CAPTURE, else ``auto``) does not ask for it or the step cannot be captured."""
    mode = capture or getattr(engine.cfg, "capture", None) or os.environ.get(MODE_ENV) or "auto"
    if not wanted(mode, engine.cfg.device):
        return None
    reason = unsupported(engine, base)
    if reason is not None:
        if mode == "on":
            warnings.warn(f"training step not captured: {reason}; the eager step runs",
                          CaptureWarning, stacklevel=2)
        return None
    try:
        return CapturedStep(engine)
    except Exception as exc:  # a torch without what capture needs: the eager step, said once
        warnings.warn(f"training step not captured ({type(exc).__name__}: {exc}); the eager "
                      "step runs", CaptureWarning, stacklevel=2)
        return None


class CapturedStep:
    """``engine``'s step loss compiled per length bucket (see the module docstring).

    ``unroll``: trace the recurrent layer step by step into one graph (compiling takes
    minutes) instead of calling it as one fused op between two graphs. A compilation failure
    warns once and every later step runs eagerly; :attr:`buckets` lists the lengths compiled.
    """

    def __init__(self, engine: Engine, *, unroll: bool | None = None,
                 backend: str | None = None) -> None:
        self.engine = engine
        self.unroll = os.environ.get(UNROLL_ENV) == "1" if unroll is None else unroll
        self.backend = backend or os.environ.get(BACKEND_ENV) or "inductor"
        self.cuda = torch.device(engine.cfg.device).type == "cuda"
        self.longest = max(int(engine.data["train"][d].need.max()) for d in engine.trained)
        self.buckets: list[int] = []
        self.failed: str | None = None
        from torch._dynamo import mark_static_address

        # what every step reads keeps a fixed address, read in place (no guard: a new engine's
        # data of the same shapes reuses the compiled code)
        static = functools.partial(mark_static_address, guard=False)
        for s, t in engine.trained:
            data = engine.data["train"][(s, t)]
            for x in (data.tgt_idx, data.tpos, data.src_idx, data.spos, data.cf, data.cf_mask):
                static(x)
            for p in (engine.parties[s], engine.parties[t]):
                static(p.latents["train"])
                if isinstance(p.runner, RecurrentRunner) and "train" in p.runner.states:
                    static(p.runner.states["train"])
        mode = "reduce-overhead" if self.cuda and self.backend == "inductor" else None
        # the two ways are two functions: dynamo keys its compiled code by the function
        fn = _step_loss_unrolled if self.unroll else _step_loss
        self._compiled = torch.compile(fn, backend=self.backend, mode=mode, dynamic=False)

    def plan(self, batches: dict[tuple[int, int], Any]) -> tuple[list[tuple[int, tuple[int, ...]]],
                                                                   list[Tensor], int]:
        """The step's static plan: per target its sources (in batch order), the row indices
        on the device (one copy) and the padded continuation length."""
        engine = self.engine
        targets: dict[int, list[int]] = {}
        for s, t in batches:
            targets.setdefault(t, []).append(s)
        plan = [(t, tuple(targets[t])) for t in sorted(targets)]
        pairs = [(s, t) for t, sources in plan for s in sources]
        host = [np.asarray(batches[d], dtype=np.int64) for d in pairs]
        need = max(int(engine.data["train"][d].need[r].max()) for d, r in zip(pairs, host))
        rows = engine.device_rows(host)
        return plan, rows, length_bucket(need, self.longest)

    def __call__(self, batches: dict[tuple[int, int], Any]) -> Tensor:
        engine = self.engine
        if self.failed is not None:
            return _eager(engine, batches)
        plan, rows, length = self.plan(batches)
        try:
            import torch._dynamo

            with torch._dynamo.config.patch(_dynamo_settings(self.unroll)):
                if self.cuda:  # nothing of the last replay is alive: no copies are kept
                    for p in engine.imap.parameters():
                        p.grad = None
                    torch.compiler.cudagraph_mark_step_begin()
                loss = self._compiled(engine, plan, rows, length)
        except Exception as exc:  # any compiler failure: fall back, and say why
            self.failed = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            warnings.warn(f"training step capture failed ({self.failed}); the eager step runs "
                          "from here on", CaptureWarning, stacklevel=2)
            return _eager(engine, batches)
        if length not in self.buckets:
            self.buckets.append(length)
        # a CUDA graph's output is overwritten by its next replay: the caller keeps a copy
        return loss.clone() if self.cuda else loss


def _dynamo_settings(unroll: bool) -> dict[str, Any]:
    """Dynamo settings for a captured step, those this torch has (the recompilation limits
    were named ``cache_size_limit`` before torch 2.6)."""
    import torch._dynamo

    wanted = {"allow_rnn": unroll, "recompile_limit": RECOMPILE_LIMIT,
              "accumulated_recompile_limit": RECOMPILE_LIMIT,
              "cache_size_limit": RECOMPILE_LIMIT,
              "accumulated_cache_size_limit": RECOMPILE_LIMIT}
    return {k: v for k, v in wanted.items() if hasattr(torch._dynamo.config, k)}


def _eager(engine: Engine, batches: dict[tuple[int, int], Any]) -> Tensor:
    from torch.nn.utils import parametrize

    with parametrize.cached():
        return engine.step_loss(batches)


def _step_loss(engine: Engine, plan: Sequence[tuple[int, tuple[int, ...]]],
               rows: Sequence[Tensor], length: int) -> Tensor:
    """:meth:`Engine.step_loss` with every continuation ``length`` long (what is compiled):
    behaviour loss per target, weighted by its directions, averaged over directions."""
    losses, i = [], 0
    for t, sources in plan:
        losses.append(_target_loss(engine, t, sources, rows[i: i + len(sources)], length)
                      * len(sources))
        i += len(sources)
    return torch.stack(losses).sum() / max(i, 1)


def _step_loss_unrolled(engine: Engine, plan: Sequence[tuple[int, tuple[int, ...]]],
                        rows: Sequence[Tensor], length: int) -> Tensor:
    """:func:`_step_loss`, compiled with the recurrence unrolled into the graph."""
    return _step_loss(engine, plan, rows, length)


def _target_loss(engine: Engine, t: int, sources: Sequence[int], rows: Sequence[Tensor],
                 length: int) -> Tensor:
    """Behaviour loss of target ``t`` over the rows of its directions (as
    :meth:`Engine.patched_logits` then :meth:`Engine.behaviour_loss`, in one padded call)."""
    from simbench.interventions.runners import Continuation

    party = engine.parties[t]
    parts = [(s, engine.data["train"][(s, t)], r) for s, r in zip(sources, rows)]
    cf, cf_mask, tpos, tgt_idx = engine.batch(parts)
    cont = Continuation.build(cf, cf_mask, tpos, length=length)
    h_new = engine.patched_sites("train", t, parts, party.latents["train"][tgt_idx, tpos])
    logits = party.runner.continue_from(cont.inputs, h_new, "train", tgt_idx, tpos)
    return engine.behaviour_loss(logits, cont)  # the base's (see unsupported)


__all__ = ["CAPTURE_MODES", "LENGTH_QUANTUM", "CaptureWarning", "CapturedStep",
           "captured_loss", "length_bucket", "unsupported", "wanted"]
