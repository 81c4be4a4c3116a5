"""Harness commands: ``bench run``, ``bench status``, ``leaderboard`` and ``demo``.

Where results go: ``--store PATH``, else ``$SIMBENCH_STORE``, else the spec's ``store = ...``,
else ``./simbench-results/results.sqlite`` (the demo: ``./simbench-results/demo.sqlite``).
Results are work products, not a cache, so they live next to the work, in plain sight. A
shipped results store (``paper``, ``lm_toxicity``: installed with simbench) is never written:
a run that would write one writes ``./simbench-results/NAME.sqlite`` instead and says so.
``simbench leaderboard paper`` (a shipped spec's name, no store given) shows your own run of it
when ``./simbench-results/results.sqlite`` has one, else the shipped results.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from simbench.cli.core import DEVICE_HELP
from simbench.errors import SpecError

DEFAULT_DIR = Path("simbench-results")


def register(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="run benchmark specs into a results store")
    bsub = bench.add_subparsers(dest="bench_command", metavar="SUBCOMMAND")
    bench.set_defaults(handler=lambda a, e: (bench.print_help(), 0)[1])

    p = bsub.add_parser(
        "run", help="score every job of a spec that the store does not have yet",
        description="Score every measure x system pair x site x seed a spec lists. Finished "
        "jobs are skipped, so rerunning (also after a crash or kill) resumes. Jobs run in this "
        "process, on a LocalCluster (--workers N) or on an existing Dask cluster (--scheduler).")
    p.add_argument("spec", help="the spec file (TOML), e.g. benchmarks/specs/paper.toml")
    _store_arg(p)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on an existing Dask cluster, e.g. tcp://HOST:8786")
    where.add_argument("--workers", type=int, metavar="N",
                       help="start a local Dask cluster of N worker processes")
    p.add_argument("--device", default="auto", help=DEVICE_HELP + " (for causal measures)")
    p.add_argument("--retry-failed", action="store_true", help="rerun jobs that failed before")
    p.add_argument("--rerun-stale", action="store_true",
                   help="recompute stored results that other code computed (simbench or the "
                   "measure's source files changed since); without it they are kept and marked "
                   "stale")
    p.add_argument("--job-timeout", type=_seconds, metavar="SECONDS",
                   help="kill a job that runs longer and store it as failed (default: the "
                   "spec's job_timeout, else 3600 for causal measures and none for correlative "
                   "ones; 0: no limit)")
    p.add_argument("--dry-run", action="store_true",
                   help="check the spec and list what would run, without running it")
    p.add_argument("--skip-missing", action="store_true",
                   help="skip measures that are not installed, systems that cannot be loaded "
                   "and jobs a measure cannot do (with a note) instead of stopping")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (there is none "
                   "when stderr is not a terminal)")
    p.add_argument("--json", action="store_true", help="print the run's summary as JSON")
    p.set_defaults(handler=cmd_run)

    p = bsub.add_parser(
        "status", help="how far a spec has got in a store, and what each measure costs",
        description="Per measure label: jobs done, failed, stale (computed by other code) and "
        "still to run, the measure time the finished ones took, and an estimate of the rest at "
        "that mean. Reads the store only (opened read-only), so it is safe while a run is "
        "writing; it imports no plugin the spec names.")
    p.add_argument("spec", help="the spec file (TOML) or a shipped spec's name")
    _store_arg(p)
    p.add_argument("--json", action="store_true", help="print the progress per label as JSON")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser(
        "leaderboard", help="measure validity, similarity matrices and rankings from a store",
        description="Query a results store. SPEC (a file, or the name of a spec run into the "
        "store; default: the last one run) supplies the systems, categories and expectations.")
    p.add_argument("spec", nargs="?", help="spec file or stored spec name")
    _store_arg(p)
    p.add_argument("--target", help="rank every system against this one (a spec alias)")
    p.add_argument("--board", default="validity,matrices,target",
                   help="which boards to print: any of validity, matrices, target")
    p.add_argument("--csv", metavar="DIR", help="write the boards as CSV files into the "
                   "directory DIR (created if needed)")
    p.add_argument("--png", metavar="DIR", help="write the plots as PNG files into the "
                   "directory DIR (created if needed)")
    p.add_argument("--html", metavar="FILE", help="write one self-contained HTML page")
    p.add_argument("--json", action="store_true",
                   help="print the boards (validity, entries, matrices, rankings) as JSON")
    p.set_defaults(handler=cmd_leaderboard)

    p = sub.add_parser(
        "demo", help="run the small demo spec on the shipped zoo and print measure validity",
        description="Runs benchmarks/specs/demo.toml (measures and zoo systems that are not "
        "installed are skipped, with a note) and prints the measure-validity leaderboard.")
    p.add_argument("--spec", help="another spec to run the same way")
    p.add_argument("--store", help=f"results store (default {DEFAULT_DIR / 'demo.sqlite'})")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--workers", type=int, metavar="N", help="run on a LocalCluster of N workers")
    p.add_argument("--html", metavar="FILE",
                   help=f"HTML page to write (default {DEFAULT_DIR / 'demo.html'})")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=cmd_demo)


def _store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", metavar="PATH",
                   help="results store (default: $SIMBENCH_STORE, the spec's store, or "
                   f"{DEFAULT_DIR / 'results.sqlite'})")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError("a timeout is 0 (no limit) or a positive number")
    return value


def _peek_spec(arg: str) -> tuple[Path | None, dict[str, Any], str | None]:
    """(the spec file, its raw TOML, its text) without parsing it as a spec: nothing is imported.

    ``arg`` is a file or a shipped spec's name; anything else gives (None, {}, None). Invalid
    TOML gives the file, {} and the text, and the real parse reports it.
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    from simbench.resources import shipped_specs

    path = Path(arg)
    if not path.is_file():
        path = shipped_specs().get(arg)  # type: ignore[assignment]
        if path is None or not path.is_file():
            return None, {}, None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return path, {}, None
    try:
        return path, tomllib.loads(text), text
    except tomllib.TOMLDecodeError:
        return path, {}, text


def _announce_plugins(spec_arg: str) -> None:
    """Say which plugin files and modules a spec makes this run import, before importing them."""
    path, data, _text = _peek_spec(spec_arg)
    refs = data.get("plugins")
    if path is None or not refs:
        return
    # a file is relative to the spec (an absolute one stays itself: path / "/x" is "/x")
    shown = [f"file {(path.parent / ref).resolve()}" if ref.endswith(".py") else f"module {ref}"
             for ref in ([refs] if isinstance(refs, str) else refs) if isinstance(ref, str)]
    if shown:
        print(f"note: spec {path} imports plugin code (a spec is trusted input): "
              + "; ".join(shown), file=sys.stderr)


def store_path(given: str | None, spec: Any = None, default: str = "results.sqlite") -> Path:
    """Where results go (see the module docstring)."""
    if given:
        return Path(given)
    if os.environ.get("SIMBENCH_STORE"):
        return Path(os.environ["SIMBENCH_STORE"])
    if spec is not None and getattr(spec, "store", None):
        return Path(spec.store)
    return DEFAULT_DIR / default


def writable_store(path: Path, spec_name: str) -> Path:
    """``path``, unless it is a shipped results store (see the module docstring)."""
    from simbench.resources import is_shipped_store

    if not is_shipped_store(path):
        return path
    new = DEFAULT_DIR / f"{spec_name}.sqlite"
    print(f"note: {path} holds the results shipped with simbench and is never written; this "
          f"run writes {new} (pass --store PATH for another place)", file=sys.stderr)
    return new


def board_store(given: str | None, spec: Any, name: str | None) -> Path:
    """The store a board or status of spec ``name`` reads (see the module docstring)."""
    from simbench.resources import shipped_stores

    path = store_path(given, spec)
    shipped = shipped_stores().get(name or "")
    if shipped is None or given or os.environ.get("SIMBENCH_STORE") or \
            getattr(spec, "store", None):
        return path
    if path.exists():
        from simbench.bench.store import Store

        with Store(path, create=False) as store:
            if store.spec_text(name) is not None:
                return path
    print(f"note: showing the results shipped with simbench ({shipped}); your own "
          f"`simbench bench run {name}` writes {path}", file=sys.stderr)
    return shipped


def _shipped_name(arg: str | None) -> str | None:
    """The shipped spec ``arg`` names (its name, or the shipped file itself), else None."""
    from simbench.resources import shipped_specs

    if not arg:
        return None
    specs = shipped_specs()
    if arg in specs:
        return arg
    try:
        resolved = Path(arg).resolve()
    except OSError:
        return None
    return next((n for n, p in specs.items() if p.resolve() == resolved), None)


def _spec_and_jobs(spec_arg: str | Path, lenient: bool) -> tuple[Any, list[Any]]:
    """The spec (its plugin imports announced first) and its jobs; its notes go to stderr."""
    from simbench.bench.jobs import prepare
    from simbench.bench.spec import load_spec

    _announce_plugins(str(spec_arg))
    spec = load_spec(spec_arg, lenient=lenient)
    jobs = prepare(spec)
    for note in spec.notes:
        print(f"note: {note}", file=sys.stderr)
    return spec, jobs


def cmd_run(args: argparse.Namespace, extra: list[str]) -> int:
    from simbench.bench.runner import run_spec
    from simbench.bench.store import Store

    spec, jobs = _spec_and_jobs(args.spec, lenient=args.skip_missing)
    path = writable_store(store_path(args.store, spec), spec.name)
    if args.dry_run:
        from simbench.bench.runner import job_state

        states: dict[str, tuple[str, str | None]] = {}
        if path.exists():
            with Store(path, create=False) as store:
                states = store.states(j.key for j in jobs)
        todo = [j for j in jobs if job_state(j, states.get(j.key), args.retry_failed,
                                          args.rerun_stale) == "todo"]
        stale = sum(1 for j in jobs if job_state(j, states.get(j.key), False, False) == "stale")
        print(f"spec '{spec.name}': {len(jobs)} jobs, {len(jobs) - len(todo)} already in "
              f"{path}, {len(todo)} to run"
              + (f" ({stale} stored results are stale; --rerun-stale recomputes them)"
                 if stale and not args.rerun_stale else ""))
        for job in todo[:50]:
            print(f"  {job.describe()}")
        if len(todo) > 50:
            print(f"  ... and {len(todo) - 50} more")
        return 0
    print(f"bench run: spec '{spec.name}', {len(jobs)} jobs; results go to {path}",
          file=sys.stderr)
    with Store(path) as store:
        summary = run_spec(spec, store, jobs=jobs, scheduler=args.scheduler,
                           workers=args.workers, device=args.device,
                           retry_failed=args.retry_failed, rerun_stale=args.rerun_stale,
                           job_timeout=args.job_timeout,
                           progress=False if args.no_progress else None)
    if args.json:
        print(json.dumps(summary_dict(summary), indent=2))
    else:
        print(summary.render())
    return 130 if summary.interrupted else 1 if summary.failed else 0


def summary_dict(summary: Any) -> dict[str, Any]:
    """A run's :class:`~simbench.bench.runner.RunSummary` as plain data (``--json``)."""
    fields = {f.name: getattr(summary, f.name) for f in dataclasses.fields(summary)}
    return {**fields, "failed": [{"job": job.describe(), "error": error}
                                 for job, error in summary.failed],
            "by_label": {k: progress_dict(p) for k, p in summary.by_label.items()}}


def progress_dict(p: Any) -> dict[str, Any]:
    """One label's :class:`~simbench.bench.runner.LabelProgress` as plain data."""
    return {"label": p.label, "jobs": p.total, "done": p.done, "failed": p.failed,
            "stale": p.stale, "to_run": p.todo, "measure_s": p.measure_s, "mean_s": p.mean_s,
            "to_run_s": p.eta_s}


def cmd_status(args: argparse.Namespace, extra: list[str]) -> int:
    """Progress of a spec from the store alone: no spec parsing, no plugin imports."""
    import functools
    import types

    from simbench.bench.fingerprint import fingerprint
    from simbench.bench.runner import label_text, render_progress, tally
    from simbench.bench.store import Store

    spec_file, data, text = _peek_spec(args.spec)
    name = str(data.get("name") or (spec_file.stem if spec_file else args.spec))
    hint = None
    if spec_file is not None and isinstance(data.get("store"), str):
        given = Path(data["store"])
        hint = types.SimpleNamespace(store=str(given if given.is_absolute()
                                               else spec_file.parent / given))
    notes = []
    shipped = _shipped_name(str(spec_file)) if spec_file is not None else None
    with Store(board_store(args.store, hint, shipped), create=False) as store:
        jobs = store.spec_jobs(name)
        if jobs is not None:
            current = functools.cache(lambda root: fingerprint(json.loads(root)))  # per root
            entries = [(j["key"], label_text(j["label"], j["measure"]),
                        current(json.dumps(j["code_root"], sort_keys=True))) for j in jobs]
            rows = store.rows({j["key"] for j in jobs})
        else:
            rows = store.rows(spec=name)
            if not rows:
                known = store.spec_names()
                raise SpecError(f"the store has no results of spec '{name}'", file=store.path,
                                fix="run it first (simbench bench run SPEC --store PATH); "
                                f"specs in this store: {', '.join(known) or 'none'}")
            entries = [(r["key"], label_text(r["label"], r["measure"]), None) for r in rows]
            notes.append("this store predates stored job lists: jobs not run yet are not "
                         "counted (the next `bench run` records the list)")
        stored = store.spec_text(name)
        if spec_file is not None and stored is not None and stored[2] != text:
            notes.append(f"{spec_file} differs from the spec last run into this store: the "
                         "counts are for the jobs of that run")
        progress = tally(entries, rows)
        where = str(store.path)
        if not args.json:
            print(f"spec '{name}' in {where}:")
            print(render_progress(progress))
    stale = sum(p.stale for p in progress.values())
    if stale:
        notes.append(f"{stale} stored results are stale (computed by other code, or before "
                     "simbench recorded which code computed a result); `simbench bench run "
                     "SPEC --rerun-stale` recomputes them")
    if args.json:
        print(json.dumps({"spec": name, "store": where,
                          "labels": [progress_dict(p) for p in progress.values()],
                          "notes": notes}, indent=2))
        return 0
    for note in notes:
        print(f"note: {note}")
    return 0


def cmd_leaderboard(args: argparse.Namespace, extra: list[str]) -> int:
    from simbench.bench.spec import load_spec, parse_spec
    from simbench.bench.store import Store
    from simbench.resources import shipped_specs

    # Viewing runs no code from the spec or the store: specs are parsed untrusted here. A
    # shipped spec's name (`simbench leaderboard lm_toxicity`) finds the store it names, and
    # the spec is then the one stored with the results, as for a name run into any store.
    is_file = bool(args.spec) and Path(args.spec).is_file()
    hint = (load_spec(args.spec, trusted=False)
            if is_file or args.spec in shipped_specs() else None)
    with Store(board_store(args.store, hint, _shipped_name(args.spec)), create=False) as store:
        stored = None if is_file else store.spec_text(args.spec)
        if not is_file and stored is None:
            raise SpecError(f"no spec {'called ' + repr(args.spec) + ' ' if args.spec else ''}"
                            f"in the store {store.path}", file=store.path,
                            fix="pass the spec file: simbench leaderboard SPEC --store PATH")
        spec = hint if stored is None else parse_spec(stored[2], path=stored[1], trusted=False)
        show_board(spec, store, target=args.target, boards=tuple(args.board.split(",")),
                   csv_dir=args.csv, png_dir=args.png, html=args.html, as_json=args.json)
    return 0


def show_board(spec: Any, store: Any, *, target: str | None = None,
               boards: tuple[str, ...] = ("validity", "matrices", "target"),
               csv_dir: str | None = None, png_dir: str | None = None,
               html: str | None = None, as_json: bool = False) -> Any:
    from simbench.bench import render
    from simbench.bench.leaderboard import build

    board = build(spec, store, target=target)
    # with --json, stdout holds the JSON alone; what was written is said on stderr
    said = sys.stderr if as_json else sys.stdout
    if as_json:
        print(json.dumps(board_dict(board, boards), indent=2))
    else:
        print(render.text(board, boards))
    if csv_dir:
        files = render.write_csv(board, Path(csv_dir))
        print(f"\n{len(files)} CSV files written to {csv_dir}", file=said)
    if png_dir:
        files = render.write_png(board, Path(png_dir))
        print(f"{len(files)} PNG plots written to {png_dir}", file=said)
    if html:
        render.write_html(board, Path(html))
        print(f"HTML leaderboard written to {html}", file=said)
    return board


def board_dict(board: Any, boards: tuple[str, ...] = ("validity", "matrices", "target")
               ) -> dict[str, Any]:
    """A leaderboard as plain data (``simbench leaderboard --json``): the boards asked for,
    the entries they are built from, and the run's counts. NaN becomes null."""
    from simbench.cli.output import plain

    out: dict[str, Any] = {"spec": board.spec.name, "target": board.target,
                           "jobs": {"done": board.done, "failed": board.failed,
                                    "total": board.total},
                           "entries": plain(board.entries), "notes": list(board.notes)}
    for name, key in (("validity", "validity"), ("matrices", "matrices"),
                      ("target", "rankings")):
        if name in boards:
            out[key] = plain(getattr(board, key))
    return out


def demo_spec_path() -> Path:
    """The shipped demo spec (benchmarks/specs/demo.toml, installed with simbench)."""
    from simbench.resources import specs_dir

    path = specs_dir() / "demo.toml"
    if not path.exists():
        raise SpecError("the demo spec is not installed with this copy of simbench",
                        file=path, fix="run from a source checkout, or pass --spec FILE")
    return path


def cmd_demo(args: argparse.Namespace, extra: list[str]) -> int:
    from simbench.bench.runner import run_spec
    from simbench.bench.store import Store

    spec, jobs = _spec_and_jobs(args.spec or demo_spec_path(), lenient=True)
    path = writable_store(store_path(args.store, None, default="demo.sqlite"), "demo")
    print(f"demo: {len(jobs)} jobs from {spec.path} into {path}", file=sys.stderr)
    with Store(path) as store:
        summary = run_spec(spec, store, jobs=jobs, workers=args.workers, device=args.device,
                           progress=False if args.no_progress else None)
        print(summary.render(), file=sys.stderr)
        print()
        html = args.html or str(DEFAULT_DIR / "demo.html")
        show_board(spec, store, boards=("matrices", "validity"), html=html)
    return 130 if summary.interrupted else 0
