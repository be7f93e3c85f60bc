"""`acdc-compare study`: the whole comparison study in one resumable command (accuracy table of every task of
the notes, circuits where the model answers, faithfulness on validation, held-out prompts and held-out
wordings, movers vs IOI's), written to --out with the notes' table on stdout."""

from __future__ import annotations

import argparse

from acdc_compare.cli.checks import writable_dir, writable_file
from acdc_compare.cli.common import EXIT_OK, HELP_FORMAT, add_model, add_out, add_quiet
from acdc_compare.cli.output import print_paths
from acdc_compare.tasks.base import Corruption
from acdc_compare.types import Metric

NAME = "study"


def add_parser(sub: argparse._SubParsersAction) -> None:
    from acdc_compare.experiment.study import StudyConfig

    default = {name: f.default for name, f in StudyConfig.__dataclass_fields__.items()}
    p = sub.add_parser(NAME, formatter_class=HELP_FORMAT,
                       help="the whole comparison study, resumable: accuracy of every task with its 95%% interval, "
                            "circuits where the model answers, each on its frontier of edge budgets, held-out "
                            "faithfulness, movers vs IOI's")
    add_model(p)
    add_out(p, "results/study", "output folder: study/ (one JSON per finished part; a rerun resumes from them), "
                                "study_<cpu|cuda>.json, study_report.html")
    p.add_argument("--results", default=None,
                   help="the results JSON's path (e.g. benchmarks/results/study_cpu.json); None: under --out")
    p.add_argument("--tasks", nargs="+", default=list(default["tasks"]), help="the tasks of the study")
    p.add_argument("--n-eval", type=int, default=default["n_eval"], help="prompts per task for the accuracy table")
    p.add_argument("--min-accuracy", type=float, default=default["min_accuracy"],
                   help="a task answered at least this often gets a circuit (and its order-vs-meaning twin)")
    p.add_argument("--edge-shares", type=float, nargs="+", default=list(default["edge_shares"]),
                   help="edge budgets tried in order, as shares of the graph's edges: the first whose circuit reaches "
                        "--target in-sample and --target-validation on the validation prompts is kept")
    p.add_argument("--target", type=float, default=default["target"],
                   help="in-sample normalised faithfulness a circuit must reach")
    p.add_argument("--target-validation", type=float, default=default["target_validation"],
                   help="normalised faithfulness a circuit must reach on the validation prompts")
    p.add_argument("--learn-from", type=float, default=default["learn_from"],
                   help="masks are learned at the first budget only where EAP-IG's top edges at the second keep "
                        "this much, in-sample and on validation")
    p.add_argument("--tested", type=int, default=default["tested"],
                   help="exact ACDC tests this many lowest-ranked candidates")
    p.add_argument("--n-prompts", type=int, default=default["n_prompts"], help="discovery prompts per task")
    p.add_argument("--rank-prompts", type=int, default=default["rank_prompts"],
                   help="EAP-IG ranks on the first this many discovery prompts, masks learn in minibatches of them, "
                        "head scores use them")
    p.add_argument("--learn-steps", type=int, default=default["learn_steps"], help="mask-learning steps")
    p.add_argument("--metric", default=default["metric"].value, choices=[m.value for m in Metric],
                   help="what discovery minimises and faithfulness is normalised on")
    p.add_argument("--corruption", default=default["corruption"].value, choices=[c.value for c in Corruption],
                   help="the comparison tasks' corruption, where a task offers it (IOI's is always ABC)")
    p.add_argument("--validation-seed", type=int, default=default["validation_seed"],
                   help="prompt seed of the validation prompts, which choose each task's edge budget")
    p.add_argument("--held-out-seed", type=int, default=default["held_out_seed"],
                   help="prompt seed of the held-out evaluation, never used for any choice")
    p.add_argument("--n-held-out", type=int, default=default["n_held_out"],
                   help="prompts of the validation and held-out evaluations")
    add_quiet(p)


def run(args: argparse.Namespace) -> int:
    from acdc_compare.experiment.study import StudyConfig, run_study

    config = StudyConfig(model=args.model, tasks=tuple(args.tasks), n_eval=args.n_eval,
                         min_accuracy=args.min_accuracy, edge_shares=tuple(args.edge_shares),
                         target=args.target, target_validation=args.target_validation, learn_from=args.learn_from,
                         tested=args.tested, n_prompts=args.n_prompts,
                         rank_prompts=args.rank_prompts, n_held_out=args.n_held_out,
                         learn_steps=args.learn_steps, corruption=Corruption(args.corruption),
                         metric=Metric(args.metric),
                         validation_seed=args.validation_seed, held_out_seed=args.held_out_seed, progress=not args.quiet)
    out = writable_dir(args.out, "--out")
    results = None if args.results is None else writable_file(args.results, "--results")
    args.interrupt_note = (f"every finished task is saved in {out / 'study'}; run the same command again to "
                           "resume from there")
    result = run_study(config, out, log=lambda msg: print(msg, flush=True), results_path=results)
    print()
    print(result.table)
    print(f"\nstudy: {len(result.resumed)} circuits read back, {len(result.discovered)} found by this run, "
          f"{result.seconds:.0f} s (the whole study: {result.total_seconds:.0f} s)")
    print_paths([result.results_path, result.report])
    return EXIT_OK
