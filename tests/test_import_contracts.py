"""simbench's layers hold: the import-linter contracts of ``pyproject.toml`` (the parts and the
"never" list of the architecture, no ``simbench_plugins`` import from ``simbench``, no private
names taken from another module, no import circle), checked as ``make lint`` checks them, and
the project's own contract types checked against a toy package whose answers are known."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT))  # `tests.import_contracts`, as lint-imports finds it

from tests.import_contracts import cycles, module_graph, private_imports  # noqa: E402


@pytest.mark.slow
def test_the_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is in the test extra: pip install -e .[test]"
    done = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "BROKEN" not in done.stdout and "Contracts: 0 kept" not in done.stdout


def test_the_checkers_see_lazy_type_only_package_edges_and_private_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each kind of edge the circle check must count closes a circle it reports; a private
    name taken from another module is reported, a private submodule of one's own package not."""
    import grimp

    files = {
        "__init__.py": "",
        "lazy_a.py": "def f():\n    from toy import lazy_b\n",
        "lazy_b.py": "import toy.lazy_a\n",
        "typed_a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                      "    from toy.typed_b import X\n",
        "typed_b.py": "from . import typed_a\nX = 1\n",
        "sub/__init__.py": "from toy.sub import inner\n",
        "sub/inner.py": "",
        "sub/deep.py": "import toy.user\n",
        "user.py": "from toy.sub.deep import *\n",  # runs toy.sub's __init__ first
        "plain.py": "import toy.sub.inner\nfrom toy.lazy_a import _hidden\n",
        "pkg/__init__.py": "",
        "pkg/_own.py": "",
        "pkg/mod.py": "from toy.pkg import _own\n",
    }
    for name, text in files.items():
        path = tmp_path / "toy" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("toy", cache_dir=None)
    found = {tuple(c) for c in cycles(module_graph(graph))}
    assert ("toy.lazy_a", "toy.lazy_b") in found
    assert ("toy.typed_a", "toy.typed_b") in found
    assert any(set(c) == {"toy.sub.deep", "toy.user"} for c in found)
    assert not any("toy.plain" in c for c in found)
    modules = set(graph.modules)
    assert private_imports("toy.plain", modules) == [(2, "from toy.lazy_a import _hidden")]
    assert private_imports("toy.pkg.mod", modules) == []


def test_systems_and_the_api_do_not_pull_torch_in() -> None:
    code = ("import sys, simbench.systems, simbench.systems.resolve, simbench.registry, "
            "simbench.measure, simbench.result, simbench.api\nprint('torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == "False"
