"""Which code computed a result: fingerprints mark results stale when the code that computes
them changes; checkpoints are systems by content, not by path."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from bench_helpers import PLUGIN, spec_text, write_spec

from simbench.bench.fingerprint import code_files, fingerprint
from simbench.bench.jobs import expand, prepare, system_identity
from simbench.bench.runner import run_spec
from simbench.bench.spec import load_spec
from simbench.bench.store import Store
from simbench.cli import main

ZOO = Path(__file__).resolve().parents[1] / "recordings" / "zoo"


def _status_row(out: str, label: str) -> list[str]:
    return next(line.split() for line in out.splitlines() if line.startswith(label))


@pytest.mark.slow
def test_editing_a_plugin_file_makes_its_results_stale(recs: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    """A measure plugin written to tmp: after an edit of its source, every stored result it
    computed is stale (kept, counted, not rerun) until --rerun-stale recomputes them."""
    plugin = recs / "my_measures.py"
    plugin.write_text(PLUGIN.read_text())
    spec_path = write_spec(recs, spec_text().replace(str(PLUGIN), str(plugin)))
    store_path = recs / "s.sqlite"
    with Store(store_path) as store:
        first = run_spec(load_spec(spec_path), store, progress=False)
        assert first.ran == 18 and first.stale == 0
    assert main(["bench", "status", str(spec_path), "--store", str(store_path)]) == 0
    assert _status_row(capsys.readouterr().out, "lin (bench_linear)")[2:7] == [
        "18", "18", "0", "0", "0"]

    plugin.write_text(plugin.read_text().replace("num / den", "num / den * 1.0"))
    assert main(["bench", "status", str(spec_path), "--store", str(store_path)]) == 0
    out = capsys.readouterr().out
    assert _status_row(out, "lin (bench_linear)")[2:7] == ["18", "0", "0", "18", "0"]
    assert "18 stored results are stale" in out and "--rerun-stale" in out
    with Store(store_path) as store:
        spec = load_spec(spec_path)
        again = run_spec(spec, store, progress=False)
        assert again.ran == 0 and again.stale == 18 and "--rerun-stale" in again.render()
        old = {r["key"]: r["code_fingerprint"] for r in store.rows()}
        rerun = run_spec(spec, store, progress=False, rerun_stale=True)
        assert rerun.ran == 18 and rerun.stale == 0 and store.count() == 18
        new = {r["key"]: r["code_fingerprint"] for r in store.rows()}
        assert new.keys() == old.keys()  # the same jobs, recomputed in place
        assert all(new[k] != old[k] for k in new)
        assert {r["attempts"] for r in store.rows()} == {2}
    assert main(["bench", "status", str(spec_path), "--store", str(store_path)]) == 0
    assert _status_row(capsys.readouterr().out, "lin (bench_linear)")[2:7] == [
        "18", "18", "0", "0", "0"]


def test_fingerprint_follows_imports_without_importing(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin package: the modules it imports (also inside functions) count, a sibling it
    never imports does not, the harness does not, and nothing is imported to find out."""
    pkg = tmp_path / "fp_plugin_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "measure.py").write_text(
        "from simbench.pairing import pair_sites\n\n"
        "def score():\n    from fp_plugin_pkg import helpers\n    return helpers.f()\n")
    (pkg / "helpers.py").write_text("def f():\n    return 1\n")
    (pkg / "unrelated.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    root = {"module": "fp_plugin_pkg.measure", "file": str(pkg / "measure.py")}
    files = code_files(root)
    assert {"fp_plugin_pkg", "fp_plugin_pkg.measure", "fp_plugin_pkg.helpers",
            "simbench.pairing", "simbench.api"} <= set(files)
    assert "fp_plugin_pkg.unrelated" not in files
    assert not any(name.startswith(("simbench.bench", "simbench.cli")) for name in files)
    assert "fp_plugin_pkg" not in sys.modules
    before = fingerprint(root)
    (pkg / "unrelated.py").write_text("X = 2  # edited\n")
    assert fingerprint(root) == before
    (pkg / "helpers.py").write_text("def f():\n    return 2\n")
    assert fingerprint(root) != before


def _checkpoint(where: Path) -> Path:
    where.mkdir(parents=True)
    for suffix in (".safetensors", ".json"):
        shutil.copy(ZOO / f"gru_multi_s1{suffix}", where / f"net{suffix}")
    return where / "net.safetensors"


def test_checkpoint_copied_to_another_path_keeps_its_key(recs: Path) -> None:
    """A checkpoint named by path (zoo = PATH or source = PATH) is identified by its content:
    a copy elsewhere gives the same jobs, a different config a different one."""
    a = _checkpoint(recs / "a")
    b = _checkpoint(recs / "elsewhere" / "b")
    assert system_identity(str(a)) == system_identity(str(b))
    assert system_identity(str(a)).startswith("checkpoint:sha256:")

    def keys(path: Path, key: str = "zoo") -> list[str]:
        text = spec_text(systems={"net": f'{{ {key} = "{path}", arch = "ckpt" }}'})
        text = text.replace('within = "seed_grus"', 'pairs = [["net", "gru1"]]')
        spec = load_spec(write_spec(recs, text, name=f"s-{path.parent.name}.toml"))
        return sorted(j.key for j in expand(spec) if "net" in j.systems)

    assert keys(a) == keys(b) == keys(b, "source")
    assert len(keys(a)) == 2  # net vs gru1 at two sites
    side = json.loads(b.with_suffix(".json").read_text())
    side["config"]["hidden"] = side["config"].get("hidden", 0) + 1
    b.with_suffix(".json").write_text(json.dumps(side))
    assert system_identity(str(a)) != system_identity(str(b))


def test_old_keys_still_match_so_old_stores_keep_their_results(recs: Path) -> None:
    """The key scheme of recordings and installed plugins is unchanged: a result stored under
    the old scheme is found (and reported stale, as its code is unknown)."""
    spec = load_spec(write_spec(recs))
    jobs = prepare(spec)
    job = jobs[0]
    payload = {"measure": job.measure, "params": job.params,
               "systems": [system_identity(s) for s in job.sources],
               "site": job.site, "task": job.task, "seed": job.seed, "code": job.code_version}
    from simbench.bench.jobs import job_key

    assert job_key(payload) == job.key
    assert job.code_version.endswith("spec-file -")  # a .py plugin: its code is fingerprinted
