"""Recordings and specs for the harness tests: a tiny "zoo" of recorded systems on disk.

Five systems share one latent "count" signal at two sites: three GRU seeds (the latent plus a
little noise, rotated), a transformer (mostly its own signal) and a GRU trained on another task
(half shared). So any reasonable similarity ranks seed pairs above the others.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simbench.recording import Recording, save_recording, site_dataset

PLUGIN = Path(__file__).with_name("bench_plugin.py")
N_STIM, N_TIME, N_UNIT = 16, 4, 5

SYSTEMS = {  # alias: (arch, task, share of the common latent)
    "gru1": ("gru", "count", 0.95),
    "gru2": ("gru", "count", 0.95),
    "gru3": ("gru", "count", 0.95),
    "tf1": ("transformer", "count", 0.2),
    "gru_round": ("gru", "round", 0.5),
}


def make_recordings(root: Path, n_stim: int = N_STIM) -> dict[str, Path]:
    """Write one recording per system of :data:`SYSTEMS` under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    common = np.random.default_rng(0).normal(size=(n_stim, N_TIME, N_UNIT))
    ids = [f"s{i:03d}" for i in range(n_stim)]
    out = {}
    for j, (alias, (_arch, _task, share)) in enumerate(SYSTEMS.items()):
        rng = np.random.default_rng(100 + j)
        sites = {}
        for site in ("embedding", "hidden"):
            own = rng.normal(size=common.shape)
            q, _ = np.linalg.qr(rng.normal(size=(N_UNIT, N_UNIT)))
            act = (share * common + (1 - share) * own) @ q
            sites[site] = site_dataset(act, stimulus_ids=ids, site=site, system_id=alias)
        out[alias] = save_recording(Recording(alias, sites), root / f"{alias}.nc")
    return out


def spec_text(*, measures: str | None = None, extra: str = "", seeds: str = "[0]",
              systems: dict[str, str] | None = None) -> str:
    """A spec over :func:`make_recordings`' files (paths relative to the spec's directory)."""
    lines = [
        'name = "test"',
        f'plugins = ["{PLUGIN}"]',
        'sites = ["embedding", "hidden"]',
        f"seeds = {seeds}",
        'target = "gru1"',
        "",
        "[systems]",
    ]
    for alias, (arch, task, _share) in SYSTEMS.items():
        lines.append(f'{alias} = {{ recording = "{alias}.nc", arch = "{arch}", task = "{task}" }}')
    for alias, line in (systems or {}).items():
        lines.append(f"{alias} = {line}")
    lines += [
        "",
        "[groups]",
        'seed_grus = ["gru1", "gru2", "gru3"]',
        "",
        measures if measures is not None else '[measures.lin]\nmeasure = "bench_linear"',
        "",
        "[[pairs]]",
        'name = "seeds"',
        'within = "seed_grus"',
        "",
        "[[pairs]]",
        'name = "gru_vs_tf"',
        'between = [{ arch = "gru", task = "count" }, { arch = "transformer" }]',
        "",
        "[[pairs]]",
        'name = "cross_task"',
        'between = [{ task = "count", arch = "gru" }, { task = "round" }]',
        "",
        extra,
    ]
    return "\n".join(lines) + "\n"


def write_spec(root: Path, text: str | None = None, name: str = "spec.toml") -> Path:
    path = root / name
    path.write_text(text if text is not None else spec_text())
    return path


def fresh_registry(monkeypatch: object) -> object:
    """Replace the process-wide registry by an empty one, so the spec's plugin file is the only
    source of measures (other plugins may be mid-change) and nothing leaks into other tests."""
    import simbench.registry as registry_module
    from simbench.registry import Registry

    reg = Registry()
    monkeypatch.setattr(registry_module, "_REGISTRY", reg)  # type: ignore[attr-defined]
    return reg


def schema1_copy(src: Path, dst: Path) -> Path:
    """A copy of the store ``src`` made into a schema-1 store, as stores were before measure
    metadata, code fingerprints and job leases were kept (the first shipped paper store)."""
    import shutil
    import sqlite3

    shutil.copy(src, dst)
    conn = sqlite3.connect(dst)
    for table in ("measures", "jobs", "leases"):
        conn.execute(f"DROP TABLE IF EXISTS {table}")
    for column in ("measure_meta", "code_fingerprint"):
        conn.execute(f"ALTER TABLE results DROP COLUMN {column}")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    return dst
