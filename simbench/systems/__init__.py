"""Systems: what a measure compares.

A system is either *accessible* (a network simbench can run and patch:
:class:`~simbench.systems.torch.TorchSystem`) or *recording-only* (:class:`RecordedSystem`:
activity in a file, nothing else). Every system can hand a correlative measure its activity at a
site; only accessible ones can be intervened on. Importing this package does not import torch;
turning what a user passes (a path, a zoo id) into a system is :mod:`simbench.systems.resolve`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from simbench.access import RECORDING, Access

if TYPE_CHECKING:
    import xarray as xr

    from simbench.recording import Recording


@runtime_checkable
class System(Protocol):
    """What every system offers a measure."""

    system_id: str
    access: Access
    task: str | None

    @property
    def sites(self) -> tuple[str, ...]: ...

    def site_data(self, site: str, *, n_stimuli: int | None = None, seed: int = 0) -> xr.Dataset:
        """The site's activity in the recording schema (see :mod:`simbench.recording`)."""
        ...


class RecordedSystem:
    """A recording-only system: serves correlative measures and the recorded side of CLMAS."""

    access: Access = RECORDING

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.system_id = recording.system_id
        self.task = recording.task
        self.path = recording.path

    @property
    def sites(self) -> tuple[str, ...]:
        return tuple(self.recording.sites)

    @property
    def in_file(self) -> bool:
        """True when some site's activity is still in its file (a recording too large to load,
        opened to be read a block of rows at a time)."""
        from simbench.recording import is_lazy

        return any(is_lazy(self.recording.site(s)) for s in self.sites)

    def site_data(self, site: str, *, n_stimuli: int | None = None, seed: int = 0) -> xr.Dataset:
        """The recorded dataset; ``n_stimuli``/``seed`` are ignored: a recording is what it is."""
        return self.recording.site(site)

    def __repr__(self) -> str:
        return f"RecordedSystem({self.system_id!r}, sites={list(self.sites)})"


__all__ = ["RecordedSystem", "System"]
