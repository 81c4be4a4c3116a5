"""Frictions a new user met (issue 23, item 7), each pinned by a test that failed before."""

from __future__ import annotations

import io
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from bench_helpers import spec_text, write_spec

from simbench.cli import main
from simbench.errors import TaskError
from simbench.tasks.continuation import read_prompts

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ("# held-out sentence starts\n"
           "on monday the baker met the driver at the market and\n"
           "\n"
           "the teacher saw the farmer at the river and\n"
           "   # an indented comment\n")


# ---- prompts files -----------------------------------------------------------------------------
def test_prompt_comments_are_not_prompts(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text(PROMPTS)
    assert read_prompts(path) == ["on monday the baker met the driver at the market and",
                                  "the teacher saw the farmer at the river and"]


@pytest.mark.slow
def test_out_of_vocabulary_words_are_refused_not_unk() -> None:
    from simbench.api import zoo_lm_dir
    from simbench.lm.system import LMSystem

    lm = LMSystem.from_dir(zoo_lm_dir("lm_toxic_s1"))
    assert len(lm.encode(["on monday the baker met the driver"])[0]) == 8  # [BOS] + 7 words
    with pytest.raises(TaskError) as err:
        lm.encode(["on monday the zorblax met the qwerty"])
    assert "'zorblax', 'qwerty'" in str(err.value) and "[UNK]" in str(err.value)


# ---- a language model paired with its own kind of recording ---------------------------------------
@pytest.mark.slow
def test_a_language_model_pairs_with_a_recording_of_its_prompts(tmp_path: Path) -> None:
    """`simbench score cka lm_nontoxic_s1 lm_toxic_s1.nc` records the model on the file's own
    prompts (its tokens, through the model's tokenizer), not a counting task's sequences: the
    same value as scoring the two models on those prompts, and 1 against itself."""
    from simbench import score

    prompts = tmp_path / "p.txt"
    prompts.write_text(PROMPTS)
    rec = tmp_path / "toxic.nc"
    assert main(["record", "lm_toxic_s1", "--prompts", str(prompts), "--out", str(rec),
                 "--sites", "transformer.h.2"]) == 0
    site = "transformer.h.2"
    paired = score("cka", "lm_nontoxic_s1", str(rec), site=site)
    direct = score("cka", "lm_nontoxic_s1", "lm_toxic_s1", site=site, prompts=str(prompts))
    assert paired.n_samples == direct.n_samples == 22  # 2 prompts: [BOS] + 12 and + 9 words
    assert paired.value == pytest.approx(direct.value, abs=1e-5)
    assert score("cka", "lm_toxic_s1", str(rec), site=site).value == pytest.approx(1.0, abs=1e-5)


# ---- the simulated animal is public; TorchSystem.run gives plain arrays ---------------------------
def test_the_simulated_animal_is_public_and_run_needs_no_detach() -> None:
    import simbench
    from simbench.simulate import simulate_animal

    net = simbench.TorchSystem.from_zoo("gru_multi_s1")
    stim = net.task_def.sample(30, 7, counts="all")
    _, acts = net.run(stim.tokens, record=("hidden",))
    assert not acts["hidden"].requires_grad
    assert np.asarray(acts["hidden"]).shape[:2] == stim.tokens.shape
    animal = simbench.simulate_animal(net, net.task_def, stim, seed=0, units=12)
    again = simulate_animal(net, net.task_def, stim, seed=0, units=12)
    data = animal.site("hidden")
    assert data.sizes["unit"] == 12 and data.sizes["stimulus"] == 30
    assert "count" in data.coords and "token" in data.coords
    assert np.array_equal(data["activity"].values, again.site("hidden")["activity"].values)
    assert data["activity"].values.sum() > 0


# ---- progress bars and signals -------------------------------------------------------------------
def test_progress_bars_only_on_a_terminal() -> None:
    from simbench.runtime import progress_shown

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert progress_shown(Tty()) is True
    assert progress_shown(io.StringIO()) is ("ipykernel" in sys.modules)


def _done(path: Path) -> int:
    try:
        conn = sqlite3.connect(path)
        try:
            return conn.execute("SELECT count(*) FROM results WHERE status = 'done'").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


@pytest.fixture
def recs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from bench_helpers import make_recordings

    make_recordings(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.slow
def test_sigterm_stops_a_run_like_ctrl_c(recs: Path) -> None:
    spec = write_spec(recs, spec_text(
        measures='[measures.lin]\nmeasure = "bench_linear"\nsleep = 0.12\nn_boot = 2'))
    store = recs / "s.sqlite"
    code = "import sys; from simbench.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-W", "ignore", "-c", code, "bench", "run",
                             str(spec), "--store", str(store), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while _done(store) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "interrupted: finished results are kept" in out and "Traceback" not in err
    assert 2 <= _done(store) < 18


# ---- the shipped results stores --------------------------------------------------------------------
def test_bench_run_never_writes_a_shipped_store(recs: Path, capsys: pytest.CaptureFixture,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from simbench import resources

    shipped = recs / "shipped"
    shipped.mkdir()
    (shipped / "mine.sqlite").write_bytes(b"")
    monkeypatch.setattr(resources, "results_dir", lambda: shipped)
    spec = write_spec(recs, spec_text(measures='[measures.lin]\nmeasure = "bench_linear"'))
    assert main(["bench", "run", str(spec), "--store", str(shipped / "mine.sqlite"),
                 "--no-progress"]) == 0
    got = capsys.readouterr()
    assert (shipped / "mine.sqlite").read_bytes() == b""  # untouched
    new = Path("simbench-results") / "test.sqlite"  # the spec's name
    assert "is never written" in got.err and str(new) in got.err
    assert _done(recs / new) == 18


# ---- counterfactual values the task cannot produce -------------------------------------------------
@pytest.fixture
def evidence_module(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "example_task_plugin"))
    import simbench_evidence_task

    return simbench_evidence_task


def _clipped_task(module: object) -> object:
    """The tutorial's evidence task answering with the balance itself, ``n0``..``n8`` (its
    trials reach 0..8), written as ``n{min(diff, 9)}``: an author's fixed-length, clipped
    answer. Counterfactuals can reach 9..12, which all come out as ``n9``: wrong labels."""
    evidence = module.Evidence

    class Clipped(evidence):  # type: ignore[misc, valid-type]
        name = "clipped_evidence"
        vocab = (*evidence.vocab, *(f"n{i}" for i in range(10)))

        def _answer(self, diff: np.ndarray) -> np.ndarray:
            clipped = np.clip(np.asarray(diff), 0, 9)
            return np.asarray([self.token_id(f"n{int(d)}") for d in np.ravel(clipped)]
                              ).reshape(np.shape(clipped))

    return Clipped()


def test_check_finds_counterfactual_values_the_task_cannot_produce(evidence_module: object
                                                                   ) -> None:
    from simbench.tasks.validation import check_task

    assert check_task(evidence_module.Evidence) == []  # the tutorial's task is fine
    problems = check_task(_clipped_task(evidence_module))
    assert len(problems) == 1 and problems[0].method == "counterfactual"
    assert "never produces" in problems[0].message and "'n9'" in problems[0].message


def test_run_time_redraws_counterfactuals_the_task_cannot_produce(evidence_module: object
                                                                  ) -> None:
    from simbench.tasks.responses import response_table

    task = _clipped_task(evidence_module)
    stim = task.sample(400, 3, counts="all")
    allowed = task.intervenable_positions(stim.tokens)
    rng = np.random.default_rng(0)
    tgt, src = rng.integers(0, 400, 1000), rng.integers(0, 400, 1000)
    tpos = np.array([rng.choice(np.flatnonzero(allowed[r])) for r in tgt])
    spos = np.array([rng.choice(np.flatnonzero(allowed[r])) for r in src])
    cf, mask = task.counterfactual(stim.tokens[tgt], tpos, stim.tokens[src], spos,
                                   variable="diff")
    table = response_table(task)
    keep = table.producible(cf, mask)
    answers = [task.vocab[a] for a in cf[:, -2]]  # the answer, before `done`
    assert (~keep).sum() == answers.count("n9") > 0  # exactly the clipped labels
    assert response_table(task) is table  # built once per task
