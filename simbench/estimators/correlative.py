"""What the correlative measures share on the simbench side, written once: the pairing
parameters and the paired activity, the memory budget of the block passes, the wording of "no
interval", the estimators' errors as SimbenchErrors naming the site, and the ``Score``.

The estimators themselves know nothing of simbench. Only numpy and simbench's core are imported
here (no torch, no rsatoolbox), so loading the plugins stays fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from simbench.errors import SimbenchError
from simbench.estimators.cka import EstimatorError
from simbench.measure import Measure, Param
from simbench.pairing import Paired, pair_sites
from simbench.result import Score

DTYPES = ("float32", "float64")

#: Pairing parameters of every correlative measure.
PAIRING_PARAMS = (
    Param("n_stimuli", 1000, "stimuli a network (TorchSystem) records when paired with another "
          "network; paired with a recording, a network is recorded on the recording's own "
          "stimuli, and recordings use all theirs", low=1),
    Param("intersect", False, "use only the stimuli both systems share"),
)


#: MiB of one block pass (chunked CKA, blocked RSA) when ``memory_mb`` is 0 (auto): large
#: enough that reads are long, small enough that 1,000,000 x 4,096 float32 stays under 2 GB.
AUTO_BLOCK_MB = 1024

#: Memory parameters of the correlative measures that can read activity a block at a time.
MEMORY_PARAMS = (
    Param("memory_mb", 0.0, "memory (MiB) the in-memory computation may take; past it the paired "
          "activity is read a block of rows at a time, from the file when a recording is too "
          "large to load (cka: linear/cosine kernels, form chunked; rsa: RDMs summed block by "
          "block). 0 = auto: 75% of the available memory (SIMBENCH_MEMORY_MB caps it), "
          "activity already in memory counted as held, blocks of up to 1024 MiB", low=0),
    Param("progress", True, "show a progress bar (stderr) over the blocks of those passes"),
)


@dataclasses.dataclass
class Budget:
    """What the in-memory computation would add, what it may add, and the block pass's MiB."""

    need: int  # bytes
    limit: int  # bytes
    block_mb: float
    explicit: bool  # memory_mb given (not auto)

    @property
    def over(self) -> bool:
        return self.need > self.limit

    def reason(self, what: str) -> str:
        """Why the block pass was chosen, for ``attrs``."""
        source = (f"memory_mb = {self.limit / 2**20:g} MiB" if self.explicit else
                  f"the {_mib(self.limit)} simbench may use (memory_mb auto)")
        return f"{what} ({_mib(self.need)}) exceeds {source}"


def memory_budget(need: int, memory_mb: float) -> Budget:
    """The :class:`Budget` of a computation that would add ``need`` bytes in memory.

    ``memory_mb`` > 0 is the limit and the block pass's memory; 0 (auto) is ``MEMORY_FRACTION``
    of :func:`simbench.recording.available_memory` with blocks of up to ``AUTO_BLOCK_MB``.
    """
    if memory_mb > 0:
        return Budget(int(need), int(memory_mb * 2**20), float(memory_mb), True)
    from simbench.recording import MEMORY_FRACTION, available_memory

    limit = int(available_memory() * MEMORY_FRACTION)
    return Budget(int(need), limit, min(float(AUTO_BLOCK_MB), limit / 2**20), False)


def _mib(nbytes: float) -> str:
    return f"{nbytes / 2**20:,.1f} MiB"


def paired_activity(
    systems: Sequence[Any],
    site: str,
    *,
    n_stimuli: int | None,
    seed: int,
    intersect: bool,
    lazy: bool = False,
) -> Paired:
    """Both systems' activity at ``site``, row-aligned on (stimulus id, time step).

    ``n_stimuli`` and ``seed`` tell a network how many stimuli to record and which (recordings
    ignore them); both systems get the same values, so their stimuli match. A network paired
    with a recording whose site has a ``token`` coordinate is recorded on that recording's own
    token sequences (stimulus ids kept), so the pair shares every stimulus. Float activity is
    kept as stored (the estimators convert it), so aligned recordings are paired without a copy.

    A recording too large to load stays in its file: with ``lazy`` True its side is a
    :class:`~simbench.pairing.LazyRows` read a block of rows at a time; with ``lazy`` False it
    is read whole when it fits and refused when it does not.
    """
    a, b = systems
    recorded = [_recording_with_tokens(s, site) for s in (a, b)]
    on_different_tasks = _is_network(a) and _is_network(b) and a.task != b.task
    if _is_network(a) != _is_network(b) and any(r is not None for r in recorded):
        # a network (or a language model) is recorded on the recording's own sequences
        rec = next(r for r in recorded if r is not None)
        data = [s.record_like(rec, site) if hasattr(s, "record_like")
                else s.site_data(site, n_stimuli=n_stimuli, seed=seed) for s in (a, b)]
    elif on_different_tasks:
        # Networks trained on different tasks see the same inputs: the first system's stimuli
        # (a correlative measure compares responses to identical sequences).
        stim = a.task_def.sample(n_stimuli or 1000, seed, counts="all")
        data = [s.record(stim, sites=[site]).site(site) for s in (a, b)]
    else:
        data = [s.site_data(site, n_stimuli=n_stimuli, seed=seed) for s in (a, b)]
    names = (str(a.system_id), str(b.system_id))
    with estimator_errors(site):  # say where: pair_sites knows the systems, not the site
        return pair_sites(data[0], data[1], intersect=intersect, names=names, lazy=lazy)


def _is_network(system: Any) -> bool:
    return hasattr(system, "record") and hasattr(system, "task_def")


def _recording_with_tokens(system: Any, site: str) -> Any:
    """The system's Recording when it is recording-only and its ``site`` has tokens, else None."""
    rec = getattr(system, "recording", None)
    if rec is None or _is_network(system) or site not in rec.sites:
        return None
    return rec if "token" in rec.sites[site].coords else None


def no_interval_note(*, n_boot: int, n_units: int, n_finite: int, boot: str = "n_boot",
                     unit: str = "stimuli") -> str:
    """Why a resampling gave no interval, and which parameter to change.

    ``n_boot`` replicates were asked for over ``n_units`` units and ``n_finite`` came out
    finite; ``boot`` names the parameter that sets the number of replicates.
    """
    if n_boot <= 0:
        return f"no interval: {boot} = 0; set {boot} (e.g. 200) for an interval"
    if n_units < 2:
        return (f"no interval: the resampling is over {unit} and there is {n_units}; "
                f"record more {unit}")
    if n_boot < 2:
        return f"no interval: {boot} = {n_boot}; set {boot} to 2 or more (e.g. 200)"
    return (f"no interval: only {n_finite} of {n_boot} replicates were finite (too few "
            f"{unit} per replicate); record more {unit}")


class CorrelativeMeasure(Measure):
    """Base of the measures that compare two recordings' activity on the same stimuli."""

    family = "correlative"
    null = "permute"  # simbench may re-pair stimuli between the systems for a null
    access = ("recording", "recording")


def interval_attrs(ci: tuple[float, float] | None, method: str, **note: Any) -> dict[str, str]:
    """``attrs`` saying how the interval was computed: ``ci_method`` = ``method``, or with no
    interval ``ci_method`` = "none" and ``ci_note`` = :func:`no_interval_note` of ``note``."""
    if ci is not None:
        return {"ci_method": method}
    return {"ci_method": "none", "ci_note": no_interval_note(**note)}


@contextlib.contextmanager
def estimator_errors(site: str) -> Iterator[None]:
    """Turn the estimators' input errors (:class:`EstimatorError`) into SimbenchErrors naming
    ``site``, with the estimator's field and fix; SimbenchErrors that name no site get it."""
    try:
        yield
    except EstimatorError as exc:
        raise SimbenchError(exc.message, site=site, field=exc.field, fix=exc.fix) from None
    except SimbenchError as exc:
        if exc.site is None:
            exc.site = site
            exc.args = (exc._render(),)
        raise


def undefined_activity(label: str, systems: Sequence[Any], site: str, few: str) -> SimbenchError:
    """The error of a value that came out undefined (NaN): ``label`` of the two systems, and
    ``few`` saying when too few samples do it."""
    names = " and ".join(f"'{s.system_id}'" for s in systems)
    return SimbenchError(f"{label} of {names} is undefined: one system's activity does not vary "
                         f"over the samples (or {few})", site=site, field="activity",
                         fix="check the recording, or compare another site")


def make_score(
    measure: str,
    systems: Sequence[Any],
    site: str,
    *,
    value: float,
    ci: tuple[float, float] | None,
    n_samples: int,
    breakdown: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> Score:
    """Assemble the ``Score`` of a correlative measure (``ci`` None: ``attrs`` has ci_note)."""
    return Score(
        measure=measure,
        value=float(value),
        systems=tuple(str(s.system_id) for s in systems),
        site=site,
        ci=ci,
        n_samples=int(n_samples),
        breakdown=dict(breakdown or {}),
        attrs=dict(attrs or {}),
    )
