"""Memory policy: what a recording file declares, and what simbench may hold in memory.

Before reading any data, the loaders add up the sizes a file *declares* (every variable's shape
times its dtype, from the netCDF metadata) and refuse a file whose data would not fit in the
memory available (:func:`available_memory`, with headroom), naming the largest variable. A
small file can declare a huge dimension (unwritten data takes no disk space), and reading it
would otherwise try to allocate all of it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from simbench.errors import RecordingError

#: Share of the available memory a recording's declared data may take (the rest is headroom
#: for validation, pairing and the measure's own work).
MEMORY_FRACTION = 0.75
#: Bytes counted per element of a variable-length string variable (a Python str and pointer).
STRING_BYTES = 64
#: Environment variable: the memory (MiB) simbench may assume, when less than the machine's.
MEMORY_ENV = "SIMBENCH_MEMORY_MB"

#: Bytes of activity read at a time when a file is scanned or loaded block by block; a block
#: costs up to about ``READ_COPIES`` times this while it is decoded (raw values, fill mask,
#: decoded copy).
BLOCK_BYTES = 64 << 20
READ_COPIES = 4

#: One declared variable: (path in the file, {dim: size}, dtype label, bytes).
Declared = tuple[str, dict[str, int], str, int]


def available_memory() -> int:
    """Bytes of memory available now: the OS's figure, capped by a cgroup limit and by the
    ``SIMBENCH_MEMORY_MB`` environment variable when either is lower."""
    import psutil

    avail = int(psutil.virtual_memory().available)
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                          "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            cap, used = Path(limit).read_text().strip(), Path(usage).read_text().strip()
        except OSError:
            continue
        if cap.isdigit() and used.isdigit():
            avail = min(avail, max(0, int(cap) - int(used)))
        break
    env = os.environ.get(MEMORY_ENV, "").strip()
    if env:
        try:
            avail = min(avail, int(float(env) * 2**20))
        except ValueError:
            raise RecordingError(f"{MEMORY_ENV}={env!r} is not a number of megabytes",
                                 field=MEMORY_ENV, fix=f"e.g. {MEMORY_ENV}=4096") from None
    return avail


def memory_limit() -> int:
    """Bytes simbench lets one recording's data take: ``MEMORY_FRACTION`` of the available."""
    return int(available_memory() * MEMORY_FRACTION)


def read_block_bytes() -> int:
    """Bytes of activity one block read may take: ``BLOCK_BYTES``, less when the memory
    simbench may use is small (an eighth of :func:`memory_limit`, at least 1 MiB)."""
    return max(1 << 20, min(BLOCK_BYTES, memory_limit() // (2 * READ_COPIES)))


def declared_variables(path: str | Path) -> list[Declared]:
    """Every variable of a netCDF file as (path, {dim: size}, dtype, bytes), from metadata only.

    Nothing is read but the headers, so this is fast whatever the file declares. Variable-length
    strings count ``STRING_BYTES`` per element.
    """
    import netCDF4

    out = []
    with netCDF4.Dataset(path, "r") as nc:
        groups = [nc]
        while groups:
            group = groups.pop()
            for name, var in group.variables.items():
                try:
                    dtype = np.dtype(var.dtype)
                    item = STRING_BYTES if dtype.kind in "OSU" else dtype.itemsize
                except TypeError:  # variable-length and compound types
                    dtype, item = np.dtype(object), STRING_BYTES
                label = "str" if var.dtype is str else str(dtype)
                where = f"{group.path.rstrip('/')}/{name}"
                out.append((where, dict(zip(var.dimensions, var.shape)), label,
                            math.prod(var.shape) * item))
            groups.extend(group.groups.values())
    return out


def check_declared_size(path: str | Path, *, lazy: bool = False) -> None:
    """Refuse a file whose data would not fit in the available memory when read, before
    reading: loading holds every declared variable plus one read block of the activity
    (``READ_COPIES`` x :func:`read_block_bytes` at most); opening it ``lazy`` (the activity
    left in the file) holds every variable but the activity.

    The limit is ``MEMORY_FRACTION`` of :func:`available_memory`; the error names the declared
    total, the largest variable held and its dims.
    """
    try:
        variables = declared_variables(path)
    except Exception:  # unreadable headers: the reader's own open reports it
        return
    total = sum(v[3] for v in variables)
    avail = available_memory()
    limit = int(avail * MEMORY_FRACTION)
    held = [v for v in variables if not (lazy and v[0].rsplit("/", 1)[-1] == "activity")]
    largest = max((v[3] for v in variables if v[0].rsplit("/", 1)[-1] == "activity"), default=0)
    buffer = READ_COPIES * min(max(1 << 20, min(BLOCK_BYTES, limit // (2 * READ_COPIES))),
                               largest)
    need = sum(v[3] for v in held) if lazy else total + buffer
    if need <= limit:
        return
    name, dims, dtype, nbytes = max(held, key=lambda v: v[3])  # named in the message
    shape = ", ".join(f"{d}={n:,}" for d, n in dims.items())
    text = f"'{name}' [{shape}] {dtype}, {format_size(nbytes)}"
    if lazy:
        what = (f"the file declares {format_size(total)} of data; its coordinates, which are "
                "held in memory while the activity is read a block at a time, declare "
                f"{format_size(need)} (largest: {text}), more than the {format_size(limit)} "
                "they may use")
        ways, check = "split the recording into files by stimuli", ""
    else:
        what = (f"the file declares {format_size(total)} of data (largest: {text}); loading "
                f"it holds that plus a {format_size(buffer)} read buffer, more than the "
                f"{format_size(limit)} it may use ({MEMORY_FRACTION:.0%} of "
                f"{format_size(avail)} available)")
        ways = ("use a machine with more memory, a measure that reads it by blocks (cka, rsa), "
                "or split the recording into files by site or by stimuli")
        check = "; `simbench validate FILE` checks it in bounded memory"
    raise RecordingError(
        f"{what}; nothing was read", file=path, field=name.rsplit("/", 1)[-1],
        fix="if those sizes are wrong the file is damaged or was written with a wrong "
        f"dimension (see `ncdump -h FILE`{check}); if they are right, {ways} ({MEMORY_ENV} "
        "sets the memory simbench assumes)")


def format_size(nbytes: float) -> str:
    """A byte count in binary units (1 MiB = 2**20 bytes, as ``SIMBENCH_MEMORY_MB`` counts)."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if nbytes < 1024:
            return f"{nbytes:,.0f} {unit}" if unit == "bytes" else f"{nbytes:,.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:,.1f} TiB"
