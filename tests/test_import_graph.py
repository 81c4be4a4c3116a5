"""simbench's modules import each other without a circle, lazy and type-only imports included.

The graph is read from the source with ``ast`` by ``tests/import_graph.py`` (see its docstring
for what counts as an edge) in a fresh interpreter, so nothing this test process imported
earlier can hide or add an edge.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import simbench

TESTS = Path(__file__).parent
PACKAGE = Path(simbench.__file__).parent


def _graph(package_dir: Path) -> dict:
    done = subprocess.run([sys.executable, str(TESTS / "import_graph.py"), str(package_dir)],
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def test_simbench_has_no_import_cycle() -> None:
    found = _graph(PACKAGE)
    assert found["modules"] >= 40 and found["edges"] >= 100  # the whole package was read
    cycles = "\n".join(" -> ".join([*c, c[0]]) for c in found["cycles"])
    assert not found["cycles"], f"import cycles in simbench/:\n{cycles}"


def test_the_core_is_layered() -> None:
    """The direction a newcomer can rely on: systems know nothing of torch, the registry or the
    API; the registry knows nothing of the API; results know nothing of measures."""
    graph = _graph(PACKAGE)["graph"]
    assert "simbench.systems.torch" not in graph["simbench.systems"]
    assert not {"simbench.api", "simbench.registry", "simbench.measure"} & set(
        graph["simbench.systems"])
    assert "simbench.api" not in graph["simbench.registry"]
    assert set(graph["simbench.result"]) <= {"simbench.version"}
    assert set(graph["simbench.access"]) == set() and set(graph["simbench.errors"]) == set()
    assert "simbench.registry" not in graph["simbench.tasks"]


def test_the_checker_sees_lazy_type_only_and_package_edges(tmp_path: Path) -> None:
    """The checker itself: each kind of edge it must count closes a cycle it reports."""
    pkg = tmp_path / "toy"
    files = {
        "__init__.py": "",
        "lazy_a.py": "def f():\n    from toy import lazy_b\n",
        "lazy_b.py": "import toy.lazy_a\n",
        "typed_a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                      "    from toy.typed_b import X\n",
        "typed_b.py": "from . import typed_a\nX = 1\n",
        "sub/__init__.py": "from toy.sub import inner, deep\n",
        "sub/inner.py": "",
        "user.py": "from toy.sub.inner import *\n",  # runs toy.sub's __init__ first
        "sub2/__init__.py": "import importlib\nimportlib.import_module('toy.user')\n",
        "sub/deep.py": "import toy.sub2\n",
        "plain.py": "import toy.sub.inner\n",  # no cycle: nothing imports plain
    }
    for name, text in files.items():
        path = pkg / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    found = {tuple(c) for c in _graph(pkg)["cycles"]}
    assert ("toy.lazy_a", "toy.lazy_b") in found
    assert ("toy.typed_a", "toy.typed_b") in found
    assert ("toy.sub", "toy.sub.deep", "toy.sub2", "toy.user") in found
    assert not any("toy.plain" in c for c in found)


def test_systems_and_the_api_do_not_pull_torch_in() -> None:
    code = ("import sys, simbench.systems, simbench.registry, simbench.measure, simbench.result\n"
            "print('torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == "False"
