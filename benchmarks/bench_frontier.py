"""Faithfulness vs time of circuit-discovery variants on the demo's tasks (issue 27): for each task, each
variant's circuit on the default model with the demo's corruption, its edges (and share of the graph), its
normalised faithfulness on the discovery prompts and on the held-out prompts (the demo's `n_held_out`
prompts of `held_out_seed`), and the seconds it took (EAP-IG once per task, shared by the rows:
`eap_seconds`; the variant's own work: `seconds`), with the load average at the start and end of each row,
since other processes on the cores inflate the times.

Variants:
- `acdc-among-top-k`: the previous demo's hybrid, exact ACDC tests every one of the top-k EAP-IG edges
  (relative threshold 0.002, k 700 for IOI, 300 for the others);
- `top-k`: the top-k EAP-IG edges alone, no test (k: the demo's);
- `top-k-functional`: the same reduced to its input->logits paths (no metric changes);
- `demo`: the demo's hybrid (`ExperimentConfig()`): top-k, functional, exact ACDC over the lowest-ranked
  `tested` candidates; for IOI the candidates are masks learned from EAP-IG over 32 discovery prompts
  (`ranking="learned"`), its in-sample faithfulness is on those 32;
- `learned-budget-12`, `-16`, `-20`: masks learned from EAP-IG (12, 16 or 20 steps at `MaskLearning`'s learning
  rate, minibatches of 8 over
  32 prompts of the discovery seed), their functional top within the edge budget, no ACDC; in-sample on the 32;
- `budget-ranked-on-8`, `budget-ranked-on-16`, `budget-ranked-on-32`: the most top EAP-IG edges whose
  input->logits part fits the demo's edge budget (`max_edge_fraction` of the graph), ranked by EAP-IG on the
  first 8, 16 or 32 prompts of the discovery seed; its in-sample faithfulness is on those prompts, its seconds
  the EAP-IG run on them (ranked on 8: the shared run). How much the ranking prompts move the circuit's
  faithfulness on new prompts.

    python benchmarks/bench_frontier.py [--tasks ioi pet-last ...] [--variants demo top-k ...]
                                        [--skip pet-last:acdc-among-top-k ...]

Writes results/frontier_<cpu|cuda>.json after every row, so a cut run keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, save  # noqa: E402

from acdc_compare.algorithms.eap import eap_ig_scores  # noqa: E402
from acdc_compare.algorithms.learned import MaskLearning, learned_mask_scores  # noqa: E402
from acdc_compare.algorithms.problem import Problem  # noqa: E402
from acdc_compare.api import get_model, prepare, run_method  # noqa: E402
from acdc_compare.circuit import Circuit  # noqa: E402
from acdc_compare.experiment import ExperimentConfig, held_out_faithfulness, task_threshold  # noqa: E402
from acdc_compare.faithfulness import normalized_faithfulness  # noqa: E402

Variant = Callable[[Problem, ExperimentConfig, torch.Tensor], tuple[Circuit, dict[str, Any]]]
Ranked = tuple[Circuit, dict[str, Any], Problem]  # a variant with its own discovery prompts


def _acdc_among_top_k(problem: Problem, config: ExperimentConfig, prior: torch.Tensor) -> tuple[Circuit, dict]:
    k = 700 if problem.task.name == "ioi" else 300
    c = run_method(problem, "hybrid", task_threshold(problem, 0.002), k=k, prior=prior)
    return c, {"k": k, "relative_threshold": 0.002, "n_tested": c.settings["n_tested"]}


def _top_k(problem: Problem, config: ExperimentConfig, prior: torch.Tensor) -> tuple[Circuit, dict]:
    k = config.k_of(problem.task.name)
    return Circuit.from_scores(problem.graph, prior, top_n=k), {"k": k}


def _top_k_functional(problem: Problem, config: ExperimentConfig, prior: torch.Tensor) -> tuple[Circuit, dict]:
    circuit, info = _top_k(problem, config, prior)
    return circuit.functional(), info


def _discovery_problem(problem: Problem, model: Any, config: ExperimentConfig) -> Problem:
    """The demo's discovery prompts for the task (`prompts_of`: 32 for IOI, whose first 8 are `problem`'s)."""
    n = config.prompts_of(problem.task.name)
    if n == problem.task.n_prompts:
        return problem
    return prepare(problem.task.name, model=model, n_prompts=n, seed=config.seed,
                   corruption=config.corruption_of(problem.task.name), check=False)


def _demo(problem: Problem, model: Any, config: ExperimentConfig, prior: torch.Tensor) -> Ranked:
    name = problem.task.name
    found_on = _discovery_problem(problem, model, config)
    c = run_method(found_on, "hybrid", task_threshold(found_on, config.threshold), k=config.k_of(name), prior=prior,
                   tested=config.tested_of(name), functional=config.functional, ranking=config.ranking_of(name),
                   learn_steps=config.learn_steps, learn_batch=config.n_prompts)
    return c, {"k": config.k_of(name), "tested": config.tested_of(name), "relative_threshold": config.threshold,
               "n_tested": c.settings["n_tested"], "ranking": config.ranking_of(name),
               "discovery_prompts": found_on.task.n_prompts}, found_on


def _learned_budget(steps: int) -> Callable[[Problem, Any, ExperimentConfig, torch.Tensor], Ranked]:
    def variant(problem: Problem, model: Any, config: ExperimentConfig, prior: torch.Tensor) -> Ranked:
        found_on = prepare(problem.task.name, model=model, n_prompts=32, seed=config.seed,
                           corruption=config.corruption_of(problem.task.name), check=False)
        budget = int(config.max_edge_fraction * problem.graph.n_edges)
        learned = learned_mask_scores(found_on, prior, MaskLearning(budget=budget, steps=steps,
                                                                    batch_prompts=config.n_prompts))
        return (Circuit.functional_within(problem.graph, learned, budget),
                {"learn_steps": steps, "lr": MaskLearning.lr, "edge_budget": budget, "discovery_prompts": 32}, found_on)
    return variant


VARIANTS: dict[str, Variant] = {"acdc-among-top-k": _acdc_among_top_k, "top-k": _top_k,
                                "top-k-functional": _top_k_functional}
OWN_PROMPTS: dict[str, Callable[[Problem, Any, ExperimentConfig, torch.Tensor], Ranked]] = {
    "demo": _demo, **{f"learned-budget-{steps}": _learned_budget(steps) for steps in (12, 16, 20)}}
RANKED_ON: dict[str, int] = {"budget-ranked-on-8": 8, "budget-ranked-on-16": 16, "budget-ranked-on-32": 32}


def _ranked_on(n: int, problem: Problem, model: Any, config: ExperimentConfig, prior: torch.Tensor) -> Ranked:
    if n != problem.task.n_prompts:
        problem = prepare(problem.task.name, model=model, n_prompts=n, seed=config.seed,
                          corruption=config.corruption_of(problem.task.name), check=False)
        prior = eap_ig_scores(problem, config.steps)
    budget = int(config.max_edge_fraction * problem.graph.n_edges)
    return Circuit.functional_within(problem.graph, prior, budget), {"ranked_on_prompts": n, "edge_budget": budget}, problem


def _row(name: str, problem: Problem, model: Any, config: ExperimentConfig, prior: torch.Tensor) -> dict[str, Any]:
    load = os.getloadavg()[0]
    started = time.perf_counter()
    if name in RANKED_ON:
        circuit, info, problem = _ranked_on(RANKED_ON[name], problem, model, config, prior)
    elif name in OWN_PROMPTS:
        circuit, info, problem = OWN_PROMPTS[name](problem, model, config, prior)
    else:
        circuit, info = VARIANTS[name](problem, config, prior)
    seconds = time.perf_counter() - started
    full, empty = problem.metric_ends
    return {"variant": name, **info, "edges": circuit.n_kept, "edge_share": circuit.n_kept / circuit.n_edges,
            "functional_edges": circuit.n_functional_edges,
            "faithfulness": normalized_faithfulness(float(problem.evaluate(circuit)[0]), full, empty),
            "held_out_faithfulness": held_out_faithfulness(circuit, problem.task.name, model, config),
            "seconds": seconds, "load_average": [load, os.getloadavg()[0]]}


def _saved_tasks(device: torch.device) -> dict[str, Any]:
    """The per-task entries of the saved frontier file of this device kind (none when there is no file)."""
    path = RESULTS / f"frontier_{device.type}.json"
    return json.loads(path.read_text()).get("tasks", {}) if path.exists() else {}


def main() -> None:
    config = ExperimentConfig(progress=False)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=config.circuit_tasks)
    ap.add_argument("--variants", nargs="+", default=[*VARIANTS, "demo"], choices=[*VARIANTS, *OWN_PROMPTS, *RANKED_ON])
    ap.add_argument("--skip", nargs="*", default=[], metavar="TASK:VARIANT",
                    help="rows not to run, e.g. pet-last:acdc-among-top-k (slow on long prompts)")
    ap.add_argument("--merge", action="store_true",
                    help="add the rows to results/frontier_<device>.json (replacing rows of the same task and variant) "
                         "instead of starting a new file")
    args = ap.parse_args()
    model = get_model(config.model)
    device = next(model.parameters()).device
    record: dict[str, Any] = {"model": config.model, "n_prompts": config.n_prompts, "steps": config.steps,
                              "corruption": config.corruption.value, "n_held_out": config.n_held_out,
                              "held_out_seed": config.held_out_seed,
                              "tasks": _saved_tasks(device) if args.merge else {}}
    for task in args.tasks:
        problem = prepare(task, model=model, n_prompts=config.n_prompts, seed=config.seed,
                          corruption=config.corruption_of(task))
        started = time.perf_counter()
        prior = eap_ig_scores(problem, config.steps)
        entry: dict[str, Any] = {"eap_seconds": time.perf_counter() - started, "rows": []}
        if args.merge:
            saved = record["tasks"].get(task, {}).get("rows", [])
            entry["rows"] = [r for r in saved if r["variant"] not in args.variants]
        record["tasks"][task] = entry
        for name in args.variants:
            if f"{task}:{name}" in args.skip:
                continue
            row = _row(name, problem, model, config, prior)
            entry["rows"].append(row)
            print(task, {key: round(v, 3) if isinstance(v, float) else v for key, v in row.items()}, flush=True)
            save("frontier", device, record)


if __name__ == "__main__":
    main()
