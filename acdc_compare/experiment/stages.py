"""The demo experiment's stages: each a function with its inputs and outputs, timed by a `StageClock`.

`run.run_experiment` calls them in order; the report's layout (`layout`) reads what they return."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from acdc_compare.algorithms.acdc import estimated_seconds
from acdc_compare.algorithms.eap import eap_ig_scores, faithfulness_of_scores
from acdc_compare.algorithms.hybrid import ranking_problem
from acdc_compare.algorithms.problem import Problem
from acdc_compare.api import get_model, prepare, run_method
from acdc_compare.attention import Analogy, head_analogies, viewer_attention
from acdc_compare.circuit import Circuit
from acdc_compare.compare import CircuitComparison, compare_circuits
from acdc_compare.draw import draw_circuit, draw_comparison, figure_note
from acdc_compare.experiment.config import CURVE_FRACTIONS, ExperimentConfig, TaskRun
from acdc_compare.export import save_circuit
from acdc_compare.faithfulness import FaithfulnessCurve, circuit_faithfulness, normalized_faithfulness
from acdc_compare.fmt import num
from acdc_compare.movers import circuit_movers
from acdc_compare.progress import ProgressLike
from acdc_compare.roles import HeadScores, MoverComparison, assign_roles, compare_movers, score_heads
from acdc_compare.tasks.base import Task
from acdc_compare.tasks.evaluate import TaskEvaluation
from acdc_compare.tasks.registry import ORDER_MEANING_PAIRS, make_task, tasks_table

Log = Callable[[str], None]


class StageClock:
    """Wall seconds per named stage, in the order the stages first ran (a stage entered twice adds up)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


def load_model(config: ExperimentConfig, log: Log) -> Any:
    log(f"loading {config.model} ...")
    return get_model(config.model)


def table_task_names(config: ExperimentConfig) -> list[str]:
    """The circuit tasks and both sides of every order-vs-meaning pair."""
    pairs = (t for p in ORDER_MEANING_PAIRS for t in (p.agree_task, p.disagree_task))
    return list(dict.fromkeys([*config.circuit_tasks, *pairs]))


def evaluate_tasks(model: Any, config: ExperimentConfig, bars: ProgressLike, log: Log) -> list[TaskEvaluation]:
    """Accuracy, logit difference and KL(clean || corrupted) of every task the report tabulates, each under
    the corruption the experiment gives it (`acdc-compare tasks` has every corruption)."""
    names = table_task_names(config)
    log(f"evaluating {', '.join(names)} (accuracy, logit difference; `acdc-compare tasks` has all) ...")
    return tasks_table(model, names=names, n=config.n_eval, seed=config.seed, progress=bars,
                       corruptions={t: config.corruption_of(t) for t in names})


def build_tasks(model: Any, config: ExperimentConfig) -> dict[str, Task]:
    """Each circuit task's prompts: as many as its head roles are scored on (`n_role_prompts`) or its circuit is
    discovered on, whichever is more (discovery takes the first `prompts_of(task)` of the same seed)."""
    return {t: make_task(t, model.tokenizer, n=max(config.prompts_of(t), config.n_role_prompts), seed=config.seed,
                         corruption=config.corruption_of(t)) for t in config.circuit_tasks}


@dataclass(frozen=True)
class RoleScores:
    """Head scores per circuit task, IOI's head roles, and each other task's movers set against IOI's."""

    scores: dict[str, HeadScores]
    roles: dict[str, str]
    movers: dict[str, MoverComparison]


def score_roles(model: Any, tasks: dict[str, Task], config: ExperimentConfig, bars: ProgressLike,
                log: Log) -> RoleScores:
    names = config.circuit_tasks
    log(f"scoring head roles on {', '.join(names)} ...")
    scores = {t: score_heads(model, tasks[t], s_inhibition=(t == config.task), progress=bars) for t in names}
    movers = {t: compare_movers(scores[config.task], scores[t]) for t in names[1:]}
    return RoleScores(scores, assign_roles(scores[config.task]), movers)


@dataclass(frozen=True)
class Discovery:
    """One task's discovered circuit, its problem (the prompts it was found on) and the edge ranking that
    the faithfulness curve follows (the hybrid's EAP-IG scores; None for exact ACDC)."""

    problem: Problem
    circuit: Circuit
    ranking: torch.Tensor | None
    ranked_on: Problem  # the prompts EAP-IG ranked on (the first `n_prompts`), where its curve is measured


def task_threshold(problem: Problem, relative: float) -> float:
    """ACDC's tau for one task: `relative` x (M(empty) - M(full)) (`Problem.relative_threshold`); KL 4.2 for
    IOI against 0.03 for the pet family on SmolLM2, so the demo's tau is relative."""
    return problem.relative_threshold(relative)


def discover(task: Task, model: Any, config: ExperimentConfig, bars: ProgressLike, log: Log) -> Discovery:
    """The task's circuit by the configured method (hybrid: EAP-IG candidates, exact ACDC among them)."""
    log(f"discovering the circuit of {task.name} ({config.method}, {config.corruption_of(task.name).value} "
        f"corruption, threshold {config.threshold}) ...")
    problem, ranked_on = discovery_problems(task, model, config)
    return discover_on(problem, ranked_on, eap_ig_prior(ranked_on, config, bars), config, bars)


def discovery_problems(task: Task, model: Any, config: ExperimentConfig) -> tuple[Problem, Problem]:
    """The task's discovery problem on its configured prompt count, and the share EAP-IG ranks on."""
    n = config.prompts_of(task.name)
    if n != task.n_prompts:
        task = make_task(task.name, model.tokenizer, n=n, seed=config.seed, corruption=config.corruption_of(task.name))
    problem = prepare(task, model=model, metric=config.metric)
    return problem, ranking_problem(problem, config.n_prompts)


def eap_ig_prior(ranked_on: Problem, config: ExperimentConfig, bars: ProgressLike) -> torch.Tensor | None:
    """EAP-IG's edge scores, which start the hybrid (None for the other methods): computed once, they serve
    every edge budget tried on the same prompts."""
    return eap_ig_scores(ranked_on, config.steps, progress=bars) if config.method == "hybrid" else None


def discover_on(problem: Problem, ranked_on: Problem, prior: torch.Tensor | None, config: ExperimentConfig,
                bars: ProgressLike) -> Discovery:
    """The configured method's circuit on a prepared problem, started from `prior` (`eap_ig_prior`)."""
    circuit = _run_method(problem, config, prior, bars)
    return Discovery(problem, circuit, circuit.scores if config.method == "eap-ig" else prior, ranked_on)


def _run_method(problem: Problem, config: ExperimentConfig, prior: torch.Tensor | None,
                bars: ProgressLike) -> Circuit:
    k = config.k_of(problem.task.name)
    if config.method == "eap":
        return run_method(problem, config.method, top_n=k)
    if config.method == "eap-ig":
        return run_method(problem, config.method, top_n=k, steps=config.steps, progress=bars)
    threshold = task_threshold(problem, config.threshold)
    if config.method == "acdc":
        return run_method(problem, config.method, threshold, progress=bars)
    return run_method(problem, config.method, threshold, k=None if config.coverage is not None else k,
                      coverage=config.coverage, steps=config.steps, progress=bars, prior=prior,
                      tested=config.tested_of(problem.task.name), functional=config.functional,
                      ranking=config.ranking_of(problem.task.name), learn_steps=config.learn_steps,
                      learn_batch=config.n_prompts)


def exact_acdc_seconds(found: Discovery) -> float:
    """The estimated wall time of exact ACDC over every edge of the task's graph here (one timed forward)."""
    return estimated_seconds(found.problem, found.problem.graph.n_edges)


def validation_problem(task: str, model: Any, config: ExperimentConfig) -> Problem:
    """The task's `n_held_out` prompts of `held_out_seed`, prepared under the configured metric."""
    return prepare(task, model=model, metric=config.metric, n_prompts=config.n_held_out,
                   seed=config.held_out_seed, corruption=config.corruption_of(task), check=False)


def held_out_faithfulness(circuit: Circuit, task: str, model: Any, config: ExperimentConfig) -> float:
    """Normalised faithfulness of `circuit` on `n_held_out` prompts of the task of `held_out_seed`, which it
    was not discovered on: does the circuit explain the task, or only its sample?"""
    return faithfulness_on(validation_problem(task, model, config), circuit)


def faithfulness_on(problem: Problem, circuit: Circuit) -> float:
    """Normalised faithfulness of `circuit` on a prepared problem's prompts."""
    full, empty = problem.metric_ends
    return normalized_faithfulness(float(problem.evaluate(circuit)[0]), full, empty)


def eap_ig_curve(found: Discovery, config: ExperimentConfig, bars: ProgressLike) -> FaithfulnessCurve | None:
    """Faithfulness of the top-ranked edges at CURVE_FRACTIONS: how many edges the task's mechanism needs."""
    if not config.curve or found.ranking is None:
        return None
    return faithfulness_of_scores(found.ranked_on, found.ranking, CURVE_FRACTIONS, progress=bars)


def save_and_draw(found: Discovery, out: Path, roles: dict[str, str], model_label: str,
                  log: Log) -> tuple[Path, list[Path]]:
    """The circuit's JSON under out/circuits and its SVG and PNG figures in out."""
    name, circuit = found.problem.task.name, found.circuit
    json_path = save_circuit(circuit, out / "circuits" / f"{name}.json")
    diagrams = [out / f"{name}.svg", out / f"{name}.png"]
    note = figure_note(circuit, roles)
    if note:
        log(f"  figure of {name}: {note}")
    draw_circuit(circuit, diagrams, roles=roles, title=f"{name} on {model_label}: {circuit.n_kept} edges")
    return json_path, diagrams


def task_run(found: Discovery, paths: tuple[Path, list[Path]], held_out: float,
             curve: FaithfulnessCurve | None, scores: HeadScores) -> TaskRun:
    circuit = found.circuit
    return TaskRun(found.problem.task.name, circuit, paths[0], paths[1], circuit_faithfulness(circuit), held_out,
                   curve, circuit_movers(circuit, scores), circuit_movers(circuit, scores, answer="given"))


def log_run(run: TaskRun, log: Log) -> None:
    c = run.circuit
    log(f"  {c.n_kept} edges kept ({c.n_functional_edges} on input->logits paths, {len(c.functional_heads())} "
        f"heads), faithfulness {num(run.faithfulness, fixed=2)} (held-out prompts "
        f"{num(run.held_out_faithfulness, fixed=2)}), "
        f"{c.settings.get('seconds', 0):.0f} s")
    if run.curve is not None:
        log("  top EAP-IG edges: " + ", ".join(f"{n} -> {f:.2f}" for n, f in zip(run.curve.sizes,
                                                                               run.curve.faithfulness))
            + f" (CPR {run.curve.cpr:.2f}, CMD {run.curve.cmd:.2f})")


@dataclass(frozen=True)
class Comparison:
    left: str
    right: str
    comparison: CircuitComparison
    svg: Path


def draw_comparisons(runs: dict[str, TaskRun], pairs: Sequence[tuple[str, str]], out: Path,
                     roles: dict[str, str], model_label: str, name_movers: Sequence[str]) -> list[Comparison]:
    """Side-by-side figures of each pair of circuits (added to the left run's diagram paths), IOI's
    `name_movers` outlined in both panels, and their overlaps."""
    found = []
    for left, right in pairs:
        a, b = runs[left].circuit, runs[right].circuit
        stem = f"compare_{left}_vs_{right}"
        paths = [out / f"{stem}.svg", out / f"{stem}.png"]
        draw_comparison(a, b, paths, left, right, roles=roles, title=f"{left} vs {right} on {model_label}",
                        marked=name_movers)
        runs[left].diagram_paths.extend(paths)
        found.append(Comparison(left, right, compare_circuits(a, b), paths[0]))
    return found


def viewer_heads(runs: Sequence[TaskRun], limit: int) -> list[str]:
    """Heads of the circuits for the viewer's attention panel, by how many circuits hold them, then layer."""
    count: dict[str, int] = {}
    for run in runs:
        for h in run.circuit.heads():
            count[h] = count.get(h, 0) + 1
    key = (lambda h: (-count[h], *(int(x) for x in h[1:].split(".h"))))
    return sorted(count, key=key)[:limit]


@dataclass(frozen=True)
class AttentionStage:
    heads: list[str]
    analogies: list[Analogy]
    viewer: dict[str, Any]  # `attention.viewer_attention` of the viewer's heads


def attention(model: Any, tasks: dict[str, Task], runs: Sequence[TaskRun], config: ExperimentConfig,
              bars: ProgressLike, log: Log) -> AttentionStage:
    """The analogy measure of the circuits' heads on the comparison and control tasks, and their attention
    patterns for the viewer."""
    heads = viewer_heads(runs, config.viewer_heads)
    log(f"attention of {len(heads)} circuit heads on {config.comparison} vs {config.control} (analogy measure) ...")
    first = {t: tasks[t].subset(min(config.n_prompts, tasks[t].n_prompts))  # the discovery prompts' share
             for t in (config.comparison, config.control, config.task)}
    analogies = head_analogies(model, first[config.comparison], first[config.control], heads, seed=config.seed,
                               progress=bars)
    viewer = viewer_attention(model, [first[config.comparison], first[config.control], first[config.task]], heads,
                              analogies=analogies)
    return AttentionStage(heads, analogies, viewer)
