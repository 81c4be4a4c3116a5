"""Write the command-line reference (reference/cli.md) from simbench's own argparse parser.

Run by mkdocs-gen-files at build time, so the page is always the installed code's: every
command's ``--help`` text, then every registered measure's parameters as ``simbench score``
takes them. Nothing here is written to the source tree.
"""

from __future__ import annotations

import argparse
import os

import mkdocs_gen_files

from simbench.cli import build_parser
from simbench.registry import get_registry

os.environ["COLUMNS"] = "100"  # argparse wraps help text to the terminal's width


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser's sub-commands by name, in the order they were added (aliases skipped)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: dict[int, str] = {}
            for name, sub in action.choices.items():
                seen.setdefault(id(sub), name)
            return {name: sub for name, sub in action.choices.items() if seen[id(sub)] == name}
    return {}


def command_sections(parser: argparse.ArgumentParser, prefix: str, level: int) -> list[str]:
    out = []
    for name, sub in subcommands(parser).items():
        full = f"{prefix} {name}"
        out += [f"{'#' * level} `{full}`", "", "```text", sub.format_help().rstrip(), "```", ""]
        out += command_sections(sub, full, level + 1)
    return out


def measure_sections() -> list[str]:
    out = []
    for name, measure in sorted(get_registry().measures.items()):
        out += [f"### `{name}`", "", " ".join(str(measure.description).split()), "",
                "| parameter | type | default | meaning |", "|---|---|---|---|"]
        for p in measure.params:
            flag = "--" + p.name.replace("_", "-")
            default = repr(p.default)
            text = " ".join(str(p.help).split()).replace("|", "\\|")
            out.append(f"| `{flag}` | {p.type.__name__} | `{default}` | {text} |")
        out.append("")
    return out


parser = build_parser()
lines = [
    "# Command line",
    "",
    "Generated from `simbench.cli.build_parser()` and the registered measures when the site is",
    "built, so it is the installed code's own help. Every command prints the same text with",
    "`--help`.",
    "",
    "## `simbench`",
    "",
    "```text",
    parser.format_help().rstrip(),
    "```",
    "",
    *command_sections(parser, "simbench", 2),
    "## Measure parameters",
    "",
    "`simbench score MEASURE SYSTEM... --site SITE` takes each parameter of the measure as",
    "`--NAME VALUE`. A comma-separated value sweeps the parameter (`--k 1,2,4,8`); a boolean",
    "parameter given without a value is switched on (`--debiased`), `--NAME false` switches it",
    "off. The same names are keys under `[measures.LABEL]` in a spec (with underscores:",
    "`max_steps = 600`). The built-in measures:",
    "",
    *measure_sections(),
]

with mkdocs_gen_files.open("reference/cli.md", "w") as fh:
    fh.write("\n".join(lines) + "\n")
