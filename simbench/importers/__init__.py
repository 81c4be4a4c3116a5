"""Importers: experiment data in other formats -> recordings in simbench's schema.

- :func:`from_spike_times`: spike times per unit and trial times -> binned counts or rates.
- :func:`from_nwb`: an NWB file's units and trials tables (needs ``pip install simbench[nwb]``).
- Brain-Score assemblies: :func:`simbench.recording.from_brainscore`.
"""

from __future__ import annotations

from simbench.importers.nwb import from_nwb
from simbench.importers.spikes import SpikeWarning, from_spike_times

__all__ = ["SpikeWarning", "from_nwb", "from_spike_times"]
