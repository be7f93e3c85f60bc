"""The engine's sparse reads against its dense product, side by side in one run (issue 27: "the edge mixing is
a cost of its own"). On the default model with the demo's prompts, for the demo's kind of circuit (the
top-k EAP-IG edges reduced to their input->logits paths) and for the full circuit, times:

- a forward of the circuit (what held-out evaluation and the curves run),
- a forward restarted at the middle layer (what an ACDC test runs),
- the checkpoint run that keeps its state (one per ACDC run),

with `Patcher.select_rows` off (baseline: every receiver's input is the dense product of its mask with every
upstream sender's delta) and on (a sparse circuit reads only its kept senders' rows, a full one a running sum,
and a run keeping no state skips the stages nobody reads). The largest logit difference between the two
is recorded beside the times.

    python benchmarks/bench_sparse_reads.py [--tasks ioi pet-last] [--k 1750 1000]

Writes results/sparse_reads_<cpu|cuda>.json.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import save, timed  # noqa: E402

from acdc_compare.algorithms.eap import eap_ig_scores  # noqa: E402
from acdc_compare.algorithms.problem import Problem  # noqa: E402
from acdc_compare.api import get_model, prepare  # noqa: E402
from acdc_compare.circuit import Circuit  # noqa: E402
from acdc_compare.experiment import ExperimentConfig  # noqa: E402


def _times(problem: Problem, kept: torch.Tensor, device: torch.device) -> dict[str, float]:
    patcher, ctx = problem.patcher, problem.ctx
    mid = 2 * (problem.graph.n_layers // 2)
    _, base = patcher.run(ctx, kept[None], keep_state=True)
    return {"forward_s": timed(lambda: patcher.run(ctx, kept[None]), device),
            "restart_mid_s": timed(lambda: patcher.run(ctx, kept[None], start_stage=mid, base=base), device),
            "checkpoint_s": timed(lambda: patcher.run(ctx, kept[None], keep_state=True), device)}


def _row(problem: Problem, circuit: Circuit, device: torch.device) -> dict[str, Any]:
    patcher = problem.patcher
    default = patcher.select_rows
    row: dict[str, Any] = {"edges": circuit.n_kept, "load_average_start": os.getloadavg()[0]}
    logits = {}
    for select, name in ((False, "dense"), (True, "sparse")):
        patcher.select_rows = select
        row[name] = _times(problem, circuit.kept, device)
        logits[name] = patcher.logits(problem.ctx, circuit)
    row["max_abs_logit_difference"] = float((logits["dense"] - logits["sparse"]).abs().max())
    row["speedup"] = {k: row["dense"][k] / row["sparse"][k] for k in row["dense"]}
    row["load_average_end"] = os.getloadavg()[0]
    patcher.select_rows = default
    return row


def main() -> None:
    config = ExperimentConfig(progress=False)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=["ioi", "pet-last"])
    args = ap.parse_args()
    model = get_model(config.model)
    device = next(model.parameters()).device
    record: dict[str, Any] = {"model": config.model, "n_prompts": config.n_prompts, "tasks": {}}
    for task in args.tasks:
        problem = prepare(task, model=model, n_prompts=config.n_prompts, seed=config.seed,
                          corruption=config.corruption_of(task), check=False)
        k = config.k_of(task)
        demo_like = Circuit.from_scores(problem.graph, eap_ig_scores(problem, config.steps), top_n=k).functional()
        record["tasks"][task] = {"seq_len": problem.ctx.seq_len, "k": k,
                                 "demo_like_circuit": _row(problem, demo_like, device),
                                 "full_circuit": _row(problem, Circuit.full(problem.graph), device)}
        for kind, row in record["tasks"][task].items():
            if isinstance(row, dict):
                print(task, kind, row["edges"], "edges: speed-up",
                      {key: round(v, 2) for key, v in row["speedup"].items()}, flush=True)
        save("sparse_reads", device, record)


if __name__ == "__main__":
    main()
