"""Faithfulness vs time of the demo's circuits (issue 14): for each task, hybrid discovery (EAP-IG candidates,
exact ACDC among them) over a grid of candidate counts k and relative thresholds r, on the default model,
with the answer corruption. Each row: edges kept (and their share of the graph), normalised faithfulness on
the discovery prompts and on held-out prompts (another seed), and the seconds it took (EAP-IG once per
task, shared by the rows: `eap_seconds`; ACDC per row: `acdc_seconds`), and the machine's load average at the
start and end of each row, since other processes on the cores inflate the times.

    python benchmarks/bench_frontier.py [--tasks ioi pet-last ...] [--k 200 400 800] [--relative 0.005 0.002]
                                        [--n-prompts 8] [--steps 5] [--out results/frontier_cpu.json]

Writes results/frontier_<cpu|cuda>.json after every row, so a cut run keeps what it measured.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import save  # noqa: E402

from acdc_compare.algorithms.eap import eap_ig_scores  # noqa: E402
from acdc_compare.api import get_model, prepare, run_method  # noqa: E402
from acdc_compare.experiment import (  # noqa: E402
    ExperimentConfig,
    held_out_faithfulness,
    task_threshold,
)
from acdc_compare.faithfulness import circuit_faithfulness  # noqa: E402
from acdc_compare.tasks.base import Corruption  # noqa: E402


def _row(problem: Any, model: Any, config: ExperimentConfig, prior: torch.Tensor, k: int,
         relative: float) -> dict[str, Any]:
    load = os.getloadavg()[0]
    started = time.perf_counter()
    circuit = run_method(problem, "hybrid", task_threshold(problem, relative), k=k, prior=prior)
    seconds = time.perf_counter() - started
    return {"k": k, "relative_threshold": relative, "edges": circuit.n_kept,
            "edge_share": circuit.n_kept / circuit.n_edges, "functional_edges": circuit.n_functional_edges,
            "faithfulness": circuit_faithfulness(circuit),
            "held_out_faithfulness": held_out_faithfulness(circuit, problem.task.name, model, config),
            "n_tested": circuit.settings.get("n_tested"), "acdc_seconds": seconds,
            "load_average": [load, os.getloadavg()[0]]}


def main() -> None:
    defaults = ExperimentConfig()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=defaults.circuit_tasks)
    ap.add_argument("--k", type=int, nargs="+", default=[200, 400, 800])
    ap.add_argument("--relative", type=float, nargs="+", default=[0.005, 0.002])
    ap.add_argument("--n-prompts", type=int, default=defaults.n_prompts)
    ap.add_argument("--steps", type=int, default=defaults.steps)
    ap.add_argument("--corruption", default=defaults.corruption.value)
    args = ap.parse_args()
    config = replace(defaults, n_prompts=args.n_prompts, corruption=Corruption(args.corruption))
    model = get_model(defaults.model)
    device = next(model.parameters()).device
    record: dict[str, Any] = {"model": defaults.model, "n_prompts": args.n_prompts, "steps": args.steps,
                              "corruption": args.corruption, "held_out_seed": defaults.held_out_seed,
                              "tasks": {}}
    for task in args.tasks:
        problem = prepare(task, model=model, n_prompts=args.n_prompts, seed=defaults.seed,
                          corruption=config.corruption_of(task))
        started = time.perf_counter()
        prior = eap_ig_scores(problem, args.steps)
        entry: dict[str, Any] = {"eap_seconds": time.perf_counter() - started, "rows": []}
        record["tasks"][task] = entry
        for k in args.k:
            for relative in args.relative:
                row = _row(problem, model, config, prior, k, relative)
                entry["rows"].append(row)
                print(task, {key: round(v, 3) if isinstance(v, float) else v for key, v in row.items()}, flush=True)
                save("frontier", device, record)


if __name__ == "__main__":
    main()
