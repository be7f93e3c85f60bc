"""The comparison study in one resumable call (`run_study`, `acdc-compare study`): every task of the notes
evaluated on `n_eval` clean prompts with its 95% Wilson interval; a circuit (the demo's hybrid, candidates ranked
by EAP-IG or by learned masks) for each task the model answers at least `min_accuracy` of the time and for the
disagreeing twin of each order-vs-meaning pair whose agreeing twin it answers that well; each circuit's
edge budget chosen on a frontier (`study_frontier`: the smallest share of the edges whose circuit keeps the target
faithfulness on its discovery prompts and on `validation_seed`'s); that circuit's faithfulness on
`held_out_seed`'s prompts (never used for any choice); its movers set against IOI's name movers and chance.

Everything a run finishes lands in OUT/study as plain JSON (settings.json, accuracy.json, frontier/TASK@SHARE.json
per budget tried, circuits/TASK@SHARE.json, TASK.json per circuit task): a rerun with the same OUT skips what is
there, so a killed run loses at most the budget in progress. Prints nothing: `log` gets one line per stage and task."""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from acdc_compare.api import get_model, prepare
from acdc_compare.backends import model_name
from acdc_compare.backends.transformer_lens import tokenizer as model_tokenizer
from acdc_compare.circuit import Circuit
from acdc_compare.experiment import stages
from acdc_compare.experiment.config import ExperimentConfig
from acdc_compare.experiment.stages import Log
from acdc_compare.experiment.study_config import (
    EDGE_SHARES,
    NO_MOVER_CLAIM,
    STUDY_TASKS,
    StudyConfig,
    check_settings,
    json_value,
    read_json,
    write_json,
)
from acdc_compare.experiment.study_frontier import budget_of, frontier, meets_targets
from acdc_compare.experiment.study_table import (
    NOTES_COLUMNS,
    NOTES_TITLE,
    format_notes_table,
    notes_markdown,
    notes_rows,
    report_sections,
)
from acdc_compare.export import load_circuit
from acdc_compare.files import atomic_write
from acdc_compare.fmt import num
from acdc_compare.movers import MoverOverlap, circuit_movers
from acdc_compare.progress import as_progress
from acdc_compare.report import write_report
from acdc_compare.roles import score_heads
from acdc_compare.roles.assign import MoverSet, movers_of
from acdc_compare.span_reads import span_reads
from acdc_compare.tasks.evaluate import TaskEvaluation
from acdc_compare.tasks.registry import (
    ORDER_MEANING_PAIRS,
    held_out_wordings,
    make_task,
    task_spec,
    tasks_table,
    verdict,
)


@dataclass
class StudyResult:
    """What `run_study` wrote and found: one row per task (the results JSON's "tasks"), the notes' table as
    plain text, and which circuit tasks were found by this run and which read back from an earlier one."""

    out_dir: Path
    results_path: Path
    report: Path
    rows: dict[str, dict[str, Any]]
    table: str
    resumed: list[str] = field(default_factory=list)
    discovered: list[str] = field(default_factory=list)
    seconds: float = 0.0  # this run's wall time
    total_seconds: float = 0.0  # the study's, over every run that contributed


def circuit_tasks(evals: dict[str, TaskEvaluation], min_accuracy: float) -> dict[str, str]:
    """The tasks that get a circuit, in table order, each with why: answered >= `min_accuracy`, or the
    disagreeing twin of an order-vs-meaning pair (the issue's rule: where order and meaning disagree, what the
    model does instead is explained whatever its accuracy)."""
    why = {t: f"answered >= {min_accuracy:.0%}" for t, e in evals.items() if e.accuracy >= min_accuracy}
    for pair in ORDER_MEANING_PAIRS:
        if pair.disagree_task in evals and pair.disagree_task not in why:
            why[pair.disagree_task] = f"disagreeing twin of {pair.agree_task} ({pair.name})"
    return {t: why[t] for t in evals if t in why}


def pair_verdicts(name: str, evals: dict[str, TaskEvaluation]) -> str:
    """'pair: verdict' for every order-vs-meaning pair holding `name` whose two tasks were evaluated."""
    found = [f"{p.name}: {verdict(evals[p.agree_task], evals[p.disagree_task])}" for p in ORDER_MEANING_PAIRS
             if name in (p.agree_task, p.disagree_task) and p.agree_task in evals and p.disagree_task in evals]
    return "; ".join(found)


def device_label(device: torch.device) -> str:
    """The GPU's name, or the CPU's model and the threads torch uses."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    label = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                label = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{label} ({torch.get_num_threads()} threads)"


def evaluate_accuracy(model: Any, config: StudyConfig, folder: Path, log: Log) -> tuple[dict[str, TaskEvaluation],
                                                                                      float]:
    """Every task's accuracy and logit difference on `n_eval` clean prompts (no KL: half the forwards), and the
    seconds they took. accuracy.json is rewritten after each task, so a rerun evaluates only the tasks it lacks."""
    path = folder / "accuracy.json"
    saved = read_json(path) if path.is_file() else {"tasks": {}, "seconds": {}}
    evals = {t: TaskEvaluation(**e) for t, e in saved["tasks"].items() if t in config.tasks}
    seconds = {t: float(s) for t, s in saved["seconds"].items() if t in evals}
    todo = [t for t in config.tasks if t not in evals]
    if evals:
        log(f"accuracy table: {len(evals)} tasks read back from {path}")
    if todo:
        log(f"accuracy table: {len(todo)} tasks on {config.n_eval} prompts each (seed {config.seed}) ...")
    experiment = config.experiment()
    for name in todo:
        started = time.perf_counter()
        evals[name], = tasks_table(model, names=[name], n=config.n_eval, seed=config.seed,
                                   corruptions={name: experiment.corruption_of(name)}, corrupted=False)
        seconds[name] = time.perf_counter() - started
        write_json(path, {"tasks": {t: asdict(e) for t, e in evals.items()}, "seconds": seconds})
        log(f"accuracy table: {name} {evals[name].accuracy_interval.describe()}, {seconds[name]:.0f} s")
    return {t: evals[t] for t in config.tasks}, sum(seconds.values())


def mover_scores(model: Any, name: str, config: StudyConfig) -> Any:
    """The task's head scores (mover score, attention to the answer) on its `n_prompts` discovery prompts: movers
    are decided by the lower end of their bootstrap intervals, which 8 prompts leave too wide."""
    task = make_task(name, model_tokenizer(model), n=config.n_prompts, seed=config.seed,
                     corruption=config.experiment().corruption_of(name))
    return score_heads(model, task, s_inhibition=False, progress=as_progress(config.progress))


def task_span_reads(model: Any, name: str, config: StudyConfig, movers: MoverSet,
                    name_movers: MoverSet) -> dict[str, Any] | None:
    """From which span the task's circuit movers (IOI's name movers where it has none: "heads_from" says which)
    read the answer, on its discovery prompts (`span_reads`); None when neither set holds a head."""
    heads, source = (movers.heads, "the task's movers") if movers.heads else (name_movers.heads,
                                                                             f"{config.ioi}'s name movers")
    if not heads:
        return None
    task = make_task(name, model_tokenizer(model), n=config.n_prompts, seed=config.seed,
                     corruption=config.experiment().corruption_of(name))
    problem = prepare(task, model=model, positions="spans", check=False)
    return {**span_reads(problem, heads, seed=config.seed).to_dict(), "heads_from": source}


def wording_faithfulness(circuit: Circuit, name: str, model: Any, experiment: ExperimentConfig,
                         config: StudyConfig, wording: int) -> float:
    """The circuit's normalised faithfulness on `n_held_out` prompts of `held_out_seed` in a held-out wording:
    templates no discovery and no choice ever saw."""
    task = make_task(name, model_tokenizer(model), n=config.n_held_out, seed=config.held_out_seed,
                     corruption=experiment.corruption_of(name), wording=wording)
    return stages.faithfulness_on(prepare(task, model=model, metric=config.metric, check=False), circuit)


def study_task(model: Any, name: str, reason: str, config: StudyConfig, folder: Path, name_movers: MoverSet,
               log: Log) -> dict[str, Any]:
    """One task's circuit, chosen on its frontier of budgets, and what the study asks of it, saved to
    folder/TASK.json (written last: its presence marks the task done)."""
    started = time.perf_counter()
    steps, chosen, met, curve = frontier(model, name, config, folder, log)
    frontier_here = time.perf_counter() - started
    step = steps[chosen]
    circuit = load_circuit(folder / step["circuit"])
    experiment = config.experiment(step["k"], step["ranking"])
    held_out = stages.held_out_faithfulness(circuit, name, model, replace(experiment, held_out_seed=config.held_out_seed))
    row: dict[str, Any] = {
        "task": name, "reason": reason, "circuit": step["circuit"], "edges": circuit.n_kept,
        "edge_share": circuit.n_kept / circuit.n_edges, "budget_share": step["edge_share"],
        "meets_targets": met,
        "faithfulness": step["faithfulness"], "validation_faithfulness": step["validation_faithfulness"],
        "held_out_faithfulness": held_out,
        "wording_faithfulness": {str(w): wording_faithfulness(circuit, name, model, experiment, config, w)
                                 for w in held_out_wordings(name)},
        "ranking": step["ranking"], "frontier": steps,
        "eap_ig_frontier": curve["rows"]}
    if name in config.no_answer_in_prompt:
        row.update(movers=None, borderline=None, shared_with_ioi=None, chance=None, mover_note=NO_MOVER_CLAIM)
    else:
        scores = mover_scores(model, name, config)
        movers, given = circuit_movers(circuit, scores), circuit_movers(circuit, scores, answer="given")
        overlap = MoverOverlap.of(movers, name_movers, int(scores.mover.numel()))
        row.update(movers=list(movers.heads), borderline=list(movers.borderline), shared_with_ioi=list(overlap.shared),
                   mover_intervals={h: list(movers.intervals[h]) for h in movers.heads if h in movers.intervals},
                   given_movers=list(given.heads), chance=None if name == config.ioi else overlap.chance,
                   mover_note=overlap.answer(), span_reads=task_span_reads(model, name, config, movers, name_movers))
    row["seconds"] = (sum(s["seconds"] for s in steps) + curve["seconds"]
                      + time.perf_counter() - started - frontier_here)
    write_json(folder / f"{name}.json", row)
    return row


def _row(name: str, evaluation: TaskEvaluation, found: dict[str, Any] | None,
         evals: dict[str, TaskEvaluation], reason: str) -> dict[str, Any]:
    """A task's entry in the results JSON: its accuracy, and its circuit's numbers where it got one."""
    interval = evaluation.accuracy_interval
    row: dict[str, Any] = {
        "answer_kind": task_spec(name).answer_kind, "corruption": evaluation.corruption,
        "accuracy": evaluation.accuracy, "interval": [interval.low, interval.high], "n_prompts": evaluation.n,
        "logit_diff": evaluation.logit_diff, "order_vs_meaning": pair_verdicts(name, evals) or None}
    if found is None:
        row["circuit"] = None
        row["no_circuit"] = reason
    else:
        row.update({k: v for k, v in found.items() if k != "task"})
    return row


def run_study(config: StudyConfig, out_dir: str | Path, log: Log = lambda _: None,
              results_path: str | Path | None = None) -> StudyResult:
    """Run (or resume) the whole study into `out_dir` and write the results JSON (`results_path`, default
    OUT/study_<cpu|cuda>.json) and OUT/study_report.html, whose first section is the notes' table."""
    started = time.perf_counter()
    out = Path(out_dir)
    folder = out / "study"
    for part in ("circuits", "frontier"):
        (folder / part).mkdir(parents=True, exist_ok=True)
    check_settings(folder, config)
    log(f"loading {config.model} ...")
    model = get_model(config.model)
    device = next(model.parameters()).device
    evals, accuracy_seconds = evaluate_accuracy(model, config, folder, log)
    chosen = circuit_tasks(evals, config.min_accuracy)
    done = [t for t in chosen if (folder / f"{t}.json").is_file()]
    if done:
        log(f"resuming: {len(done)} tasks done ({', '.join(done)})")
    log(f"circuits for {len(chosen)} of {len(evals)} tasks: {', '.join(chosen) or 'none'}")
    todo = [t for t in chosen if t not in done]
    name_movers = MoverSet(config.ioi)
    if any(t not in config.no_answer_in_prompt for t in todo):
        log(f"IOI's name movers: head scores of {config.ioi} on {config.n_prompts} prompts ...")
        name_movers = movers_of(mover_scores(model, config.ioi, config))
        log(f"IOI's name movers: {name_movers.describe()}")
    found: dict[str, dict[str, Any]] = {t: read_json(folder / f"{t}.json") for t in done}
    label, device_name = model_name(model), device_label(device)
    results_file = Path(results_path) if results_path is not None else out / f"study_{device.type}.json"
    results_file.parent.mkdir(parents=True, exist_ok=True)

    def write(pending: list[str]) -> tuple[dict[str, dict[str, Any]], list[list[str]], float, Path]:
        return _write_results(config, evals, chosen, found, pending, accuracy_seconds, label, device_name,
                              results_file, out)

    for i, name in enumerate(todo, 1):
        log(f"[{i}/{len(todo)}] {name} ({chosen[name]}) ...")
        found[name] = study_task(model, name, chosen[name], config, folder, name_movers, log)
        r = found[name]
        log(f"[{i}/{len(todo)}] {name}: {r['edges']} edges, faithfulness {num(r['faithfulness'], fixed=2)} / "
            f"validation {num(r['validation_faithfulness'], fixed=2)} / held-out "
            f"{num(r['held_out_faithfulness'], fixed=2)} (budget {r['budget_share']:.0%}), {r['mover_note']}, "
            f"{r['seconds']:.0f} s")
        write(todo[i:])
    rows, table_rows, total, report = write([])
    log(f"study written: {results_file}, {report}")
    return StudyResult(out, results_file, report, rows, format_notes_table(table_rows), done, todo,
                       time.perf_counter() - started, total)


PENDING = "pending: the run stopped before this task (rerun the command to resume)"


def _write_results(config: StudyConfig, evals: dict[str, TaskEvaluation], chosen: dict[str, str],
                   found: dict[str, dict[str, Any]], pending: list[str], accuracy_seconds: float, label: str,
                   device_name: str, results_file: Path,
                   out: Path) -> tuple[dict[str, dict[str, Any]], list[list[str]], float, Path]:
    """The results JSON, the notes' table as Markdown and the report, as far as the study has got: written
    after every task, so a stopped run leaves its results so far (`complete` false, `pending` named)."""
    skipped = {t: PENDING if t in pending else f"answered {e.accuracy:.0%} < {config.min_accuracy:.0%}"
               for t, e in evals.items()}
    rows = {t: _row(t, e, found.get(t), evals, skipped[t]) for t, e in evals.items()}
    total = accuracy_seconds + sum(r["seconds"] for r in found.values())
    results = {"device": device_name, "model": label, "validation_seed": config.validation_seed,
               "held_out_seed": config.held_out_seed, "settings": config.settings(), "complete": not pending,
               "pending": pending, "tasks": rows, "total_seconds": total}
    write_json(results_file, results)
    table_rows = notes_rows(rows, config.ioi)
    atomic_write(out / "study_notes.md", (notes_markdown(json_value(results)) + "\n").encode("utf-8"))
    report = write_report(out / "study_report.html", title=f"acdc_compare study on {label}",
                          sections=report_sections(config, rows, table_rows, total))
    return rows, table_rows, total, report


__all__ = ["EDGE_SHARES", "NOTES_COLUMNS", "NOTES_TITLE", "STUDY_TASKS", "StudyConfig", "StudyResult", "budget_of",
           "circuit_tasks", "device_label", "format_notes_table", "meets_targets", "notes_markdown", "notes_rows",
           "pair_verdicts", "run_study"]
