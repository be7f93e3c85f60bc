"""The report's answer in one place: a short table right under the title, every line derived from the result
(the circuits' movers against IOI's name movers, the order-vs-meaning verdicts) with the size of its evidence
(prompts, accuracies with their 95% intervals, the circuits' faithfulness). Nothing here is written by hand:
change the data and the conclusion changes with it."""

from __future__ import annotations

import math
from collections.abc import Mapping

from acdc_compare.experiment.config import ExperimentConfig, ExperimentResult, TaskRun
from acdc_compare.movers import MoverOverlap
from acdc_compare.report import Table
from acdc_compare.tasks.evaluate import TaskEvaluation
from acdc_compare.tasks.registry import ORDER_MEANING_PAIRS, task_spec, verdict

EvalKey = tuple[str, str]
HEADERS = ("question", "answer", "evidence")


def weak_note(evaluation: TaskEvaluation | None, held_out: float, config: ExperimentConfig) -> str:
    """'' for a behaviour the model shows and a circuit that explains it on new prompts, else why the
    circuit is weak evidence."""
    ld = None if evaluation is None else evaluation.logit_diff
    if ld is not None and abs(ld) < config.min_logit_diff:
        return (f"WEAK: the model barely prefers either answer (mean logit difference {ld:.2f}, |.| < "
                f"{config.min_logit_diff:g}; accuracy {100 * evaluation.accuracy:.0f}%), so its circuit is "  # type: ignore[union-attr]
                "mostly noise")
    if not held_out >= config.min_held_out:
        return (f"WEAK: the circuit keeps {held_out:.3g} of the behaviour on new prompts (< "
                f"{config.min_held_out:g}), too little to say which heads carry it")
    return ""


def conclusion_section(config: ExperimentConfig, result: ExperimentResult, evals: Mapping[EvalKey, TaskEvaluation],
                       n_heads: int) -> Table:
    """The conclusion table: IOI's name movers, then per circuit task whether its movers are IOI's, then per
    evaluated order-vs-meaning pair the verdict."""
    rows = [_ioi_row(config, result, evals)]
    rows += [_mover_row(t, run, config, result, evals, n_heads) for t, run in result.runs.items() if t != config.task]
    rows += _order_rows(config, evals)
    return Table("Conclusion (each answer derived from the tables below, with the size of its evidence)",
                 HEADERS, rows)


def _circuit_evidence(run: TaskRun, evaluation: TaskEvaluation | None, config: ExperimentConfig) -> str:
    """'accuracy 80% [58-92%] (n=20); circuit of 780 edges found on 8 prompts, faithfulness 0.92 (0.86 on 32
    new prompts)'."""
    acc = f"accuracy {evaluation.accuracy_interval.short()} (n={evaluation.n}); " if evaluation else ""
    return (f"{acc}circuit of {run.circuit.n_kept} edges found on {config.prompts_of(run.name)} prompts, faithfulness "
            f"{_num(run.faithfulness)} ({_num(run.held_out_faithfulness)} on {config.n_held_out} new prompts)")


def _evaluation(t: str, config: ExperimentConfig, evals: Mapping[EvalKey, TaskEvaluation]) -> TaskEvaluation | None:
    return evals.get((t, config.corruption_of(t).value))


def _ioi_row(config: ExperimentConfig, result: ExperimentResult,
             evals: Mapping[EvalKey, TaskEvaluation]) -> list[str]:
    run, movers = result.runs[config.task], result.name_movers
    on_circuit = [h for h in movers.heads if h in run.movers.heads]
    answer = (f"{movers.describe()}; {len(on_circuit)} of {len(movers.heads)} on its circuit" if movers.heads
              else "none found: no head passes the mover rule")
    return [f"Which heads are {config.task}'s name movers?", answer,
            _circuit_evidence(run, _evaluation(config.task, config, evals), config)]


def _mover_row(t: str, run: TaskRun, config: ExperimentConfig, result: ExperimentResult,
               evals: Mapping[EvalKey, TaskEvaluation], n_heads: int) -> list[str]:
    """'Are verb-last's verb movers IOI's name movers?' with the shared heads against chance."""
    kind = task_spec(t).answer_kind
    answer = MoverOverlap.of(run.movers, result.name_movers, n_heads).answer()
    if run.movers.borderline:
        answer += f"; borderline: {', '.join(run.movers.borderline)}"
    given = run.given_movers
    if given is not None and given.heads != run.movers.heads:
        answer += (f"; toward the answer the model gives: "
                   f"{MoverOverlap.of(given, result.name_movers, n_heads).answer()}")
    evaluation = _evaluation(t, config, evals)
    weak = weak_note(evaluation, run.held_out_faithfulness, config)
    evidence = _circuit_evidence(run, evaluation, config) + (f". {weak}" if weak else "")
    return [f"{t}: are its {kind} movers IOI's name movers?", answer, evidence]


def _order_rows(config: ExperimentConfig, evals: Mapping[EvalKey, TaskEvaluation]) -> list[list[str]]:
    """One row per order-vs-meaning pair whose two tasks were evaluated."""
    rows = []
    for p in ORDER_MEANING_PAIRS:
        agree, disagree = (_evaluation(t, config, evals) for t in (p.agree_task, p.disagree_task))
        if agree is None or disagree is None:
            continue
        rows.append([f"{p.name}: does the model answer by meaning or by word order?", verdict(agree, disagree),
                     f"order and meaning agree ({agree.name}): {agree.accuracy_interval.describe()}; they disagree "
                     f"({disagree.name}): {disagree.accuracy_interval.describe()}"])
    return rows


def _num(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.2f}"


__all__ = ["conclusion_section", "weak_note"]
