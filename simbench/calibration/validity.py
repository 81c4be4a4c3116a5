"""The measure-validity board: per measure, which validity checks it passed, failed or did not run.

Five checks, each applicable to every measure that can run it:

- **planted identity**: a network against an exact re-parametrization of itself (units permuted
  through every weight) must score as high as the network against itself;
- **specificity**: a trained network against the same architecture untrained must score below
  every pair of trained seeds;
- **layer order**: within one network, sites further apart score lower: for every ordered
  triple of sites i < j < k, s(i, j) and s(j, k) are above s(i, k);
- **separability**: the scores of same-task seed pairs are separable from those of
  different-task pairs: ROC-AUC with a bootstrap interval whose lower end is above chance (0.5),
  d' beside it;
- **small-n bias**: on independent Gaussian data the measure averages within
  :data:`BIAS_TOLERANCE` of its population value on independent data at every n of
  :data:`~simbench.calibration.bias.BIAS_NS`: 0 for similarities, or the measure's
  ``independent_value`` where it declares one (distances: pi/2 for the Procrustes angle,
  sqrt 2 for soft matching), in the measure's own units.

The first two are ``[[expect]]`` entries of an ordinary spec (``benchmarks/specs/validity.toml``)
whose ``finding`` starts with the check's name and a colon: the harness scores the pairs into a
store and :func:`simbench.bench.leaderboard.build` evaluates them, as for the paper's findings.
The other three are not orderings of stored scores (sites of one network against each other,
a statistic over many pairs, synthetic data), so this module computes them: separability from
the stored scores, layer order and bias by running the measure (``simbench.score``).

A check that could evaluate nothing is *not run*, never passed or failed, with the reason (no
pair of the kind scored yet, failed jobs, a measure that is not correlative, too few pairs).
Every registered measure has a row: one the spec does not run is *not run*, and one no check can
apply to is *not applicable* (:mod:`simbench.calibration.applicability` says why).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from simbench.calibration.bias import BiasTable, small_n_bias
from simbench.calibration.separation import Separability, format_separability, separability

#: the checks, in board order
CHECKS: tuple[str, ...] = ("planted identity", "specificity", "layer order", "separability",
                           "small-n bias")
#: checks read from the spec's ``[[expect]]`` entries (``finding = "<check>: ..."``)
EXPECT_CHECKS: tuple[str, ...] = ("planted identity", "specificity")
PASSED, FAILED, NOT_RUN = "passed", "failed", "not run"
#: a check that cannot apply to the measure at all (it is not a two-system measure, say)
NOT_APPLICABLE = "not applicable"
#: every status, in the order the board counts them
STATUSES: tuple[str, ...] = (PASSED, FAILED, NOT_RUN, NOT_APPLICABLE)
#: a correlative measure passes the bias check when |mean| stays below this at every n
BIAS_TOLERANCE = 0.05
#: pair categories of the separability check: same-task seed pairs against different-task ones
SAME_CATEGORIES: tuple[str, ...] = ("seeds", "seeds_tf", "seeds_other_tasks")
DIFFERENT_CATEGORIES: tuple[str, ...] = ("cross_task", "cross_task_more", "cross_task_arith")
#: parameters dropped when a measure is run on synthetic or re-sited data (only the estimate
#: is used: no interval, no null, every sample)
_ESTIMATE_ONLY = {"n_boot": 0, "null": 0}
_DROP = ("n_stimuli",)


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """One check of one measure variant: passed, failed or not run, and why."""

    variant: str
    check: str
    status: str
    detail: str


@dataclasses.dataclass
class ValidityBoard:
    """Every measure variant of a spec against every check."""

    spec_name: str
    variants: list[str]
    measures: dict[str, str]  # variant -> measure name
    results: dict[tuple[str, str], CheckResult]
    separability: dict[str, Separability]
    bias: BiasTable | None
    site: str
    notes: list[str] = dataclasses.field(default_factory=list)

    def status(self, variant: str, check: str) -> str:
        return self.results[(variant, check)].status

    def counts(self, variant: str) -> dict[str, int]:
        """How many checks ``variant`` passed, failed, did not run and could not apply to."""
        out = dict.fromkeys(STATUSES, 0)
        for check in CHECKS:
            out[self.status(variant, check)] += 1
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One record per (variant, check), as the CSV has them."""
        return [{"variant": v, "measure": self.measures[v], "check": c,
                 "status": self.results[(v, c)].status, "detail": self.results[(v, c)].detail}
                for v in self.variants for c in CHECKS]


# ---- building the board ----------------------------------------------------------------------
def validity_board(
    spec: Any,
    store: Any,
    *,
    site: str | None = None,
    layer_order: bool = True,
    bias: bool = True,
    layer_n: int = 300,
    bias_draws: int = 10,
    n_boot: int = 1000,
    seed: int = 0,
    every_measure: bool = True,
) -> ValidityBoard:
    """The validity board of ``spec`` from the scores in ``store``.

    ``site`` is where separability is read (default: the spec's first site). ``layer_order``
    and ``bias`` run the measures (seconds per correlative measure; switch them off to only
    view stored results). ``layer_n`` stimuli are recorded per network for the layer order,
    ``bias_draws`` data sets per n drawn for the bias, and ``n_boot`` resamples give the
    separability intervals; everything is seeded with ``seed``. ``every_measure`` adds a row
    for each registered measure the spec does not run (not run or not applicable, with the
    reason).
    """
    from simbench.bench.leaderboard import build, expected_jobs, match_rows

    board = build(spec, store)
    site = site or (spec.sites[0] if spec.sites else "hidden")
    jobs = expected_jobs(spec, board.meta)
    variants = list(dict.fromkeys(j.variant for j in jobs))
    measures = {j.variant: j.measure for j in jobs}
    params = {j.variant: dict(j.params) for j in jobs}
    labels = {j.variant: j.label for j in jobs}
    errors: dict[str, list[str]] = defaultdict(list)
    for f in board.failures:
        errors[f["job"].split(" ", 1)[0]].append(f"{f['job']}: {f['error']}")
    found = match_rows(jobs, store.rows(), board.meta)
    missing = Counter(j.variant for j in jobs if j.key not in found)
    # why a check may have had nothing to evaluate: jobs not run yet, jobs that failed
    failed: dict[str, list[str]] = defaultdict(list)
    for v in variants:
        if missing.get(v):
            failed[v].append(f"{missing[v]} job(s) of '{v}' are not in the store yet (run "
                             f"`simbench bench run {spec.name}`)")
        if errors.get(v):
            failed[v].append(f"{len(errors[v])} job(s) failed, e.g. {errors[v][0]}")
    results: dict[tuple[str, str], CheckResult] = {}
    rows = {r.variant: r for r in board.validity}
    for v in variants:
        for check in EXPECT_CHECKS:
            results[(v, check)] = _expect_check(v, check, rows.get(v), failed.get(v, []), spec,
                                                labels[v], measures[v],
                                                board.meta[measures[v]]["family"])
    seps: dict[str, Separability] = {}
    for v in variants:
        res, sep = _separability_check(v, board.entries, board.meta[measures[v]], site,
                                       failed.get(v, []), n_boot, seed)
        results[(v, "separability")] = res
        if sep is not None:
            seps[v] = sep
    correlative = [v for v in variants if board.meta[measures[v]]["family"] == "correlative"]
    for v in variants:
        if v in correlative:
            continue
        family = board.meta[measures[v]]["family"]
        results[(v, "layer order")] = CheckResult(
            v, "layer order", NOT_RUN, f"'{measures[v]}' is a {family} measure: it compares the "
            "same site of two networks, so two sites of one network cannot be fed to it")
        results[(v, "small-n bias")] = CheckResult(
            v, "small-n bias", NOT_RUN, f"'{measures[v]}' is a {family} measure: it needs "
            "networks to intervene on, not independent activity")
    nets = _layer_networks(spec) if layer_order else []
    for v in correlative:
        results[(v, "layer order")] = (
            _layer_check(v, measures[v], params[v], nets, board.meta[measures[v]], layer_n, seed)
            if layer_order else
            CheckResult(v, "layer order", NOT_RUN, "switched off (--no-layer-order)"))
    table = None
    if bias and correlative:
        from simbench.calibration.estimators import measure_estimator

        estimators = {v: measure_estimator(measures[v], **_estimate_params(params[v]))
                      for v in correlative}
        table = small_n_bias(estimators, draws=bias_draws, seed=seed)
    for v in correlative:
        results[(v, "small-n bias")] = (
            _bias_check(v, table, independent_value(measures[v])) if table is not None else
            CheckResult(v, "small-n bias", NOT_RUN, "switched off (--no-bias)"))
    notes = list(board.notes)
    if board.done < board.total:
        notes.append(f"{board.total - board.done - board.failed} of {board.total} jobs are not "
                     f"in the store yet: run `simbench bench run {spec.name}`")
    if every_measure:
        _add_absent_measures(spec.name, variants, measures, results)
    return ValidityBoard(spec.name, variants, measures, results, seps, table, site, notes)


def _add_absent_measures(spec_name: str, variants: list[str], measures: dict[str, str],
                         results: dict[tuple[str, str], CheckResult]) -> None:
    """A row per registered measure that no variant of the spec runs: every check not
    applicable (with the table's reason) or not run (the spec does not run it)."""
    from simbench.calibration.applicability import absent_reason, not_applicable_reason
    from simbench.registry import get_registry

    run = set(measures.values())
    for name in sorted(get_registry().measures):
        if name in run or name in variants:
            continue
        status = NOT_APPLICABLE if not_applicable_reason(name) else NOT_RUN
        variants.append(name)
        measures[name] = name
        for check in CHECKS:
            results[(name, check)] = CheckResult(name, check, status,
                                                 absent_reason(name, spec_name))


def _expect_check(variant: str, check: str, row: Any, failures: list[str], spec: Any,
                  label: str, measure: str, family: str) -> CheckResult:
    """Fold the ``[[expect]]`` checks named ``check: ...`` into one status for ``variant``."""
    named = [e for e in spec.expectations if e.finding.split(":", 1)[0].strip() == check]
    applicable = [e for e in named if e.measures is None
                  or any(m in (variant, label, measure, family) for m in e.measures)]
    if not applicable:
        why = ("the spec has no [[expect]] entry for it" if not named
               else "no [[expect]] entry applies to this measure")
        return CheckResult(variant, check, NOT_RUN, why)
    wanted = {e.index for e in applicable}
    checks = [c for c in (row.checks if row is not None else []) if c.expectation in wanted]
    violated = [c for c in checks if c.status == "violated"]
    ok = [c for c in checks if c.status == "ok"]
    if violated:
        return CheckResult(variant, check, FAILED, "; ".join(
            f"{c.finding.split(':', 1)[1].strip()}: {c.detail}" for c in violated))
    if ok:
        skipped = [c for c in checks if c.status not in ("ok", "violated")]
        why = "; ".join(f"'{c.finding.split(':', 1)[1].strip()}': {c.detail}" for c in skipped)
        return CheckResult(variant, check, PASSED, f"{len(ok)} of {len(checks)} held"
                           + (f"; {len(skipped)} not evaluable: {why}" if skipped else ""))
    reasons = sorted({c.detail for c in checks}) or ["no scores of this measure in the store"]
    return CheckResult(variant, check, NOT_RUN, "; ".join(reasons + failures))


def _separability_check(variant: str, entries: list[Any], meta: Mapping[str, Any], site: str,
                        failures: list[str], n_boot: int, seed: int
                        ) -> tuple[CheckResult, Separability | None]:
    here = [e for e in entries if e.variant == variant and e.site == site
            and math.isfinite(e.value)]
    same = [e.value for e in here if set(e.categories) & set(SAME_CATEGORIES)]
    diff = [e.value for e in here if set(e.categories) & set(DIFFERENT_CATEGORIES)
            and not set(e.categories) & set(SAME_CATEGORIES)]
    if len(same) < 2 or len(diff) < 2:
        why = (f"needs 2 or more scored pairs of each kind at site '{site}' (same task: "
               f"{len(same)}, different task: {len(diff)}; categories "
               f"{'/'.join(SAME_CATEGORIES)} vs {'/'.join(DIFFERENT_CATEGORIES)})")
        return CheckResult(variant, "separability", NOT_RUN, "; ".join([why, *failures])), None
    sep = separability(same, diff, higher_is_better=bool(meta["higher_is_better"]),
                       n_boot=n_boot, seed=seed)
    ci = sep.auc_ci
    ok = ci is not None and ci[0] > 0.5
    ci_text = f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "(no interval)"
    dp = sep.d_prime_ci
    detail = (f"AUC {sep.auc:.3f} {ci_text}, d' {sep.d_prime:.2f}"
              + (f" [{dp[0]:.2f}, {dp[1]:.2f}]" if dp else "")
              + f" over {sep.n_same} same-task and {sep.n_different} different-task pairs"
              + ("" if ok else "; the AUC interval reaches chance (0.5)"))
    return CheckResult(variant, "separability", PASSED if ok else FAILED, detail), sep


def _estimate_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """A variant's parameters for estimate-only runs on other data (no interval, no null)."""
    out = {k: v for k, v in params.items() if k not in _DROP}
    out.update({k: v for k, v in _ESTIMATE_ONLY.items() if k in params})
    return out


def independent_value(measure: str) -> float:
    """The population value of ``measure`` on independent systems: its ``independent_value``
    attribute where it declares one (distances), else 0."""
    from simbench.registry import get_registry

    return float(getattr(get_registry().measure(measure), "independent_value", 0.0))


def _bias_check(variant: str, table: BiasTable, reference: float = 0.0) -> CheckResult:
    means = {n: table.mean(variant, n) - reference for n in table.ns}
    worst = max(means, key=lambda n: abs(means[n]))
    text = ", ".join(f"n={n}: {m:+.3f}" for n, m in means.items())
    ok = all(abs(m) < BIAS_TOLERANCE for m in means.values())
    what = ("mean on independent data" if reference == 0 else
            f"mean on independent data minus its population value {reference:.4g},")
    detail = (f"{what} {text}"
              + ("" if ok else f"; |{means[worst]:+.3f}| at n={worst} is not below "
                 f"{BIAS_TOLERANCE}"))
    return CheckResult(variant, "small-n bias", PASSED if ok else FAILED, detail)


# ---- layer order ---------------------------------------------------------------------------
def _layer_networks(spec: Any) -> list[tuple[str, str, str]]:
    """(alias, source, arch) of the first trained network of each architecture in ``spec``."""
    from simbench.zoo.archs import find_arch

    seen: dict[str, tuple[str, str, str]] = {}
    for alias, s in spec.systems.items():
        arch = s.tags.get("arch")
        if (s.tags.get("kind", "trained") == "trained" and arch not in seen
                and find_arch(arch) is not None):
            seen[arch] = (alias, s.source, arch)
    return list(seen.values())


def site_pair_scores(measure: str, network: Any, sites: Sequence[str], *, n: int = 300,
                     seed: int = 0, **params: Any) -> dict[tuple[str, str], float]:
    """``measure`` between every two ``sites`` of one network, on the same ``n`` stimuli.

    Each site's activity becomes a recording with one site of a common name, so any correlative
    measure compares two sites as it compares two systems.
    """
    from simbench.api import score
    from simbench.recording import Recording, site_dataset
    from simbench.systems.resolve import resolve_system

    system = resolve_system(network)
    rec = system.record(n=n, seed=seed, sites=list(sites))

    def one(site: str) -> Recording:
        ds = rec.site(site)
        data = site_dataset(ds["activity"].values, stimulus_ids=ds["stimulus_id"].values,
                            site="site", system_id=f"{system.system_id}@{site}",
                            tokens=ds["token"].values, valid=ds["valid"].values)
        return Recording(system_id=f"{system.system_id}@{site}", sites={"site": data})

    recs = {s: one(s) for s in sites}
    out = {}
    for i, a in enumerate(sites):
        for b in sites[i + 1:]:
            out[(a, b)] = score(measure, recs[a], recs[b], site="site", seed=seed, device="cpu",
                                **params).value
    return out


def _layer_check(variant: str, measure: str, params: Mapping[str, Any],
                 nets: list[tuple[str, str, str]], meta: Mapping[str, Any], n: int, seed: int
                 ) -> CheckResult:
    sign = 1.0 if meta["higher_is_better"] else -1.0
    held, total, bad, skipped = 0, 0, [], []
    from simbench.zoo.archs import get_arch

    for alias, source, arch in nets:
        order = get_arch(arch).site_order  # input to output
        if len(order) < 3:
            skipped.append(f"{alias} ({arch}) has {len(order)} sites, no triple")
            continue
        s = site_pair_scores(measure, source, order, n=n, seed=seed,
                             **_estimate_params(params))
        for i in range(len(order)):
            for j in range(i + 1, len(order)):
                for k in range(j + 1, len(order)):
                    far = sign * s[(order[i], order[k])]
                    for near in ((order[i], order[j]), (order[j], order[k])):
                        total += 1
                        if sign * s[near] > far:
                            held += 1
                        else:
                            bad.append(f"{alias}: {near[0]}~{near[1]} {s[near]:.3f} not "
                                       f"{'above' if sign > 0 else 'below'} {order[i]}~"
                                       f"{order[k]} {s[(order[i], order[k])]:.3f}")
    if total == 0:
        return CheckResult(variant, "layer order", NOT_RUN, "no network with three or more "
                           "ordered sites in the spec" + (f" ({'; '.join(skipped)})"
                                                           if skipped else ""))
    note = f" (not applicable: {'; '.join(skipped)})" if skipped else ""
    if bad:
        return CheckResult(variant, "layer order", FAILED,
                           f"{held}/{total} orderings hold: " + "; ".join(bad) + note)
    return CheckResult(variant, "layer order", PASSED, f"{held}/{total} orderings hold" + note)


# ---- rendering -----------------------------------------------------------------------------
_MARK = {PASSED: "passed", FAILED: "FAILED", NOT_RUN: "not run", NOT_APPLICABLE: "n/a"}


def format_board(board: ValidityBoard) -> str:
    """The board as text: a status table, then why each check failed, did not run or does not
    apply (one line for a measure whose checks all share a reason), the separability table
    and the bias table."""
    head = ["measure", *CHECKS, "passed", "failed", "not run", "n/a"]
    body = []
    for v in board.variants:
        c = board.counts(v)
        body.append([v, *(_MARK[board.status(v, k)] for k in CHECKS),
                     *(str(c[s]) for s in STATUSES)])
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    lines = [f"measure validity of spec '{board.spec_name}' (a check not run or not applicable "
             "counts neither way)"]
    lines += ["  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip() for r in [head, *body]]
    for status in (FAILED, NOT_RUN, NOT_APPLICABLE):
        items = _detail_lines(board, status)
        if items:
            lines += ["", f"{status}:", *items]
    if board.separability:
        lines += ["", f"separability at site '{board.site}' (same-task seed pairs vs "
                  "different-task pairs):", format_separability(board.separability)]
    if board.bias is not None:
        lines += ["", "small-n bias:", board.bias.format()]
    for note in board.notes:
        lines += [f"note: {note}"]
    return "\n".join(lines)


def _detail_lines(board: ValidityBoard, status: str) -> list[str]:
    """``variant / check: detail`` for each check of ``status``; a variant whose every check
    has that status for one reason gets one line (``variant / every check: detail``)."""
    out = []
    for v in board.variants:
        items = [board.results[(v, c)] for c in CHECKS if board.results[(v, c)].status == status]
        if len(items) == len(CHECKS) and len({r.detail for r in items}) == 1:
            out.append(f"  {v} / every check: {items[0].detail}")
        else:
            out += [f"  {r.variant} / {r.check}: {r.detail}" for r in items]
    return out


def write_csv(board: ValidityBoard, path: str | Path) -> Path:
    """One row per (measure variant, check): status and detail."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["variant", "measure", "check", "status", "detail"])
        w.writeheader()
        w.writerows(board.rows())
    return out


__all__ = ["BIAS_TOLERANCE", "CHECKS", "FAILED", "NOT_APPLICABLE", "NOT_RUN", "PASSED",
           "STATUSES", "CheckResult", "ValidityBoard", "format_board", "independent_value",
           "site_pair_scores", "validity_board", "write_csv"]
