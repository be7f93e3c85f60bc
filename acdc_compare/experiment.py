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
from acdc_compare.draw import draw_circuit, draw_comparison
from acdc_compare.export import save_circuit
from acdc_compare.attention import analogy_rows, head_analogies, viewer_attention
from acdc_compare.export import edge_kind, prune_to_paths
from acdc_compare.faithfulness import FaithfulnessCurve, circuit_faithfulness
from acdc_compare.graph import parse_head
from acdc_compare.plots import faithfulness_plot
from acdc_compare.report import Image, KeyValues, Table, Text, write_report
from acdc_compare.roles import assign_roles, compare_movers, role_table, score_heads
from acdc_compare.tasks.registry import ORDER_MEANING_PAIRS, format_tasks_table, make_task, tasks_table, verdict
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
    method: str = "hybrid"  # a registered method (acdc_compare.algorithms.registry.ALGORITHMS)
    threshold: float = 0.005  # relative: a fraction of each task's metric gap M(empty) - M(full)
    k: int = 200  # hybrid: ACDC decides among the top-k EAP-IG edges
    coverage: float | None = None  # hybrid, instead of k: fewest top EAP-IG edges reaching this faithfulness
    steps: int = 5
    n_prompts: int = 8
    n_eval: int = 20  # prompts per task for the accuracy table
    curve: bool = True  # EAP-IG faithfulness curve per task: how many edges its mechanism needs
    viewer_heads: int = 24  # at most this many circuit heads get attention patterns in the viewer
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        """Every setting checked when made, before any model loads."""
        algorithm(self.method)
        check_threshold(self.threshold)
        if self.method in ("acdc", "hybrid"):
            make_options(self.method, self.threshold, k=None if self.coverage is not None else self.k,
                         coverage=self.coverage, steps=self.steps)
        for name in ("k", "n_prompts", "n_eval", "steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")


@dataclass
class TaskRun:
    name: str
    circuit: Circuit
    json_path: Path
    diagram_paths: list[Path]
    faithfulness: float
    curve: FaithfulnessCurve | None = None  # faithfulness of the top EAP-IG edges at CURVE_FRACTIONS


@dataclass
class ExperimentResult:
    out_dir: Path
    runs: dict[str, TaskRun] = field(default_factory=dict)
    report: Path | None = None
    tasks_table: str = ""
    mover_verdicts: dict[str, str] = field(default_factory=dict)
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
    log(f"loading {config.model} ...")
    model = get_model(config.model)
    name = model_name(model)
    tok = model.tokenizer

    table_tasks = list(dict.fromkeys([config.task, config.comparison, config.control,
                                      *(t for p in ORDER_MEANING_PAIRS for t in (p.agree_task, p.disagree_task))]))
    log(f"evaluating {', '.join(table_tasks)} (accuracy, logit difference; `acdc-compare tasks` has all) ...")
    evals = tasks_table(model, names=table_tasks, n=config.n_eval, seed=config.seed)
    result.tasks_table = format_tasks_table(evals)
    (out / "tasks.txt").write_text(result.tasks_table + "\n")

    log(f"scoring head roles on {config.task} ...")
    role_tasks = [config.task, config.comparison, config.control]
    tasks = {t: make_task(t, tok, n=config.n_prompts, seed=config.seed) for t in role_tasks}
    scores = {t: score_heads(model, tasks[t], s_inhibition=(t == config.task)) for t in role_tasks}
    roles = assign_roles(scores[config.task])
    movers = {t: compare_movers(scores[config.task], scores[t]) for t in role_tasks[1:]}
    result.mover_verdicts = {t: m.verdict for t, m in movers.items()}

    circuits_dir = out / "circuits"
    circuits_dir.mkdir(exist_ok=True)
    for t in role_tasks:
        log(f"discovering the circuit of {t} ({config.method}, threshold {config.threshold}) ...")
        problem = prepare(t, model=model, n_prompts=config.n_prompts, seed=config.seed)
        prior = eap_ig_scores(problem, config.steps) if config.method == "hybrid" else None
        circuit = _discover(problem, config, prior)
        ranking = circuit.scores if config.method == "eap-ig" else prior
        json_path = save_circuit(circuit, circuits_dir / f"{t}.json")
        diagrams = [out / f"{t}.svg", out / f"{t}.png"]
        for path in diagrams:
            draw_circuit(circuit, path, roles=roles, title=f"{t} on {name}: {circuit.n_kept} edges")
        curve = None
        if config.curve and ranking is not None:
            curve = faithfulness_of_scores(problem, ranking, CURVE_FRACTIONS)
        result.runs[t] = TaskRun(t, circuit, json_path, diagrams, circuit_faithfulness(circuit), curve)
        log(f"  {circuit.n_kept} edges kept ({circuit.n_functional_edges} on input->logits paths, "
            f"{len(circuit.functional_heads())} heads), faithfulness {result.runs[t].faithfulness:.2f}, "
            f"{circuit.settings.get('seconds', 0):.0f} s")
        if curve is not None:
            log("  top EAP-IG edges: " + ", ".join(f"{n} -> {f:.2f}" for n, f in zip(curve.sizes, curve.faithfulness))
                + f" (CPR {curve.cpr:.2f}, CMD {curve.cmd:.2f})")

    comparisons = []
    for left, right in ((config.task, config.comparison), (config.comparison, config.control)):
        a, b = result.runs[left].circuit, result.runs[right].circuit
        stem = f"compare_{left}_vs_{right}"
        paths = [out / f"{stem}.svg", out / f"{stem}.png"]
        for path in paths:
            draw_comparison(a, b, path, left, right, roles=roles, title=f"{left} vs {right} on {name}")
        result.runs[left].diagram_paths.extend(paths)
        comparisons.append((left, right, compare_circuits(a, b), paths[0]))

    heads = _viewer_heads(result.runs.values(), config.viewer_heads)
    log(f"attention of {len(heads)} circuit heads on {config.comparison} vs {config.control} (analogy measure) ...")
    analogies = head_analogies(model, tasks[config.comparison], tasks[config.control], heads, seed=config.seed)
    attention = viewer_attention(model, [tasks[config.comparison], tasks[config.control], tasks[config.task]], heads,
                                 analogies=analogies)
    by_eval = {e.name: e for e in evals}
    sections: list[Any] = [
        KeyValues("Settings", {"model": name, "method": config.method, "threshold": config.threshold,
                               "hybrid candidates (top-k EAP-IG edges)": _candidates(config),
                               "EAP-IG steps": config.steps,
                               "prompts per discovery": config.n_prompts, "prompts per task evaluation": config.n_eval,
                               "seed": config.seed, "graph": result.runs[config.task].circuit.graph.config.key,
                               "edges in the graph": result.runs[config.task].circuit.n_edges}),
        Text("Method", _method_note(config), preformatted=False),
        Table("Example prompt per task (prompt 0 of each; the corrupted prompt differs only where shown)",
              ["task", "prompt", "correct", "wrong", "corrupted prompt"],
              [_example_row(tasks[t]) for t in role_tasks]),
        Text("Task accuracies and order-vs-meaning pairs", result.tasks_table, preformatted=True),
        Table("Circuits", ["task", "edges kept", "functional edges", "functional heads", "metric full",
                           "metric circuit", "metric empty", "normalised faithfulness", "edges tested", "seconds"],
              [_circuit_row(r) for r in result.runs.values()]),
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
        if p.agree_task not in by_eval or p.disagree_task not in by_eval:
            continue
        agree, disagree = by_eval[p.agree_task], by_eval[p.disagree_task]
        sections.append(Table(f"Order-vs-meaning control: {p.name} - {verdict(agree, disagree)}",
                              ["", "task", "prompts", "accuracy", "logit diff", "KL(clean || corrupted)"],
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
    """ACDC's tau for one task: `relative` x (M(empty) - M(full)). Tasks differ widely in how much their
    corruption moves the output (KL 4.2 for IOI, 0.03 for the pet family on SmolLM2), so one absolute tau
    would keep everything of one task and nothing of another; a fraction of the gap makes them comparable."""
    full, empty = problem.metric_ends
    return max(empty - full, 0.0) * relative


def _discover(problem: Problem, config: ExperimentConfig, prior: torch.Tensor | None) -> Circuit:
    if config.method in ("eap", "eap-ig"):
        return run_method(problem, config.method, top_n=config.k, steps=config.steps)
    k = None if config.coverage is not None else config.k
    return run_method(problem, config.method, task_threshold(problem, config.threshold), k=k,
                      coverage=config.coverage, steps=config.steps, progress=config.progress, prior=prior)


def _candidates(config: ExperimentConfig) -> str:
    if config.coverage is not None:
        return f"the fewest reaching faithfulness {config.coverage} (grid 25 x 2^i)"
    return str(config.k)


def _method_note(config: ExperimentConfig) -> str:
    if config.method == "hybrid":
        return (f"Hybrid discovery: EAP-IG ({config.steps} steps) scores all edges; the top "
                f"{_candidates(config)} become ACDC's candidates and every other edge is removed untested; exact "
                "greedy ACDC (reference order and semantics, KL metric, corrupted ablation, relative threshold "
                f"{config.threshold}) decides among the candidates; each task's tau is that fraction of its own "
                "KL(full || empty circuit). Exact ACDC over all edges of this model takes about a day on 2 CPU "
                "cores; on a GPU use --method acdc.")
    return f"Method {config.method}, threshold {config.threshold}."


def _circuit_row(run: TaskRun) -> list[str]:
    c, m = run.circuit, run.circuit.metrics
    return [run.name, str(c.n_kept), str(c.n_functional_edges), str(len(c.functional_heads())),
            _fmt(m.get("full")), _fmt(m.get("circuit")), _fmt(m.get("empty")), _fmt(run.faithfulness),
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
