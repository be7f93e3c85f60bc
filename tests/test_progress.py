"""Progress bars are passed in, never printed by algorithms: a recording Progress sees every long step with
the right totals (the hybrid's bar counts its candidates only, and ends on the result's kept count), and the
terminal bars stay silent under --quiet or when stderr is not a terminal."""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass, field
from typing import Any

import pytest

from acdc_compare.algorithms.eap import eap_ig, eap_ig_scores, faithfulness_of_scores
from acdc_compare.algorithms.hybrid import hybrid
from acdc_compare.algorithms.problem import make_problem
from acdc_compare.backends import make_patcher
from acdc_compare.progress import as_progress, silent, stage_line, terminal_progress
from conftest import make_tiny, tiny_task


@dataclass
class RecordedBar:
    desc: str
    total: int
    unit: str
    initial: int
    updates: list[int] = field(default_factory=list)
    postfixes: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False

    def update(self, n: int = 1) -> None:
        assert not self.closed, f"{self.desc}: update after close"
        self.updates.append(n)

    def set_postfix(self, **values: Any) -> None:
        self.postfixes.append(values)

    def close(self) -> None:
        self.closed = True

    @property
    def done(self) -> int:
        return self.initial + sum(self.updates)


class Recorder:
    """A Progress that records every bar it hands out."""

    def __init__(self) -> None:
        self.bars: list[RecordedBar] = []

    def __call__(self, desc: str, total: int, *, unit: str = "it", initial: int = 0) -> RecordedBar:
        bar = RecordedBar(desc, total, unit, initial)
        self.bars.append(bar)
        return bar

    def named(self, desc: str) -> list[RecordedBar]:
        return [b for b in self.bars if b.desc == desc]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def problem():
    model = make_tiny("gpt2")
    return make_problem(make_patcher(model), tiny_task(n=4), metric="kl")


@pytest.mark.parametrize("k", [10, 40])
def test_hybrid_bar_counts_its_candidates_and_ends_on_the_results_kept_count(problem, k):
    rec = Recorder()
    found = hybrid(problem, 0.002, k=k, steps=3, progress=rec)
    (ig,) = rec.named("EAP-IG")
    assert ig.total == 3 and ig.done == 3 and ig.closed
    (bar,) = rec.named("ACDC")
    assert found.settings["n_candidates"] == k < problem.graph.n_edges
    assert bar.total == k and bar.initial == 0
    assert bar.done == k  # every candidate decided (tested, or removed untested behind a dead receiver)
    assert bar.postfixes[-1]["kept"] == found.n_kept and bar.closed


def test_resumed_bar_starts_at_the_replayed_candidates(problem, tmp_path):
    journal, prior = tmp_path / "j.jsonl", eap_ig_scores(problem, 2)
    partial = hybrid(problem, 0.002, k=30, prior=prior, journal=journal, max_tests=5)
    assert not partial.settings["complete"]
    rec = Recorder()
    found = hybrid(problem, 0.002, k=30, prior=prior, journal=journal, progress=rec)
    (bar,) = rec.bars  # EAP-IG is not rerun: the prior is given
    assert bar.total == 30 and bar.initial == found.settings["resumed_decisions"] >= 5
    assert bar.done == 30 and bar.postfixes[-1]["kept"] == found.n_kept


def test_eap_ig_reports_every_integration_step(problem):
    rec = Recorder()
    scores = eap_ig_scores(problem, 5, batch=2, progress=rec)
    (bar,) = rec.bars
    assert (bar.total, bar.updates, bar.closed) == (5, [2, 2, 1], True)
    rec_mask = Recorder()
    eap_ig_scores(problem, 4, path="mask", batch=3, progress=rec_mask)
    assert rec_mask.bars[0].updates == [3, 1]
    rec_circuit = Recorder()
    found = eap_ig(problem, top_n=10, steps=5, batch=2, progress=rec_circuit)
    assert rec_circuit.bars[0].updates == [2, 2, 1] and found.scores.tolist() == scores.tolist()


def test_curve_reports_its_circuits(problem):
    rec = Recorder()
    scores = eap_ig_scores(problem, 2)
    faithfulness_of_scores(problem, scores, (0.1, 0.3, 0.5), batch=1, progress=rec)
    (bar,) = rec.bars
    assert bar.desc == "curve" and bar.total == 3 and bar.updates == [1, 1, 1]


def test_terminal_bars_only_on_a_terminal():
    pipe, tty = io.StringIO(), FakeTerminal()
    for stream in (pipe, tty):
        bar = terminal_progress(stream)("ACDC", 10, unit="edge")
        bar.update(4)
        bar.set_postfix(kept=3)
        bar.close()
    assert pipe.getvalue() == "ACDC: 10 edges\n"  # one plain line per step where no bar can be drawn
    assert "ACDC" in tty.getvalue() and "kept=3" in tty.getvalue()


def test_progress_true_prints_one_line_per_step_when_stderr_is_not_a_terminal(problem, monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    hybrid(problem, 0.002, k=15, steps=2, progress=True)
    lines = err.getvalue().splitlines()
    assert lines[:1] == ["EAP-IG: 2 steps"] and any(line.startswith("ACDC: ") for line in lines)
    assert all("it/s" not in line and "%" not in line for line in lines)
    assert stage_line("ACDC", 120, "edge", initial=30) == "ACDC: 120 edges (30 already done)"


def test_as_progress():
    assert as_progress(False) is silent and as_progress(None) is silent
    rec = Recorder()
    assert as_progress(rec) is rec
    with pytest.raises(TypeError, match="progress must be"):
        as_progress("yes")  # type: ignore[arg-type]


def test_algorithms_write_nothing_to_stdout_or_stderr(problem, capfd):
    hybrid(problem, 0.002, k=15, steps=2, progress=False)
    eap_ig_scores(problem, 2)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


@pytest.mark.parametrize("argv_extra,tty,shows", [([], True, True), (["--quiet"], True, False), ([], False, False)])
def test_cli_bars_on_a_terminal_unless_quiet(tiny_dir, tmp_path, monkeypatch, capsys, argv_extra, tty, shows):
    from acdc_compare.cli import EXIT_OK, main

    err = FakeTerminal() if tty else io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    argv = ["discover", "--model", str(tiny_dir), "--task", "ioi", "--n-prompts", "4", "--method", "hybrid",
            "--k", "20", "--steps", "2", "--threshold", "0.01", "--out", str(tmp_path / "out"), *argv_extra]
    assert main(argv) == EXIT_OK
    text = err.getvalue()
    assert ("EAP-IG" in text and "ACDC" in text and "20/20" in text) == shows
    if not shows:
        assert "it/s" not in text and "edge/s" not in text and "20/20" not in text
        assert ("EAP-IG: 2 steps" in text and "ACDC: 20 edges" in text) == (not tty)  # piped: one line per step


def test_tasks_command_shows_a_bar_on_a_terminal_only(tiny_dir, monkeypatch, capsys):
    from acdc_compare.cli import EXIT_OK, main

    for err, shows in ((FakeTerminal(), True), (io.StringIO(), False)):
        monkeypatch.setattr(sys, "stderr", err)
        assert main(["tasks", "--model", str(tiny_dir), "--n", "4", "--names", "ioi", "pet-last"]) == EXIT_OK
        assert ("tasks" in err.getvalue() and "100%" in err.getvalue()) == shows
    assert "pet-last" in capsys.readouterr().out


def test_the_demo_experiment_reports_every_long_step(tiny_dir, tmp_path):
    from acdc_compare.experiment import ExperimentConfig, run_experiment

    rec = Recorder()
    config = ExperimentConfig(model=str(tiny_dir), k=20, n_prompts=4, n_eval=4, steps=2, progress=rec)
    result = run_experiment(config, tmp_path / "demo")
    descs = {b.desc for b in rec.bars}
    assert {"tasks", "EAP-IG", "learning masks", "ACDC", "curve", "attention analogy"} <= descs
    assert {f"head roles ({t})" for t in config.circuit_tasks} <= descs
    for bar in rec.bars:
        assert bar.closed and bar.done == bar.total, bar
    acdc_bars = rec.named("ACDC")
    n_edges = result.runs[config.task].circuit.n_edges  # a k of n_edges or more tests every edge
    assert [b.total for b in acdc_bars] == [r.circuit.settings["n_candidates"] for r in result.runs.values()]
    for t, bar in zip(config.circuit_tasks, acdc_bars):  # every edge, or at most the tested share of the top k
        k, tested = config.k_of(t), config.tested_of(t)
        if tested is None and k >= n_edges:
            assert bar.total == n_edges
        else:
            assert bar.total <= min(k, n_edges, n_edges if tested is None else tested)
    assert any(0 < b.total < n_edges for b in acdc_bars)
    assert [b.postfixes[-1]["kept"] for b in acdc_bars] == [r.circuit.n_kept for r in result.runs.values()]
