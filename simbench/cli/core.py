"""Core commands: ``measures``, ``plugins``, ``score`` and ``validate``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from simbench.cli.output import table
from simbench.errors import ParameterError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("measures", help="list every registered measure and its parameters")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_measures)

    p = sub.add_parser("plugins", help="list loaded plugins and those that failed to load")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_plugins)

    p = sub.add_parser(
        "score",
        help="score systems with one measure",
        description="Score systems (recording files, zoo ids, checkpoints, language-model "
        "directories) with a measure. "
        "Measure parameters are passed as --NAME VALUE (see `simbench measures`); a "
        "comma-separated value sweeps that parameter, e.g. --k 1,2,4,8.",
    )
    p.add_argument("measure")
    p.add_argument("systems", nargs="+", metavar="SYSTEM")
    p.add_argument("--site", help="site to compare, e.g. hidden or embedding (required, except "
                   "for language models: they default to embedding)")
    p.add_argument("--task", help="task name (default: the systems' own task)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--intersect", action="store_true",
                   help="use only the stimuli both recordings share")
    p.add_argument("--json", action="store_true", help="print the score(s) as JSON")
    p.add_argument("--plot", metavar="PNG", help="with a sweep: plot the value against it")
    p.add_argument("--prompts", metavar="FILE", help="language models (model directories): "
                   "the prompts, one per line, each model greedily continues")
    p.add_argument("--new-tokens", type=int, metavar="N", dest="new_tokens",
                   help="language models: continuation length in tokens (default 8)")
    p.set_defaults(handler=cmd_score, accepts_extra=True)

    p = sub.add_parser("validate", help="check recording files against the schema",
                       description="List every schema problem of each file; with --task, also "
                       "whether causal measures can match it to that task: tokens of its "
                       "vocabulary, a coordinate per causal variable with values the task can "
                       "produce, and enough stimuli reaching each value.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--task", help="also check each file against this task (see `simbench tasks`)")
    p.set_defaults(handler=cmd_validate)


def cmd_measures(args: argparse.Namespace, extra: list[str]) -> int:
    from simbench.registry import get_registry

    reg = get_registry()
    described = []
    for name in sorted(reg.measures):
        d = reg.measures[name].describe()
        info = reg.plugin_of(name)
        d["plugin"] = {"name": info.name, "dist": info.dist, "version": info.version}
        described.append(d)
    if args.json:
        print(json.dumps(described, indent=2, default=str))
        return 0
    rows = [(d["name"], d["family"], " x ".join(d["access"]) + ("..." if d["systems"][1] != len(
        d["access"]) else ""), "yes" if d["symmetric"] else "no",
        "higher" if d["higher_is_better"] else "lower",
        f"[{d['range'][0]:g}, {d['range'][1]:g}]", f"{d['plugin']['dist']}:{d['plugin']['name']}")
        for d in described]
    print(table(["measure", "family", "access", "symmetric", "better", "range", "plugin"], rows))
    for d in described:
        print(f"\n{d['name']}: {d['description']}")
        if d["citation"]:
            print(f"  cite: {d['citation']}")
        for p in d["params"]:
            print(f"  --{p['name']} ({p['type']}, default {p['default']!r}): {p['help']}")
    return 0


def cmd_plugins(args: argparse.Namespace, extra: list[str]) -> int:
    from simbench.registry import get_registry

    reg = get_registry()
    if args.json:
        print(json.dumps([vars(p) for p in reg.plugins], indent=2))
        return 0
    rows = [(p.name, f"{p.dist} {p.version}", p.module, "FAILED: " + p.error if p.error else "ok",
             ", ".join(p.measures + p.tasks) or "-") for p in reg.plugins]
    print(table(["plugin", "distribution", "module", "status", "provides"], rows))
    return 0


def parse_extra(extra: list[str]) -> dict[str, str]:
    """``--k 16 --stepwise --eps 0.5,0.9`` -> {"k": "16", "stepwise": "true", "eps": "0.5,0.9"}."""
    out: dict[str, str] = {}
    i = 0
    while i < len(extra):
        token = extra[i]
        if not token.startswith("--") or token == "--":
            raise ParameterError(f"unexpected argument '{token}'",
                                 fix="measure parameters are given as --NAME VALUE")
        key, _, value = token[2:].partition("=")
        key = key.replace("-", "_")
        if not value:
            if i + 1 < len(extra) and not extra[i + 1].startswith("--"):
                value = extra[i + 1]
                i += 1
            else:
                value = "true"
        out[key] = value
        i += 1
    return out


def expand_sweep(measure: Any, raw: dict[str, str]) -> tuple[list[str], list[dict[str, Any]]]:
    """Split comma-separated values into a grid of parameter sets (see ``Measure.sweep_grid``)."""
    return measure.sweep_grid(raw)


def cmd_score(args: argparse.Namespace, extra: list[str]) -> int:
    from simbench.api import lm_task, resolve_systems, score
    from simbench.registry import get_registry

    measure = get_registry().measure(args.measure)
    raw = parse_extra(extra)
    if args.intersect:
        raw["intersect"] = "true"
    swept, grid = expand_sweep(measure, raw)
    if args.plot and not swept:
        raise ParameterError("--plot draws a sweep, and no parameter is swept",
                             field="plot", fix="sweep a parameter with comma-separated values, "
                             "e.g. --k 1,2,4,8 --plot k.png, or drop --plot")
    systems = resolve_systems(args.measure, args.systems, task=args.task,
                              lm=lm_task(args.prompts, args.new_tokens))
    results = []
    for params in grid:
        result = score(args.measure, *systems, site=args.site, task=args.task,
                       seed=args.seed, device=args.device, **params)
        results.append((params, result))
        if not args.json:
            print(render_score(result, params if swept else None))
            sys.stdout.flush()
    if args.json:
        payload = [r.to_dict() for _, r in results]
        print(json.dumps(payload[0] if len(payload) == 1 else payload, indent=2))
    elif swept:
        rows = [(*[p[k] for k in swept], r.value,
                 *(r.ci if r.has_interval and r.ci else (None, None)), r.n_samples)
                for p, r in results]
        print("\nsweep:")
        print(table([*swept, "value", "ci_low", "ci_high", "n"], rows))
    if args.plot:
        plot_sweep(results, swept[0], args.plot)
        print(f"plot written to {args.plot}")
    return 0


def render_score(result: Any, params: dict[str, Any] | None = None) -> str:
    """A score as a few human-readable lines, its 1-D/2-D breakdowns as tables."""
    label = ", ".join(f"{k}={v}" for k, v in (params or {}).items())
    head = f"{result.measure}({', '.join(result.systems)})"
    if result.site:
        head += f" at site '{result.site}'"
    if label:
        head += f" [{label}]"
    interval = result.interval_text()
    ci = ""
    if interval:
        ci = f"  95% CI {interval}" if result.has_interval else f"  {interval}"
    lines = [f"{head}: {result.value:.4f}{ci}  (n = {result.n_samples} samples)"]
    for name, da in result.breakdown.items():
        if da.ndim == 2:
            r, c = da.dims
            rows = [(str(rv), *[float(x) for x in da.sel({r: rv}).values])
                    for rv in da[r].values]
            lines.append(f"\n{name} ({r} x {c}):")
            lines.append(table([f"{r} \\ {c}", *[str(v) for v in da[c].values]], rows))
        elif da.ndim == 1:
            (d,) = da.dims
            lines.append(f"\n{name}:")
            lines.append(table([d, name], [(str(k), float(v)) for k, v in
                                           zip(da[d].values, da.values)]))
        elif da.ndim == 0:
            lines.append(f"  {name}: {float(da):.4f}")
    lines.extend(causal_notes(result))
    return "\n".join(lines)


#: What ``attrs["train"]["val_metric"]`` measures, in words.
VAL_METRICS = {
    "iia": "IIA",
    "r2": "R^2 of counterfactual latents",
    "iia+r2": "mean over trained directions of IIA (into networks) and R^2 (into recordings)",
}


def causal_notes(result: Any) -> list[str]:
    """A few lines saying what a causal score's numbers mean: the headline, its interval and
    chance (CLMAS), how training ended, and the CL-fit columns."""
    train = result.attrs.get("train")
    lines: list[str] = []
    if result.measure == "clmas" and len(result.systems) == 2:
        a, b = result.systems
        lines += [
            f"\nheadline: IIA into '{a}' with '{b}' as the source ({b}->{a}): the share of "
            f"{result.n_samples} held-out interventions after which '{a}' gives the task's "
            "counterfactual response; " + (
                "the 95% CI is a stimulus bootstrap over the recording's held-out trials"
                if str(result.attrs.get("ci_method", "")).startswith("stimulus bootstrap")
                else "the 95% CI is a Wilson interval over those interventions, not a "
                "bootstrap over stimuli (--n_boot N gives one)"),
            "chance: the IIA of a random, untrained subspace; measure it with --control true",
        ]
    if result.attrs.get("headline") == "token":  # MAS on language models
        from simbench.lm.measure import describe_lm_score

        lines += describe_lm_score(result)
    if isinstance(train, dict) and train.get("loaded"):
        lines.append("training: none (alignment loaded with --load)")
    elif isinstance(train, dict) and "stopped" in train:
        metric = VAL_METRICS.get(str(train.get("val_metric")), str(train.get("val_metric")))
        best = train.get("best_val")
        best_text = "nan" if best is None else f"{float(best):.4f}"
        line = (f"training: {train.get('steps')} steps, stopped: {train.get('stopped')}; best "
                f"validation {metric} = {best_text} at step {train.get('best_step')}")
        if str(train.get("stopped", "")).startswith("step cap"):
            line += ("\n  not converged: training hit the step cap while validation still "
                     "improved; the score may be an underestimate (raise --max_steps)")
        lines.append(line)
    if "cl_fit" in result.breakdown:
        lines.append(
            "cl_fit (directions into the recording, held-out states): cosine = mean cosine of "
            "the patched latent with the recorded counterfactual latent (1 = same direction); "
            "r2 = R^2 of that fit (1 = exact, 0 = no better than the mean latent, negative = "
            "worse); r2_unpatched = R^2 of the latent left unpatched, the baseline: r2 above "
            "it is what the intervention explains")
    return lines


def plot_sweep(results: list, key: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [p[key] for p, _ in results]
    ys = [r.value for _, r in results]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(xs, ys, marker="o")
    lows = [r.ci[0] if r.ci else y for (_, r), y in zip(results, ys)]
    highs = [r.ci[1] if r.ci else y for (_, r), y in zip(results, ys)]
    ax.fill_between(xs, lows, highs, alpha=0.2)
    if all(isinstance(x, (int, float)) and x > 0 for x in xs) and max(xs) / min(xs) >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(key)
    ax.set_ylabel(results[0][1].measure)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def cmd_validate(args: argparse.Namespace, extra: list[str]) -> int:
    from simbench.recording import load_recording, recording_problems

    task = None
    if args.task:
        from simbench.registry import get_registry

        task = get_registry().make_task(args.task)  # an unknown name fails, with suggestions
    failed = 0
    for path in args.files:
        problems = recording_problems(path)
        if task is not None and not problems:
            from simbench.recording_task import task_problems

            problems = task_problems(load_recording(path), task)
        if problems:
            failed += 1
            print(f"{path}: {len(problems)} problem(s)")
            for p in problems:
                print(f"  - {p}")
        else:
            print(f"{path}: ok" + (f" for task '{task.name}'" if task is not None else ""))
            if task is not None:
                from simbench.recording_task import task_notes

                for note in task_notes(load_recording(path), task):
                    print(f"  note: {note}")
    return 1 if failed else 0


def record_lm(args: argparse.Namespace) -> int:
    """``simbench record DIR --prompts FILE --out X.nc``: a language model's sites over its
    prompts as a recording (prompt, token position, unit)."""
    import time

    from simbench.errors import TaskError
    from simbench.lm.system import LMSystem
    from simbench.recording import save_recording
    from simbench.tasks.continuation import Continuation

    if not getattr(args, "prompts", None):
        raise TaskError("recording a language model needs prompts", field="prompts",
                        fix="pass --prompts FILE (one prompt per line)")
    from simbench.api import zoo_lm_dir

    zoo = zoo_lm_dir(args.system)  # a zoo LM name, e.g. lm_toxic_s1
    system = LMSystem.from_dir(zoo or args.system, task=Continuation(args.prompts),
                               system_id=args.system if zoo else None)
    sites = args.sites.split(",") if args.sites else None
    t0 = time.perf_counter()
    rec = system.record(sites=sites)
    path = save_recording(rec, args.out)
    print(f"recorded {len(system.task_def.prompts)} prompts from {args.prompts} of "
          f"{system.system_id} at sites {', '.join(rec.sites)} in "
          f"{time.perf_counter() - t0:.1f} s -> {path}")
    return 0
