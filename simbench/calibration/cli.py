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
        "evaluated is 'not run', with the reason, never a pass or a failure.")
    p.add_argument("spec", nargs="?", default="validity",
                   help="spec file or shipped spec name (default: validity)")
    p.add_argument("--store", help="results store (default as for `simbench bench run`)")
    p.add_argument("--run", action="store_true",
                   help="first score the spec's missing jobs (as `simbench bench run`)")
    p.add_argument("--workers", type=int, metavar="N", help="with --run: N worker processes")
    p.add_argument("--device", default="auto", help="with --run: auto, cpu or cuda")
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
    p.add_argument("--csv", metavar="FILE", help="also write one row per measure and check")
    p.add_argument("--png", metavar="FILE", help="also plot the separability (AUC and d')")
    p.set_defaults(handler=cmd_validity)


def cmd_validity(args: argparse.Namespace, extra: list[str]) -> int:
    from simbench.bench.spec import load_spec
    from simbench.bench.store import Store
    from simbench.calibration.validity import format_board, validity_board, write_csv
    from simbench.cli.bench import store_path

    spec = load_spec(args.spec)
    path = store_path(args.store, spec, default="validity.sqlite")
    if args.run:
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
    print(format_board(board))
    if args.csv:
        print(f"\nCSV written to {write_csv(board, args.csv)}")
    if args.png:
        if board.separability:
            from simbench.calibration.separation import plot_separability

            out = plot_separability(board.separability, Path(args.png))
            print(f"separability plot written to {out}")
        else:
            print("no separability to plot (no measure had enough pairs)", file=sys.stderr)
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
