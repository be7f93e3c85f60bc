"""Verb and adjective recall with and without solved examples (issue 33): does the default model do the
task, and by meaning? Accuracy [95% Wilson interval], logit difference, P(correct) and KL(clean || corrupted)
on `--n` prompts (default 100) per task and seed, the answers corruption. Seed 0 is the one the format (two
solved examples) was chosen on; seed 1 is held out (no choice looked at it).

    python benchmarks/bench_recall_shots.py [--n 100] [--seeds 0 1]

Writes results/recall_shots_<cpu|cuda>.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import save  # noqa: E402

from acdc_compare import load_model  # noqa: E402
from acdc_compare.tasks.registry import tasks_table  # noqa: E402

TASKS = ("verb-last", "verb-first", "verb-last-2shot", "verb-first-2shot", "adjective-last", "adjective-first",
         "adjective-last-2shot", "adjective-first-2shot")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    model = load_model()
    rows = []
    for seed in args.seeds:
        for e in tasks_table(model, names=TASKS, n=args.n, seed=seed, corruptions={t: "answers" for t in TASKS}):
            p = e.accuracy_interval
            rows.append({"task": e.name, "seed": seed, "role": "chosen-on" if seed == 0 else "held-out",
                         "n": e.n, "accuracy": e.accuracy, "interval": [p.low, p.high], "logit_diff": e.logit_diff,
                         "p_correct": e.p_correct, "kl": e.kl})
            print(f"seed {seed}  {e.name:22s} {e.accuracy:5.0%} [{p.low:.0%}-{p.high:.0%}]  LD {e.logit_diff:5.2f}  "
                  f"P(correct) {e.p_correct:.2f}  KL {e.kl:.2f}", flush=True)
    print(save("recall_shots", torch.device("cpu"), {"model": "smollm2-135m", "corruption": "answers", "rows": rows}))


if __name__ == "__main__":
    main()
