"""`acdc-compare tasks`: the task list, or every task's accuracy and logit difference on a model."""

from __future__ import annotations

import argparse

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
    p.add_argument("--names", nargs="*", default=None, help="only these tasks; None: all")


def run(args: argparse.Namespace) -> int:
    from acdc_compare.api import get_model
    from acdc_compare.backends import check_device, load_tokenizer
    from acdc_compare.tasks.registry import format_task_list, format_tasks_table, task_spec, tasks_table

    if args.list:
        print(format_task_list(load_tokenizer(args.model)))
        return EXIT_OK
    check_device(args.device)
    for name in args.names or ():
        task_spec(name)
    if args.n < 1:
        raise ValueError(f"--n must be at least 1, got {args.n}")
    model = get_model(args.model, device=args.device)
    print(format_tasks_table(tasks_table(model, names=args.names, n=args.n, seed=args.seed, progress=not args.quiet)))
    return EXIT_OK
