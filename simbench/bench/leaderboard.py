"""Leaderboards: queries over the results store, driven by the spec and by measure metadata.

Three boards:

- **Measure validity**: each ``[[expect]]`` entry of the spec is a finding turned into a check
  (an *ordering*: pairs matching ``higher`` should be more similar than pairs matching
  ``lower``; a *bound*: pairs matching ``pairs`` should score ``above``/``below`` a level; or
  an *equivalence*: the two selections of ``alike`` should score within ``margin`` of each
  other). Each measure variant gets the fraction of applicable checks it satisfies, with the
  violated ones listed. "More similar" reads each measure's ``higher_is_better``; bounds and
  equivalences are on the similarity normalised by the measure's declared ``range`` (0 = least,
  1 = most similar), so one threshold fits every bounded measure.
- **Similarity matrices**: per measure variant and site, systems x systems.
- **Against a target**: every system ranked by each measure variant against one system.

Scores of several seeds of one (variant, systems, site) are averaged; the interval shown is the
average of the per-seed intervals. Nothing here knows any measure by name.

Drawing a board runs no plugin code: the measures' metadata comes from the store
(:mod:`.meta`), and the spec's jobs are matched to stored rows by what the rows record
(:func:`match_rows`), not by the run keys, which need the measures' code and the recordings'
bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np

from simbench.bench.jobs import Cell, Job, cells, collect, lm_record
from simbench.bench.meta import board_meta
from simbench.bench.spec import Expectation, Spec
from simbench.bench.store import Store


@dataclasses.dataclass
class Entry:
    """One (measure variant, systems, site): the seed-averaged score."""

    variant: str
    label: str
    measure: str
    systems: tuple[str, ...]
    site: str
    categories: tuple[str, ...]
    value: float
    ci: tuple[float, float] | None
    n_seeds: int
    #: the largest p-value over the seeds against the score's null (None: no seed drew a null)
    p_value: float | None = None
    #: null samples per seed (the smallest over the seeds)
    null_size: int | None = None
    #: a seed's score warned (e.g. a language-model site under the ceiling threshold)
    warning: str | None = None
    #: what the value is when the score says (``"token"``: token IIA, MAS on language models)
    headline: str | None = None

    @property
    def beats_null(self) -> bool | None:
        """True when every seed's score beats its null at :data:`NULL_ALPHA`; None without a
        null."""
        return None if self.p_value is None else self.p_value < NULL_ALPHA


#: a cell "beats its null" when the p-value of every seed is below this
NULL_ALPHA = 0.05
#: the mark of such a cell in terminal tables
NULL_MARK = "*"
#: the mark of a cell whose score carries a warning (Entry.warning)
WARN_MARK = "!"


@dataclasses.dataclass
class Check:
    """One expectation applied to one measure variant at one site."""

    expectation: int
    finding: str
    variant: str
    site: str
    status: str  # "ok", "violated" or "n/a"
    detail: str


@dataclasses.dataclass
class ValidityRow:
    variant: str
    measure: str
    family: str
    passed: int
    total: int
    checks: list[Check]

    @property
    def fraction(self) -> float:
        return self.passed / self.total if self.total else math.nan

    @property
    def violated(self) -> list[Check]:
        return [c for c in self.checks if c.status == "violated"]


@dataclasses.dataclass
class Matrix:
    variant: str
    site: str
    systems: list[str]
    values: np.ndarray
    higher_is_better: bool
    value_range: tuple[float, float]
    #: per cell: True beats its null, False does not, None no null drawn
    beats_null: list[list[bool | None]] | None = None
    #: per cell: the score carries a warning (None: no cell does)
    warned: list[list[bool]] | None = None


@dataclasses.dataclass
class Ranking:
    variant: str
    site: str
    target: str
    higher_is_better: bool
    rows: list[tuple[int, str, float, tuple[float, float] | None, int]]  # rank, system, value, ci, seeds
    #: per row: True beats its null, False does not, None no null drawn
    beats_null: list[bool | None] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Leaderboard:
    spec: Spec
    entries: list[Entry]
    validity: list[ValidityRow]
    matrices: list[Matrix]
    rankings: list[Ranking]
    target: str | None
    done: int
    failed: int
    total: int
    failures: list[dict[str, Any]]
    meta: dict[str, dict[str, Any]]
    notes: list[str] = dataclasses.field(default_factory=list)


# ---- loading -------------------------------------------------------------------------------
def _same(a: Any, b: Any) -> bool:
    """Equal as parameter values: a boolean only equals a boolean; 2 equals 2.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b) or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


def _given(value: Any, name: str, m: Mapping[str, Any]) -> Any:
    """A spec value as the measure parsed it: an integer where a float is declared is a float."""
    kind = (m["params"] or {}).get(name, {}).get("type")
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def expected_jobs(spec: Spec, meta: Mapping[str, Mapping[str, Any]]) -> list[Job]:
    """Every job the spec asks for, as :func:`simbench.bench.jobs.expand` finds them, but from
    stored metadata alone: a job's ``key`` here identifies what a stored row records, and its
    ``params`` are the resolved parameters when the measure's defaults are known (else only
    those the spec writes)."""
    def shape(name: str) -> tuple[int, int | None, bool]:
        lo, hi = meta[name]["systems"]
        return lo, hi, meta[name]["symmetric"]

    def make(c: Cell) -> Job:
        m = meta[c.mspec.measure]
        given = {k: _given(v, k, m) for k, v in c.given.items()}
        params = {k: p["default"] for k, p in (m["params"] or {}).items()}
        params.update(given)
        if any(spec.systems[a].is_lm for a in c.order):  # rows record them beside the params
            prompts, tokens = spec.lm_settings(c.label)
            params.update(lm_record(None if prompts is None else prompts.identity, tokens))
        # as the store's JSON gives them back (tuples become lists, odd types strings)
        params = json.loads(json.dumps(params, default=str))
        sources = tuple(spec.systems[a].source for a in c.order)
        key = hashlib.sha256(json.dumps([c.mspec.measure, params, sources, c.site, c.task,
                                         c.seed], sort_keys=True).encode()).hexdigest()
        return Job(key=key, label=c.label, measure=c.mspec.measure, params=params,
                   swept={k: given[k] for k in c.mspec.swept}, systems=c.order,
                   sources=sources, site=c.site, task=c.task, seed=c.seed, code_version="",
                   categories=(c.group.name,), plugins=spec.plugins, group=c.group.index)

    return collect(cells(spec, shape, strict=False), make)


def match_rows(jobs: list[Job], rows: list[dict[str, Any]],
               meta: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """job key -> the newest stored row that records that job (jobs without one are left out).

    A row records a job when measure, system sources, site, task and seed are the same and
    every parameter of the job has the row's value. A parameter the row lacks counts as equal
    when the job has its default: the row predates the parameter, whose default is what ran.
    """
    index: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        index[(row["measure"], tuple(row["sources"]), row["site"], row["task"],
               row["seed"])].append(row)
    out = {}
    for job in jobs:
        declared = ((meta or {}).get(job.measure) or {}).get("params") or {}
        candidates = [r for r in index.get((job.measure, job.sources, job.site, job.task,
                                            job.seed), [])
                      if all(_same(r["params"][k], v) if k in r["params"] else
                             k in declared and _same(declared[k].get("default"), v)
                             for k, v in job.params.items())]
        if candidates:
            out[job.key] = max(candidates, key=lambda r: (r["finished"], r["status"] == "done"))
    return out


def load_entries(spec: Spec, rows: list[dict[str, Any]], meta: Mapping[str, Mapping[str, Any]]
                 ) -> tuple[list[Entry], dict[str, Any]]:
    """Seed-averaged entries for the spec's jobs found in ``rows``, and coverage counts."""
    jobs = expected_jobs(spec, meta)
    found = match_rows(jobs, rows, meta)
    groups: dict[tuple[str, tuple[str, ...], str], list[tuple[Job, dict]]] = defaultdict(list)
    failures = []
    done = 0
    for job in jobs:
        row = found.get(job.key)
        if row is None:
            continue
        if row["status"] != "done":
            failures.append({"job": job.describe(), "error": row["error"]})
            continue
        done += 1
        groups[(job.variant, job.systems, job.site)].append((job, row))
    entries = []
    for (variant, systems, site), items in groups.items():
        job0 = items[0][0]
        values = [r["value"] for _, r in items if r["value"] is not None]
        value = float(np.mean(values)) if values else math.nan
        lows, highs = [r["ci_low"] for _, r in items], [r["ci_high"] for _, r in items]
        ci = (None if None in lows or None in highs
              else (float(np.mean(lows)), float(np.mean(highs))))
        cats = tuple(dict.fromkeys(c for j, _ in items for c in j.categories))
        entries.append(Entry(variant, job0.label, job0.measure, systems, site, cats, value, ci,
                             len(items), *_score_facts([r for _, r in items])))
    order = {a: i for i, a in enumerate(spec.systems)}
    entries.sort(key=lambda e: (e.variant, e.site, [order.get(s, 0) for s in e.systems]))
    return entries, {"done": done, "failed": len(failures), "total": len(jobs),
                     "failures": failures}


def _score_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row's Score as JSON data; empty when the row holds none or it is unreadable."""
    raw = row.get("score")
    try:
        score = json.loads(raw) if isinstance(raw, str) else (raw or {})
    except ValueError:
        return {}
    return score if isinstance(score, dict) else {}


def _score_facts(rows: list[dict[str, Any]]
                 ) -> tuple[float | None, int | None, str | None, str | None]:
    """What the seeds' Score JSON says of a cell: its null (the largest p-value, as a cell beats
    its null only when every seed does, and the smallest null size; both None when some seed
    drew no null), the first warning any seed carries, and what the value is
    (``attrs.headline``, e.g. ``"token"`` for MAS on language models)."""
    scores = [_score_of(r) for r in rows]
    warning = headline = None
    for attrs in (s.get("attrs") or {} for s in scores):
        warning, headline = warning or attrs.get("warning"), headline or attrs.get("headline")
    if not scores or any(s.get("p_value") is None for s in scores):
        return None, None, warning, headline
    return (max(float(s["p_value"]) for s in scores),
            min(int(s.get("null_size") or 0) for s in scores), warning, headline)


def score_notes(entries: list[Entry]) -> list[str]:
    """Board notes on what the values are and which cells warn."""
    notes = []
    token = sorted({e.variant for e in entries if e.headline == "token"})
    if token:
        notes.append(f"{', '.join(token)} on language models: values are token IIA, the "
                     "headline as in the paper (share of the source's continuation tokens the "
                     "patched target predicts); each score's attrs hold the whole-continuation "
                     "IIA (trial_iia) and each model's within-model ceiling")
    if any(e.warning for e in entries):
        notes.append(f"{WARN_MARK} the score warns: "
                     + next(e.warning for e in entries if e.warning))
    return notes


def build(spec: Spec, store: Store, *, target: str | None = None) -> Leaderboard:
    """Every board for ``spec`` from ``store``, importing no plugin (measure metadata:
    :func:`simbench.bench.meta.board_meta`)."""
    rows = store.rows()
    meta, notes = board_meta(store.measures(), {m.measure for m in spec.measures.values()}, rows)
    for label, mspec in spec.measures.items():
        known = meta[mspec.measure]["params"]
        if known is not None:
            spec.check_keys(mspec.params, known, ("measures", label), f"[measures.{label}]")
    entries, cov = load_entries(spec, rows, meta)
    target = target or spec.target
    if target is not None and target not in spec.systems:
        from simbench.errors import SpecError

        raise SpecError(f"target '{target}' is not a system of spec '{spec.name}'",
                        field="target", fix=f"systems: {', '.join(spec.systems)}")
    meta = {k: dict(v) for k, v in meta.items()}
    return Leaderboard(spec=spec, entries=entries, validity=validity(spec, entries, meta),
                       matrices=matrices(spec, entries, meta),
                       rankings=rankings(entries, meta, target) if target else [],
                       target=target, meta=meta, notes=notes + score_notes(entries), **cov)


# ---- selecting pairs -----------------------------------------------------------------------
def pair_matches(spec: Spec, selector: Any, entry: Entry) -> bool:
    """Does ``entry`` fall in the pair category ``selector`` describes?"""
    if isinstance(selector, str):
        return selector in entry.categories
    if isinstance(selector, list):
        return any(c in entry.categories for c in selector)
    systems = entry.systems
    tags = [spec.systems[a].tags for a in systems]

    def chosen(sel: Any) -> set[str]:
        return set(spec.select(sel, ("expect",)))

    for key, value in selector.items():
        ok = True
        if key == "category":
            ok = pair_matches(spec, value, entry)
        elif key == "systems":
            ok = set(systems) == chosen(value)
        elif key in ("a", "b") and "a" in selector and "b" in selector:  # one from each side
            left, right = chosen(selector["a"]), chosen(selector["b"])
            ok = len(systems) == 2 and any(x in left and y in right
                                           for x, y in (systems, systems[::-1]))
        elif key in ("a", "b"):
            ok = bool(set(systems) & chosen(value))
        elif key == "same":
            ok = all(len(have := {t.get(tag) for t in tags}) == 1 and None not in have
                     for tag in value)
        elif key == "differ":
            ok = all(len({t.get(tag) for t in tags}) == len(tags) for tag in value)
        if not ok:
            return False
    return True


def _applies(exp: Expectation, variant: str, label: str, measure: str, family: str) -> bool:
    return exp.measures is None or any(m in (variant, label, measure, family)
                                       for m in exp.measures)


def similarity(value: float, meta: dict[str, Any]) -> float:
    """Oriented so that larger always means more similar."""
    return value if meta["higher_is_better"] else -value


def normalised(value: float, meta: dict[str, Any]) -> float:
    """Similarity on [0, 1] by the measure's declared range; NaN for an unbounded range."""
    lo, hi = meta["range"]
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return math.nan
    s = (value - lo) / (hi - lo)
    return s if meta["higher_is_better"] else 1.0 - s


# ---- the boards ----------------------------------------------------------------------------
def validity(spec: Spec, entries: list[Entry], meta: dict[str, dict[str, Any]]
             ) -> list[ValidityRow]:
    """Each measure variant against each applicable expectation, best first."""
    by_variant: dict[str, list[Entry]] = defaultdict(list)
    for e in entries:
        by_variant[e.variant].append(e)
    out = []
    for variant, items in by_variant.items():
        e0 = items[0]
        m = meta[e0.measure]
        checks: list[Check] = []
        for exp in spec.expectations:
            if not _applies(exp, variant, e0.label, e0.measure, m["family"]):
                continue
            sites = [exp.site] if exp.site else sorted({e.site for e in items})
            for site in sites:
                here = [e for e in items if e.site == site and math.isfinite(e.value)]
                checks.append(_check(spec, exp, variant, site, here, m))
        counted = [c for c in checks if c.status != "n/a"]
        passed = sum(1 for c in counted if c.status == "ok")
        out.append(ValidityRow(variant, e0.measure, m["family"], passed, len(counted), checks))
    out.sort(key=lambda r: (-(r.fraction if r.total else -1), r.variant))
    return out


def _check(spec: Spec, exp: Expectation, variant: str, site: str, entries: list[Entry],
           m: dict[str, Any]) -> Check:
    def make(status: str, detail: str) -> Check:
        return Check(exp.index, exp.finding, variant, site, status, detail)

    if exp.pairs is not None:
        chosen = [e for e in entries if pair_matches(spec, exp.pairs, e)]
        if not chosen:
            return make("n/a", "no scored pairs match")
        vals = [normalised(e.value, m) for e in chosen]
        if not all(math.isfinite(v) for v in vals):
            return make("n/a", "the measure declares no bounded range")
        tested = vals if exp.mode == "all" else [float(np.mean(vals))]
        ok = all((exp.above is None or v > exp.above + exp.margin)
                 and (exp.below is None or v < exp.below - exp.margin) for v in tested)
        bound = " and ".join(f"{word} {x}" for word, x in (("above", exp.above),
                                                           ("below", exp.below)) if x is not None)
        what = "each" if exp.mode == "all" else "mean"
        detail = (f"{what} normalised similarity of {len(chosen)} pair(s) "
                  f"{', '.join(f'{v:.3f}' for v in tested)}: expected {bound}")
        return make("ok" if ok else "violated", detail)
    if exp.alike is not None:
        return make(*_alike(spec, exp, entries, m))
    high = [e for e in entries if pair_matches(spec, exp.higher, e)]
    low = [e for e in entries if pair_matches(spec, exp.lower, e)]
    if not high or not low:
        return make("n/a", f"no scored pairs for the {'higher' if not high else 'lower'} side")
    sh, sl = ([similarity(e.value, m) for e in side] for side in (high, low))
    if exp.mode == "all":
        holds, n = sum(1 for a in sh for b in sl if a > b + exp.margin), len(sh) * len(sl)
        return make("ok" if holds == n else "violated", f"{holds}/{n} pair orderings hold")
    ok = float(np.mean(sh)) > float(np.mean(sl)) + exp.margin
    arrow = ">" if m["higher_is_better"] else "<"
    return make("ok" if ok else "violated",
                f"{_name(exp.higher)} {np.mean([e.value for e in high]):.3f} should be {arrow} "
                f"{_name(exp.lower)} {np.mean([e.value for e in low]):.3f}")


def _alike(spec: Spec, exp: Expectation, entries: list[Entry], m: dict[str, Any]
           ) -> tuple[str, str]:
    """(status, detail) of an equivalence: the two selections' similarities (normalised when
    the range is bounded, else oriented raw values) differ by at most ``margin``: their means
    (mode "mean") or every cross pair (mode "all"). A pair in both selections counts in both."""
    sides = [[e for e in entries if pair_matches(spec, sel, e)] for sel in exp.alike]
    if not sides[0] or not sides[1]:
        which = exp.alike[0] if not sides[0] else exp.alike[1]
        return "n/a", f"no scored pairs for {_name(which)}"
    bounded = all(math.isfinite(normalised(e.value, m)) for side in sides for e in side)
    scale = (lambda e: normalised(e.value, m)) if bounded else (lambda e: similarity(e.value, m))
    a, b = ([scale(e) for e in side] for side in sides)
    what = "normalised similarity" if bounded else "similarity"
    if exp.mode == "all":
        holds, n = sum(1 for x in a for y in b if abs(x - y) <= exp.margin), len(a) * len(b)
        return ("ok" if holds == n else "violated",
                f"{holds}/{n} pair differences within {exp.margin:g} ({what})")
    ma, mb = float(np.mean(a)), float(np.mean(b))
    raw = [float(np.mean([e.value for e in side])) for side in sides]
    detail = (f"{_name(exp.alike[0])} {raw[0]:.3f} vs {_name(exp.alike[1])} {raw[1]:.3f}: "
              f"{what} differs by {abs(ma - mb):.3f}, expected at most {exp.margin:g}")
    return ("ok" if abs(ma - mb) <= exp.margin else "violated"), detail


def _name(selector: Any) -> str:
    if isinstance(selector, str):
        return selector
    if isinstance(selector, list):
        return "|".join(map(str, selector))
    return "{" + ", ".join(f"{k}={v}" for k, v in selector.items()) + "}"


def matrices(spec: Spec, entries: list[Entry], meta: dict[str, dict[str, Any]]) -> list[Matrix]:
    """Per variant and site, systems x systems (two-system entries; symmetric ones mirrored)."""
    cells: dict[tuple[str, str], dict[tuple[str, str], Entry]] = defaultdict(dict)
    for e in entries:
        if len(e.systems) == 2:
            cells[(e.variant, e.site)][e.systems] = e
    out = []
    order = list(spec.systems)
    for (variant, site), found in cells.items():
        m = meta[next(iter(found.values())).measure]
        present = {s for pair in found for s in pair}
        names = [a for a in order if a in present]
        idx = {a: i for i, a in enumerate(names)}
        arr = np.full((len(names), len(names)), np.nan)
        marks: list[list[bool | None]] = [[None] * len(names) for _ in names]
        warned = [[False] * len(names) for _ in names]
        for (a, b), e in found.items():
            places = [(idx[a], idx[b])]
            if m["symmetric"] and a != b and math.isnan(arr[idx[b], idx[a]]):
                places.append((idx[b], idx[a]))  # mirrored until (b, a) itself is scored
            for i, j in places:
                arr[i, j], marks[i][j], warned[i][j] = e.value, e.beats_null, bool(e.warning)
        has_null = any(b is not None for row in marks for b in row)
        out.append(Matrix(variant, site, names, arr, m["higher_is_better"], m["range"],
                          marks if has_null else None,
                          warned if any(w for row in warned for w in row) else None))
    out.sort(key=lambda x: (x.variant, x.site))
    return out


def rankings(entries: list[Entry], meta: dict[str, dict[str, Any]], target: str
             ) -> list[Ranking]:
    """Every system scored against ``target``, per variant and site, most similar first."""
    groups: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    for e in entries:
        if len(e.systems) == 2 and target in e.systems:
            groups[(e.variant, e.site)].append(e)
    out = []
    for (variant, site), items in sorted(groups.items()):
        m = meta[items[0].measure]
        best: dict[str, Entry] = {}
        for e in items:
            other = e.systems[1] if e.systems[0] == target else e.systems[0]
            best.setdefault(other, e)
        ordered = sorted(best.items(), key=lambda kv: -similarity(kv[1].value, m)
                         if math.isfinite(kv[1].value) else math.inf)
        rows = [(i + 1, other, e.value, e.ci, e.n_seeds) for i, (other, e) in enumerate(ordered)]
        out.append(Ranking(variant, site, target, m["higher_is_better"], rows,
                           [e.beats_null for _, e in ordered]))
    return out
