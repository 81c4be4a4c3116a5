"""Drawing a :class:`~simbench.bench.leaderboard.Leaderboard`: terminal text, CSV, PNG, HTML.

The HTML page is one self-contained file: tables as HTML, plots embedded as base64 PNG, no
scripts and no external resources, so it opens from disk or an e-mail attachment.

Every name on a board comes from a spec or a store, possibly someone else's, so it is shown as
text and never acts: escaped in HTML, control characters made visible in terminal text, formula
cells neutralised in CSV (:mod:`.sanitize`), and ``$`` escaped in plots so matplotlib never
reads a name as mathtext (nor hands it to LaTeX).
"""

from __future__ import annotations

import base64
import contextlib
import csv
import html
import io
import math
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simbench.bench.leaderboard import (
    NULL_ALPHA,
    NULL_MARK,
    WARN_MARK,
    Leaderboard,
    Matrix,
    Ranking,
)
from simbench.bench.sanitize import csv_cell, terminal_safe, text_table


def _ci(ci: tuple[float, float] | None) -> str:
    if ci is None or not all(math.isfinite(x) for x in ci):
        return "-"
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _num(x: float) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.3f}"


def _marked(x: float, beats: bool | None) -> str:
    """A number with :data:`NULL_MARK` when its cell beats its null."""
    return _num(x) + (NULL_MARK if beats else "")


def _beats(beats: bool | None, none: str = "-") -> str:
    """yes / no, or ``none`` for a cell that drew no null (empty in CSV)."""
    return none if beats is None else ("yes" if beats else "no")


def _cell_marks(m: Matrix, i: int) -> list[bool | None]:
    return [None] * len(m.systems) if m.beats_null is None else m.beats_null[i]


def _ranked(r: Ranking) -> list[tuple[Any, ...]]:
    """(rank, system, value, ci, seeds, beats its null) per row of a ranking."""
    return [(*row, b) for row, b in zip(r.rows, r.beats_null or [None] * len(r.rows))]


def _validity_rows(board: Leaderboard) -> list[list[Any]]:
    """(measure, family, right, score) per row of the validity board."""
    return [[r.variant, r.family, f"{r.passed}/{r.total}",
             "-" if not r.total else f"{100 * r.fraction:.0f}%"] for r in board.validity]


def _file(kind: str, *parts: str) -> str:
    """The file name (without suffix) of a matrix's or a ranking's CSV and plot."""
    return f"{kind}_" + re.sub(r"[^A-Za-z0-9_.=-]+", "_", "_".join(parts)).strip("_")


def null_legend(board: Leaderboard) -> str:
    """The line explaining the mark, or ``""`` when no cell drew a null."""
    if not any(e.p_value is not None for e in board.entries):
        return ""
    return (f"{NULL_MARK} beats its null: p < {NULL_ALPHA} for every seed (cells without a "
            "mark drew no null or did not beat it)")


# ---- terminal ------------------------------------------------------------------------------
def table(headers: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    """A text table whose names cannot act on the terminal (and so keep their alignment)."""
    def cell(v: Any) -> Any:
        return terminal_safe(v) if isinstance(v, str) else v

    return text_table([cell(h) for h in headers], [[cell(v) for v in row] for row in rows])


def validity_text(board: Leaderboard) -> str:
    out = [f"Measure validity: the spec's expected orderings ({len(board.spec.expectations)} "
           f"findings), fraction each measure gets right",
           table(["measure", "family", "right", "score"], _validity_rows(board))]
    for r in board.validity:
        if r.violated:
            out.append(f"\n{r.variant} violates:")
            out += [f"  - [{c.site}] {c.finding}: {c.detail}" for c in r.violated]
    return "\n".join(out)


def matrix_text(m: Matrix) -> str:
    better = "higher" if m.higher_is_better else "lower"
    warned = m.warned or [[False] * len(m.systems) for _ in m.systems]
    rows = [(a, *[_marked(v, b) + (WARN_MARK if w else "")
                  for v, b, w in zip(m.values[i], _cell_marks(m, i), warned[i])])
            for i, a in enumerate(m.systems)]
    return (f"{m.variant} at '{m.site}' ({better} = more similar)\n"
            + table(["", *m.systems], rows))


def ranking_text(r: Ranking) -> str:
    rows = [(rank, name, _marked(v, b), _ci(ci), n) for rank, name, v, ci, n, b in _ranked(r)]
    return (f"{r.variant} at '{r.site}' against '{r.target}'\n"
            + table(["rank", "system", "value", "95% CI", "seeds"], rows))


def coverage_text(board: Leaderboard) -> str:
    text = (f"spec '{board.spec.name}': {board.done}/{board.total} jobs scored"
            + (f", {board.failed} failed" if board.failed else ""))
    if board.done < board.total:
        text += " (run `simbench bench run` to fill in the rest)"
    return text


def text(board: Leaderboard, boards: tuple[str, ...] = ("validity", "matrices", "target")
         ) -> str:
    sections: dict[str, list[str]] = {
        "validity": [validity_text(board) if board.spec.expectations else
                     "Measure validity: the spec declares no [[expect]] entries"],
        "matrices": [matrix_text(m) for m in board.matrices],
        "target": ([] if board.target is not None else
                   ["Against a target: pass --target SYSTEM (or set target = in the spec)"])
        + [ranking_text(r) for r in board.rankings],
    }
    parts = [coverage_text(board), *(f"note: {n}" for n in board.notes)]
    for name in boards:  # in the order asked for
        parts += sections.get(name, [])
    legend = null_legend(board)
    if legend and any(n in boards for n in ("matrices", "target")):
        parts.append(legend)
    return terminal_safe("\n\n".join(parts), newlines=True)


# ---- CSV -----------------------------------------------------------------------------------
def write_csv(board: Leaderboard, out: Path) -> list[Path]:
    """validity.csv, checks.csv, entries.csv, one matrix_*.csv per matrix, target_*.csv
    (formula cells neutralised, numbers written as numbers)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def dump(name: str, header: list[str], rows: list[list[Any]]) -> None:
        path = out / name
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow([csv_cell(c) for c in header])
            w.writerows([csv_cell(c) for c in row] for row in rows)
        written.append(path)

    dump("validity.csv", ["measure", "base_measure", "family", "right", "applicable", "fraction"],
         [[r.variant, r.measure, r.family, r.passed, r.total, r.fraction] for r in board.validity])
    dump("checks.csv", ["measure", "expectation", "finding", "site", "status", "detail"],
         [[c.variant, c.expectation, c.finding, c.site, c.status, c.detail]
          for r in board.validity for c in r.checks])
    dump("entries.csv", ["measure", "systems", "site", "categories", "value", "ci_low",
                         "ci_high", "seeds", "p_value", "null_size", "beats_null"],
         [[e.variant, " ~ ".join(e.systems), e.site, " ".join(e.categories), e.value,
           *(e.ci or (None, None)), e.n_seeds, e.p_value, e.null_size, _beats(e.beats_null, "")]
          for e in board.entries])
    for m in board.matrices:
        # no score (the diagonal, a pair not run) is an empty cell, not the text `nan`
        dump(_file("matrix", m.variant, m.site) + ".csv", ["", *m.systems],
             [[a, *(None if v != v else v for v in m.values[i].tolist())]
              for i, a in enumerate(m.systems)])
    for r in board.rankings:
        dump(_file("target", r.target, r.variant, r.site) + ".csv",
             ["rank", "system", "value", "ci_low", "ci_high", "seeds", "beats_null"],
             [[rank, name, v, *(ci or (None, None)), n, _beats(b, "")]
              for rank, name, v, ci, n, b in _ranked(r)])
    return written


# ---- PNG -----------------------------------------------------------------------------------
def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def _plain_text() -> Iterator[None]:
    """Draw with LaTeX off, whatever the user's matplotlibrc says (names are not TeX); also a
    decorator (``@_plain_text()``) for the functions that draw a figure."""
    with _plt().rc_context({"text.usetex": False}):
        yield


def _mpl(name: Any) -> str:
    """A name as literal matplotlib text: ``$`` escaped (no mathtext), control characters shown."""
    return terminal_safe(name).replace("$", r"\$")


@_plain_text()
def validity_figure(board: Leaderboard) -> Any:
    plt = _plt()
    rows = [r for r in board.validity if r.total]
    fig, ax = plt.subplots(figsize=(6, 0.45 * max(len(rows), 2) + 1.2))
    colours = ["#2b8cbe" if r.family == "causal" else "#f0a202" for r in rows]
    ax.barh([_mpl(r.variant) for r in rows][::-1], [r.fraction for r in rows][::-1],
            color=colours[::-1])
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of expected orderings satisfied")
    ax.set_title(f"Measure validity ({_mpl(board.spec.name)})")
    fig.tight_layout()
    return fig


@_plain_text()
def matrix_figure(m: Matrix) -> Any:
    plt = _plt()
    n = len(m.systems)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.55 * n))
    lo, hi = m.value_range
    vmin, vmax = (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else (None, None)
    cmap = "viridis" if m.higher_is_better else "viridis_r"
    im = ax.imshow(np.ma.masked_invalid(m.values), cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(range(n), [_mpl(a) for a in m.systems], rotation=45, ha="right")
    ax.set_yticks(range(n), [_mpl(a) for a in m.systems])
    for i in range(n):
        for j in range(n):
            v = m.values[i, j]
            if math.isfinite(v):
                lo_, hi_ = im.get_clim()
                t = (v - lo_) / (hi_ - lo_) if hi_ > lo_ else 0.5
                bright = t > 0.6 if m.higher_is_better else t < 0.4
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="k" if bright else "w")
    ax.set_title(f"{_mpl(m.variant)} @ {_mpl(m.site)}")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


@_plain_text()
def ranking_figure(r: Ranking) -> Any:
    plt = _plt()
    names = [_mpl(row[1]) for row in r.rows][::-1]
    vals = np.array([row[2] for row in r.rows][::-1], dtype=float)
    lows = np.array([row[3][0] if row[3] else row[2] for row in r.rows][::-1], dtype=float)
    highs = np.array([row[3][1] if row[3] else row[2] for row in r.rows][::-1], dtype=float)
    fig, ax = plt.subplots(figsize=(5, 0.4 * max(len(names), 2) + 1.2))
    err = np.vstack([np.clip(vals - lows, 0, None), np.clip(highs - vals, 0, None)])
    ax.barh(names, vals, xerr=np.nan_to_num(err), color="#74a9cf", capsize=3)
    ax.set_xlabel(f"{_mpl(r.variant)} "
                  f"({'higher' if r.higher_is_better else 'lower'} = more similar)")
    ax.set_title(f"against {_mpl(r.target)} @ {_mpl(r.site)}")
    fig.tight_layout()
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    try:
        with _plain_text():
            fig.savefig(buf, format="png", dpi=110)
    finally:
        _plt().close(fig)
    return buf.getvalue()


def figures(board: Leaderboard) -> dict[str, tuple[str, bytes]]:
    """File name -> (caption, PNG bytes) for every plot of the board."""
    out = {}
    if any(r.total for r in board.validity):
        out["validity.png"] = ("measure validity", _png(validity_figure(board)))
    for m in board.matrices:
        out[_file("matrix", m.variant, m.site) + ".png"] = (f"{m.variant} at {m.site}",
                                                            _png(matrix_figure(m)))
    for r in board.rankings:
        out[_file("target", r.target, r.variant, r.site) + ".png"] = (
            f"{r.variant} at {r.site} against {r.target}", _png(ranking_figure(r)))
    return out


def write_png(board: Leaderboard, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {out / name: data for name, (_caption, data) in figures(board).items()}
    for path, data in files.items():
        path.write_bytes(data)
    return list(files)


# ---- HTML ----------------------------------------------------------------------------------
def _table_html(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(figure: tuple[str, bytes]) -> str:
    alt, data = figure
    return (f'<img alt="{html.escape(alt)}" src="data:image/png;base64,'
            f'{base64.b64encode(data).decode()}">')


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.2em .6em;
text-align:left;font-variant-numeric:tabular-nums}th{background:#eee}img{max-width:100%}
.violated{color:#b00}.ok{color:#070}section{margin-bottom:2em}"""


def html_page(board: Leaderboard) -> str:
    """One self-contained HTML page with every table and plot of the board."""
    figs = figures(board)
    spec = board.spec
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>simbench leaderboard: {html.escape(spec.name)}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>simbench leaderboard: {html.escape(spec.name)}</h1>",
             f"<p>{html.escape(spec.description)}</p>" if spec.description else "",
             f"<p>{html.escape(coverage_text(board))}</p>",
             *(f"<p>note: {html.escape(n)}</p>" for n in board.notes)]
    checks = [[c.variant, c.site, c.finding, c.status, c.detail]
              for r in board.validity for c in r.checks]
    legend = null_legend(board)
    parts += ["<section><h2>Measure validity</h2>",
              _table_html(["measure", "family", "right", "score"], _validity_rows(board)),
              _img(figs["validity.png"]) if "validity.png" in figs else "",
              "<h3>Every check</h3>" if checks else "",
              _table_html(["measure", "site", "finding", "status", "detail"], checks)
              if checks else "", "</section><section><h2>Similarity matrices</h2>"]
    for m in board.matrices:
        parts += [f"<h3>{html.escape(m.variant)} at {html.escape(m.site)}</h3>",
                  _table_html(["", *m.systems],
                              [[a, *[_marked(v, b) for v, b in zip(m.values[i],
                                                                    _cell_marks(m, i))]]
                               for i, a in enumerate(m.systems)]),
                  _img(figs[_file("matrix", m.variant, m.site) + ".png"])]
    parts += [f"<p>{html.escape(legend)}</p>" if legend else "", "</section>"]
    if board.rankings:
        parts.append(f"<section><h2>Against {html.escape(str(board.target))}</h2>")
        for r in board.rankings:
            parts += [f"<h3>{html.escape(r.variant)} at {html.escape(r.site)}</h3>",
                      _table_html(["rank", "system", "value", "95% CI", "seeds", "beats null"],
                                  [[rank, n, _num(v), _ci(ci), s, _beats(b)]
                                   for rank, n, v, ci, s, b in _ranked(r)]),
                      _img(figs[_file("target", r.target, r.variant, r.site) + ".png"])]
        parts.append("</section>")
    if board.failures:
        parts += ["<section><h2>Failed jobs</h2>",
                  _table_html(["job", "error"], [[f["job"], f["error"]] for f in board.failures]),
                  "</section>"]
    parts.append("</body></html>\n")
    return "\n".join(p for p in parts if p)


def write_html(board: Leaderboard, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html_page(board), encoding="utf-8")
    return path
