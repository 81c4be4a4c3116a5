"""Systems: what a measure compares.

A system is either *accessible* (a network simbench can run and patch: :class:`TorchSystem`) or
*recording-only* (:class:`RecordedSystem`: activity in a file, nothing else). Every system can
hand a correlative measure its activity at a site; only accessible ones can be intervened on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import xarray as xr

from simbench.errors import RecordingError, SimbenchError
from simbench.measure import Access
from simbench.recording import Recording, load_recording


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

    access: Access = "recording"

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.system_id = recording.system_id
        self.task = recording.task
        self.path = recording.path

    @property
    def sites(self) -> tuple[str, ...]:
        return tuple(self.recording.sites)

    def site_data(self, site: str, *, n_stimuli: int | None = None, seed: int = 0) -> xr.Dataset:
        """The recorded dataset; ``n_stimuli``/``seed`` are ignored: a recording is what it is."""
        return self.recording.site(site)

    def __repr__(self) -> str:
        return f"RecordedSystem({self.system_id!r}, sites={list(self.sites)})"


def resolve_system(spec: object, *, task: str | None = None) -> System:
    """Turn what a user passes (a path, a zoo id, a Recording, a System) into a System."""
    if isinstance(spec, Recording):
        return RecordedSystem(spec)
    if isinstance(spec, System) and not isinstance(spec, (str, Path)):
        return spec
    if not isinstance(spec, (str, Path)):
        raise SimbenchError(f"cannot use {spec!r} as a system",
                            fix="pass a recording path (.nc), a zoo id, a Recording or a System")
    path = Path(spec)
    if path.suffix in (".nc", ".nc4", ".cdf", ".h5") or path.exists():
        if path.suffix == ".safetensors":
            from simbench.systems.torch import TorchSystem

            return TorchSystem.from_checkpoint(path, task=task)
        return RecordedSystem(load_recording(path))
    try:
        from simbench.systems.torch import TorchSystem
    except ImportError as exc:  # pragma: no cover - torch is a dependency
        raise RecordingError(f"'{spec}' is not a file and torch is unavailable: {exc}") from None
    return TorchSystem.from_zoo(str(spec))


__all__ = ["RecordedSystem", "System", "resolve_system"]
