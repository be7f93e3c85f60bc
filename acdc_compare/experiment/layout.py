"""The demo report's layout: which sections, in which order, with which rows, from the stages' outputs.

Pure formatting: nothing here runs a model; `run.run_experiment` hands it what the stages returned."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


from acdc_compare.circuit import Circuit
from acdc_compare.compare import overlap
from acdc_compare.experiment.conclusion import EvalKey, conclusion_section, weak_note
from acdc_compare.draw import figure_note, plan_heads
from acdc_compare.draw.head_figure import drawn_counts
from acdc_compare.draw.head_plan import head_level
from acdc_compare.experiment.config import ExperimentConfig, ExperimentResult, TaskRun
from acdc_compare.experiment.stages import AttentionStage, Comparison, RoleScores
from acdc_compare.export import edge_kind, prune_to_paths
from acdc_compare.fmt import duration, num
from acdc_compare.graph import parse_head
from acdc_compare.movers import MoverOverlap
from acdc_compare.plots import faithfulness_plot
from acdc_compare.report import Image, KeyValues, Table, Text
from acdc_compare.role_tables import role_labels, role_table
from acdc_compare.roles.assign import MoverSet, RoleThresholds
from acdc_compare.tasks.base import Task
from acdc_compare.tasks.evaluate import TaskEvaluation
from acdc_compare.tasks.registry import ORDER_MEANING_PAIRS, task_spec, verdict
from acdc_compare.viewer import viewer_section

MOVER_COLUMNS: tuple[str, ...] = ("task", "answer kind", "accuracy", "logit diff", "corruption", "edges", "faithfulness",
                                  "held-out faithfulness", "movers", "shared with IOI's name movers",
                                  "chance overlap", "verdict")

def evaluations_by_key(evals: Sequence[TaskEvaluation]) -> dict[EvalKey, TaskEvaluation]:
    """Task evaluations by (task, corruption value)."""
    return {(e.name, e.corruption): e for e in evals}  # type: ignore[misc]


def mover_rows(runs: dict[str, TaskRun], config: ExperimentConfig, evals: dict[EvalKey, TaskEvaluation],
               name_movers: MoverSet, n_heads: int) -> list[dict[str, Any]]:
    """The mover table: one row per circuit, its movers set against IOI's name movers (`name_movers`, the
    one mover rule on IOI's head scores)."""
    rows = []
    for t, run in runs.items():
        corruption = config.corruption_of(t).value
        evaluation = evals.get((t, corruption))
        shared = MoverOverlap(t, run.movers.heads, name_movers.heads, n_heads)
        is_ioi = t == config.task
        weak = weak_note(evaluation, run.held_out_faithfulness, config)
        verdict = (f"IOI's name movers: {name_movers.describe()}; {len(run.movers.heads)} on its circuit" if is_ioi
                   else shared.verdict())
        rows.append({
            "task": t, "answer kind": task_spec(t).answer_kind,
            "accuracy": evaluation.accuracy_interval.short() if evaluation else "",
            "logit diff": _fmt(evaluation.logit_diff) if evaluation else "",
            "corruption": corruption, "edges": run.circuit.n_kept, "faithfulness": _fmt(run.faithfulness),
            "held-out faithfulness": _fmt(run.held_out_faithfulness), "movers": run.movers.describe(),
            "shared with IOI's name movers": "(these are IOI's)" if is_ioi else shared_cell(run.movers, name_movers),
            "chance overlap": "" if is_ioi else f"{shared.chance:.2f}",
            "verdict": f"{weak}; {verdict}" if weak else verdict,
        })
    return rows


def shared_cell(movers: MoverSet, name_movers: MoverSet) -> str:
    """The task's movers that are IOI's name movers, then those shared only through a borderline head."""
    shared = [h for h in movers.heads if h in name_movers.heads]
    ioi_any = set(name_movers.heads + name_movers.borderline)
    edge = [h for h in movers.heads + movers.borderline if h in ioi_any and h not in shared]
    return (", ".join(shared) or "none") + (f" (borderline: {', '.join(edge)})" if edge else "")


def candidates_description(config: ExperimentConfig) -> str:
    if config.coverage is not None:
        return f"the fewest reaching faithfulness {config.coverage} (grid 25 x 2^i)"
    return _per_task(config.k, config.task_k, config)


def ranking_description(config: ExperimentConfig) -> str:
    """How each task's candidates are ranked: EAP-IG, or masks learned from it."""
    learned = f"masks learned from EAP-IG, {config.learn_steps} steps"
    return _per_task("EAP-IG", tuple((t, learned if r == "learned" else r) for t, r in config.task_ranking), config)


def prompts_description(config: ExperimentConfig) -> str:
    """How many prompts each task's circuit is discovered on."""
    return _per_task(config.n_prompts, config.task_prompts, config)


def tested_description(config: ExperimentConfig) -> str:
    """How many of each task's lowest-ranked candidates exact ACDC tests."""
    return _per_task("all" if config.tested is None else config.tested, config.task_tested, config)


def _per_task(default: object, overrides: tuple[tuple[str, object], ...], config: ExperimentConfig) -> str:
    """'default (task: value, ...)' for the overrides of the experiment's circuit tasks."""
    extra = ", ".join(f"{t}: {v}" for t, v in overrides if t in config.circuit_tasks)
    return f"{default}" + (f" ({extra})" if extra else "")


def stage_table(stage_seconds: dict[str, float], total: float) -> list[tuple[str, float]]:
    """(stage, seconds) rows in the order the stages ran, then the total."""
    return [*stage_seconds.items(), ("total", total)]


@dataclass(frozen=True)
class ReportInputs:
    """What the report is laid out from: the result, the stages' outputs and the model's label."""

    config: ExperimentConfig
    result: ExperimentResult
    model_label: str
    tasks: dict[str, Task]
    evals: dict[EvalKey, TaskEvaluation]
    roles: RoleScores
    comparisons: list[Comparison]
    attention: AttentionStage


def report_lead(r: ReportInputs) -> list[Any]:
    """What the report shows right under its title: the conclusion, derived from the result."""
    return [conclusion_section(r.config, r.result, r.evals, r.roles.scores[r.config.task].mover.numel())]


def report_sections(r: ReportInputs) -> list[Any]:
    """Every section of the demo's report, in reading order."""
    return [*_summary_sections(r), *_curve_sections(r), *_circuit_sections(r), *_comparison_sections(r),
            *_role_sections(r), *_order_meaning_sections(r)]


def _summary_sections(r: ReportInputs) -> list[Any]:
    config, runs = r.config, r.result.runs
    anchor = runs[config.task].circuit
    return [
        KeyValues("Settings", {"model": r.model_label, "method": config.method, "threshold": config.threshold,
                               "hybrid candidates (top-k edges by the ranking)": candidates_description(config),
                               "candidate ranking": ranking_description(config),
                               "candidates reduced to input->logits paths": config.functional,
                               "candidates ACDC tests (lowest-ranked; the rest kept untested)":
                                   tested_description(config),
                               "EAP-IG steps": config.steps,
                               "prompts per discovery (EAP-IG ranks on the first "
                               f"{config.n_prompts})": prompts_description(config),
                               "prompts per task evaluation": config.n_eval,
                               "seed": config.seed, "held-out prompts (seed)":
                                   f"{config.n_held_out} ({config.held_out_seed})",
                               "graph": anchor.graph.config.key,
                               "edges in the graph": anchor.n_edges}),
        Text("Method", _method_note(config, r.result.exact_acdc_seconds), preformatted=False),
        Table("Example prompt per task (prompt 0 of each; the corrupted prompt differs only where shown)",
              ["task", "prompt", "correct", "wrong", "corrupted prompt"],
              [_example_row(r.tasks[t]) for t in config.circuit_tasks]),
        Text("Task accuracies and order-vs-meaning pairs", r.result.tasks_table, preformatted=True),
        Table("Circuits", ["task", "corruption", "edges kept", "share of the graph", "functional edges",
                           "functional heads", "metric full", "metric circuit", "metric empty",
                           "normalised faithfulness",
                           f"held-out ({config.n_held_out} prompts, seed {config.held_out_seed})", "edges tested",
                           "seconds"],
              [_circuit_row(run, config) for run in runs.values()]),
        Text("Target", _target_note(runs, config)),
        Table("Time per stage (wall seconds)", ["stage", "seconds"],
              [[name, f"{s:.1f}"] for name, s in stage_table(r.result.stage_seconds, r.result.seconds)]),
        Table("The mover question, from circuits: which heads of each circuit move its answer, and are they IOI's?",
              list(MOVER_COLUMNS), [[row[c] for c in MOVER_COLUMNS] for row in r.result.mover_table]),
        Text("", f"Movers: heads of the circuit on a kept input->logits path passing the one mover rule: "
                 f"{RoleThresholds().describe_movers()} (mover score: attention from the scored "
                 "position to the answer's token x the head's direct logit contribution to correct - wrong, "
                 f"on the task's clean prompts). IOI's name movers are the heads the same rule finds on IOI (its role table's name movers); "
                 "chance: the overlap expected for random head sets of those sizes."),
        viewer_section({run.name: run.circuit for run in runs.values()}, roles=r.roles.roles,
                       attention=r.attention.viewer,
                       title="Interactive circuit viewer (drag to pan, wheel to zoom, click a node to pin it; "
                             "a pinned head shows its attention patterns)"),
    ]


def _curve_sections(r: ReportInputs) -> list[Any]:
    curves = [run for run in r.result.runs.values() if run.curve is not None]
    if not curves:
        return []
    sizes = curves[0].curve.sizes  # type: ignore[union-attr]
    return [
        Table("How many edges does each task's mechanism need? Normalised faithfulness of the top EAP-IG edges "
              "(MIB's CPR: higher is better; CMD: lower is better)",
              ["task", *[f"{n} edges" for n in sizes], "CPR", "CMD"],
              [[run.name, *[f"{f:.2f}" for f in run.curve.faithfulness], f"{run.curve.cpr:.2f}",  # type: ignore[union-attr]
                f"{run.curve.cmd:.2f}"] for run in curves]),  # type: ignore[union-attr]
        faithfulness_plot({run.name: (run.curve.sizes, run.curve.faithfulness) for run in curves},  # type: ignore[union-attr]
                          "Faithfulness curves of the top EAP-IG edges"),
    ]


def _circuit_sections(r: ReportInputs) -> list[Any]:
    config, scores = r.config, r.roles.scores
    sections: list[Any] = []
    for run in r.result.runs.values():
        sections.append(Image(f"Circuit: {run.name}", run.diagram_paths[1].name, embed=True,
                              caption=_drawn_caption(run.circuit, r.roles.roles)))
        sections.append(Table(f"Heads of the {run.name} circuit (role: from the head scores on {config.task}; "
                              f"mover score and attention to the answer: on {run.name}; by |mover score|)",
                              ["head", "role", "mover score", "attention to answer", "direct logit attribution"],
                              _head_rows(run.circuit, role_labels(r.roles.roles, r.result.name_movers),
                                         scores.get(run.name, scores[config.task]))))
        sections.append(_edge_table(run))
        if RANKING_NOTE not in sections:  # once, after the first circuit's table
            sections.append(RANKING_NOTE)
    return sections


def _comparison_sections(r: ReportInputs) -> list[Any]:
    sections: list[Any] = []
    for cmp_ in r.comparisons:
        left, right = cmp_.left, cmp_.right
        a, b = r.result.runs[left].circuit, r.result.runs[right].circuit
        sections.append(Table(f"{left} vs {right}", ["", "precision", "recall", "F1", "Jaccard",
                                                     f"only {left}", f"only {right}", "both"],
                              [[level, *_overlap_row(getattr(cmp_.comparison, level))]
                               for level in ("edges", "nodes", "heads")]
                              + [["edges on paths", *_overlap_row(_drawn_overlap(a, b))],
                                 ["heads on paths", *_overlap_row(overlap(a.functional_heads(), b.functional_heads(),
                                                                          a.graph.node_names))]]))
        sections.append(Text("", "edges: every kept graph edge (residual and direct), as the circuit files hold "
                                 "them; edges on paths: the residual edges on an input-to-logits path, the ones "
                                 "the edge-level figure and viewer draw; heads on paths: heads sending such an "
                                 "edge, the heads of the head-level figure below (its legend repeats the kept-edge "
                                 "and heads-on-paths counts)."))
        sections.append(Image(f"Side by side: {left} vs {right}", cmp_.svg.with_suffix(".png").name, embed=True))
    return sections


def role_table_sections(rows: list[dict[str, Any]], task: str) -> list[Any]:
    """The head-role table (one row per labelled head, no rule column) and its footnote giving each role's
    rule once; nothing without rows."""
    if not rows:
        return []
    headers = [h for h in rows[0] if h != "rule"]
    rules = {row["role"]: row["rule"] for row in rows}
    return [Table(f"Head roles on {task} (each role's rule below the table)", headers,
                  [[_fmt(row[h]) for h in headers] for row in rows]),
            Text("", "Rules: " + "; ".join(f"{role}: {rule}" for role, rule in rules.items()) + ".")]


def _role_sections(r: ReportInputs) -> list[Any]:
    config, roles = r.config, r.roles
    sections: list[Any] = []
    name_movers = r.result.name_movers
    sections += role_table_sections(role_table(roles.scores[config.task], roles.roles, name_movers=name_movers),
                                    config.task)
    sections.append(Table(f"Are the comparison tasks' movers IOI's name movers ({name_movers.describe()})? "
                          "Over all heads, by the same rule",
                          ["task", "top mover scores", "movers", "shared with IOI's name movers", "chance overlap",
                           "spearman", "verdict"],
                          [[t, ", ".join(f"{h} ({s:.2f})" for h, s in m.other_top), m.other_movers.describe(),
                            shared_cell(m.other_movers, m.ioi_name_movers), f"{m.chance_overlap:.2f}",
                            f"{m.spearman:.2f}", m.verdict] for t, m in roles.movers.items()]))
    sections.append(Table(
        f"Analogy: does each circuit head attend to the same roles on {config.comparison} and {config.control}?",
        ["head", "role", f"attn to correct ({config.comparison})", f"attn to correct ({config.control})", "1 - TV",
         "1 - TV shuffled", "Pearson", "Pearson shuffled"],
        [[a.head, roles.roles.get(a.head, ""), _fmt(a.dist_a[0]), _fmt(a.dist_b[0]), _fmt(a.tv_similarity),
          _fmt(a.baseline_tv), _fmt(a.pearson), _fmt(a.baseline_pearson)] for a in r.attention.analogies]))
    sections.append(Text("", "Attention from the scored position, summed by the role of each key token (correct "
                             "answer, wrong answer, other answer-like tokens, first token, the scored token, the "
                             "rest). 1 - TV: one minus the total variation distance between the two tasks' mean role "
                             "distributions; Pearson: over aligned (prompt, role) cells (the same prompts, "
                             "rewritten); shuffled: the same after permuting role labels within each prompt "
                             "(200 times), what a head scores whatever the roles."))
    return sections


def _order_meaning_sections(r: ReportInputs) -> list[Any]:
    sections: list[Any] = []
    for p in ORDER_MEANING_PAIRS:
        keys = [(t, r.config.corruption_of(t).value) for t in (p.agree_task, p.disagree_task)]
        if not all(key in r.evals for key in keys):
            continue
        agree, disagree = (r.evals[key] for key in keys)
        sections.append(Table(f"Order-vs-meaning control: {p.name} - {verdict(agree, disagree)}",
                              ["", "task", "prompts", "accuracy [95% Wilson interval]", "logit diff",
                               f"KL(clean || corrupted), {agree.corruption} corruption"],
                              [["order and meaning agree", agree.name, agree.n, agree.accuracy_interval.short(),
                                _fmt(agree.logit_diff), _fmt(agree.kl)],
                               ["they disagree", disagree.name, disagree.n, disagree.accuracy_interval.short(),
                                _fmt(disagree.logit_diff), _fmt(disagree.kl)]]))
        sections.append(Text("", f"{p.shows} Verdict: {verdict(agree, disagree)}."))
    return sections


def _target_note(runs: dict[str, TaskRun], config: ExperimentConfig) -> str:
    """Which circuits reach the target faithfulness within the edge budget, on both prompt samples."""
    lines = []
    for t, run in runs.items():
        budget = config.max_edge_fraction * run.circuit.n_edges
        ok = [run.faithfulness >= config.target_faithfulness, run.held_out_faithfulness >= config.target_held_out,
              run.circuit.n_kept <= budget]
        state = "reaches" if all(ok) else "does NOT reach"
        lines.append(f"{t} {state} the target (normalised faithfulness >= {config.target_faithfulness:g} in-sample, "
                     f">= {config.target_held_out:g} on {config.n_held_out} held-out prompts, with <= "
                     f"{100 * config.max_edge_fraction:g}% of the edges): {run.faithfulness:.2f} "
                     f"/ {run.held_out_faithfulness:.2f} with {run.circuit.n_kept} edges "
                     f"({100 * run.circuit.n_kept / run.circuit.n_edges:.2f}%).")
    return "\n".join(lines)


def _exact_note(config: ExperimentConfig, exact_seconds: float) -> str:
    """What exact ACDC over every edge would cost where the demo ran (the estimate `discover` warns with)."""
    if not math.isfinite(exact_seconds):
        return ""
    return (f" Exact ACDC over all edges of the {config.task} graph would take about {duration(exact_seconds)} "
            "here (estimated from one timed forward, as `discover` warns); on a GPU use --method acdc.")


def _method_note(config: ExperimentConfig, exact_seconds: float) -> str:
    if config.method == "hybrid":
        learned = [t for t, r in config.task_ranking if r == "learned" and t in config.circuit_tasks]
        learning = (f"; for {', '.join(learned)} those scores only start {config.learn_steps} steps of mask "
                    "learning (each candidate edge a sigmoid mask, Adam on the KL of the masked circuit over "
                    f"minibatches of {config.n_prompts} of its discovery prompts, with an edge budget of k, "
                    "annealed towards 0/1), and the learned masks rank the edges instead") if learned else ""
        return (f"Hybrid discovery: EAP-IG ({config.steps} steps, on the first {config.n_prompts} discovery "
                f"prompts) scores all edges{learning}; the top "
                f"{candidates_description(config)} are the candidate circuit and every other edge is removed "
                "untested" + (", then the candidates are reduced to their input-to-logits paths (the others "
                              "change no metric)" if config.functional else "")
                + f"; exact greedy ACDC tests the lowest-ranked {tested_description(config)} of them and keeps "
                "the higher-ranked ones untested (reference order and semantics, KL metric, corrupted ablation, "
                f"relative threshold {config.threshold}); each task's tau is that fraction of its own "
                f"KL(full || empty circuit). Corrupted prompts: the {config.corruption.value} corruption where the "
                "task offers it (the answer-like words replaced by fresh ones, as IOI's ABC distribution does), so "
                "the ablation removes what the answer is copied from. Each circuit is also evaluated on "
                f"{config.n_held_out} prompts of seed {config.held_out_seed}, which it was not discovered on. "
                + _exact_note(config, exact_seconds))
    return f"Method {config.method}, threshold {config.threshold}."


def _circuit_row(run: TaskRun, config: ExperimentConfig) -> list[str]:
    c, m = run.circuit, run.circuit.metrics
    return [run.name, config.corruption_of(run.name).value, str(c.n_kept), f"{100 * c.n_kept / c.n_edges:.2f}%",
            str(c.n_functional_edges), str(len(c.functional_heads())), _fmt(m.get("full")), _fmt(m.get("circuit")),
            _fmt(m.get("empty")), _fmt(run.faithfulness), _fmt(run.held_out_faithfulness),
            str(c.settings.get("n_tested", "")), _fmt(c.settings.get("seconds"))]


def _overlap_row(o: Any) -> list[str]:
    return [f"{o.precision:.2f}", f"{o.recall:.2f}", f"{o.f1:.2f}", f"{o.jaccard:.2f}", str(len(o.only_a)),
            str(len(o.only_b)), str(len(o.both))]


def _example_row(task: Task) -> list[str]:
    info = task.info
    correct = info.get("correct_answers", [""])[0]
    wrong = (info.get("wrong_answers") or [""])[0] or ""
    corrupted = task.corrupted_prompts[0] if task.corrupted_prompts else ""
    return [task.name, task.prompts[0] if task.prompts else "", repr(correct), repr(wrong), corrupted]


def _drawn_names(c: Circuit) -> set[str]:
    return {n for n in prune_to_paths(c).kept_edge_names() if "->" in n}


def _drawn_caption(c: Circuit, roles: dict[str, str]) -> str:
    live = prune_to_paths(c)
    counted = f"counted in the tables: all {c.n_kept} kept graph edges"
    if head_level("auto", c):
        plan = plan_heads(c, must=[n for n in roles if n in set(live.nodes())])
        drawn = drawn_counts(plan)
        return (f"Head level: the heads and MLPs on input-to-logits paths, the kept edges between two of them merged "
                f"into one arrow. {drawn[0].upper()}{drawn[1:]}; {counted}. The viewer "
                "below switches to every edge.")
    drawn = len(_drawn_names(c))
    note = figure_note(c, roles, "edges")
    return (f"Drawn: the {drawn} residual edges on an input-to-logits path; {counted} ({live.n_kept - drawn} direct "
            f"edges on those paths are marked on their heads, {c.n_kept - live.n_kept} kept edges off every path "
            f"are left out)." + (f" {note[0].upper()}{note[1:]}." if note else ""))


def _drawn_overlap(a: Circuit, b: Circuit) -> Any:
    return overlap(_drawn_names(a), _drawn_names(b), a.graph.edge_names)


def _head_rows(c: Circuit, roles: dict[str, str], scores: Any) -> list[list[str]]:
    """One row per head of `c`, most important first: by |mover score| (unscored heads last, then graph order)."""
    order = {n: i for i, n in enumerate(c.graph.node_names)}

    def importance(h: str) -> tuple[float, int]:
        value = abs(float(scores.mover[parse_head(h)]))
        return (-value if math.isfinite(value) else math.inf, order[h])

    rows = []
    for h in sorted(c.heads(), key=importance):
        layer, head = parse_head(h)
        rows.append([h, roles.get(h, ""), _fmt(float(scores.mover[layer, head])),
                     _fmt(float(scores.answer_attention[layer, head])), _fmt(float(scores.direct_logit[layer, head]))])
    return rows


def _edge_table(run: TaskRun, limit: int = 40) -> Table:
    c = run.circuit
    live = set(prune_to_paths(c).kept_edge_names())
    kept = c.ranking()[:c.n_kept].tolist()
    names = c.graph.edge_names
    rows = [[str(rank), names[e], edge_kind(c.graph, e), _fmt(float(c.scores[e])), c.score_kind(e).value,
             "yes" if names[e] in live else "no"] for rank, e in enumerate(kept[:limit], start=1)]
    shown = f"the first {len(rows)} in its ranking of" if len(kept) > limit else "all"
    return Table(f"Kept edges of {run.name}: {shown} {len(kept)}",
                 ["rank", "edge", "kind", "score", "score is", "on an input-to-logits path"], rows)


RANKING_NOTE = Text("", "Kept edges are ranked by the score that kept each: the method's ranking score (a learned "
                        "mask logit, an EAP-IG score) for the edges kept untested, then ACDC's metric change on "
                        "removal for the edges ACDC tested and kept. Figures, the viewer and the MIB export use the "
                        "same ranking.")


def _fmt(x: Any) -> str:
    """A table cell: floats through the one number formatter (`fmt.num`), None empty."""
    if isinstance(x, float):
        return num(x, 3)
    return "" if x is None else str(x)
