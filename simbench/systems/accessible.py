"""What a system must offer for simbench to run and patch it (the causal measures' contract).

A causal measure (MAS, DAS, CLMAS, the stitches) runs the network on counterfactual sequences
with one site patched: :class:`AccessibleSystem` is that contract, which the zoo's models and
:class:`~simbench.systems.torch.TorchSystem` satisfy; a plugin checks it with ``isinstance``
instead of probing attributes. :class:`ContinuableModel` and :class:`ResumableModel` are
optional fast paths.

Importing this module does not import torch (types are for checkers only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from torch import Tensor

    from simbench.interventions.patch import Edit
    from simbench.tasks.base import Task


@runtime_checkable
class PatchableModel(Protocol):
    """A network that runs token sequences with sites read and patched.

    ``run`` takes token ids [B, T] and returns next-token logits [B, T, V] plus the recorded
    sites [B, T, d] (as they were after patching); ``edits`` maps site names to edits of
    :mod:`simbench.interventions.patch`. ``site_dims`` gives every patchable site's width.
    A model that is a ``torch.nn.Module`` is moved to the measure's device and frozen while a
    measure runs, then restored (:func:`simbench.interventions.frozen.frozen_on`).
    """

    @property
    def site_dims(self) -> Mapping[str, int]: ...

    def run(self, tokens: Tensor, *, edits: Mapping[str, Edit] | None = None,
            record: Sequence[str] = ()) -> tuple[Tensor, dict[str, Tensor]]: ...


@runtime_checkable
class ContinuableModel(PatchableModel, Protocol):
    """A recurrent :class:`PatchableModel` whose recurrence can continue from a patched state.

    ``embed(tokens)`` gives the cell's inputs (site ``embedding``); ``recur(x, state)`` runs the
    cell over a chunk and returns (site ``hidden`` sequence, state); ``site_to_state(v)`` turns
    a ``hidden`` vector into the state to continue from; ``head(seq)`` gives the logits.
    """

    def embed(self, tokens: Tensor) -> Tensor: ...

    def recur(self, x: Tensor, state: Any = None) -> tuple[Tensor, Any]: ...

    def site_to_state(self, v: Tensor) -> Any: ...

    def head(self, site_seq: Tensor) -> Tensor: ...


@runtime_checkable
class ResumableModel(PatchableModel, Protocol):
    """A :class:`PatchableModel` that can start a pass at a site (a layered network).

    ``can_run_from(site)`` says whether it can; ``run_from(site, x, edits=)`` returns the
    logits of the pass that starts from the site's unpatched activations ``x`` [B, T, d] with
    ``edits`` at that site or above: equal to ``run(tokens, edits=edits)[0]``, without running
    what a patch there cannot change. A causal measure records the site once per
    counterfactual sequence and reuses it at every training step.
    """

    def can_run_from(self, site: str) -> bool: ...

    def run_from(self, site: str, x: Tensor, *,
                 edits: Mapping[str, Edit] | None = None) -> Tensor: ...


@runtime_checkable
class AccessibleSystem(Protocol):
    """A system a causal measure can intervene on: an id, its task, and a patchable model.

    ``access`` is ``"accessible"``; ``task`` is the name (or the object) of the task whose
    counterfactuals the system is scored on.
    """

    system_id: str
    access: str
    task: str | Task | None

    @property
    def model(self) -> PatchableModel: ...


__all__ = ["AccessibleSystem", "ContinuableModel", "PatchableModel"]
