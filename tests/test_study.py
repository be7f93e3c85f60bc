"""The study (`acdc-compare study`, `run_study`) on a tiny random model: the results JSON's keys, which tasks
get circuits, the report led by the notes' table, resuming after a finished and after a killed run."""

import html
import json
import re
from dataclasses import replace

import pytest

from acdc_compare.cli import EXIT_OK, EXIT_USAGE, main
from acdc_compare.experiment import stages, study
from acdc_compare.experiment.study import (
    NOTES_COLUMNS,
    NOTES_TITLE,
    StudyConfig,
    circuit_tasks,
    run_study,
)
from acdc_compare.tasks.base import TaskError
from acdc_compare.tasks.evaluate import TaskEvaluation

TASKS = ("ioi", "pet-last", "pet-first", "opposites", "greater-than")
# the tiny model's answers are random: these accuracies decide the circuits instead (ioi, pet-last and
# opposites pass 0.8; pet-first is pet-last's disagreeing twin; greater-than gets none)
ACCURACY = {"ioi": 0.9, "pet-last": 0.85, "pet-first": 0.1, "opposites": 0.8, "greater-than": 0.5}
CIRCUITS = ["ioi", "pet-last", "pet-first", "opposites"]
ROW_KEYS = {"accuracy", "interval", "n_prompts", "logit_diff"}
CIRCUIT_KEYS = {"edges", "faithfulness", "held_out_faithfulness", "unseen_faithfulness", "movers",
                "shared_with_ioi", "chance", "seconds"}


def small(model) -> StudyConfig:
    return StudyConfig(model=str(model), tasks=TASKS, n_eval=8, k=40, tested=4, n_prompts=4, rank_prompts=2,
                       learn_steps=2, n_held_out=4)


@pytest.fixture
def set_accuracy(monkeypatch):
    """The accuracy table's evaluations, with ACCURACY's accuracies."""
    real = study.tasks_table

    def table(*args, **kwargs):
        return [replace(e, accuracy=ACCURACY[e.name]) for e in real(*args, **kwargs)]

    monkeypatch.setattr(study, "tasks_table", table)


@pytest.fixture
def discoveries(monkeypatch):
    """The tasks `stages.discover` is called on, in order; `fail_on` names one whose discovery raises."""
    real, calls = stages.discover, []

    def discover(task, *args, **kwargs):
        calls.append(task.name)
        if task.name == discover.fail_on:
            raise KeyboardInterrupt
        return real(task, *args, **kwargs)

    discover.fail_on = None
    monkeypatch.setattr(stages, "discover", discover)
    return calls, discover


def evaluation(name: str, accuracy: float) -> TaskEvaluation:
    return TaskEvaluation(name, 100, accuracy, 1.0, 0.1, 0.5, 1.0, 0.0)


def test_circuits_for_tasks_answered_and_for_every_disagreeing_twin():
    evals = {t: evaluation(t, a) for t, a in [("ioi", 0.97), ("pet-last", 0.76), ("pet-first", 0.28),
                                              ("poorer", 0.97), ("richer", 0.0), ("verb-last-2shot", 0.99),
                                              ("opposites", 0.8), ("analogy", 0.39)]}
    chosen = circuit_tasks(evals, 0.8)
    assert list(chosen) == ["ioi", "pet-first", "poorer", "richer", "verb-last-2shot", "opposites"]
    assert chosen["richer"].startswith("disagreeing twin of poorer")
    assert chosen["pet-first"].startswith("disagreeing twin of pet-last")  # whatever pet-last's accuracy
    assert "pet-last" not in chosen and "analogy" not in chosen  # answered < 80%, and no disagreeing twin
    assert list(circuit_tasks(evals, 0.7))[:3] == ["ioi", "pet-last", "pet-first"]


def test_bad_settings_are_refused_before_any_model_loads(no_model, tmp_path):
    with pytest.raises(TaskError, match="unknown study task.*'pet-lst'.*known tasks"):
        StudyConfig(tasks=("ioi", "pet-lst"))
    with pytest.raises(ValueError, match="unseen_seed"):
        StudyConfig(unseen_seed=2)
    with pytest.raises(ValueError, match="min_accuracy"):
        StudyConfig(min_accuracy=80)
    with pytest.raises(ValueError, match="listed twice"):
        StudyConfig(tasks=("ioi", "ioi"))
    with pytest.raises(ValueError, match="n_eval"):
        StudyConfig(n_eval=0)
    assert main(["study", "--tasks", "ioi", "nope", "--out", str(tmp_path)]) == EXIT_USAGE


def test_every_default_task_is_registered():
    from acdc_compare.tasks.registry import task_names

    assert set(StudyConfig().tasks) <= set(task_names()) and len(StudyConfig().tasks) == 19


CLI = ["--tasks", *TASKS, "--n-eval", "8", "--k", "40", "--tested", "4", "--n-prompts", "4", "--rank-prompts", "2",
       "--learn-steps", "2", "--n-held-out", "4", "--quiet"]


def test_study_writes_the_results_and_the_notes_table_then_resumes(tiny_dir, tmp_path, set_accuracy, discoveries,
                                                                   capsys):
    calls, _ = discoveries
    out, results = tmp_path / "out", tmp_path / "bench" / "study_cpu.json"
    (tmp_path / "bench").mkdir()
    assert main(["study", "--model", str(tiny_dir), *CLI, "--out", str(out), "--results", str(results)]) == EXIT_OK
    printed = capsys.readouterr().out
    assert calls == CIRCUITS
    for stage in ("accuracy table: 5 tasks", "accuracy table: greater-than 50%", "IOI's name movers:", "[1/4] ioi",
                  "[4/4] opposites: "):
        assert stage in printed
    data = json.loads(results.read_text())
    assert {"device", "model", "held_out_seed", "unseen_seed", "tasks", "total_seconds"} <= set(data)
    assert (data["held_out_seed"], data["unseen_seed"]) == (2, 7)
    assert list(data["tasks"]) == list(TASKS)
    for name, row in data["tasks"].items():
        assert ROW_KEYS <= set(row) and row["n_prompts"] == 8 and row["accuracy"] == ACCURACY[name]
        low, high = row["interval"]
        assert 0 <= low <= row["accuracy"] <= high <= 1
        assert (CIRCUIT_KEYS <= set(row)) == (name in CIRCUITS)
        assert (out / "study" / f"{name}.json").is_file() == (name in CIRCUITS)
    rows = data["tasks"]
    assert rows["pet-first"]["reason"].startswith("disagreeing twin of pet-last")
    assert rows["greater-than"]["circuit"] is None and "50% < 80%" in rows["greater-than"]["no_circuit"]
    assert rows["opposites"]["movers"] is None and rows["opposites"]["mover_note"] == "answer not in the prompt"
    assert isinstance(rows["pet-last"]["movers"], list) and rows["pet-last"]["chance"] >= 0
    assert isinstance(rows["pet-last"]["given_movers"], list)  # toward the answer the model gives, too
    assert set(rows["pet-last"]["mover_intervals"]) <= set(rows["pet-last"]["movers"])
    for name in CIRCUITS:
        assert rows[name]["edges"] <= 40 and rows[name]["unseen_faithfulness"] is not None
    assert "pet position: " in rows["pet-last"]["order_vs_meaning"]

    page = (out / "study_report.html").read_text()
    first = page.index("<section>")
    assert re.findall(r"<h2[^>]*>(.*?)</h2>", page)[0] == NOTES_TITLE
    head = page[first:page.index("</thead>", first)]
    assert re.findall(r"<th>(.*?)</th>", head) == [html.escape(c) for c in NOTES_COLUMNS]
    assert "answer not in the prompt" in page[first:page.index("</table>", first)]
    table = printed[printed.index("task "):].splitlines()
    assert table[0].split()[:3] == ["task", "answer", "kind"]
    assert [line.split()[0] for line in table[2:2 + len(TASKS)]] == list(TASKS)

    lines: list[str] = []
    again = run_study(small(tiny_dir), out, log=lines.append, results_path=results)
    assert calls == CIRCUITS  # nothing rediscovered
    assert f"resuming: {len(CIRCUITS)} tasks done ({', '.join(CIRCUITS)})" in lines
    assert "accuracy table: 5 tasks read back from" in lines[1] and not any("on 8 prompts" in x for x in lines)
    assert again.resumed == CIRCUITS and again.discovered == []
    assert again.rows == json.loads(results.read_text())["tasks"] == rows
    with pytest.raises(ValueError, match="other settings \\(n_eval differ"):
        run_study(replace(small(tiny_dir), n_eval=9), out)


def test_a_killed_study_keeps_the_finished_task_and_resumes_from_the_next(tiny_dir, tmp_path, set_accuracy,
                                                                          discoveries):
    calls, discover = discoveries
    real = study.tasks_table

    def table(model, names, **kwargs):
        if names == ["pet-first"]:
            raise KeyboardInterrupt
        return real(model, names=names, **kwargs)

    with pytest.MonkeyPatch.context() as patch:  # killed while evaluating the third task's accuracy
        patch.setattr(study, "tasks_table", table)
        with pytest.raises(KeyboardInterrupt):
            run_study(small(tiny_dir), tmp_path)
    assert list(json.loads((tmp_path / "study" / "accuracy.json").read_text())["tasks"]) == ["ioi", "pet-last"]
    discover.fail_on = "pet-last"
    with pytest.raises(KeyboardInterrupt):
        run_study(small(tiny_dir), tmp_path)
    assert calls == ["ioi", "pet-last"]
    assert (tmp_path / "study" / "ioi.json").is_file() and (tmp_path / "study" / "circuits" / "ioi.json").is_file()
    assert not (tmp_path / "study" / "pet-last.json").exists()
    saved = json.loads((tmp_path / "study" / "ioi.json").read_text())

    discover.fail_on = None
    calls.clear()
    lines: list[str] = []
    result = run_study(small(tiny_dir), tmp_path, log=lines.append)
    assert "resuming: 1 tasks done (ioi)" in lines and "accuracy table: 5 tasks read back" in lines[1]
    assert calls == CIRCUITS[1:] and result.resumed == ["ioi"] and result.discovered == CIRCUITS[1:]
    assert result.rows["ioi"]["edges"] == saved["edges"]
    assert result.results_path == tmp_path / "study_cpu.json"


def test_study_has_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["study", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: acdc-compare study" in out and "--unseen-seed" in out and "--results" in out
