"""Position-aware versus position-free circuits at equal edge budgets (issue 34, item 5): for each task, the
top-k circuit of an EAP-IG ranking over the span-free graph and over the span graph (one EAP-IG run there
scores every (edge, span); a span edge counts as one edge), at the same budgets k, with each circuit's
normalised faithfulness (KL, the project's default metric) on the discovery prompts and on held-out prompts.

Prompts: the discovery prompts are `--n` prompts of seed `--seed` (0), whose first `--rank-prompts` (8) the
EAP-IG rankings are computed on (`--steps` 5); the held-out prompts are `--n-held-out` prompts of seed
`--held-out-seed` (7), a seed no choice (budget, setting) looked at. The held-out prompts have spans of their
own: a span circuit applies by span name (IO, S1, S2, END, ...), so its held-out problem is prepared with
`positions="spans"` over the held-out task, whose span schema must name the same spans.

Corruption: the study's (`ExperimentConfig.corruption_of`): answers for pet-last, ABC for IOI.

Each row: `k` and `edges` (the circuit's kept edges, = k), `faithfulness` (in-sample, on the `--n` discovery
prompts), `held_out_faithfulness`, `seconds` (the ranking's EAP-IG seconds + this circuit's two evaluations),
`rank_seconds`, `eval_seconds`, and for span circuits `base_edges` (how many span-free edges the span edges
restrict). Per task, each setting's preparation seconds and graph size.

    python benchmarks/bench_positions.py [--tasks ioi pet-last] [--n 32] [--n-held-out 32] [--rank-prompts 8]
                                         [--budgets 250 500 ...] [--out results/positions_cpu.json]

Writes the JSON after every task, so a cut run keeps what it measured.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, save  # noqa: E402

from acdc_compare.algorithms.eap import eap_ig_scores  # noqa: E402
from acdc_compare.algorithms.problem import Problem  # noqa: E402
from acdc_compare.api import get_model, prepare  # noqa: E402
from acdc_compare.backends import DEFAULT_MODEL, model_name  # noqa: E402
from acdc_compare.circuit import Circuit  # noqa: E402
from acdc_compare.experiment import ExperimentConfig  # noqa: E402
from acdc_compare.faithfulness import normalized_faithfulness  # noqa: E402
from acdc_compare.span_circuits import collapse_spans  # noqa: E402

TASKS = ("ioi", "pet-last")
BUDGETS = (250, 500, 1000, 2000, 4000, 8000)
SETTINGS = {"no_spans": "all", "spans": "spans"}  # result key -> prepare's `positions`


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (defaults: the issue's settings)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL, help="a model name or a local Hugging Face directory")
    ap.add_argument("--tasks", nargs="+", default=list(TASKS))
    ap.add_argument("--n", type=int, default=32, help="discovery prompts (in-sample faithfulness)")
    ap.add_argument("--n-held-out", type=int, default=32, help="held-out prompts")
    ap.add_argument("--rank-prompts", type=int, default=8, help="the first this many discovery prompts rank the edges")
    ap.add_argument("--steps", type=int, default=5, help="EAP-IG integration steps")
    ap.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS), help="edge counts k (top-k circuits)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the discovery prompts")
    ap.add_argument("--held-out-seed", type=int, default=7, help="seed of the held-out prompts")
    ap.add_argument("--note", default="", help="a note saved with the settings (e.g. why settings were reduced)")
    ap.add_argument("--out", type=Path, default=None, help="the JSON (default: results/positions_<cpu|cuda>.json)")
    args = ap.parse_args(argv)
    for name in ("n", "n_held_out", "rank_prompts", "steps"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.rank_prompts > args.n:
        raise SystemExit(f"--rank-prompts {args.rank_prompts} exceeds --n {args.n}: the ranking prompts are the "
                         "first of the discovery prompts")
    if not args.budgets or min(args.budgets) < 1:
        raise SystemExit(f"--budgets must be edge counts >= 1, got {args.budgets}")
    if args.seed == args.held_out_seed:
        raise SystemExit(f"--held-out-seed must differ from --seed ({args.seed}): held-out prompts are new prompts")
    args.budgets = sorted(set(args.budgets))
    return args


def faithfulness(problem: Problem, circuit: Circuit) -> float:
    """The circuit's normalised faithfulness on the problem's prompts (1: like the full model, 0: like none)."""
    full, empty = problem.metric_ends
    return normalized_faithfulness(float(problem.evaluate(circuit)[0]), full, empty)


def check_same_graph(held: Problem, found: Problem, task: str) -> None:
    """Refuse held-out prompts whose span schema names other spans than the discovery prompts' (a span
    circuit applies by span name, so the two graphs must be the same)."""
    if held.graph != found.graph:
        raise ValueError(f"{task}: the held-out prompts' graph {held.graph!r} differs from the discovery prompts' "
                         f"{found.graph!r}; their span schemas must name the same spans")


def setting_rows(found: Problem, held: Problem, args: argparse.Namespace) -> tuple[list[dict[str, Any]], float]:
    """The rows of one setting (span-free or span graph): EAP-IG on the first `rank_prompts` discovery prompts,
    then per budget the top-k circuit's faithfulness in-sample and held-out; and the ranking's seconds."""
    ranked_on = found if args.rank_prompts == found.task.n_prompts else found.select(range(args.rank_prompts))
    started = time.perf_counter()
    scores = eap_ig_scores(ranked_on, args.steps)
    rank_seconds = time.perf_counter() - started
    rows = []
    for k in args.budgets:
        circuit = Circuit.from_scores(found.graph, scores, top_n=k)
        started = time.perf_counter()
        in_sample, held_out = faithfulness(found, circuit), faithfulness(held, circuit)
        eval_seconds = time.perf_counter() - started
        row: dict[str, Any] = {"k": k, "edges": circuit.n_kept, "faithfulness": in_sample,
                               "held_out_faithfulness": held_out, "seconds": rank_seconds + eval_seconds,
                               "rank_seconds": rank_seconds, "eval_seconds": eval_seconds}
        if found.graph.has_spans:
            row["base_edges"] = collapse_spans(circuit).n_kept
        rows.append(row)
    return rows, rank_seconds


def task_entry(task: str, model: Any, args: argparse.Namespace, config: ExperimentConfig) -> dict[str, Any]:
    """Both settings' rows of one task, with each setting's graph size and preparation seconds."""
    corruption = config.corruption_of(task)
    entry: dict[str, Any] = {"corruption": corruption.value}
    for key, positions in SETTINGS.items():
        started = time.perf_counter()
        found = prepare(task, model=model, n_prompts=args.n, seed=args.seed, corruption=corruption,
                        positions=positions, check=False)
        held = prepare(task, model=model, n_prompts=args.n_held_out, seed=args.held_out_seed, corruption=corruption,
                       positions=positions, check=False)
        prepare_seconds = time.perf_counter() - started
        check_same_graph(held, found, task)
        too_big = [k for k in args.budgets if k > found.graph.base.n_edges]
        if too_big:
            raise ValueError(f"{task}: budgets {too_big} exceed the span-free graph's {found.graph.base.n_edges} "
                             "edges, where the two settings cannot be compared at equal budgets")
        load = os.getloadavg()[0]
        rows, rank_seconds = setting_rows(found, held, args)
        entry[key] = rows
        entry[f"{key}_info"] = {"graph_edges": found.graph.n_edges, "spans": list(found.graph.spans),
                                "prepare_seconds": prepare_seconds, "rank_seconds": rank_seconds,
                                "load_average": [load, os.getloadavg()[0]]}
        for row in rows:
            print(task, key, {name: round(v, 3) if isinstance(v, float) else v for name, v in row.items()},
                  flush=True)
        del found, held
    return entry


def main(argv: Sequence[str] | None = None) -> Path:
    """Run the benchmark and write its JSON; returns the JSON's path."""
    args = parse_args(argv)
    config = ExperimentConfig(progress=False)
    model = get_model(args.model)
    device = next(model.parameters()).device
    record: dict[str, Any] = {
        "model": model_name(model),
        "metric": "kl", "ablation": "corrupted", "ranking": "eap-ig", "selection": "top-k by |score|",
        "settings": {"n_prompts": args.n, "n_held_out": args.n_held_out, "rank_prompts": args.rank_prompts,
                     "steps": args.steps, "budgets": args.budgets, "note": args.note},
        "seeds": {"discovery": args.seed, "held_out": args.held_out_seed,
                  "ranking": f"the first {args.rank_prompts} prompts of the discovery seed {args.seed}"},
        "tasks": {},
    }
    path = args.out or RESULTS / f"positions_{'cuda' if device.type == 'cuda' else 'cpu'}.json"
    for task in args.tasks:
        record["tasks"][task] = task_entry(task, model, args, config)
        path = save("positions", device, record, path=path)
    return path


if __name__ == "__main__":
    print(main())
