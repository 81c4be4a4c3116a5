"""``simbench validity``: the measure-validity board of a spec (passed / failed / not run).

Registered like the other command groups (``register(subparsers)``); ``python -m
simbench.calibration validity ...`` runs the same command without the ``simbench`` front end.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validity", help="which validity checks each measure passes, fails or did not run",
        description="The measure-validity board of a spec (default: the shipped 'validity' "
        "spec): planted identity and specificity from its [[expect]] entries, separability "
        "(ROC-AUC and d' with bootstrap intervals) from the stored scores, and layer order "
        "and small-n bias by running each correlative measure. A check that could not be "
        "evaluated is 'not run', with the reason, never a pass or a failure; every registered "
        "measure has a row, 'not applicable' where no check can apply to it.")
    p.add_argument("spec", nargs="?", default="validity",
                   help="spec file or shipped spec name (default: validity)")
    p.add_argument("--store", help="results store (default as for `simbench bench run`)")
    p.add_argument("--run", action="store_true",
                   help="first score the spec's missing jobs (as `simbench bench run`)")
    p.add_argument("--workers", type=int, metavar="N", help="with --run: N worker processes")
    p.add_argument("--device", default="auto", help="with --run: auto, cpu, cuda or cuda:N")
    p.add_argument("--site", help="site of the separability check (default: the spec's first)")
    p.add_argument("--no-layer-order", action="store_true",
                   help="skip the layer-order check (it records networks and runs measures)")
    p.add_argument("--no-bias", action="store_true",
                   help="skip the small-n bias check (it runs measures on synthetic data)")
    p.add_argument("--bias-draws", type=int, default=10, metavar="N",
                   help="independent data sets per sample size for the bias (default 10)")
    p.add_argument("--layer-n", type=int, default=300, metavar="N",
                   help="stimuli recorded per network for the layer order (default 300)")
    p.add_argument("--seed", type=int, default=0)
    # DIR, as for `simbench leaderboard`: the same flag means the same thing everywhere
    p.add_argument("--csv", metavar="DIR", help="also write validity.csv (one row per measure "
                   "and check) into the directory DIR")
    p.add_argument("--png", metavar="DIR", help="also write separability.png (AUC and d' per "
                   "measure) into the directory DIR")
    p.add_argument("--json", action="store_true",
                   help="print the board (one row per measure and check) as JSON")
    p.add_argument("--out", metavar="DIR", help="write the whole report into the directory DIR: "
                   "validity.csv, validity.png (the board as a grid, with each measure's cost), "
                   "separability.png, costs.csv (stored runtime per measure; one job per "
                   "measure run again for its time and peak memory) and validity.txt")
    p.add_argument("--no-costs", action="store_true",
                   help="with --out: stored runtimes only, no measured job per measure")
    p.set_defaults(handler=cmd_validity)


def output_file(value: str, name: str, flag: str) -> Path:
    """Where ``--csv``/``--png`` VALUE writes ``name``: into the directory VALUE. A VALUE that
    ends in the file's own suffix (the old meaning: a file) still works for one release, with
    a note."""
    path = Path(value)
    if path.suffix.lower() == Path(name).suffix and not path.is_dir():
        print(f"simbench: note: {flag} now takes a directory (as in `simbench leaderboard`); "
              f"writing the file {path} as before, which stops in the next release: pass "
              f"{flag} {path.parent} for {path.parent / name}", file=sys.stderr)
        return path
    return path / name


def command_line(args: argparse.Namespace) -> str:
    """The ``simbench validity`` command that writes this report (for its README)."""
    words = ["simbench validity", str(args.spec)]
    if args.store:
        words.append(f"--store {args.store}")
    if args.run:
        words.append("--run" + (f" --workers {args.workers}" if args.workers else ""))
    words += [flag for flag, on in (("--no-layer-order", args.no_layer_order),
                                    ("--no-bias", args.no_bias),
                                    ("--no-costs", args.no_costs)) if on]
    return " ".join([*words, f"--out {args.out}"])


def cmd_validity(args: argparse.Namespace, extra: list[str]) -> int:
    from simbench.bench.spec import load_spec
    from simbench.bench.store import Store
    from simbench.calibration.costs import measure_costs
    from simbench.calibration.validity import format_board, validity_board, write_csv
    from simbench.cli.bench import store_path, writable_store

    spec = load_spec(args.spec)
    path = store_path(args.store, spec, default="validity.sqlite")
    if args.run:
        path = writable_store(path, spec.name)
        from simbench.bench.jobs import prepare
        from simbench.bench.runner import run_spec

        with Store(path) as store:
            summary = run_spec(spec, store, jobs=prepare(spec), workers=args.workers,
                               device=args.device, progress=None)
        print(summary.render(), file=sys.stderr)
    with Store(path, create=False) as store:
        board = validity_board(spec, store, site=args.site,
                               layer_order=not args.no_layer_order, bias=not args.no_bias,
                               layer_n=args.layer_n, bias_draws=args.bias_draws, seed=args.seed)
        costs = measure_costs(spec, store, measure=not args.no_costs) if args.out else None
    said = sys.stderr if args.json else sys.stdout
    if args.json:
        import json

        from simbench.cli.output import plain

        print(json.dumps({"spec": board.spec_name, "rows": list(board.rows()),
                          "separability": plain(board.separability)}, indent=2))
    else:
        print(format_board(board))
    if args.csv:
        out = write_csv(board, output_file(args.csv, "validity.csv", "--csv"))
        print(f"\nCSV written to {out}", file=said)
    if args.png:
        if board.separability:
            from simbench.calibration.separation import plot_separability

            target = output_file(args.png, "separability.png", "--png")
            target.parent.mkdir(parents=True, exist_ok=True)
            out = plot_separability(board.separability, target)
            print(f"separability plot written to {out}", file=said)
        else:
            print("no separability to plot (no measure had enough pairs)", file=sys.stderr)
    if costs is not None:
        from simbench.calibration.report import write_report

        files = write_report(board, args.out, costs, command=command_line(args))
        print(f"report written to {args.out}: {', '.join(f.name for f in files)}", file=said)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m simbench.calibration validity ...``"""
    from simbench.errors import SimbenchError
    from simbench.runtime import configure_threads

    parser = argparse.ArgumentParser(prog="python -m simbench.calibration")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register(sub)
    args = parser.parse_args(argv)
    try:
        configure_threads(None)
        return int(args.handler(args, []) or 0)
    except SimbenchError as exc:
        print(f"simbench: error: {exc}", file=sys.stderr)
        return 2
