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
  `tested` candidates.

    python benchmarks/bench_frontier.py [--tasks ioi pet-last ...] [--variants demo top-k ...]
                                        [--skip pet-last:acdc-among-top-k ...]

Writes results/frontier_<cpu|cuda>.json after every row, so a cut run keeps what it measured.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import save  # noqa: E402

from acdc_compare.algorithms.eap import eap_ig_scores  # noqa: E402
from acdc_compare.algorithms.problem import Problem  # noqa: E402
from acdc_compare.api import get_model, prepare, run_method  # noqa: E402
from acdc_compare.circuit import Circuit  # noqa: E402
from acdc_compare.experiment import ExperimentConfig, held_out_faithfulness, task_threshold  # noqa: E402
from acdc_compare.faithfulness import normalized_faithfulness  # noqa: E402

Variant = Callable[[Problem, ExperimentConfig, torch.Tensor], tuple[Circuit, dict[str, Any]]]


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


def _demo(problem: Problem, config: ExperimentConfig, prior: torch.Tensor) -> tuple[Circuit, dict]:
    name = problem.task.name
    c = run_method(problem, "hybrid", task_threshold(problem, config.threshold), k=config.k_of(name), prior=prior,
                   tested=config.tested_of(name), functional=config.functional)
    return c, {"k": config.k_of(name), "tested": config.tested_of(name), "relative_threshold": config.threshold,
               "n_tested": c.settings["n_tested"]}


VARIANTS: dict[str, Variant] = {"acdc-among-top-k": _acdc_among_top_k, "top-k": _top_k,
                                "top-k-functional": _top_k_functional, "demo": _demo}


def _row(name: str, problem: Problem, model: Any, config: ExperimentConfig, prior: torch.Tensor) -> dict[str, Any]:
    load = os.getloadavg()[0]
    started = time.perf_counter()
    circuit, info = VARIANTS[name](problem, config, prior)
    seconds = time.perf_counter() - started
    full, empty = problem.metric_ends
    return {"variant": name, **info, "edges": circuit.n_kept, "edge_share": circuit.n_kept / circuit.n_edges,
            "functional_edges": circuit.n_functional_edges,
            "faithfulness": normalized_faithfulness(float(problem.evaluate(circuit)[0]), full, empty),
            "held_out_faithfulness": held_out_faithfulness(circuit, problem.task.name, model, config),
            "seconds": seconds, "load_average": [load, os.getloadavg()[0]]}


def main() -> None:
    config = ExperimentConfig(progress=False)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=config.circuit_tasks)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--skip", nargs="*", default=[], metavar="TASK:VARIANT",
                    help="rows not to run, e.g. pet-last:acdc-among-top-k (slow on long prompts)")
    args = ap.parse_args()
    model = get_model(config.model)
    device = next(model.parameters()).device
    record: dict[str, Any] = {"model": config.model, "n_prompts": config.n_prompts, "steps": config.steps,
                              "corruption": config.corruption.value, "n_held_out": config.n_held_out,
                              "held_out_seed": config.held_out_seed, "tasks": {}}
    for task in args.tasks:
        problem = prepare(task, model=model, n_prompts=config.n_prompts, seed=config.seed,
                          corruption=config.corruption_of(task))
        started = time.perf_counter()
        prior = eap_ig_scores(problem, config.steps)
        entry: dict[str, Any] = {"eap_seconds": time.perf_counter() - started, "rows": []}
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
