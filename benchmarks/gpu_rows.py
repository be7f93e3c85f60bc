"""The GPU run's rows (benchmarks/gpu_run.py): the models and tasks they run on, the patched forward and
EAP-IG against the plain forward, and exact ACDC in journalled chunks against its deadline."""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from common import gpt2_small_shaped, timed
from gpu_oracle import compare_prefix, oracle_evaluator, oracle_prefix
from gpu_results import Clock, sync

from acdc_compare.algorithms.acdc import acdc
from acdc_compare.algorithms.eap import eap_ig_scores
from acdc_compare.algorithms.problem import Problem
from acdc_compare.backends import run_logits, tiny_model
from acdc_compare.circuit import Circuit
from acdc_compare.tasks.base import Task


def random_task(name: str, vocab: int, n: int, seq: int, seed: int) -> Task:
    """Random prompts, three tokens corrupted (as bench_acdc's GPT-2 task), scored at the last position."""
    gen = torch.Generator().manual_seed(seed)
    clean = torch.randint(0, vocab, (n, seq), generator=gen)
    corrupted = clean.clone()
    corrupted[:, 2:5] = torch.randint(0, vocab, (n, 3), generator=gen)
    return Task(name, clean, corrupted, positions=torch.full((n,), seq - 1), correct=clean[:, 3],
                wrong=clean[:, 2])


def gpt2_setup(args: argparse.Namespace, device: torch.device) -> tuple[Any, Task, str]:
    if args.tiny:
        model = tiny_model("gpt2", n_layers=2, n_heads=2, d_model=16, dtype=torch.float64, seed=1).to(device)
        return model, random_task("tiny-random", 64, args.n, args.seq, 0), "tiny GPT-2 (2 layers, 2 heads), random"
    dtype = getattr(torch, args.gpt2_dtype)
    if args.gpt2_init_range == 0.02:
        model = gpt2_small_shaped(device, dtype=dtype)
    else:
        model = tiny_model("gpt2", n_layers=12, n_heads=12, d_model=768, d_mlp=3072, vocab_size=50257, n_ctx=64,
                           init_range=args.gpt2_init_range, dtype=dtype, seed=0).to(device)
    return (model, random_task("random-gpt2", 50257, args.n, args.seq, 0),
            f"GPT-2-small-shaped (GPT2Config shape), random weights (initializer range {args.gpt2_init_range}), "
            f"{args.gpt2_dtype}")


def relative_tau(problem: Problem, relative: float) -> float:
    full, empty = problem.metric_ends
    return max(empty - full, 0.0) * relative


def row_patching(model: Any, problem: Problem, device: torch.device, repeats: int) -> dict[str, Any]:
    n = problem.task.n_prompts
    gen = torch.Generator().manual_seed(0)
    half = Circuit(problem.graph, torch.rand(problem.graph.n_edges, generator=gen) < 0.5)
    with torch.no_grad():
        plain = timed(lambda: run_logits(model, problem.task.clean, batch_size=n), device, repeats=repeats)
    patched = timed(lambda: problem.patcher.run(problem.ctx, half.kept[None]), device, repeats=repeats)
    full = timed(lambda: problem.patcher.run(problem.ctx, torch.ones(1, problem.graph.n_edges, dtype=torch.bool)),
                 device, repeats=repeats)
    return {"patched_half_circuit_s": patched, "patched_full_circuit_s": full,
            "baseline": {"plain_forward_s": plain}, "ratio_patched_to_plain": patched / plain,
            "target": "ratio <= 1.5", "met": patched / plain <= 1.5}


def row_eap_ig(model: Any, problem: Problem, device: torch.device, steps: int, repeats: int) -> dict[str, Any]:
    n = problem.task.n_prompts
    with torch.no_grad():
        plain = timed(lambda: run_logits(model, problem.task.clean, batch_size=n), device, repeats=repeats)
    ig = timed(lambda: eap_ig_scores(problem, steps=steps), device, repeats=repeats)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"steps": steps, "eap_ig_s": ig, "baseline": {"plain_forward_s": plain},
            "eap_ig_over_plain_forward": ig / plain, "peak_gpu_memory_gb": peak,
            "target": "eap_ig_s <= 2 (GPU)", "met": ig <= 2.0}


def journal_tested(path: Path) -> int:
    """Tested decisions (a score, not a dead receiver's NaN) already in a journal file."""
    if not path.exists():
        return 0
    n = 0
    for line in path.read_text().split("\n")[1:-1]:
        try:
            n += json.loads(line).get("s") is not None
        except ValueError:
            pass
    return n


def acdc_with_deadline(problem: Problem, tau: float, journal: Path, deadline: float, chunk: int,
                       max_batch: int | None) -> tuple[Circuit, dict[str, Any]]:
    """Exact greedy ACDC (reference order) with a journal, in chunks of `chunk` tested edges, stopping between
    chunks once `deadline` (perf_counter) has passed. Returns the last circuit (complete or partial) and timings
    of this run alone (resumed decisions excluded)."""
    before = journal_tested(journal)
    sync(problem.patcher.device)
    start = time.perf_counter()
    max_tests, resumed, calls = before + chunk, None, 0
    while True:
        circuit = acdc(problem, tau, journal=str(journal), max_tests=max_tests, max_batch=max_batch)
        calls += 1
        resumed = circuit.settings["resumed_decisions"] if resumed is None else resumed
        if circuit.settings["complete"] or time.perf_counter() >= deadline:
            break
        max_tests = circuit.settings["n_tested"] + chunk
    sync(problem.patcher.device)
    wall = time.perf_counter() - start
    tested_now = circuit.settings["n_tested"] - before
    fresh = resumed == 0
    n = problem.graph.n_edges
    timing = {"wall_s": wall, "complete": circuit.settings["complete"], "resumed_decisions": resumed,
              "resumed_tested": before, "tested_this_run": tested_now, "n_tested": circuit.settings["n_tested"],
              "tested_edges_per_s": tested_now / wall if wall > 0 else math.nan,
              "graph_edges_per_s": n / wall if fresh and circuit.settings["complete"] else None,
              "acdc_calls": calls, "chunk": chunk, "max_batch": circuit.settings["max_batch"],
              "n_kept": circuit.n_kept if circuit.settings["complete"] else None,
              "kept_fraction": circuit.n_kept / n if circuit.settings["complete"] else None,
              "faithfulness": _faithfulness(circuit) if circuit.settings["complete"] else None}
    return circuit, timing


def _faithfulness(c: Circuit) -> float:
    from acdc_compare.faithfulness import circuit_faithfulness

    return circuit_faithfulness(c)


def row_acdc_gpt2(args: argparse.Namespace, model: Any, problem: Problem, clock: Clock,
                  journal: Path) -> dict[str, Any]:
    tau = relative_tau(problem, args.gpt2_relative)
    oracle_reserve = args.oracle_s + 10
    deadline = clock.deadline(args.acdc_max_s) - (oracle_reserve if clock.left() > 2 * oracle_reserve else 0)
    circuit, timing = acdc_with_deadline(problem, tau, journal, deadline, args.chunk, args.max_batch)
    row: dict[str, Any] = {"n_edges": problem.graph.n_edges, "relative_threshold": args.gpt2_relative,
                           "threshold": tau, "metric_ends": list(problem.metric_ends), "journal": str(journal),
                           **timing, "target": "wall_s <= 60 for the whole graph (fresh run)",
                           "met": bool(timing["complete"] and timing["resumed_decisions"] == 0
                                       and timing["wall_s"] <= 60)}
    oracle = oracle_prefix(model, problem, tau, args.oracle_edges, min(args.oracle_s, max(clock.left() - 5, 1)))
    check = compare_prefix(problem, circuit, oracle, tau)
    row["baseline"] = {"oracle": "hook_oracle.oracle_acdc, one full hook-patched forward per tested edge",
                       "oracle_tested": oracle["tested"], "oracle_finished_graph": oracle["finished"],
                       "oracle_wall_s": oracle["wall_s"], "oracle_edges_per_s": oracle["edges_per_s"],
                       "oracle_whole_graph_estimate_s": (timing["n_tested"] / oracle["edges_per_s"]
                                                          if timing["complete"] else None)}
    row["speedup_tested_edges_per_s"] = timing["tested_edges_per_s"] / oracle["edges_per_s"]
    row.update(check)
    return row


def row_acdc_default(args: argparse.Namespace, model: Any, task: Task | str, label: str, clock: Clock,
                     journal: Path, circuits_dir: Path) -> dict[str, Any]:
    from acdc_compare.api import prepare
    from acdc_compare.experiment import task_threshold
    from acdc_compare.export import save_circuit

    device = model.W_E.device
    problem = prepare(task, model=model, n_prompts=args.n_prompts, seed=args.seed)
    tau = task_threshold(problem, args.relative)
    with torch.no_grad():
        plain = timed(lambda: run_logits(model, problem.task.clean, batch_size=problem.task.n_prompts), device)
    evaluate = oracle_evaluator(model, problem)
    full = torch.ones(problem.graph.n_edges, dtype=torch.bool)
    one_oracle = timed(lambda: evaluate(full), device, repeats=1)
    circuit, timing = acdc_with_deadline(problem, tau, journal, clock.deadline(args.acdc_max_s), args.chunk,
                                         args.max_batch)
    row: dict[str, Any] = {"task": label, "model": problem.model_name, "n_prompts": problem.task.n_prompts,
                           "n_edges": problem.graph.n_edges, "relative_threshold": args.relative, "threshold": tau,
                           "metric_ends": list(problem.metric_ends), "journal": str(journal), **timing,
                           "baseline": {"plain_forward_s": plain, "oracle_one_evaluation_s": one_oracle,
                                        "oracle_estimate_s": timing["n_tested"] * one_oracle}}
    if timing["complete"]:
        circuits_dir.mkdir(parents=True, exist_ok=True)
        row["circuit_json"] = str(save_circuit(circuit, circuits_dir / f"{label}.json"))
    return row
