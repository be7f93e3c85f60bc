"""`acdc-compare attention`: the analogy measure, whether each head attends to the same roles on a task and
its twin; a table on stdout and JSON in --out."""

from __future__ import annotations

import argparse
import json

from acdc_compare.cli.checks import check_task_args, writable_dir
from acdc_compare.cli.common import EXIT_OK, HELP_FORMAT, add_common, add_out
from acdc_compare.cli.output import print_paths, task_label

NAME = "attention"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, formatter_class=HELP_FORMAT,
                       help="the analogy measure: does each head attend to the same roles (answer, other "
                            "candidates, ...) on a task and its twin? Prints a table, writes JSON")
    add_common(p)
    p.add_argument("--twin", required=True, help="the analogous task, e.g. pet-first for --task pet-last")
    p.add_argument("--heads", nargs="+", default=None,
                   help="heads such as a23.h0; None: the --top heads attending most to the correct answer")
    p.add_argument("--top", type=int, default=10, help="how many heads when --heads is not given")
    p.add_argument("--shuffles", type=int, default=200, help="role shuffles for the baseline")
    add_out(p, "results/attention", "output folder of TASK_vs_TWIN.json")


def run(args: argparse.Namespace) -> int:
    from acdc_compare.attention import ROLES, analogy_rows, check_heads, format_analogy_table, head_analogies, \
        top_answer_heads
    from acdc_compare.api import get_model, resolve_task
    from acdc_compare.backends import model_name

    out = writable_dir(args.out, "--out")
    check_task_args(args, "task", "twin")
    model = get_model(args.model, device=args.device)
    tasks = [resolve_task(t, model, n_prompts=args.n_prompts, seed=args.seed) for t in (args.task, args.twin)]
    bars = not args.quiet
    heads = check_heads(model, args.heads) if args.heads else top_answer_heads(model, tasks[0], args.top, progress=bars)
    results = head_analogies(model, *tasks, heads, n_shuffles=args.shuffles, seed=args.seed, progress=bars)
    print(format_analogy_table(results, args.task, args.twin))
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{task_label(args.task)}_vs_{task_label(args.twin)}.json"
    summary = {"model": model_name(model), "task": args.task, "twin": args.twin, "n_prompts": args.n_prompts,
               "seed": args.seed, "shuffles": args.shuffles, "roles": list(ROLES), "heads": analogy_rows(results)}
    path.write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n")
    print_paths([path])
    return EXIT_OK
