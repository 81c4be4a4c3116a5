"""The validity board as files: one directory with the table, its plots and the cost per measure.

:func:`write_report` writes ``validity.csv`` (one row per measure variant and check, with why),
``validity.png`` (the board as a coloured grid, with each measure's measured cost beside it),
``separability.png``, ``costs.csv`` (:mod:`simbench.calibration.costs`), ``validity.txt`` (the
board as ``simbench validity`` prints it) and a ``README.md`` read off the board.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from simbench.calibration.costs import MeasureCost, format_costs, write_costs_csv
from simbench.calibration.validity import (
    CHECKS,
    FAILED,
    NOT_APPLICABLE,
    NOT_RUN,
    PASSED,
    STATUSES,
    ValidityBoard,
    format_board,
    write_csv,
)

_COLOURS = {PASSED: "#4c9a5b", FAILED: "#c8463d", NOT_RUN: "#d9d9d9", NOT_APPLICABLE: "#f2f2f2"}
_CELL = {PASSED: "pass", FAILED: "FAIL", NOT_RUN: "not run", NOT_APPLICABLE: "n/a"}


def plot_board(board: ValidityBoard, path: str | Path,
               costs: Sequence[MeasureCost] | None = None) -> Path:
    """Measures x checks as a coloured grid (passed / failed / not run / not applicable); with
    ``costs``, each measure's measured CPU seconds and peak memory as bars beside it (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import NullFormatter

    names = board.variants
    rows = len(names)
    # only measured costs are drawn (stored runtimes differ in pair and load between measures)
    by_variant = {c.variant: c for c in costs or () if c.cpu_s is not None}
    panels = 3 if by_variant else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 + 2.6 * (panels - 1), 1.2 + 0.32 * rows),
                             layout="constrained", squeeze=False,
                             gridspec_kw={"width_ratios": [3] + [1] * (panels - 1)})
    ax = axes[0][0]
    for i, v in enumerate(names):
        for j, check in enumerate(CHECKS):
            status = board.status(v, check)
            ax.add_patch(plt.Rectangle((j, i), 0.96, 0.9, color=_COLOURS[status]))
            ax.text(j + 0.48, i + 0.45, _CELL[status], ha="center", va="center", fontsize=7)
    ax.set_xlim(0, len(CHECKS))
    ax.set_ylim(rows, 0)
    ax.set_xticks([j + 0.48 for j in range(len(CHECKS))], CHECKS, rotation=25, ha="right",
                  fontsize=8)
    ax.set_yticks([i + 0.45 for i in range(rows)], names, fontsize=8)
    ax.tick_params(length=0)
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.legend(handles=[Patch(color=_COLOURS[s], label=s) for s in STATUSES],
              loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, fontsize=7, frameon=False)
    if by_variant:
        for ax, field, label in ((axes[0][1], "cpu_s", "CPU s, one job"),
                                 (axes[0][2], "peak_mib", "peak MiB, one job")):
            vals = [getattr(by_variant[v], field) if v in by_variant else None for v in names]
            shown = [max(x, 1e-2) if x is not None else 0.0 for x in vals]
            ax.barh([i + 0.45 for i in range(rows)], shown, height=0.7, color="#5b7fb5")
            ax.set_ylim(rows, 0)
            ax.set_yticks([])
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # decades only: minor labels collide
            ax.set_xlabel(label, fontsize=8)
            ax.tick_params(which="both", labelsize=7)
            for i, x in enumerate(vals):
                if x is not None:
                    ax.text(max(x, 1e-2), i + 0.45, f" {x:.3g}", va="center", fontsize=6)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)
    plt.close(fig)
    return out


def write_report(board: ValidityBoard, directory: str | Path,
                 costs: Sequence[MeasureCost] | None = None, command: str = "") -> list[Path]:
    """Write the board (and ``costs``, when given) into ``directory``; returns the files.
    ``command`` (the command line that wrote it) goes into the README."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = [write_csv(board, out / "validity.csv"), plot_board(board, out / "validity.png",
                                                                  costs)]
    if board.separability:
        from simbench.calibration.separation import plot_separability

        written.append(plot_separability(board.separability, out / "separability.png"))
    text = format_board(board)
    if costs:
        written.append(write_costs_csv(costs, out / "costs.csv"))
        text += ("\n\ncost per measure (stored: every job's runtime_s in the store; measured: "
                 "one job in a fresh process, CPU seconds and peak resident memory above the "
                 "process's before it):\n" + format_costs(costs))
    txt = out / "validity.txt"
    txt.write_text(text + "\n", encoding="utf-8")
    written.append(txt)
    readme = out / "README.md"
    readme.write_text(summary_markdown(board, costs, command), encoding="utf-8")
    written.append(readme)
    return written


def summary_markdown(board: ValidityBoard, costs: Sequence[MeasureCost] | None = None,
                     command: str = "") -> str:
    """Per check, the measures that passed, failed and did not run it; then the cost per
    measure: a README for the report directory, read off the board."""
    lines = [f"# Measure validity: spec `{board.spec_name}`", ""]
    if command:
        lines += ["Written by", "", f"    {command}", ""]
    lines += ["| measure | " + " | ".join(CHECKS) + " | " + " | ".join(STATUSES) + " |",
              "|---" * (len(CHECKS) + 1 + len(STATUSES)) + "|"]
    for v in board.variants:
        c = board.counts(v)
        lines.append(f"| {v} | " + " | ".join(board.status(v, k) for k in CHECKS)
                     + " | " + " | ".join(str(c[s]) for s in STATUSES) + " |")
    lines += ["", "Which measures pass each check:", ""]
    for check in CHECKS:
        by = {s: [v for v in board.variants if board.status(v, check) == s] for s in STATUSES}
        lines.append(f"- **{check}**: passed by {', '.join(by[PASSED]) or 'none'}; failed by "
                     f"{', '.join(by[FAILED]) or 'none'}"
                     + (f"; not run for {', '.join(by[NOT_RUN])}" if by[NOT_RUN] else "")
                     + (f"; not applicable to {', '.join(by[NOT_APPLICABLE])}"
                        if by[NOT_APPLICABLE] else ""))
    measured = [c for c in costs or () if c.cpu_s is not None]
    if measured:
        lines += ["", "Cost of one job per measure (pair, CPU seconds, peak resident memory "
                  "above the process's before the job; costs.csv has the stored runtimes):", ""]
        lines += [f"- {c.variant}: {c.pair} at {c.site}, {c.cpu_s:.1f} CPU s, "
                  f"{c.peak_mib:.0f} MiB" for c in measured]
    lines += ["", "The reason for every cell is in validity.csv (column `detail`); validity.txt "
              "has the board as `simbench validity` prints it.", ""]
    return "\n".join(lines)


__all__ = ["plot_board", "summary_markdown", "write_report"]
