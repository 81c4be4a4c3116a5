"""The documentation is tested like code: the site builds in strict mode, every ```python block
of the guide and tutorials runs, every ``simbench ...`` line of a ```console/```bash block
parses (command, flags and the measure's own parameters), and the README's quickstart runs.

Python blocks of one page run in order in one namespace, in an empty directory that holds what a
source checkout has beside the user (``benchmarks``, ``recordings``, ``tests``), with the two
example plugins of the tutorials registered as ``pip install`` would register them. A block
whose first line is ``# docs: no-run (why)`` is skipped; keep that rare.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import simbench.registry as registry_module
from simbench.registry import PluginInfo, Registry

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
SIMBENCH = str(Path(sys.executable).parent / "simbench")
NO_RUN = "# docs: no-run"
SNIPPET = re.compile(r'^--8<-- "([^"]+)"\s*$', re.MULTILINE)
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
#: measures the docs use that a tutorial installs (registered by the fixture below)
TUTORIAL_MEASURES = {"procrustes"}
#: pages whose python blocks take more than a few seconds of CPU
SLOW_PAGES = {"getting-started.md", "guide/language-models.md", "tutorials/measure-plugin.md"}


def blocks(path: Path, langs: set[str]) -> list[str]:
    """The fenced code blocks of ``path`` in the given languages, snippets inlined."""
    text = path.read_text(encoding="utf-8")
    out = []
    for lang, body in FENCE.findall(text):
        if lang in langs:
            out.append(SNIPPET.sub(lambda m: (ROOT / m.group(1)).read_text(encoding="utf-8"),
                                   body))
    return out


def doc_pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md"))


def python_pages() -> list[str]:
    """Pages of the guide, the tutorials and getting started that hold python blocks."""
    pages = [p for p in doc_pages() if p.parent.name in ("guide", "tutorials")
             or p.name == "getting-started.md"]
    return [str(p.relative_to(DOCS)) for p in pages if blocks(p, {"python"})]


def simbench_lines(path: Path) -> list[str]:
    """Every ``simbench ...`` command line of the console/bash/sh blocks of ``path``."""
    lines = []
    for body in blocks(path, {"console", "bash", "sh", "shell"}):
        for line in body.splitlines():
            line = line.strip().removeprefix("$ ")
            if line.startswith("simbench "):
                lines.append(line)
    return lines


# ---- the site ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_site_builds_in_strict_mode(tmp_path: Path) -> None:
    """A broken link, anchor, snippet or docstring reference fails the build."""
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                           "-d", str(tmp_path / "site")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cli = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert "simbench score" in cli and "--max-steps" in cli  # generated from the parser


def test_every_nav_page_exists() -> None:
    nav = re.findall(r":\s*([\w/-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.MULTILINE)
    assert len(nav) > 20
    missing = [p for p in nav if not (DOCS / p).is_file() and p != "reference/cli.md"]
    assert not missing, missing


# ---- python blocks ----------------------------------------------------------------------------
@pytest.fixture
def checkout_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty working directory beside a checkout's data, with the tutorials' plugins
    registered (their source directories on sys.path, their hooks added to the registry)."""
    for name in ("benchmarks", "recordings", "tests"):
        (tmp_path / name).symlink_to(ROOT / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SIMBENCH_STORE", raising=False)
    for plugin in ("example_plugin", "example_task_plugin"):
        monkeypatch.syspath_prepend(str(ROOT / "tests" / plugin))
    import simbench_evidence_task
    import simbench_example_plugin

    reg = Registry()
    reg.load_entry_points()
    reg.add_plugin(simbench_example_plugin,
                   PluginInfo("procrustes", "simbench-example-plugin", "0.1.0",
                              "simbench_example_plugin"))
    reg.add_plugin(simbench_evidence_task,
                   PluginInfo("evidence", "simbench-evidence-task", "0.1.0",
                              "simbench_evidence_task"))
    monkeypatch.setattr(registry_module, "_REGISTRY", reg)
    yield tmp_path


@pytest.mark.parametrize("page", [
    pytest.param(p, marks=pytest.mark.slow) if p in SLOW_PAGES else p for p in python_pages()])
def test_python_blocks_run(page: str, checkout_dir: Path) -> None:
    namespace: dict[str, object] = {"__name__": f"docs_{Path(page).stem.replace('-', '_')}"}
    ran = 0
    for i, code in enumerate(blocks(DOCS / page, {"python"})):
        if code.lstrip().startswith(NO_RUN):
            continue
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            try:
                exec(compile(code, f"{page}[block {i}]", "exec"), namespace)
            except Exception as exc:
                raise AssertionError(f"{page}, python block {i} failed: {exc!r}\n{code}") from exc
        ran += 1
    assert ran, f"{page}: every python block is marked no-run"


def test_no_run_blocks_are_rare() -> None:
    skipped = [p for p in doc_pages() for b in blocks(p, {"python"})
               if b.lstrip().startswith(NO_RUN)]
    assert len(skipped) <= 1, skipped


# ---- command lines ----------------------------------------------------------------------------
def check_command(line: str) -> str | None:
    """Why ``line`` would not parse, or None: the command and its flags by the real parser,
    a score's measure parameters by the measure itself (names, types, bounds, sweeps)."""
    from simbench.cli import build_parser
    from simbench.cli.core import parse_measure_args
    from simbench.errors import SimbenchError
    from simbench.registry import get_registry

    argv = shlex.split(line, comments=True)[1:]
    parser = build_parser()
    try:
        with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet), \
                contextlib.redirect_stdout(quiet):
            args, extra = parser.parse_known_args(argv)
    except SystemExit as exc:  # --help and --version exit 0; a refusal exits 2
        return None if exc.code == 0 else "argparse refused it"
    if args.command is None:
        return "no command"
    if extra and not getattr(args, "accepts_extra", False):
        return f"unrecognized arguments: {' '.join(extra)}"
    if args.command == "score" and args.measure not in TUTORIAL_MEASURES:
        try:
            measure = get_registry().measure(args.measure)
            measure.sweep_grid(parse_measure_args(measure, extra))
        except SimbenchError as exc:
            return str(exc)
    return None


@pytest.mark.parametrize("page", [*[str(p.relative_to(ROOT)) for p in doc_pages()],
                                  "README.md"])
def test_simbench_commands_parse(page: str) -> None:
    lines = simbench_lines(ROOT / page)
    bad = {line: why for line in lines if (why := check_command(line))}
    assert not bad, "\n".join(f"{line}\n  -> {why}" for line, why in bad.items())


def test_commands_are_checked() -> None:
    """The checker refuses what the CLI refuses (so a passing page means something)."""
    assert check_command("simbench score cka a.nc b.nc --site hidden --n-boot 10") is None
    assert check_command("simbench score cka a.nc b.nc --site hidden --debiased") is None
    assert check_command("simbench score clmas a b --site hidden --control true")
    assert check_command("simbench score cka a.nc b.nc --site hidden --kk 3")
    assert check_command("simbench zoo list --nope")
    assert check_command("simbench nosuchcommand")
    assert check_command("simbench --help") is None


# ---- the README --------------------------------------------------------------------------------
def readme_section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start: end if end > 0 else None]


def test_readme_is_short_and_links_resolve() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 300
    links = re.findall(r"\]\((docs/[^)#\s]+)", text)
    assert links, "the README links into the documentation"
    missing = [link for link in links if not (ROOT / link).is_file()]
    assert not missing, missing
    assert "arXiv:2501.06164" in text  # the paper is cited


@pytest.mark.slow
def test_readme_quickstart_runs(tmp_path: Path) -> None:
    """Every command of the README's quickstart, in order, as a user in a checkout runs them."""
    for name in ("benchmarks", "recordings"):
        (tmp_path / name).symlink_to(ROOT / name)
    lines = [line for body in FENCE.findall(readme_section("Quickstart"))
             if body[0] in ("console", "bash")
             for line in body[1].splitlines() if line.strip().startswith("simbench ")]
    assert len(lines) >= 5
    env = {k: v for k, v in os.environ.items() if k != "SIMBENCH_STORE"}
    outputs = {}
    for line in lines:
        argv = shlex.split(line, comments=True)
        proc = subprocess.run([SIMBENCH, *argv[1:]], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=900)
        assert proc.returncode == 0, f"{line}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        outputs[line] = proc.stdout
    scores = [out for line, out in outputs.items() if line.startswith("simbench score")]
    values = [float(m) for out in scores
              for m in re.findall(r"^\w+\([^)]*\) at site '\w+': (-?[\d.]+)", out, re.MULTILINE)]
    assert len(values) >= 3 and all(0.0 <= v <= 1.0 for v in values), scores
    assert values[0] > 0.8  # CKA between two GRU seeds of one task


def known_flags() -> set[str]:
    """Every option string of every (sub)command, and every measure parameter as a flag."""
    import argparse

    from simbench.cli import build_parser
    from simbench.registry import get_registry

    flags: set[str] = set()
    todo = [build_parser()]
    while todo:
        parser = todo.pop()
        for action in parser._actions:
            flags.update(o for o in action.option_strings if o.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(action.choices.values())
    for measure in get_registry().measures.values():
        for p in measure.params:
            flags.update({f"--{p.name}", f"--{p.name.replace('_', '-')}"})
    return flags


#: flags of other programs the docs show (dask, pip, venv), and placeholders
OTHER_FLAGS = {"--preload", "--nthreads", "--system-site-packages", "--no-deps", "--help",
               "--NAME", "--PARAM", "--name"}


def test_every_flag_the_docs_name_exists() -> None:
    """An inline `--flag` in the prose (not only in command lines) names a real option."""
    flags = known_flags() | OTHER_FLAGS
    bad = {}
    for page in [*doc_pages(), README, ROOT / "CONTRIBUTING.md"]:
        text = FENCE.sub("", page.read_text(encoding="utf-8"))
        for flag in re.findall(r"`(--[A-Za-z][\w-]*)", text):
            if flag not in flags:
                bad.setdefault(flag, str(page.relative_to(ROOT)))
    assert not bad, bad

