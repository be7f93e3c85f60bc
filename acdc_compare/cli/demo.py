"""`acdc-compare demo`: the main experiment on the default model (IOI vs the pet-family task, roles,
order-vs-meaning control, report), written to --out with a summary on stdout."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from acdc_compare.algorithms.registry import ALGORITHMS
from acdc_compare.cli.checks import writable_dir
from acdc_compare.cli.common import EXIT_OK, HELP_FORMAT, add_model, add_out, add_quiet
from acdc_compare.cli.output import print_paths
from acdc_compare.tasks.base import Corruption

if TYPE_CHECKING:
    from acdc_compare.experiment import ExperimentConfig

NAME = "demo"


def add_parser(sub: argparse._SubParsersAction) -> None:
    from acdc_compare.experiment import (ExperimentConfig, candidates_description, prompts_description,
                                         tested_description)

    demo = ExperimentConfig()
    p = sub.add_parser(NAME, formatter_class=HELP_FORMAT,
                       help="the main experiment on the default model: IOI vs the pet-family task, roles, "
                            "order-vs-meaning control, report; writes everything to --out")
    add_model(p)
    add_out(p, "results/demo", "output folder: report.html, one SVG/PNG per circuit, circuits/TASK.json, tasks.txt, "
                               "analogy.json")
    p.add_argument("--method", default=demo.method, choices=list(ALGORITHMS), help="discovery method")
    p.add_argument("--threshold", type=float, default=demo.threshold,
                   help="RELATIVE: a fraction of each task's metric gap KL(full || empty circuit), so tasks of "
                        "different strength are comparable (discover's --threshold is absolute)")
    p.add_argument("--k", type=int, default=None,
                   help=f"hybrid: the top-k EAP-IG edges become ACDC's candidates, for every task; None: "
                        f"{candidates_description(demo)}")
    p.add_argument("--tested", type=int, default=None,
                   help=f"hybrid: exact ACDC tests this many lowest-ranked candidates of every task, the higher-ranked "
                        f"are kept untested; None: {tested_description(demo)}")
    p.add_argument("--coverage", type=float, default=None,
                   help="hybrid, instead of --k: fewest top EAP-IG edges reaching this faithfulness (slow on CPU "
                        "for diffuse tasks)")
    p.add_argument("--n-prompts", type=int, default=demo.n_prompts,
                   help=f"prompts per discovery, and the prompts EAP-IG ranks on (default {demo.n_prompts}; "
                        f"{prompts_description(demo)} where masks are learned)")
    p.add_argument("--comparison", default=demo.comparison, help="the task compared with IOI")
    p.add_argument("--control", default=demo.control, help="the comparison task's order-vs-meaning twin")
    p.add_argument("--extra", nargs="*", default=list(demo.extra),
                   help="more tasks whose circuits join the mover table (e.g. adjective-first-2shot verb-first-2shot)")
    p.add_argument("--corruption", default=demo.corruption.value, choices=[c.value for c in Corruption],
                   help="the comparison tasks' corruption, where a task offers it (IOI's is always ABC)")
    p.add_argument("--held-out-seed", type=int, default=demo.held_out_seed,
                   help="prompt seed the circuits are also evaluated on (not discovered on)")
    add_quiet(p)


def run(args: argparse.Namespace) -> int:
    from acdc_compare.experiment import ExperimentConfig, run_experiment

    config = ExperimentConfig(model=args.model, method=args.method, comparison=args.comparison,
                              control=args.control, extra=tuple(args.extra), corruption=Corruption(args.corruption),
                              threshold=args.threshold, coverage=args.coverage, n_prompts=args.n_prompts,
                              **({} if args.k is None else {"k": args.k, "task_k": ()}),
                              **({} if args.tested is None else {"tested": args.tested, "task_tested": ()}),
                              held_out_seed=args.held_out_seed, progress=not args.quiet)
    out = writable_dir(args.out, "--out")
    args.interrupt_note = f"the files finished so far are in {out}; a rerun starts the demo afresh"
    result = run_experiment(config, out, log=lambda msg: print(msg, flush=True))
    _print_result(config, result)
    print_paths(result.paths())
    return EXIT_OK


def _print_result(config: ExperimentConfig, result: Any) -> None:
    """The tasks table, each circuit's size and faithfulness, the movers, the EAP-IG curves, the duration."""
    from acdc_compare.experiment import candidates_description, prompts_description, ranking_description, stage_table

    print()
    print(result.tasks_table)
    print()
    candidates = (f"top-{candidates_description(config)}" if config.coverage is None
                  else f"coverage {config.coverage}")
    print(f"circuits ({config.method}, threshold {config.threshold}, {candidates} candidates ranked by "
          f"{ranking_description(config)}, prompts per discovery {prompts_description(config)}):")
    for run in result.runs.values():
        c = run.circuit
        print(f"  {run.name:16s} {c.n_kept:5d} edges ({100 * c.n_kept / c.n_edges:.2f}%), "
              f"{len(c.functional_heads()):3d} heads on paths, normalised faithfulness {run.faithfulness:.2f}, "
              f"held-out {run.held_out_faithfulness:.2f}")
    print("movers from the circuits (heads on a kept path that attend to the answer and raise its logit):")
    for row in result.mover_table:
        shared, chance = row["shared with IOI's name movers"], row["chance overlap"] or "-"
        print(f"  {row['task']:16s} {row['answer kind']:9s} movers {row['movers']}; shared with IOI's: {shared} "
              f"(chance {chance})")
    curves = [run for run in result.runs.values() if run.curve is not None]
    if curves:
        print("faithfulness of the top EAP-IG edges (how many edges each task's mechanism needs):")
        print("  " + " " * 16 + "".join(f"{n:>8d}" for n in curves[0].curve.sizes) + "     CPR   CMD")
        for run in curves:
            print(f"  {run.name:16s}" + "".join(f"{f:8.2f}" for f in run.curve.faithfulness)
                  + f"  {run.curve.cpr:6.2f}{run.curve.cmd:6.2f}")
    for task, verdict in result.mover_verdicts.items():
        print(f"  movers of {task}: {verdict}")
    print("\ntime per stage (wall seconds):")
    for stage, seconds in stage_table(result.stage_seconds, result.seconds):
        print(f"  {stage:32s} {seconds:7.1f}")
    print(f"\ndemo finished in {result.seconds:.0f} s")
