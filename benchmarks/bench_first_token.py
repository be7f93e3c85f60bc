"""The comparatives' first name opens the prompt: it is token 0, the attention sink every head reads. Two
measurements of what that does (issue 33, the comparative row):

1. Accuracy. poorer and richer as built ("Emma is richer than Sarah. The poorer person is") against the same
   prompts with the names moved off position 0 ("Here, Emma is richer than Sarah. ..."): does the model's
   "second-named" answer follow word order, or the first name sitting at the sink?
2. Corruption. EAP-IG's top-k circuits (KL, normalised faithfulness) under the study's answers corruption,
   which replaces the second name only, against one that also replaces the first name (what the corruption
   did before): how much of the behaviour the top edges keep when the sink token changes too.

Prompts: accuracy on `--n-eval` prompts of seed `--seed` (0, the study's accuracy seed); faithfulness on
`--n` prompts of seed 0 ranked on their first `--rank-prompts` (the study's discovery setting) and on
`--n-held-out` prompts of `--held-out-seed` (7, the study's held-out seed, which no choice looked at).

    python benchmarks/bench_first_token.py [--n-eval 100] [--n 32] [--shares 0.02 0.2]
                                           [--out results/first_token_cpu.json]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import save  # noqa: E402

from acdc_compare.algorithms.eap import eap_ig_scores  # noqa: E402
from acdc_compare.algorithms.hybrid import ranking_problem  # noqa: E402
from acdc_compare.api import get_model, prepare  # noqa: E402
from acdc_compare.backends import DEFAULT_MODEL, model_name  # noqa: E402
from acdc_compare.circuit import Circuit  # noqa: E402
from acdc_compare.experiment.stages import faithfulness_on  # noqa: E402
from acdc_compare.experiment.study_frontier import budget_of  # noqa: E402
from acdc_compare.tasks.base import Corruption, Task  # noqa: E402
from acdc_compare.tasks.build import task_from_prompts  # noqa: E402
from acdc_compare.tasks.comparison_words import human_names  # noqa: E402
from acdc_compare.tasks.evaluate import evaluate_task  # noqa: E402
from acdc_compare.tasks.registry import make_task  # noqa: E402

TASKS = ("poorer", "richer")
PREFIX = "Here, "


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--n-eval", type=int, default=100, help="prompts of the accuracy measurement")
    ap.add_argument("--n", type=int, default=32, help="discovery prompts (in-sample faithfulness)")
    ap.add_argument("--rank-prompts", type=int, default=8)
    ap.add_argument("--n-held-out", type=int, default=32)
    ap.add_argument("--held-out-seed", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=5, help="EAP-IG integration steps")
    ap.add_argument("--shares", type=float, nargs="+", default=[0.02, 0.2], help="top-k circuits, as edge shares")
    ap.add_argument("--out", type=Path, default=None)
    return ap.parse_args(argv)


def rebuilt(model: Any, task: Task, prompts: Sequence[str], corrupted: Sequence[str], label: str) -> Task:
    """`task` with other clean and corrupted prompts and the same answers."""
    return task_from_prompts(model.tokenizer, f"{task.name} ({label})", prompts, corrupted,
                             task.info["correct_answers"], task.info["wrong_answers"], corruption=task.corruption)


def names_off_position_0(model: Any, task: Task) -> Task:
    return rebuilt(model, task, [PREFIX + p for p in task.prompts], [PREFIX + p for p in task.corrupted_prompts],
                   "names off position 0")


def first_name_replaced_too(model: Any, task: Task, seed: int) -> Task:
    """The corrupted prompts with their first name (token 0) replaced by a fresh name as well."""
    rng, out = random.Random(f"first-token-{seed}"), []
    names = [n.strip() for n in human_names(model.tokenizer, 3, "names")]
    for prompt, corrupted in zip(task.prompts, task.corrupted_prompts):
        rest = corrupted.split(" ", 1)[1]
        taken = {w.strip(" .") for w in (prompt + " " + corrupted).split()}
        out.append(rng.choice([n for n in names if n not in taken]) + " " + rest)
    return rebuilt(model, task, task.prompts, out, "first name replaced too")


def accuracy_row(model: Any, task: Task) -> dict[str, Any]:
    e = evaluate_task(model, task)
    return {"accuracy": e.accuracy, "logit_diff": e.logit_diff, "n": e.n}


def faithfulness_rows(model: Any, task: Task, held_out: Task, args: argparse.Namespace) -> dict[str, Any]:
    """EAP-IG's top-share circuits, in-sample and held out, and the seconds they took (preparation included)."""
    started = time.perf_counter()
    problem, other = (prepare(t, model=model, check=False) for t in (task, held_out))
    scores = eap_ig_scores(ranking_problem(problem, args.rank_prompts), args.steps)
    rows = []
    for share in args.shares:
        k = budget_of(share, problem.graph.n_edges)
        circuit = Circuit.from_scores(problem.graph, scores, top_n=k)
        rows.append({"edge_share": share, "k": k, "faithfulness": faithfulness_on(problem, circuit),
                     "held_out_faithfulness": faithfulness_on(other, circuit)})
    return {"rows": rows, "seconds": time.perf_counter() - started}


def main(argv: Sequence[str] | None = None) -> Path:
    args = parse_args(argv)
    model = get_model(args.model)
    device = next(model.parameters()).device
    found: dict[str, Any] = {}
    for name in TASKS:
        built = make_task(name, model.tokenizer, n=args.n_eval, seed=args.seed, corruption=Corruption.ANSWERS)
        discovery = make_task(name, model.tokenizer, n=args.n, seed=args.seed, corruption=Corruption.ANSWERS)
        held_out = make_task(name, model.tokenizer, n=args.n_held_out, seed=args.held_out_seed,
                             corruption=Corruption.ANSWERS)
        found[name] = {
            "accuracy": {"as built": accuracy_row(model, built),
                         "names off position 0": accuracy_row(model, names_off_position_0(model, built))},
            "eap_ig_top_k": {
                "second name replaced (the study's)": faithfulness_rows(model, discovery, held_out, args),
                "first name replaced too": faithfulness_rows(
                    model, first_name_replaced_too(model, discovery, args.seed),
                    first_name_replaced_too(model, held_out, args.held_out_seed), args)}}
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    return save("first_token", device, {"model": model_name(model), "settings": settings, "prefix": PREFIX,
                                        "tasks": found}, args.out)


if __name__ == "__main__":
    print(main())
