"""The demo experiment's orchestration: the stages in order, each timed, then the report laid out."""

from __future__ import annotations

import json
import time
from pathlib import Path

from acdc_compare.algorithms.registry import algorithm
from acdc_compare.attention import analogy_rows
from acdc_compare.backends import model_name
from acdc_compare.experiment import stages
from acdc_compare.experiment.config import ExperimentConfig, ExperimentResult
from acdc_compare.experiment.layout import (
    ReportInputs,
    evaluations_by_key,
    mover_rows,
    report_lead,
    report_sections,
)
from acdc_compare.experiment.stages import Log, StageClock
from acdc_compare.progress import as_progress
from acdc_compare.report import write_report
from acdc_compare.roles import movers_of
from acdc_compare.tasks.registry import format_tasks_table


def run_experiment(config: ExperimentConfig, out_dir: str | Path, log: Log = lambda _: None) -> ExperimentResult:
    """Discover IOI's circuit and the comparison tasks', compare them with each other and with IOI's head
    roles, run the order-vs-meaning control, and write every artefact to `out_dir`. Prints nothing: `log`
    gets one line per stage. `result.stage_seconds` holds each stage's wall time."""
    algorithm(config.method)
    started = time.perf_counter()
    out = Path(out_dir)
    (out / "circuits").mkdir(parents=True, exist_ok=True)
    result, clock, bars = ExperimentResult(out), StageClock(), as_progress(config.progress)
    with clock("load"):
        model = stages.load_model(config, log)
    label = model_name(model)
    with clock("task evaluation"):
        evals = stages.evaluate_tasks(model, config, bars, log)
        result.tasks_table = format_tasks_table(evals)
        (out / "tasks.txt").write_text(result.tasks_table + "\n")
    with clock("head roles"):
        tasks = stages.build_tasks(model, config)
        roles = stages.score_roles(model, tasks, config, bars, log)
        result.mover_verdicts = {t: m.verdict for t, m in roles.movers.items()}
        result.name_movers = movers_of(roles.scores[config.task])
    for t in config.circuit_tasks:
        with clock(f"discovery: {t}"):
            found = stages.discover(tasks[t], model, config, bars, log)
            if t == config.task:
                result.exact_acdc_seconds = stages.exact_acdc_seconds(found)
        with clock("held-out evaluation"):
            held_out = stages.held_out_faithfulness(found.circuit, t, model, config)
        with clock("curves"):
            curve = stages.eap_ig_curve(found, config, bars)
        with clock("drawing"):
            paths = stages.save_and_draw(found, out, roles.roles, label, log)
        result.runs[t] = stages.task_run(found, paths, held_out, curve, roles.scores[t])
        stages.log_run(result.runs[t], log)
    by_eval = evaluations_by_key(evals)
    result.mover_table = mover_rows(result.runs, config, by_eval, result.name_movers,
                                    roles.scores[config.task].mover.numel())
    with clock("drawing"):
        pairs = ((config.task, config.comparison), (config.comparison, config.control))
        comparisons = stages.draw_comparisons(result.runs, pairs, out, roles.roles, label, result.name_movers.heads)
    with clock("attention"):
        attention = stages.attention(model, tasks, list(result.runs.values()), config, bars, log)
        (out / "analogy.json").write_text(json.dumps(analogy_rows(attention.analogies), indent=1,
                                                     allow_nan=False) + "\n")
    with clock("report"):
        result.stage_seconds = dict(clock.seconds)
        result.seconds = time.perf_counter() - started
        inputs = ReportInputs(config, result, label, tasks, by_eval, roles, comparisons, attention)
        result.report = write_report(out / "report.html", title=f"acdc_compare: {config.task} vs {config.comparison}",
                                     sections=report_sections(inputs), lead=report_lead(inputs))
    result.stage_seconds = dict(clock.seconds)
    result.seconds = time.perf_counter() - started
    return result
