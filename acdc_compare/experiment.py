"""The research experiment as one call: discover IOI's circuit and a comparison task's, compare them with each
other and with IOI's head roles, run the order-vs-meaning control, and write every artefact to a folder.

Used by `acdc-compare demo` (and `make demo`). Returns an `ExperimentResult`; prints nothing.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from acdc_compare.algorithms.eap import eap_ig_scores, faithfulness_of_scores
from acdc_compare.algorithms.problem import Problem
from acdc_compare.algorithms.base import check_threshold
from acdc_compare.algorithms.registry import algorithm, make_options
from acdc_compare.api import get_model, prepare, run_method
from acdc_compare.backends import DEFAULT_MODEL, model_name
from acdc_compare.circuit import Circuit
from acdc_compare.compare import compare_circuits, overlap
from acdc_compare.draw import draw_circuit, draw_comparison, plan_drawing
from acdc_compare.export import save_circuit
from acdc_compare.attention import analogy_rows, head_analogies, viewer_attention
from acdc_compare.export import edge_kind, prune_to_paths
from acdc_compare.faithfulness import FaithfulnessCurve, circuit_faithfulness
from acdc_compare.graph import parse_head
from acdc_compare.plots import faithfulness_plot
from acdc_compare.progress import ProgressLike, as_progress
from acdc_compare.report import Image, KeyValues, Table, Text, write_report
from acdc_compare.faithfulness import normalized_faithfulness
from acdc_compare.movers import MoverOverlap, MoverRule, circuit_movers
from acdc_compare.role_tables import role_table
from acdc_compare.roles import assign_roles, compare_movers, score_heads
from acdc_compare.tasks.base import Corruption
from acdc_compare.tasks.registry import (
    ORDER_MEANING_PAIRS,
    format_tasks_table,
    make_task,
    task_spec,
    tasks_table,
    verdict,
)
from acdc_compare.viewer import viewer_section

Log = Callable[[str], None]

CURVE_FRACTIONS: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


@dataclass(frozen=True)
class ExperimentConfig:
    """Settings of the demo experiment. The defaults fit 2 CPU cores in a few minutes on the default model:
    exact ACDC over SmolLM2's 71,101 edges is a day on CPU, so candidates are pre-filtered by EAP-IG."""

    model: str = DEFAULT_MODEL
    task: str = "ioi"
    comparison: str = "pet-last"
    control: str = "pet-first"
    extra: tuple[str, ...] = ("adjective-first",)  # more tasks whose circuits join the mover table
    corruption: Corruption = Corruption.ANSWERS  # the comparison tasks' corruption (IOI's is always ABC)
    method: str = "hybrid"  # a registered method (acdc_compare.algorithms.registry.ALGORITHMS)
    threshold: float = 0.002  # relative: a fraction of each task's metric gap M(empty) - M(full)
    k: int = 300  # hybrid: ACDC decides among the top-k EAP-IG edges
    # more candidates for tasks whose mechanism is spread over more edges and whose short prompts make each
    # ACDC test cheap
    task_k: tuple[tuple[str, int], ...] = (("ioi", 700), ("adjective-first", 700))
    coverage: float | None = None  # hybrid, instead of k: fewest top EAP-IG edges reaching this faithfulness
    steps: int = 5
    n_prompts: int = 8
    n_eval: int = 20  # prompts per task for the accuracy table
    curve: bool = True  # EAP-IG faithfulness curve per task: how many edges its mechanism needs
    viewer_heads: int = 24  # at most this many circuit heads get attention patterns in the viewer
    seed: int = 0
    held_out_seed: int = 1  # the circuits are also evaluated on prompts of this seed, not discovered on
    target_faithfulness: float = 0.8
    max_edge_fraction: float = 0.02  # the demo's circuits should keep at most this share of the graph
    progress: ProgressLike = True  # bars on a terminal (True), none (False), or a Progress (acdc_compare.progress)

    @property
    def circuit_tasks(self) -> list[str]:
        return list(dict.fromkeys([self.task, self.comparison, self.control, *self.extra]))

    def k_of(self, task: str) -> int:
        """The number of EAP-IG candidates (eap/eap-ig: edges kept) for this task."""
        return dict(self.task_k).get(task, self.k)

    def __post_init__(self) -> None:
        """Every setting checked when made, before any model loads."""
        algorithm(self.method)
        check_threshold(self.threshold)
        for name in self.circuit_tasks:
            task_spec(name)
        object.__setattr__(self, "corruption", Corruption(self.corruption))
        if self.method in ("acdc", "hybrid"):
            make_options(self.method, self.threshold, k=None if self.coverage is not None else self.k,
                         coverage=self.coverage, steps=self.steps)
        for name, value in (("k", self.k), ("n_prompts", self.n_prompts), ("n_eval", self.n_eval),
                            ("steps", self.steps), *((f"task_k[{t}]", k) for t, k in self.task_k)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")


@dataclass
class TaskRun:
    name: str
    circuit: Circuit
    json_path: Path
    diagram_paths: list[Path]
    faithfulness: float
    held_out_faithfulness: float = math.nan  # on `held_out_seed`'s prompts
    curve: FaithfulnessCurve | None = None  # faithfulness of the top EAP-IG edges at CURVE_FRACTIONS
    movers: tuple[str, ...] = ()  # `movers.circuit_movers` of the circuit


@dataclass
class ExperimentResult:
    out_dir: Path
    runs: dict[str, TaskRun] = field(default_factory=dict)
    report: Path | None = None
    tasks_table: str = ""
    mover_verdicts: dict[str, str] = field(default_factory=dict)
    mover_table: list[dict[str, Any]] = field(default_factory=list)  # one row per task: `mover_rows`
    seconds: float = 0.0

    def paths(self) -> list[Path]:
        out = []
        for run in self.runs.values():
            out += [run.json_path, *run.diagram_paths]
        return out + ([self.report] if self.report else [])


def run_experiment(config: ExperimentConfig, out_dir: str | Path, log: Log = lambda _: None) -> ExperimentResult:
    """Run the whole experiment; see the module docstring."""
    algorithm(config.method)
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = ExperimentResult(out)
    bars = as_progress(config.progress)
    log(f"loading {config.model} ...")
    model = get_model(config.model)
    name = model_name(model)
    tok = model.tokenizer

    circuit_tasks = config.circuit_tasks
    table_tasks = list(dict.fromkeys([*circuit_tasks,
                                      *(t for p in ORDER_MEANING_PAIRS for t in (p.agree_task, p.disagree_task))]))
    log(f"evaluating {', '.join(table_tasks)} (accuracy, logit difference; `acdc-compare tasks` has all) ...")
    evals = tasks_table(model, names=table_tasks, n=config.n_eval, seed=config.seed, progress=bars)
    result.tasks_table = format_tasks_table(evals)
    (out / "tasks.txt").write_text(result.tasks_table + "\n")

    log(f"scoring head roles on {', '.join(circuit_tasks)} ...")
    tasks = {t: make_task(t, tok, n=config.n_prompts, seed=config.seed, corruption=task_corruption(t, config))
             for t in circuit_tasks}
    scores = {t: score_heads(model, tasks[t], s_inhibition=(t == config.task), progress=bars) for t in circuit_tasks}
    roles = assign_roles(scores[config.task])
    movers = {t: compare_movers(scores[config.task], scores[t]) for t in circuit_tasks[1:]}
    result.mover_verdicts = {t: m.verdict for t, m in movers.items()}

    circuits_dir = out / "circuits"
    circuits_dir.mkdir(exist_ok=True)
    for t in circuit_tasks:
        log(f"discovering the circuit of {t} ({config.method}, {task_corruption(t, config).value} corruption, "
            f"threshold {config.threshold}) ...")
        problem = prepare(tasks[t], model=model)
        prior = eap_ig_scores(problem, config.steps, progress=bars) if config.method == "hybrid" else None
        circuit = _discover(problem, config, prior, bars)
        ranking = circuit.scores if config.method == "eap-ig" else prior
        json_path = save_circuit(circuit, circuits_dir / f"{t}.json")
        diagrams = [out / f"{t}.svg", out / f"{t}.png"]
        note = plan_drawing(circuit).note
        if note:
            log(f"  figure of {t}: {note}")
        draw_circuit(circuit, diagrams, roles=roles, title=f"{t} on {name}: {circuit.n_kept} edges")
        curve = None
        if config.curve and ranking is not None:
            curve = faithfulness_of_scores(problem, ranking, CURVE_FRACTIONS, progress=bars)
        held_out = held_out_faithfulness(circuit, t, model, config)
        run = TaskRun(t, circuit, json_path, diagrams, circuit_faithfulness(circuit), held_out, curve,
                      circuit_movers(circuit, scores[t]))
        result.runs[t] = run
        log(f"  {circuit.n_kept} edges kept ({circuit.n_functional_edges} on input->logits paths, "
            f"{len(circuit.functional_heads())} heads), faithfulness {run.faithfulness:.2f} "
            f"(held-out prompts {run.held_out_faithfulness:.2f}), {circuit.settings.get('seconds', 0):.0f} s")
        if curve is not None:
            log("  top EAP-IG edges: " + ", ".join(f"{n} -> {f:.2f}" for n, f in zip(curve.sizes, curve.faithfulness))
                + f" (CPR {curve.cpr:.2f}, CMD {curve.cmd:.2f})")
    by_eval = {(e.name, e.corruption): e for e in evals}
    result.mover_table = mover_rows(result.runs, config, by_eval, scores[config.task].mover.numel())

    comparisons = []
    for left, right in ((config.task, config.comparison), (config.comparison, config.control)):
        a, b = result.runs[left].circuit, result.runs[right].circuit
        stem = f"compare_{left}_vs_{right}"
        paths = [out / f"{stem}.svg", out / f"{stem}.png"]
        draw_comparison(a, b, paths, left, right, roles=roles, title=f"{left} vs {right} on {name}")
        result.runs[left].diagram_paths.extend(paths)
        comparisons.append((left, right, compare_circuits(a, b), paths[0]))

    heads = _viewer_heads(result.runs.values(), config.viewer_heads)
    log(f"attention of {len(heads)} circuit heads on {config.comparison} vs {config.control} (analogy measure) ...")
    analogies = head_analogies(model, tasks[config.comparison], tasks[config.control], heads, seed=config.seed,
                               progress=bars)
    attention = viewer_attention(model, [tasks[config.comparison], tasks[config.control], tasks[config.task]], heads,
                                 analogies=analogies)
    sections: list[Any] = [
        KeyValues("Settings", {"model": name, "method": config.method, "threshold": config.threshold,
                               "hybrid candidates (top-k EAP-IG edges)": candidates_description(config),
                               "EAP-IG steps": config.steps,
                               "prompts per discovery": config.n_prompts, "prompts per task evaluation": config.n_eval,
                               "seed": config.seed, "graph": result.runs[config.task].circuit.graph.config.key,
                               "edges in the graph": result.runs[config.task].circuit.n_edges}),
        Text("Method", _method_note(config), preformatted=False),
        Table("Example prompt per task (prompt 0 of each; the corrupted prompt differs only where shown)",
              ["task", "prompt", "correct", "wrong", "corrupted prompt"],
              [_example_row(tasks[t]) for t in circuit_tasks]),
        Text("Task accuracies and order-vs-meaning pairs", result.tasks_table, preformatted=True),
        Table("Circuits", ["task", "corruption", "edges kept", "share of the graph", "functional edges",
                           "functional heads", "metric full", "metric circuit", "metric empty",
                           "normalised faithfulness", f"held-out (seed {config.held_out_seed})", "edges tested",
                           "seconds"],
              [_circuit_row(r, config) for r in result.runs.values()]),
        Text("Target", _target_note(result.runs, config)),
        Table("The mover question, from circuits: which heads of each circuit move its answer, and are they IOI's?",
              list(MOVER_COLUMNS), [[row[c] for c in MOVER_COLUMNS] for row in result.mover_table]),
        Text("", f"Movers: heads of the circuit {MoverRule().describe()} (mover score: attention from the scored "
                 "position to the answer's token x the head's direct logit contribution to correct - wrong, "
                 f"on the task's clean prompts). IOI's name movers are IOI's circuit movers found the same way; "
                 "chance: the overlap expected for random head sets of those sizes."),
        viewer_section({r.name: r.circuit for r in result.runs.values()}, roles=roles, attention=attention,
                       title="Interactive circuit viewer (drag to pan, wheel to zoom, click a node to pin it; "
                             "a pinned head shows its attention patterns)"),
    ]
    curves = [r for r in result.runs.values() if r.curve is not None]
    if curves:
        sizes = curves[0].curve.sizes
        sections.append(Table(
            "How many edges does each task's mechanism need? Normalised faithfulness of the top EAP-IG edges "
            "(MIB's CPR: higher is better; CMD: lower is better)",
            ["task", *[f"{n} edges" for n in sizes], "CPR", "CMD"],
            [[r.name, *[f"{f:.2f}" for f in r.curve.faithfulness], f"{r.curve.cpr:.2f}", f"{r.curve.cmd:.2f}"]
             for r in curves]))
        sections.append(faithfulness_plot({r.name: (r.curve.sizes, r.curve.faithfulness) for r in curves},
                                          "Faithfulness curves of the top EAP-IG edges"))
    for run in result.runs.values():
        sections.append(Image(f"Circuit: {run.name}", run.diagram_paths[1].name, embed=True,
                              caption=_drawn_caption(run.circuit)))
        sections.append(Table(f"Heads of the {run.name} circuit (role: from the head scores on {config.task}; "
                              f"mover score and attention to the answer: on {run.name})",
                              ["head", "role", "mover score", "attention to answer", "direct logit attribution"],
                              _head_rows(run.circuit, roles, scores.get(run.name, scores[config.task]))))
        sections.append(_edge_table(run))
    for left, right, cmp_, svg in comparisons:
        a, b = result.runs[left].circuit, result.runs[right].circuit
        sections.append(Table(f"{left} vs {right}", ["", "precision", "recall", "F1", "Jaccard",
                                                     f"only {left}", f"only {right}", "both"],
                              [[level, *_overlap_row(getattr(cmp_, level))] for level in ("edges", "nodes", "heads")]
                              + [["drawn edges", *_overlap_row(_drawn_overlap(a, b))]]))
        sections.append(Text("", "edges: every kept graph edge (residual and direct), as the circuit files hold "
                                 "them; drawn edges: the residual edges on an input-to-logits path, the ones the "
                                 "figure below and the viewer draw (direct edges are marked on their heads)."))
        sections.append(Image(f"Side by side: {left} vs {right}", svg.with_suffix(".png").name, embed=True))
    rows = role_table(scores[config.task], roles)
    if rows:
        headers = list(rows[0].keys())
        sections.append(Table(f"Head roles on {config.task} (thresholds in the rule column)", headers,
                              [[_fmt(r[h]) for h in headers] for r in rows]))
    sections.append(Table("Are the comparison tasks' movers IOI's name movers?",
                          ["task", "top movers", "overlap with IOI top movers", "chance overlap", "spearman",
                           "verdict"],
                          [[t, ", ".join(f"{h} ({s:.2f})" for h, s in m.other_top), ", ".join(m.overlap) or "none",
                            f"{m.chance_overlap:.2f}", f"{m.spearman:.2f}", m.verdict] for t, m in movers.items()]))
    sections.append(Table(
        f"Analogy: does each circuit head attend to the same roles on {config.comparison} and {config.control}?",
        ["head", "role", f"attn to correct ({config.comparison})", f"attn to correct ({config.control})", "1 - TV",
         "1 - TV shuffled", "Pearson", "Pearson shuffled"],
        [[a.head, roles.get(a.head, ""), _fmt(a.dist_a[0]), _fmt(a.dist_b[0]), _fmt(a.tv_similarity),
          _fmt(a.baseline_tv), _fmt(a.pearson), _fmt(a.baseline_pearson)] for a in analogies]))
    sections.append(Text("", "Attention from the scored position, summed by the role of each key token (correct "
                             "answer, wrong answer, other answer-like tokens, first token, the scored token, the "
                             "rest). 1 - TV: one minus the total variation distance between the two tasks' mean role "
                             "distributions; Pearson: over aligned (prompt, role) cells (the same prompts, "
                             "rewritten); shuffled: the same after permuting role labels within each prompt "
                             "(200 times), what a head scores whatever the roles."))
    (out / "analogy.json").write_text(json.dumps(analogy_rows(analogies), indent=1, allow_nan=False) + "\n")
    for p in ORDER_MEANING_PAIRS:
        keys = [(t, task_corruption(t, config).value) for t in (p.agree_task, p.disagree_task)]
        if not all(key in by_eval for key in keys):
            continue
        agree, disagree = (by_eval[key] for key in keys)
        sections.append(Table(f"Order-vs-meaning control: {p.name} - {verdict(agree, disagree)}",
                              ["", "task", "prompts", "accuracy", "logit diff",
                               f"KL(clean || corrupted), {agree.corruption} corruption"],
                              [["order and meaning agree", agree.name, agree.n, _pct(agree.accuracy),
                                _fmt(agree.logit_diff), _fmt(agree.kl)],
                               ["they disagree", disagree.name, disagree.n, _pct(disagree.accuracy),
                                _fmt(disagree.logit_diff), _fmt(disagree.kl)]]))
        sections.append(Text("", f"{p.shows} Verdict: {verdict(agree, disagree)}."))
    result.report = write_report(out / "report.html", title=f"acdc_compare: {config.task} vs {config.comparison}",
                                 sections=sections)
    result.seconds = time.perf_counter() - started
    return result


def task_threshold(problem: Problem, relative: float) -> float:
    """ACDC's tau for one task: `relative` x (M(empty) - M(full)) (`Problem.relative_threshold`); KL 4.2 for
    IOI against 0.03 for the pet family on SmolLM2, so the demo's tau is relative."""
    return problem.relative_threshold(relative)


def held_out_faithfulness(circuit: Circuit, task: str, model: Any, config: ExperimentConfig) -> float:
    """Normalised faithfulness of `circuit` on the task's prompts of `held_out_seed`, which it was not
    discovered on: does the circuit explain the task, or only its sample?"""
    problem = prepare(task, model=model, n_prompts=config.n_prompts, seed=config.held_out_seed,
                      corruption=task_corruption(task, config), check=False)
    full, empty = problem.metric_ends
    return normalized_faithfulness(float(problem.evaluate(circuit)[0]), full, empty)


MOVER_COLUMNS: tuple[str, ...] = ("task", "answer kind", "accuracy", "corruption", "edges", "faithfulness",
                                  "held-out faithfulness", "movers", "shared with IOI's name movers",
                                  "chance overlap", "verdict")


def mover_rows(runs: dict[str, TaskRun], config: ExperimentConfig, evals: dict[tuple[str, Any], Any],
               n_heads: int) -> list[dict[str, Any]]:
    """The mover table: one row per circuit, its movers set against IOI's circuit movers (`movers`)."""
    ioi_movers = runs[config.task].movers
    rows = []
    for t, run in runs.items():
        corruption = task_corruption(t, config).value
        evaluation = evals.get((t, corruption))
        overlap = MoverOverlap(t, run.movers, ioi_movers, n_heads)
        is_ioi = t == config.task
        rows.append({
            "task": t, "answer kind": task_spec(t).answer_kind,
            "accuracy": _pct(evaluation.accuracy) if evaluation else "",
            "corruption": corruption, "edges": run.circuit.n_kept, "faithfulness": _fmt(run.faithfulness),
            "held-out faithfulness": _fmt(run.held_out_faithfulness), "movers": ", ".join(run.movers) or "none",
            "shared with IOI's name movers": "(these are IOI's)" if is_ioi else ", ".join(overlap.shared) or "none",
            "chance overlap": "" if is_ioi else f"{overlap.chance:.2f}",
            "verdict": f"IOI's name movers: {len(run.movers)} heads" if is_ioi else overlap.verdict(),
        })
    return rows


def task_corruption(task: str, config: ExperimentConfig) -> Corruption:
    """The experiment's corruption where the task offers it, else the task's own (IOI: ABC = answers)."""
    offered = task_spec(task).corruptions
    return config.corruption if config.corruption in offered else offered[0]


def _target_note(runs: dict[str, TaskRun], config: ExperimentConfig) -> str:
    """Which circuits reach the target faithfulness within the edge budget, on both prompt samples."""
    lines = []
    for t, run in runs.items():
        budget = config.max_edge_fraction * run.circuit.n_edges
        ok = [run.faithfulness >= config.target_faithfulness, run.held_out_faithfulness >= config.target_faithfulness,
              run.circuit.n_kept <= budget]
        state = "reaches" if all(ok) else "does NOT reach"
        lines.append(f"{t} {state} the target (normalised faithfulness >= {config.target_faithfulness:g} in-sample "
                     f"and held-out with <= {100 * config.max_edge_fraction:g}% of the edges): {run.faithfulness:.2f} "
                     f"/ {run.held_out_faithfulness:.2f} with {run.circuit.n_kept} edges "
                     f"({100 * run.circuit.n_kept / run.circuit.n_edges:.2f}%).")
    return "\n".join(lines)


def _discover(problem: Problem, config: ExperimentConfig, prior: torch.Tensor | None, bars: ProgressLike) -> Circuit:
    k = config.k_of(problem.task.name)
    if config.method == "eap":
        return run_method(problem, config.method, top_n=k)
    if config.method == "eap-ig":
        return run_method(problem, config.method, top_n=k, steps=config.steps, progress=bars)
    threshold = task_threshold(problem, config.threshold)
    if config.method == "acdc":
        return run_method(problem, config.method, threshold, progress=bars)
    return run_method(problem, config.method, threshold, k=None if config.coverage is not None else k,
                      coverage=config.coverage, steps=config.steps, progress=bars, prior=prior)


def candidates_description(config: ExperimentConfig) -> str:
    if config.coverage is not None:
        return f"the fewest reaching faithfulness {config.coverage} (grid 25 x 2^i)"
    extra = ", ".join(f"{t}: {k}" for t, k in config.task_k if t in config.circuit_tasks)
    return f"{config.k}" + (f" ({extra})" if extra else "")


def _method_note(config: ExperimentConfig) -> str:
    if config.method == "hybrid":
        return (f"Hybrid discovery: EAP-IG ({config.steps} steps) scores all edges; the top "
                f"{candidates_description(config)} become ACDC's candidates and every other edge is removed "
                "untested; exact "
                "greedy ACDC (reference order and semantics, KL metric, corrupted ablation, relative threshold "
                f"{config.threshold}) decides among the candidates; each task's tau is that fraction of its own "
                f"KL(full || empty circuit). Corrupted prompts: the {config.corruption.value} corruption where the "
                "task offers it (the answer-like words replaced by fresh ones, as IOI's ABC distribution does), so "
                "the ablation removes what the answer is copied from. Each circuit is also evaluated on "
                f"{config.n_prompts} prompts of seed {config.held_out_seed}, which it was not discovered on. "
                "Exact ACDC over all edges of this model takes about a day on 2 CPU cores; on a GPU use "
                "--method acdc.")
    return f"Method {config.method}, threshold {config.threshold}."


def _circuit_row(run: TaskRun, config: ExperimentConfig) -> list[str]:
    c, m = run.circuit, run.circuit.metrics
    return [run.name, task_corruption(run.name, config).value, str(c.n_kept), f"{100 * c.n_kept / c.n_edges:.2f}%",
            str(c.n_functional_edges), str(len(c.functional_heads())), _fmt(m.get("full")), _fmt(m.get("circuit")),
            _fmt(m.get("empty")), _fmt(run.faithfulness), _fmt(run.held_out_faithfulness),
            str(c.settings.get("n_tested", "")), _fmt(c.settings.get("seconds"))]


def _overlap_row(o: Any) -> list[str]:
    return [f"{o.precision:.2f}", f"{o.recall:.2f}", f"{o.f1:.2f}", f"{o.jaccard:.2f}", str(len(o.only_a)),
            str(len(o.only_b)), str(len(o.both))]


def _viewer_heads(runs: Any, limit: int) -> list[str]:
    """Heads of the circuits for the viewer's attention panel, by how many circuits hold them, then layer."""
    count: dict[str, int] = {}
    for run in runs:
        for h in run.circuit.heads():
            count[h] = count.get(h, 0) + 1
    key = (lambda h: (-count[h], *(int(x) for x in h[1:].split(".h"))))
    return sorted(count, key=key)[:limit]


def _example_row(task: Any) -> list[str]:
    info = task.info
    correct = info.get("correct_answers", [""])[0]
    wrong = (info.get("wrong_answers") or [""])[0] or ""
    corrupted = task.corrupted_prompts[0] if task.corrupted_prompts else ""
    return [task.name, task.prompts[0] if task.prompts else "", repr(correct), repr(wrong), corrupted]


def _drawn_names(c: Circuit) -> set[str]:
    return {n for n in prune_to_paths(c).kept_edge_names() if "->" in n}


def _drawn_caption(c: Circuit) -> str:
    live = prune_to_paths(c)
    drawn = len(_drawn_names(c))
    return (f"Drawn: the {drawn} residual edges on an input-to-logits path; counted in the tables: all "
            f"{c.n_kept} kept graph edges ({live.n_kept - drawn} direct edges on those paths are marked on their "
            f"heads, {c.n_kept - live.n_kept} kept edges off every path are left out).")


def _drawn_overlap(a: Circuit, b: Circuit) -> Any:

    return overlap(_drawn_names(a), _drawn_names(b), a.graph.edge_names)


def _head_rows(c: Circuit, roles: dict[str, str], scores: Any) -> list[list[str]]:

    order = {n: i for i, n in enumerate(c.graph.node_names)}
    rows = []
    for h in sorted(c.heads(), key=order.__getitem__):
        layer, head = parse_head(h)
        rows.append([h, roles.get(h, ""), _fmt(float(scores.mover[layer, head])),
                     _fmt(float(scores.answer_attention[layer, head])), _fmt(float(scores.direct_logit[layer, head]))])
    return rows


def _edge_table(run: TaskRun, limit: int = 40) -> Table:
    c = run.circuit
    live = set(prune_to_paths(c).kept_edge_names())
    kept = sorted(torch.nonzero(c.kept).flatten().tolist(),
                  key=lambda e: -abs(float(c.scores[e])) if math.isfinite(float(c.scores[e])) else math.inf)
    names = c.graph.edge_names
    rows = [[names[e], edge_kind(c.graph, e), _fmt(float(c.scores[e])), "yes" if names[e] in live else "no"]
            for e in kept[:limit]]
    shown = f"the {len(rows)} with the largest |score| of" if len(kept) > limit else "all"
    return Table(f"Kept edges of {run.name}: {shown} {len(kept)} (score: ACDC's metric change on removal, or the "
                 "attribution score)", ["edge", "kind", "score", "on an input-to-logits path"], rows)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.3g}"
    return "" if x is None else str(x)
