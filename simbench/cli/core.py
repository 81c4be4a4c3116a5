"""Core commands: ``measures``, ``plugins``, ``score`` and ``validate``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from simbench.cli.output import table
from simbench.errors import ParameterError, TaskError, did_you_mean


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("measures", help="list every registered measure and its parameters")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--aliases", action="store_true", help="list the community ids (the "
                   "similarity repository's) that name a simbench measure and its parameters")
    p.set_defaults(handler=cmd_measures)

    p = sub.add_parser("plugins", help="list loaded plugins and those that failed to load")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_plugins)

    p = sub.add_parser(
        "score",
        help="score systems with one measure",
        description="Score systems (recording files, zoo ids, checkpoints, language-model "
        "directories) with a measure. "
        "Measure parameters are passed as --NAME VALUE, in kebab-case (--max-steps 500; the "
        "snake_case spelling --max_steps also works), and on/off parameters as switches "
        "(--debiased, --no-debiased); `simbench score MEASURE --help` lists them. A "
        "comma-separated value sweeps that parameter, e.g. --k 1,2,4,8.",
        add_help=False, allow_abbrev=False,
    )
    p.add_argument("-h", "--help", action=MeasureHelp, nargs=0,
                   help="show this help (after a MEASURE: with that measure's parameters)")
    p.add_argument("measure")
    p.add_argument("systems", nargs="+", metavar="SYSTEM")
    p.add_argument("--site", help="site to compare, e.g. hidden or embedding (required, except "
                   "for language models: they default to embedding)")
    p.add_argument("--task", help="task name (default: the systems' own task)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--intersect", action="store_true",
                   help="use only the stimuli both recordings share")
    p.add_argument("--json", action="store_true", help="print the score(s) as JSON")
    p.add_argument("--plot", metavar="PNG", help="with a sweep: plot the value against it")
    p.add_argument("--prompts", metavar="FILE", help="language models (model directories): "
                   "the prompts, one per line, each model greedily continues")
    p.add_argument("--new-tokens", type=int, metavar="N", dest="new_tokens",
                   help="language models: continuation length in tokens (default 8)")
    p.set_defaults(handler=cmd_score, accepts_extra=True)

    for name in ("check-recording", "validate"):
        # `validate` is the old name (one letter from `validity`, an unrelated command): it
        # still works for one release, with a note, and is not listed in `simbench --help`
        kw = {"help": "check recording files against the schema (and a task)"} \
            if name == "check-recording" else {}
        p = sub.add_parser(name, description="List every schema problem of each file; with "
                           "--task, also whether causal measures can match it to that task: "
                           "tokens of its vocabulary, a coordinate per causal variable with "
                           "values the task can produce, and enough stimuli reaching each "
                           "value. Exit status 1 when a file has a problem.", **kw)
        p.add_argument("files", nargs="+", metavar="FILE")
        p.add_argument("--task",
                       help="also check each file against this task (see `simbench tasks`)")
        p.add_argument("--json", action="store_true",
                       help="print each file's problems and notes as JSON")
        p.set_defaults(handler=cmd_validate, deprecated_name=name if name == "validate" else None)


def cmd_measures(args: argparse.Namespace, extra: list[str]) -> int:
    from simbench.registry import get_registry

    if getattr(args, "aliases", False):
        from simbench.aliases import listing

        rows, columns = listing(), ["id", "measure", "params", "note"]
        print(json.dumps([dict(zip(columns, r)) for r in rows], indent=2) if args.json
              else table(columns, rows))
        return 0
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
            print(f"  {param_usage(p['name'], p['type'])} ({p['type']}, default "
                  f"{p['default']!r}): {p['help']}")
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


DEVICE_HELP = "auto, cpu, cuda or cuda:N (default auto: the first GPU when there is one)"


def flag(name: str) -> str:
    """The command-line spelling of a measure parameter: ``max_steps`` -> ``--max-steps``."""
    return "--" + name.replace("_", "-")


def param_usage(name: str, kind: str) -> str:
    """How a parameter of type ``kind`` is written on the command line:
    ``--debiased/--no-debiased`` for an on/off parameter, ``--max-steps`` for the others."""
    return f"{flag(name)}/--no-{flag(name)[2:]}" if kind == "bool" else flag(name)


#: the words an on/off parameter's value may be (as :meth:`simbench.measure.Param.parse` reads)
BOOL_WORDS = frozenset({"1", "true", "yes", "on", "0", "false", "no", "off"})


def parse_measure_args(measure: Any, extra: list[str]) -> dict[str, str]:
    """A measure's parameters from the arguments ``simbench score`` does not know itself, as
    name -> text for :meth:`simbench.measure.Measure.sweep_grid` (spellings: the module
    docstring of :mod:`simbench.cli`; ``--debiased true,false`` sweeps a switch). An unknown
    name raises :class:`ParameterError` with the closest names.
    """
    params = {p.name: p for p in measure.params}
    out: dict[str, str] = {}
    i = 0
    while i < len(extra):
        token = extra[i]
        if not token.startswith("--") or token == "--":
            raise ParameterError(f"unexpected argument '{token}'",
                                 fix="measure parameters are given as --NAME VALUE (see "
                                 f"`simbench score {measure.name} --help`)")
        key, eq, value = token[2:].partition("=")
        key = key.replace("-", "_")
        negated = False
        if key not in params and key.startswith("no_") and key[3:] in params \
                and params[key[3:]].type is bool:
            key, negated = key[3:], True
        param = params.get(key)
        if param is None:
            raise ParameterError(f"measure '{measure.name}' has no parameter {flag(key)}",
                                 field=key, fix=did_you_mean(
                                     flag(key), [flag(p) for p in params], sort=False,
                                     command=f"simbench score {measure.name} --help"))
        nxt = extra[i + 1] if i + 1 < len(extra) else None
        if negated:
            if eq:
                raise ParameterError(f"--no-{flag(key)[2:]} takes no value", field=key,
                                     fix=f"write --no-{flag(key)[2:]} or {flag(key)}")
            value = "false"
        elif param.type is bool:
            if (not eq and nxt is not None and not nxt.startswith("--")
                    and all(w.strip().lower() in BOOL_WORDS for w in nxt.split(","))):
                value, eq = nxt, "="
                i += 1
            if not eq:
                value = "true"
            elif "," not in value:
                on = value.strip().lower() in ("1", "true", "yes", "on")
                print(f"simbench: note: '{flag(key)} {value}' is deprecated and stops working "
                      f"in the next release; write {flag(key) if on else '--no-' + flag(key)[2:]}"
                      " (an on/off parameter is a switch)", file=sys.stderr)
        elif not eq:
            if nxt is None or (nxt.startswith("--") and nxt != "--"):
                raise ParameterError(f"{flag(key)} needs a value", field=key,
                                     fix=f"e.g. {flag(key)} {param.default!r}")
            value = nxt
            i += 1
        out[key] = value
        i += 1
    return out


class MeasureHelp(argparse.Action):
    """``simbench score MEASURE --help``: the command's help, then that measure's parameters
    with their defaults and meaning (``simbench score --help`` alone: the command's help)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        text = parser.format_help()
        name = getattr(namespace, "measure", None)
        if name:
            try:
                text += "\n" + measure_help(name)
            except ParameterError as exc:
                text += f"\n{exc}\n"
        parser._print_message(text, sys.stdout)
        parser.exit()


def measure_help(name: str) -> str:
    """The parameters of measure ``name`` as ``simbench score NAME --help`` lists them."""
    from simbench.registry import get_registry

    measure = get_registry().measure(name)  # unknown: a SimbenchError with suggestions
    lines = [f"{measure.name}: {measure.description}".rstrip(": "), "",
             f"parameters of {measure.name} (kebab-case; the snake_case spelling also works):"]
    if not measure.params:
        lines.append("  (none)")
    for p in measure.params:
        default = ("on" if p.default else "off") if p.type is bool else repr(p.default)
        extra = ""
        if p.choices is not None:
            extra = f"; one of {', '.join(map(str, p.choices))}"
        elif p.low is not None or p.high is not None:
            extra = f"; in {p.bounds_text()}"
        usage = param_usage(p.name, p.type.__name__)
        lines.append(f"  {usage}" + ("" if p.type is bool else f" {p.type.__name__.upper()}"))
        lines.append(f"      {p.help} (default {default}{extra})")
    if measure.citation:
        lines += ["", f"cite: {measure.citation}"]
    return "\n".join(lines) + "\n"


def expand_sweep(measure: Any, raw: dict[str, str]) -> tuple[list[str], list[dict[str, Any]]]:
    """Split comma-separated values into a grid of parameter sets (see ``Measure.sweep_grid``)."""
    return measure.sweep_grid(raw)


def cmd_score(args: argparse.Namespace, extra: list[str]) -> int:
    from simbench.api import lm_task, resolve_systems, score
    from simbench.registry import get_registry

    measure = get_registry().measure(args.measure)
    raw = parse_measure_args(measure, extra)
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
    ci = "" if not interval else f"  95% CI {interval}" if result.has_interval else f"  {interval}"
    lines = [f"{head}: {result.value:.4f}{ci}  (n = {result.n_samples} samples)"]
    if result.has_null:  # `--null N`: the p-value and the null it comes from
        lines.append(f"  {result.null_text()}")
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
                "bootstrap over stimuli (--n-boot N gives one)"),
            "chance: the IIA of the trained map when each held-out counterfactual gets a random "
            "other source; measure it with --null N (e.g. --null 200: a p-value and the null's "
            "mean and sd)",
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
                     "improved; the score may be an underestimate (raise --max-steps)")
        lines.append(line)
    lines.extend(low_ceiling_note(result))
    if "cl_fit" in result.breakdown:
        lines.append(
            "cl_fit (directions into the recording, held-out states): cosine = mean cosine of "
            "the patched latent with the recorded counterfactual latent (1 = same direction); "
            "r2 = R^2 of that fit (1 = exact, 0 = no better than the mean latent, negative = "
            "worse); r2_unpatched = R^2 of the latent left unpatched, the baseline: r2 above "
            "it is what the intervention explains")
    return lines


#: within-model IIA below this gets :func:`low_ceiling_note`
LOW_WITHIN_IIA = 0.8


def low_ceiling_note(result: Any) -> list[str]:
    """A hint when a network cannot be aligned with itself (within-model IIA below
    :data:`LOW_WITHIN_IIA`): the ceiling of the cross-model IIA is then low too, and the
    usual reason is that the task's causal model misses what the network stores."""
    if result.attrs.get("control"):  # a random subspace: a low value is the point
        return []
    value = result.attrs.get("within_iia")
    if value is None:
        within = result.breakdown.get("within_iia")
        value = None if within is None or within.ndim else float(within)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return []
    if value != value or value >= LOW_WITHIN_IIA:
        return []
    return [f"low ceiling: within-model IIA is {value:.3f} (below {LOW_WITHIN_IIA}): the "
            "network cannot be aligned with itself, so the cross-model IIA has little room. The "
            "task's causal model may miss what the network stores (another variable, or the "
            "variable in another form); try other --variable choices, a larger --k, or check "
            "the task's causal model against the network's behaviour"]


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
    """``simbench check-recording FILE... [--task T] [--json]`` (old name: ``validate``)."""
    from simbench.recording import open_recording, recording_problems

    if getattr(args, "deprecated_name", None):
        print("simbench: note: `simbench validate` is now `simbench check-recording` (the old "
              "name, one letter from `simbench validity`, goes in the next release)",
              file=sys.stderr)
    task = None
    if args.task:
        from simbench.registry import get_registry

        task = get_registry().make_task(args.task)  # an unknown name fails, with suggestions
    failed = 0
    report = []
    for path in args.files:
        problems = [str(p) for p in recording_problems(path)]
        notes: list[str] = []
        if task is not None and not problems:
            from simbench.recording_task import task_notes, task_problems

            rec = open_recording(path, validate=False)  # coordinates only: bounded memory
            problems = [str(p) for p in task_problems(rec, task)]
            if not problems:
                notes = [str(n) for n in task_notes(rec, task)]
        failed += bool(problems)
        report.append({"file": str(path), "task": None if task is None else task.name,
                       "ok": not problems, "problems": problems, "notes": notes})
    if args.json:
        print(json.dumps(report, indent=2))
        return 1 if failed else 0
    for entry in report:
        if entry["problems"]:
            print(f"{entry['file']}: {len(entry['problems'])} problem(s)")
            for p in entry["problems"]:
                print(f"  - {p}")
        else:
            print(f"{entry['file']}: ok" + (f" for task '{task.name}'" if task is not None
                                             else ""))
            for note in entry["notes"]:
                print(f"  note: {note}")
    return 1 if failed else 0


def record_lm(args: argparse.Namespace) -> int:
    """``simbench record DIR --prompts FILE --out X.nc``: a language model's sites over its
    prompts as a recording (prompt, token position, unit)."""
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
