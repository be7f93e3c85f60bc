"""Greedy ACDC: the fast engine against the straightforward oracle (one edge, one full forward with plain
TransformerLens hooks), side by side in one run, on a GPT-2-small-shaped model (32,923 edges, N prompts x 15
tokens) and on the default model (SmolLM2-135M, IOI prompts).

Each configuration runs the fast engine for `--fast-edges` tested edges (the whole graph with --full) and the
oracle for `--oracle-edges` tested edges and reports edges tested per second. Both walk the reference order
rotated to begin at a middle layer's MLP (`--start-layer`, default n_layers // 2): the first receivers of the
plain order (logits, last MLP) are the cheapest for the fast engine and would flatter it. The decisions on
the shared prefix are checked to be identical.

    python benchmarks/bench_acdc.py [--device cpu|cuda] [--n 100] [--full]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import gpt2_small_shaped, save  # noqa: E402
from acdc_compare.backends import make_patcher
from acdc_compare.backends.hook_oracle import hook_patched_logits  # noqa: E402

from acdc_compare.algorithms.acdc import acdc, reference_order  # noqa: E402
from acdc_compare.algorithms.problem import make_problem  # noqa: E402
from acdc_compare.metrics import kl_divergence  # noqa: E402
from acdc_compare.patching import Patcher  # noqa: E402
from acdc_compare.tasks.base import Task  # noqa: E402


def rotated_order(graph, start_layer: int) -> list[str]:
    """The reference order's edge names, rotated to begin with the MLP input of `start_layer`."""
    names = [graph.edge_names[e] for step in reference_order(graph) for e in step.edges]
    first = names.index(f"input->m{start_layer}") - graph.receivers[graph.mlp_receiver(start_layer)].n_upstream + 1
    return names[first:] + names[:first]


def oracle_rate(model, problem, threshold: float, n_edges: int,
                order: list[str]) -> tuple[float, list[tuple[str, bool]]]:
    """Edges/s of one-edge-one-forward greedy ACDC over the first n_edges tested edges, and its decisions."""
    graph, task = problem.graph, problem.task
    kept = torch.ones(graph.n_edges, dtype=torch.bool)
    clean = task.clean.to(problem.patcher.device)
    corrupted = task.corrupted.to(problem.patcher.device)
    pos = task.positions[:, 0].to(problem.patcher.device)

    def evaluate() -> float:
        logits = hook_patched_logits(model, graph, clean, kept, corrupted=corrupted)
        logits = logits[torch.arange(len(pos), device=logits.device), pos]
        return float(kl_divergence(problem.clean_logits.to(logits.device), logits[None, :, None])[0])

    current = evaluate()
    decisions = []
    start = time.perf_counter()
    for name in order[:n_edges]:
        e = graph.edge_index(name)
        kept[e] = False
        value = evaluate()
        if value - current < threshold:
            current = value
            decisions.append((name, False))
        else:
            kept[e] = True
            decisions.append((name, True))
    return len(decisions) / (time.perf_counter() - start), decisions


def run_config(label: str, model, task: Task, threshold: float, fast_edges: int | None, oracle_edges: int,
               start_layer: int | None) -> dict:
    patcher = make_patcher(model)
    problem = make_problem(patcher, task, metric="kl")
    graph = patcher.graph
    start_layer = graph.n_layers // 2 if start_layer is None else start_layer
    order = rotated_order(graph, start_layer) if fast_edges is not None else "reference"
    start = time.perf_counter()
    circuit = acdc(problem, threshold, max_tests=fast_edges, order=order)
    fast_s = time.perf_counter() - start
    n_tested = circuit.settings["n_tested"]
    fast_rate = n_tested / fast_s
    o_rate, decisions = oracle_rate(model, problem, threshold, oracle_edges,
                                    rotated_order(graph, start_layer))
    same = all(bool(circuit.kept[graph.edge_index(n)]) == k for n, k in decisions)
    row = {"label": label, "n_edges": graph.n_edges, "start_layer": start_layer, "n_prompts": task.n_prompts, "seq_len": task.seq_len,
           "threshold": threshold, "fast_tested": n_tested, "fast_seconds": fast_s,
           "fast_edges_per_s": fast_rate, "fast_complete": circuit.settings["complete"],
           "fast_kept": circuit.n_kept if circuit.settings["complete"] else None,
           "oracle_tested": len(decisions), "oracle_edges_per_s": o_rate, "speedup": fast_rate / o_rate,
           "decisions_identical_on_oracle_prefix": same}
    full_est = graph.n_edges / fast_rate
    print(f"{label}: fast {fast_rate:.2f} edges/s ({n_tested} tested in {fast_s:.1f} s), oracle {o_rate:.3f} "
          f"edges/s ({len(decisions)} tested) -> {fast_rate / o_rate:.1f}x; identical decisions: {same}; "
          f"whole graph at this rate ~{full_est / 60:.0f} min", flush=True)
    return row


def gpt2_task(n: int, seq: int) -> Task:
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(0, 50257, (n, seq), generator=gen)
    corrupted = clean.clone()
    corrupted[:, 2:5] = torch.randint(0, 50257, (n, 3), generator=gen)
    return Task("random-gpt2", clean, corrupted, positions=torch.full((n,), seq - 1), correct=clean[:, 3],
                wrong=clean[:, 2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--fast-edges", type=int, default=300)
    parser.add_argument("--oracle-edges", type=int, default=20)
    parser.add_argument("--full", action="store_true", help="fast engine over the whole GPT-2-shaped graph")
    parser.add_argument("--skip-default", action="store_true", help="skip the SmolLM2 configuration")
    parser.add_argument("--start-layer", type=int, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    rows = []
    model = gpt2_small_shaped(device)
    task = gpt2_task(args.n, 15)
    patcher = make_patcher(model)
    problem = make_problem(patcher, task)
    empty = float(problem.evaluate(torch.zeros(1, patcher.graph.n_edges, dtype=torch.bool))[0])
    threshold = empty / 2000  # random weights: scale tau to the model's own KL(full || empty)
    rows.append(run_config("gpt2-small-shaped", model, task, threshold, None if args.full else args.fast_edges,
                           args.oracle_edges, args.start_layer))
    del model, patcher, problem
    if not args.skip_default:
        from acdc_compare.backends import load_model, tokenizer
        from acdc_compare.tasks.registry import make_task

        smol = load_model(device=device)
        ioi = make_task("ioi", tokenizer(smol), n=min(args.n, 20), seed=0)
        rows.append(run_config("smollm2-135m ioi", smol, ioi, 0.02, args.fast_edges, args.oracle_edges,
                               args.start_layer))
    path = save("acdc", device, {"rows": rows, "note": "edges/s over the first tested edges of the reference "
                                                       "order rotated to start at a middle layer; both engines "
                                                       "start from the full circuit"})
    print(f"saved {path}")
    if any(not math.isfinite(r["speedup"]) for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
