"""`acdc-compare tasks`: the task list, or every task's accuracy and logit difference on a model."""

from __future__ import annotations

import argparse
import sys

from acdc_compare.cli.checks import check_task_name
from acdc_compare.cli.common import EXIT_OK, HELP_FORMAT, add_common

NAME = "tasks"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, formatter_class=HELP_FORMAT, help="list the tasks (--list), or every task's accuracy and "
                                                               "logit difference on a model with the order-vs-meaning "
                                                               "pairs side by side")
    add_common(p, task=False)
    p.add_argument("--list", action="store_true",
                   help="only list the tasks: name, description and one example prompt (seconds, no model run)")
    p.add_argument("--n", type=int, default=40, help="prompts per task")
    p.add_argument("--seed", type=int, default=0, help="seed of the prompt generators")
    p.add_argument("--wording", type=int, default=0,
                   help="0: the prompts discovery runs on; 1, 2: held-out templates (same content and answers); "
                        "without --names, every task offering that wording")
    p.add_argument("--names", nargs="*", default=None,
                   help="only these tasks: registered names or prompts files (.jsonl/.csv with the columns prompt, "
                        "corrupted, answer, wrong answer); None: every registered task")


def run(args: argparse.Namespace) -> int:
    from acdc_compare.api import get_model
    from acdc_compare.backends import check_device, load_tokenizer
    from acdc_compare.tasks.registry import format_task_list, format_tasks_table, tasks_table

    if args.list:
        print(format_task_list(load_tokenizer(args.model)))
        return EXIT_OK
    check_device(args.device)
    for name in args.names or ():
        check_task_name(name)
    if args.n < 1:
        raise ValueError(f"--n must be at least 1, got {args.n}")
    model = get_model(args.model, device=args.device)
    evaluations = tasks_table(model, names=args.names, n=args.n, seed=args.seed, progress=not args.quiet,
                              wording=args.wording)
    print(format_tasks_table(evaluations))
    for e in evaluations:
        if e.n < args.n:
            print(f"acdc-compare: note: --n {args.n}, but {e.name} holds only {e.n} prompts; its row uses all {e.n}",
                  file=sys.stderr, flush=True)
    return EXIT_OK
