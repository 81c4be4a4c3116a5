"""Jobs: one measure variant x one system tuple x one site x one seed, with a stable key.

The key is a sha256 over what determines the result: the measure, its *resolved* parameters
(defaults filled in, so writing a default explicitly changes nothing), the systems' identities
(content hashes, or a zoo id), the site, the task, the seed and the release versions
(simbench's and the measure plugin's distribution); for jobs on language models also the
prompts' content hash and the continuation length, when the spec sets them (and only then, so no
other key changes).
Aliases, categories and tags are *not* in the key: renaming a system or adding an expectation
reuses every stored result.

The code that computes a job is identified apart from the key, by a fingerprint of its source
files (:mod:`simbench.bench.fingerprint`): a stored result whose fingerprint differs from the
current one is *stale*. Keeping the fingerprint out of the key lets a store show stale results
(marked) until ``bench run --rerun-stale`` replaces them, instead of silently orphaning them.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from simbench.bench.fingerprint import fingerprint, measure_root
from simbench.bench.spec import MeasureSpec, PairGroup, Spec
from simbench.errors import SimbenchError, SpecError
from simbench.registry import get_registry
from simbench.systems.resolve import identity as system_identity  # content hash, or a zoo id
from simbench.systems.resolve import resolve_cached


@dataclasses.dataclass
class Job:
    """Everything a worker needs to compute one score; plain data, so it pickles to Dask."""

    key: str
    label: str
    measure: str
    params: dict[str, Any]
    swept: dict[str, Any]
    systems: tuple[str, ...]  # aliases, in slot order
    sources: tuple[str, ...]  # zoo ids or absolute recording paths
    site: str
    task: str | None
    seed: int
    code_version: str
    categories: tuple[str, ...] = ()
    plugins: tuple[str, ...] = ()
    group: int = 0  # index of the first [[pairs]] entry that produced it (for error lines)
    code_fingerprint: str = ""  # of the source files that compute it (see fingerprint.py)
    code_root: dict[str, str | None] = dataclasses.field(default_factory=dict)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)  # the measure's metadata
    timeout: float | None = None  # seconds before the job is killed; None: no limit
    prompts: tuple[str, ...] | None = None  # a language model's prompts (None: not an LM job)
    prompts_id: str | None = None  # their content hash, ``sha256:HEX``
    prompts_origin: str = ""  # where they came from (a file, a generator), for the Score
    new_tokens: int | None = None  # continuation length; None: the task's default
    lazy: bool = False  # the measure reads activity by blocks of rows (a large file is opened)

    def lm_params(self) -> dict[str, Any]:
        """What a stored row records of the language-model settings beside the parameters
        (:func:`lm_record`), so a board tells apart jobs that differ only in their prompts."""
        return lm_record(self.prompts_id, self.new_tokens)

    @property
    def variant(self) -> str:
        """The measure label plus swept parameters, e.g. ``mas[k=4]``: one leaderboard row."""
        if not self.swept:
            return self.label
        return f"{self.label}[{','.join(f'{k}={v}' for k, v in sorted(self.swept.items()))}]"

    def describe(self) -> str:
        return f"{self.variant} {' ~ '.join(self.systems)} @{self.site} seed {self.seed}"


def lm_record(prompts_id: str | None, new_tokens: int | None) -> dict[str, Any]:
    """What a job's key and its stored row record of the language-model settings, beside the
    measure's parameters: ``prompts`` (the content hash) and ``new_tokens``, each only when set
    (so the keys of every other job stay as they were)."""
    return {k: v for k, v in (("prompts", prompts_id), ("new_tokens", new_tokens))
            if v is not None}


# ---- identities ----------------------------------------------------------------------------
def code_version(info: Any) -> str:
    """simbench's version and the release version of ``info``, the plugin providing a measure
    (none for a ``.py`` spec plugin: its fingerprint alone tracks its code)."""
    from simbench import __version__

    version = "-" if info.dist == "spec-file" else info.version
    return f"simbench {__version__}; {info.dist} {version}"


def measure_meta(measure: Any) -> dict[str, Any]:
    """What a leaderboard needs of a measure, stored with each result so boards and status never
    import the plugin."""
    keys = ("name", "family", "access", "systems", "symmetric", "higher_is_better", "range",
            "needs_task")
    try:
        info = measure.describe()
    except Exception:  # a plugin's own describe() must not stop a run
        info = {"name": getattr(measure, "name", "?"), "family": getattr(measure, "family", "?")}
    return {k: info[k] for k in keys if k in info}


def job_key(payload: dict[str, Any]) -> str:
    """A stable hash of canonical JSON (sorted keys; no Python hash randomisation involved)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# ---- expansion -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Cell:
    """One job a spec asks for, before it has a key: a ``[[pairs]]`` entry, a measure label,
    the systems in slot order, one parameter combination of the sweep, a site and a seed."""

    group: PairGroup
    label: str
    mspec: MeasureSpec
    order: tuple[str, ...]
    given: dict[str, Any]
    site: str
    seed: int
    task: str | None


#: (least systems, most systems or None, symmetric) of a measure, by its name
Shape = Callable[[str], tuple[int, "int | None", bool]]


def cells(spec: Spec, shape: Shape, *, skip: Iterable[str] = (), strict: bool = True
          ) -> Iterator[Cell]:
    """Every job of ``spec`` as a :class:`Cell`, in spec order: the one expansion that running
    (:func:`expand`) and boards (:func:`simbench.bench.leaderboard.expected_jobs`) share.

    A measure runs on the tuples of a ``[[pairs]]`` entry that have as many systems as it takes
    (``shape``), in both orders within a selection when it is not symmetric, on the sites the
    entry and the measure's table share (else those either names, else the spec's), for each
    seed. ``skip``: system aliases to leave out. ``strict``: a measure named by the entry that
    cannot take its tuples, or a job without sites, is a SpecError (else it is left out).
    """
    skip = set(skip)
    for group in spec.pair_groups:
        labels = group.measures if group.measures is not None else tuple(spec.measures)
        for label in labels:
            mspec = spec.measures[label]
            lo, hi, symmetric = shape(mspec.measure)
            grid = mspec.grid()
            sites = _sites(spec, group, mspec)
            seeds = group.seeds or mspec.seeds or spec.seeds
            task = group.task or spec.task  # None: each system keeps its own task
            for tup in group.tuples:
                if any(a in skip for a in tup):
                    continue
                if not (len(tup) >= lo and (hi is None or len(tup) <= hi)):
                    if strict and group.measures is not None:
                        raise spec.error(
                            f"measure '{label}' takes {lo}{'+' if hi is None else ''} systems; "
                            f"[[pairs]] '{group.name}' gives {len(tup)}",
                            ("pairs", group.index, "measures"), value=label)
                    continue
                if not sites:
                    if strict and not (group.sites and mspec.sites):  # disjoint: nothing to do
                        raise spec.error(f"no sites for measure '{label}' on [[pairs]] "
                                         f"'{group.name}'", ("pairs", group.index),
                                         fix='set sites = ["hidden", ...] at the top of the '
                                         "spec, in the measure's table or in the [[pairs]] "
                                         "entry")
                    continue
                orders = [tup, tup[::-1]] if group.kind == "within" and not symmetric else [tup]
                for order in orders:
                    for given in grid:
                        for site in sites:
                            for seed in seeds:
                                yield Cell(group, label, mspec, order, given, site, seed, task)


def collect(found: Iterable[Cell], make: Callable[[Cell], Job]) -> list[Job]:
    """The jobs ``make`` builds from ``found``, de-duplicated by key in spec order; a job asked
    for by several ``[[pairs]]`` entries lists each of their names in ``categories``."""
    jobs: dict[str, Job] = {}
    for cell in found:
        job = make(cell)
        old = jobs.setdefault(job.key, job)
        if old is not job and cell.group.name not in old.categories:
            old.categories = (*old.categories, cell.group.name)
    return list(jobs.values())


def _sites(spec: Spec, group: PairGroup, mspec: MeasureSpec) -> list[str]:
    if group.sites and mspec.sites:
        return [s for s in group.sites if s in mspec.sites]
    return list(group.sites or mspec.sites or spec.sites)


def expand(spec: Spec, registry: Any = None, *, skip: Iterable[str] = ()) -> list[Job]:
    """Every job the spec asks for (:func:`cells`), de-duplicated by key (categories merged),
    in spec order; ``skip``: aliases of systems that could not be resolved (lenient mode)."""
    registry = registry if registry is not None else get_registry()
    skip = set(skip)
    identities = {a: system_identity(s.source) for a, s in spec.systems.items()
                  if a not in skip and _used(spec, a)}
    lms = {a for a, ident in identities.items() if ident.startswith("lm:")}
    params: dict[tuple[str, int], tuple[dict[str, Any], dict[str, Any]]] = {}

    @functools.cache
    def measure_of(name: str) -> tuple[Any, str, dict[str, str | None], str, dict[str, Any]]:
        entry = registry.registered(name)  # the spec's names are canonical (no community ids)
        root = measure_root(entry.item)  # where its code starts; the fingerprint of all
        return (entry.item, code_version(entry.plugin), root, fingerprint(root),
                measure_meta(entry.item))

    def shape(name: str) -> tuple[int, int | None, bool]:
        measure = measure_of(name)[0]
        return measure.min_systems, measure.max_systems, measure.symmetric

    def make(c: Cell) -> Job:
        measure, version, root, fprint, meta = measure_of(c.mspec.measure)
        if (c.label, id(c.given)) not in params:  # one grid dict per label, kept alive
            params[(c.label, id(c.given))] = (measure.resolve_params(c.given), c.given)
        resolved = params[(c.label, id(c.given))][0]
        lm = _lm_fields(spec, c.label, c.order) if lms & set(c.order) else {}
        payload = {"measure": c.mspec.measure, "params": resolved,
                   "systems": [identities[a] for a in c.order], "site": c.site,
                   "task": c.task, "seed": c.seed, "code": version}
        payload.update(lm_record(lm.get("prompts_id"), lm.get("new_tokens")))
        return Job(key=job_key(payload), label=c.label, measure=c.mspec.measure,
                   params=resolved, swept={k: c.given[k] for k in c.mspec.swept},
                   systems=c.order, sources=tuple(spec.systems[a].source for a in c.order),
                   site=c.site, task=c.task, seed=c.seed, code_version=version,
                   categories=(c.group.name,), plugins=spec.plugins, group=c.group.index,
                   code_fingerprint=fprint, code_root=root, meta=meta,
                   lazy=bool(getattr(measure, "lazy_activity", False)), **lm)

    return collect(cells(spec, shape, skip=skip), make)


def _lm_fields(spec: Spec, label: str, tup: tuple[str, ...]) -> dict[str, Any]:
    """The Job fields of a job on language models: the prompts and continuation length of
    measure ``label`` (its own, else the spec's); a SpecError when no prompts are set."""
    prompts, tokens = spec.lm_settings(label)
    if prompts is None:
        lm = next(a for a in tup if spec.systems[a].is_lm)
        raise spec.error(
            f"system '{lm}' is a language model and measure '{label}' has no prompts to "
            "align and record it on", ("measures", label),
            fix='set prompts at the top of the spec or in [measures.' + label + ']: prompts = '
            '"prompts.txt" (one per line, relative to the spec), a list of strings, or '
            'prompts = { generator = "lm_zoo", n = 200, seed = 0 }')
    return {"prompts": prompts.prompts, "prompts_id": prompts.identity,
            "prompts_origin": prompts.origin, "new_tokens": tokens}


def _used(spec: Spec, alias: str) -> bool:
    return any(alias in tup for g in spec.pair_groups for tup in g.tuples)


# ---- checking before running ---------------------------------------------------------------
def prepare(spec: Spec, registry: Any = None) -> list[Job]:
    """Resolve every system, expand the jobs, and check sites and access before anything runs.

    In a lenient spec (the demo), systems that cannot be resolved and jobs a measure cannot do
    are dropped with a note in ``spec.notes``; otherwise the first problem is a SpecError that
    names the line, the system and the pair.
    """
    registry = registry if registry is not None else get_registry()
    resolved: dict[str, Any] = {}
    skip: set[str] = set()
    for alias, sys_spec in spec.systems.items():
        if not _used(spec, alias):
            continue
        try:
            # lazy: a recording too large to load is opened (coordinates only) so that the
            # measures reading it by blocks can run; a job whose measure needs it whole says so
            resolved[alias] = resolve_cached(sys_spec.source, sys_spec.task
                                             if sys_spec.task in registry.tasks else None,
                                             lazy=True)
        except SimbenchError as exc:
            if spec.lenient:
                spec.notes.append(f"system '{alias}' ({sys_spec.source}) unavailable: "
                                  f"{exc.message}")
                skip.add(alias)
                continue
            raise spec.error(f"system '{alias}' ({sys_spec.kind} '{sys_spec.source}') cannot be "
                             f"loaded: {exc.message}", ("systems", alias), fix=exc.fix) from None
    jobs = expand(spec, registry, skip=skip)
    keep: list[Job] = []
    checked: dict[tuple[str, tuple[str, ...], str], str | None] = {}
    for job in jobs:
        probe = (job.label, job.systems, job.site)
        if probe not in checked:
            checked[probe] = _problem(spec, registry, job, resolved)
        problem = checked[probe]
        if problem is None:
            keep.append(job)
        elif spec.lenient:
            note = f"skipped {job.label} on {' ~ '.join(job.systems)} @{job.site}: {problem}"
            if note not in spec.notes:
                spec.notes.append(note)
        else:
            raise spec.error(problem, ("measures", job.label, "sites")
                             if "site" in problem and spec.measures[job.label].sites
                             else ("pairs", job.group))
    if not keep and spec.lenient:
        raise SpecError("nothing left to run: " + "; ".join(spec.notes[-5:]), file=spec.path,
                        fix="install the zoo and the measures the spec names, or edit the spec")
    return keep


def _problem(spec: Spec, registry: Any, job: Job, resolved: dict[str, Any]) -> str | None:
    """Why this job cannot run (a missing site, an access the measure needs), or None."""
    group = spec.pair_groups[job.group]
    systems = [resolved[a] for a in job.systems]
    for alias, system in zip(job.systems, systems):
        sites = tuple(system.sites)
        if job.site not in sites:
            return (f"site '{job.site}' does not exist in system '{alias}' "
                    f"(its sites: {', '.join(sites) or 'none'}); pair "
                    f"{' vs '.join(job.systems)} of [[pairs]] '{group.name}'")
    measure = registry.registered(job.measure).item
    try:
        registry.check_access(measure, systems)
    except SimbenchError as exc:
        return (f"measure '{job.label}' cannot score the pair {' vs '.join(job.systems)} "
                f"([[pairs]] '{group.name}'): {exc.message}" + (f" ({exc.fix})" if exc.fix else ""))
    return None

