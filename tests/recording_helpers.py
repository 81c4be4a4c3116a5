"""Writing small real recordings for the correlative-measure tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simbench.recording import Recording, save_recording, site_dataset


def save(path: Path, system_id: str, activity: np.ndarray, site: str = "hidden") -> Path:
    """Write [stimulus, time, unit] activity as a one-site recording."""
    n_stim, n_time = activity.shape[:2]
    ds = site_dataset(activity, stimulus_ids=[f"s{i:03d}" for i in range(n_stim)], site=site,
                      system_id=system_id, task="counting",
                      tokens=np.full((n_stim, n_time), "x"),
                      valid=np.ones((n_stim, n_time), dtype=bool))
    return save_recording(Recording(system_id, {site: ds}, task="counting"), path)
