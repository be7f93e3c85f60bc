"""Skipping the positions the clean and corrupted prompts share (`Patcher.prepare(skip_shared=True)`) against
running every position, side by side in one run (issue 33: the study's 30 minutes). Templated prompts share
their opening: the pet family 31 of 52 tokens, the two-shot recall tasks 21 of 27 and 28 of 36, greater-than
9 of 15; IOI 1 of 20 (the control). On the default model, each task's study prompts (`--n` of seed 0, the
study's corruption) and EAP-IG's top `--share` circuit (ranked on the first 8 prompts), times:

- preparing the problem (the ablated run, the full model's logits),
- a forward of the circuit (held-out checks, EAP-IG's frontier),
- a forward restarted at the middle layer (an ACDC test),
- one step of mask learning (a differentiable forward and backward on 8 prompts),

with every position run (baseline) and with the shared ones skipped, and the largest difference of the
circuit's metric (KL) between the two.

    python benchmarks/bench_shared_positions.py [--tasks ioi pet-middle ...] [--n 32] [--share 0.02]

Writes results/shared_positions_<cpu|cuda>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import save, timed  # noqa: E402

from acdc_compare.algorithms.eap import eap_ig_scores  # noqa: E402
from acdc_compare.algorithms.hybrid import ranking_problem  # noqa: E402
from acdc_compare.algorithms.problem import Problem  # noqa: E402
from acdc_compare.api import get_model, prepare  # noqa: E402
from acdc_compare.backends import DEFAULT_MODEL, model_name  # noqa: E402
from acdc_compare.circuit import Circuit  # noqa: E402
from acdc_compare.experiment.study_config import StudyConfig  # noqa: E402
from acdc_compare.experiment.study_frontier import budget_of  # noqa: E402
from acdc_compare.tasks.registry import make_task  # noqa: E402

TASKS = ("ioi", "pet-middle", "verb-last-2shot", "adjective-first-2shot", "colour-of-last", "greater-than")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--tasks", nargs="+", default=list(TASKS))
    ap.add_argument("--n", type=int, default=32, help="prompts (the study's discovery prompts)")
    ap.add_argument("--share", type=float, default=0.02, help="the circuit: EAP-IG's top edges, as a share")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    return ap.parse_args(argv)


def with_context(problem: Problem, skip_shared: bool) -> Problem:
    """The problem prepared again with or without skipping the shared positions."""
    task, patcher = problem.task, problem.patcher
    ctx = patcher.prepare(task.clean, "corrupted", task.corrupted, positions=task.positions,
                          skip_shared=skip_shared)
    return dataclasses.replace(problem, ctx=ctx)


def times(problem: Problem, kept: torch.Tensor, device: torch.device, repeats: int) -> dict[str, float]:
    patcher, ctx, task = problem.patcher, problem.ctx, problem.task
    skip = ctx.n_shared > 0
    mid = 2 * (problem.graph.n_layers // 2)
    _, base = patcher.run(ctx, kept[None], keep_state=True)
    learning = problem.select(range(min(8, task.n_prompts)))
    if not skip:
        learning = with_context(learning, False)

    def learn_step() -> None:
        mask = kept[None].to(patcher.dtype).requires_grad_(True)
        learning.metric(patcher.run_grad(learning.ctx, mask)).sum().backward()

    def make() -> None:
        ctx = patcher.prepare(task.clean, "corrupted", task.corrupted, positions=task.positions, skip_shared=skip)
        patcher.logits(ctx, Circuit.full(problem.graph))

    return {"prepare_s": timed(make, device, repeats),
            "forward_s": timed(lambda: patcher.run(ctx, kept[None]), device, repeats),
            "restart_mid_s": timed(lambda: patcher.run(ctx, kept[None], start_stage=mid, base=base), device, repeats),
            "learning_step_s": timed(learn_step, device, repeats)}


def task_row(model: Any, name: str, args: argparse.Namespace) -> dict[str, Any]:
    config = StudyConfig()
    task = make_task(name, model.tokenizer, n=args.n, seed=config.seed,
                     corruption=config.experiment().corruption_of(name))
    skipping = prepare(task, model=model, check=False)
    every = with_context(skipping, False)
    scores = eap_ig_scores(ranking_problem(skipping, config.rank_prompts), config.steps)
    kept = Circuit.from_scores(skipping.graph, scores, top_n=budget_of(args.share, skipping.graph.n_edges)).kept
    device = skipping.patcher.device
    row: dict[str, Any] = {"prompt_tokens": task.clean.shape[1], "shared_tokens": skipping.ctx.n_shared,
                           "edges": int(kept.sum()), "load_average_start": os.getloadavg()[0]}
    row["every_position"] = times(every, kept, device, args.repeats)
    row["shared_skipped"] = times(skipping, kept, device, args.repeats)
    row["speedup"] = {k: row["every_position"][k] / row["shared_skipped"][k] for k in row["every_position"]}
    row["max_abs_metric_difference"] = float((skipping.evaluate(kept[None]) - every.evaluate(kept[None])).abs().max())
    row["load_average_end"] = os.getloadavg()[0]
    return row


def main(argv: Sequence[str] | None = None) -> Path:
    args = parse_args(argv)
    model = get_model(args.model)
    device = next(model.parameters()).device
    rows = {name: task_row(model, name, args) for name in args.tasks}
    return save("shared_positions", device, {"model": model_name(model), "n_prompts": args.n,
                                             "edge_share": args.share, "tasks": rows}, args.out)


if __name__ == "__main__":
    print(main())
