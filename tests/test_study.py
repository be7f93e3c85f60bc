"""The study (`acdc-compare study`, `run_study`) on a tiny random model: the results JSON's keys, which tasks
get circuits, each task's frontier of edge budgets, the report led by the notes' table, resuming after a
finished and after a killed run."""

import html
import json
import math
import re
import time
from dataclasses import replace

import pytest

from acdc_compare.api import get_model, tokenizer
from acdc_compare.cli import EXIT_OK, EXIT_USAGE, main
from acdc_compare.experiment import stages, study, study_frontier
from acdc_compare.experiment.study import (
    NOTES_COLUMNS,
    NOTES_TITLE,
    StudyConfig,
    circuit_tasks,
    run_study,
)
from acdc_compare.roles.assign import MoverSet
from acdc_compare.tasks.base import TaskError
from acdc_compare.tasks.registry import held_out_wordings
from acdc_compare.tasks.evaluate import TaskEvaluation
from acdc_compare.tasks.registry import make_task

TASKS = ("ioi", "pet-last", "pet-first", "opposites", "greater-than")
# the tiny model's answers are random: these accuracies decide the circuits instead (ioi, pet-last and
# opposites pass 0.8; pet-first is pet-last's disagreeing twin; greater-than gets none)
ACCURACY = {"ioi": 0.9, "pet-last": 0.85, "pet-first": 0.1, "opposites": 0.8, "greater-than": 0.5}
CIRCUITS = ["ioi", "pet-last", "pet-first", "opposites"]
ROW_KEYS = {"accuracy", "interval", "n_prompts", "logit_diff"}
CIRCUIT_KEYS = {"edges", "faithfulness", "validation_faithfulness", "held_out_faithfulness", "movers",
                "shared_with_ioi", "chance", "seconds", "frontier", "budget_share", "meets_targets"}


def small(model, **changes) -> StudyConfig:
    """One budget: whatever the tiny model's faithfulness, it is the one kept."""
    return StudyConfig(**{**dict(model=str(model), tasks=TASKS, n_eval=8, edge_shares=(0.1,), tested=4, n_prompts=4, rank_prompts=2, learn_steps=2,
                                 n_held_out=4), **changes})


@pytest.fixture
def set_accuracy(monkeypatch):
    """The accuracy table's evaluations, with ACCURACY's accuracies."""
    real = study.tasks_table

    def table(*args, **kwargs):
        return [replace(e, accuracy=ACCURACY[e.name]) for e in real(*args, **kwargs)]

    monkeypatch.setattr(study, "tasks_table", table)


@pytest.fixture
def discoveries(monkeypatch):
    """The tasks `stages.discover_on` is called on, in order, and the edge budgets (`budgets`: (task, k));
    `fail_on` names a (task, budget index) whose discovery raises, a task name alone its first budget."""
    real, calls = stages.discover_on, []

    def discover(problem, ranked_on, prior, config, bars):
        name = problem.task.name
        discover.budgets.append((name, config.k))
        step = sum(1 for t, _ in discover.budgets if t == name) - 1
        if step == 0:
            calls.append(name)
        if discover.fail_on in (name, (name, step)):
            raise KeyboardInterrupt
        return real(problem, ranked_on, prior, config, bars)

    discover.fail_on = None
    discover.budgets = []
    monkeypatch.setattr(stages, "discover_on", discover)
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
    with pytest.raises(ValueError, match="held_out_seed"):
        StudyConfig(held_out_seed=2)
    with pytest.raises(ValueError, match="edge_shares"):
        StudyConfig(edge_shares=(0.05, 0.02))
    with pytest.raises(ValueError, match="edge_shares"):
        StudyConfig(edge_shares=(0.02, 1.5))
    with pytest.raises(ValueError, match="target"):
        StudyConfig(target=85)
    with pytest.raises(ValueError, match="min_accuracy"):
        StudyConfig(min_accuracy=80)
    with pytest.raises(ValueError, match="listed twice"):
        StudyConfig(tasks=("ioi", "ioi"))
    with pytest.raises(ValueError, match="n_eval"):
        StudyConfig(n_eval=0)
    assert main(["study", "--tasks", "ioi", "nope", "--out", str(tmp_path)]) == EXIT_USAGE


def test_every_default_task_is_registered():
    from acdc_compare.tasks.registry import task_names

    tasks = StudyConfig().tasks
    assert set(tasks) <= set(task_names()) and len(tasks) == 25
    assert {"verb-last", "colour-of-first", "material-of-last"} <= set(tasks)


CLI = ["--tasks", *TASKS, "--n-eval", "8", "--edge-shares", "0.1", "--tested", "4", "--n-prompts", "4", "--rank-prompts", "2",
       "--learn-steps", "2", "--n-held-out", "4", "--quiet"]


def test_study_writes_the_results_and_the_notes_table_then_resumes(tiny_dir, tmp_path, set_accuracy, discoveries,
                                                                   capsys, monkeypatch):
    calls, _ = discoveries
    # the tiny model's IOI has no name movers: give it one, for the tasks whose circuits have no movers either
    monkeypatch.setattr(study, "movers_of", lambda *_, **__: MoverSet("ioi", ("a1.h0",)))
    out, results = tmp_path / "out", tmp_path / "bench" / "study_cpu.json"
    (tmp_path / "bench").mkdir()
    assert main(["study", "--model", str(tiny_dir), *CLI, "--out", str(out), "--results", str(results)]) == EXIT_OK
    printed = capsys.readouterr().out
    assert calls == CIRCUITS
    for stage in ("accuracy table: 5 tasks", "accuracy table: greater-than 50%", "IOI's name movers:", "[1/4] ioi",
                  "[4/4] opposites: "):
        assert stage in printed
    data = json.loads(results.read_text())
    assert {"device", "model", "validation_seed", "held_out_seed", "tasks", "total_seconds"} <= set(data)
    assert (data["validation_seed"], data["held_out_seed"]) == (2, 7)
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
    n_edges = budgets_of(tiny_dir)
    for name in CIRCUITS:
        row = rows[name]
        assert row["budget_share"] == 0.1 and len(row["frontier"]) == 1
        assert row["edges"] <= n_edges[0.1] == row["frontier"][0]["k"]
        assert row["held_out_faithfulness"] is not None and row["circuit"] == f"circuits/{name}@0.1.json"
        assert row["faithfulness"] == row["frontier"][0]["faithfulness"]
        assert list(row["wording_faithfulness"]) == [str(w) for w in held_out_wordings(name)] != []
    assert "pet position: " in rows["pet-last"]["order_vs_meaning"]
    assert "span_reads" not in rows["opposites"]  # no mover claim, no span reads
    for name in ("ioi", "pet-last", "pet-first"):
        reads, movers = rows[name]["span_reads"], rows[name]["movers"]
        assert reads["heads"] == (movers or ["a1.h0"])
        assert reads["heads_from"] == ("the task's movers" if movers else "ioi's name movers")
        assert [r["span"] for r in reads["reads"]] == list(make_task(name, tokenizer(get_model(str(tiny_dir))), n=4).span_schema().names)
        assert all(r["n"] >= 1 for r in reads["reads"]) and reads["verdict"]

    page = (out / "study_report.html").read_text()
    first = page.index("<section>")
    assert re.findall(r"<h2[^>]*>(.*?)</h2>", page)[0] == NOTES_TITLE
    head = page[first:page.index("</thead>", first)]
    assert re.findall(r"<th>(.*?)</th>", head) == [html.escape(c) for c in NOTES_COLUMNS]
    assert "answer not in the prompt" in page[first:page.index("</table>", first)]
    reads_section = page[page.index("From which span the movers read the answer"):]
    assert "ioi: the known story" in reads_section and "pet position: in pet-last (order agrees)" in reads_section
    notes = (out / "study_notes.md").read_text().splitlines()
    assert notes[0] == "| " + " | ".join(NOTES_COLUMNS) + " |" and len(notes) == 2 + len(TASKS)
    assert notes[2].startswith("| ioi | name | ") and notes == study.notes_markdown(data).splitlines()
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
    assert (tmp_path / "study" / "ioi.json").is_file() and (tmp_path / "study" / "circuits" / "ioi@0.1.json").is_file()
    assert not (tmp_path / "study" / "pet-last.json").exists()
    saved = json.loads((tmp_path / "study" / "ioi.json").read_text())

    discover.fail_on = None
    calls.clear()
    discover.budgets.clear()
    lines: list[str] = []
    result = run_study(small(tiny_dir), tmp_path, log=lines.append)
    assert "resuming: 1 tasks done (ioi)" in lines and "accuracy table: 5 tasks read back" in lines[1]
    assert calls == CIRCUITS[1:] and result.resumed == ["ioi"] and result.discovered == CIRCUITS[1:]
    assert result.rows["ioi"]["edges"] == saved["edges"]
    assert result.results_path == tmp_path / "study_cpu.json"


def budgets_of(tiny_dir) -> dict[float, int]:
    from acdc_compare.backends import load_model, model_config
    from acdc_compare.graph import Graph

    n = Graph.from_model_config(model_config(load_model(str(tiny_dir)))).n_edges
    return {share: study.budget_of(share, n) for share in (0.1, 0.2)}


def test_budgets_are_tried_in_order_until_one_meets_the_targets_and_a_killed_ladder_resumes(
        tiny_dir, tmp_path, set_accuracy, discoveries, monkeypatch):
    _, discover = discoveries
    monkeypatch.setattr(study_frontier, "meets_targets", lambda step, config: step["edge_share"] == 0.2)
    # learn_from 0: masks are learned at the first budget whatever EAP-IG's top edges keep at the second
    config = small(tiny_dir, tasks=("ioi", "greater-than"), edge_shares=(0.1, 0.2), learn_from=0.0)
    k = budgets_of(tiny_dir)
    discover.fail_on = ("ioi", 1)  # killed while trying the second budget
    with pytest.raises(KeyboardInterrupt):
        run_study(config, tmp_path)
    assert (tmp_path / "study" / "frontier" / "ioi@0.1.json").is_file()
    assert (tmp_path / "study" / "frontier" / "ioi-eap-ig.json").is_file()  # the cheap frontier, first
    assert not (tmp_path / "study" / "ioi.json").exists()
    discover.fail_on, discover.budgets = None, []
    row = run_study(config, tmp_path).rows["ioi"]
    assert discover.budgets == [("ioi", k[0.2])]  # the first budget was read back, not rediscovered
    assert [s["edge_share"] for s in row["frontier"]] == [0.1, 0.2] and row["budget_share"] == 0.2
    assert row["meets_targets"] and row["edges"] <= k[0.2] and row["circuit"] == "circuits/ioi@0.2-eap-ig.json"
    # EAP-IG's top edges met the targets at 20%: ranked by EAP-IG there, no learning
    assert row["ranking"] == "eap-ig" and [r["k"] for r in row["eap_ig_frontier"]] == [k[0.1], k[0.2]]

    monkeypatch.setattr(study_frontier, "meets_targets", lambda step, config: False)
    discover.budgets = []
    other = run_study(config, tmp_path / "none").rows["ioi"]
    # learned masks at 10%; EAP-IG's top edges reached the targets nowhere: learned masks at the largest budget
    assert [k for _, k in discover.budgets] == [k[0.1], k[0.2]]
    assert [s["ranking"] for s in other["frontier"]] == ["learned", "learned"]
    best = max(other["frontier"], key=lambda s: -math.inf if s["validation_faithfulness"] is None
               else s["validation_faithfulness"])
    assert not other["meets_targets"] and other["budget_share"] == best["edge_share"]
    assert "targets not reached" in study.notes_rows({"ioi": {**other, "accuracy": 0.9, "n_prompts": 8,
                                                                "answer_kind": "name", "order_vs_meaning": None}},
                                                       "ioi")[0][4]
    discover.budgets = []
    far = run_study(replace(config, learn_from=1.0), tmp_path / "far").rows["ioi"]
    assert [k for _, k in discover.budgets] == [k[0.2]]  # EAP-IG nowhere near at 10%: no learning there
    assert [s["edge_share"] for s in far["frontier"]] == [0.2]

    # EAP-IG's top edges meet the targets at 20%, its hybrid there does not: learned masks are tried there next
    monkeypatch.setattr(study_frontier, "meets_targets",
                        lambda step, config: step.get("ranking") != "eap-ig" and step["edge_share"] == 0.2)
    discover.budgets = []
    third = run_study(config, tmp_path / "eap-ig").rows["ioi"]
    assert [k for _, k in discover.budgets] == [k[0.1], k[0.2], k[0.2]]
    assert [s["ranking"] for s in third["frontier"]] == ["learned", "eap-ig", "learned"]
    assert third["ranking"] == "learned" and third["circuit"] == "circuits/ioi@0.2.json"

    # EAP-IG's top edges meet the targets at the first budget: its hybrid there, nothing learned
    monkeypatch.setattr(study_frontier, "meets_targets", lambda step, config: True)
    discover.budgets = []
    first = run_study(config, tmp_path / "first").rows["ioi"]
    assert [k for _, k in discover.budgets] == [k[0.1]] and first["ranking"] == "eap-ig"
    assert [r["k"] for r in first["eap_ig_frontier"]] == [k[0.1]]  # the budgets above decide nothing: not measured


def test_masks_are_learned_at_the_first_budget_where_eap_igs_second_keeps_enough_on_both_prompt_sets():
    config = StudyConfig(learn_from=0.78)

    def row(share, f, v):
        return {"edge_share": share, "faithfulness": f, "validation_faithfulness": v}

    assert study_frontier.learning_pays([row(0.02, 0.64, 0.74), row(0.05, 0.82, 0.85)], config)  # IOI's
    assert not study_frontier.learning_pays([row(0.02, 0.74, 0.66), row(0.05, 0.83, 0.76)], config)  # validation
    assert not study_frontier.learning_pays([row(0.02, 0.7, 0.7), row(0.05, 0.77, 0.9)], config)  # in-sample
    assert not study_frontier.learning_pays([row(0.02, 0.9, 0.9)], config)  # the first budget meets the targets
    assert not study_frontier.learning_pays([row(0.02, 0.5, 0.5), row(0.05, None, 0.9)], config)
    assert study_frontier.learning_pays([row(0.02, 0.5, 0.5), row(0.05, 0.5, 0.5)], replace(config, learn_from=0.5))


def test_a_fresh_study_counts_each_stage_once(tiny_dir, tmp_path, set_accuracy, monkeypatch):
    real = stages.discover_on

    def slow(*args):
        time.sleep(1.0)
        return real(*args)

    monkeypatch.setattr(stages, "discover_on", slow)
    result = run_study(small(tiny_dir, tasks=("ioi", "greater-than")), tmp_path)
    assert 1.0 <= result.rows["ioi"]["seconds"] <= result.total_seconds <= result.seconds


def test_a_stopped_study_leaves_its_results_so_far(tiny_dir, tmp_path, set_accuracy, discoveries):
    _, discover = discoveries
    discover.fail_on = "pet-last"
    with pytest.raises(KeyboardInterrupt):
        run_study(small(tiny_dir), tmp_path)
    data = json.loads((tmp_path / "study_cpu.json").read_text())
    assert not data["complete"] and data["pending"] == CIRCUITS[1:]
    assert data["tasks"]["ioi"]["edges"] > 0 and data["tasks"]["pet-last"]["circuit"] is None
    assert data["tasks"]["pet-last"]["no_circuit"].startswith("pending")
    assert "pending" in (tmp_path / "study_notes.md").read_text()
    discover.fail_on = None
    assert json.loads(run_study(small(tiny_dir), tmp_path).results_path.read_text())["complete"]


def test_study_has_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["study", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: acdc-compare study" in out and "--validation-seed" in out and "--edge-shares" in out
