"""`acdc-compare sweep`: a spec sweep (resumable jobs on the local or Ray executor, then the aggregate), or a
threshold grid of one task and method in this process."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from acdc_compare.cli.checks import check_task_args, writable_dir
from acdc_compare.cli.common import EXIT_FAILURE, EXIT_OK, HELP_FORMAT, add_common, add_max_memory, add_out, \
    add_reference, add_threshold_scale, problem_from_args, reference_circuit
from acdc_compare.cli.method_options import add_method_args, method_options, progress_option
from acdc_compare.cli.output import print_paths, task_label
from acdc_compare.fmt import num

NAME = "sweep"
SWEEP_EXCLUDE = frozenset({"threshold", "journal"})  # one threshold per run from --thresholds; no shared journal


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, formatter_class=HELP_FORMAT,
                       help="a sweep: a spec file (models x tasks x corruptions x methods x thresholds x seeds) on a "
                            "local or Ray executor, resumable, with seed stability; or, without SPEC and --executor, "
                            "a threshold grid in this process")
    p.add_argument("spec", nargs="?", default=None, help="sweep spec (TOML; see README 'Sweeps')")
    add_common(p)
    add_max_memory(p)
    add_method_args(p, SWEEP_EXCLUDE)
    p.add_argument("--thresholds", type=float, nargs="+", default=None,
                   help="the thresholds, read as --threshold-scale says (absolute: the metric's own units); "
                        "without SPEC")
    add_threshold_scale(p, "--thresholds")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="prompt seeds (with --executor and no SPEC; default: --seed)")
    p.add_argument("--executor", choices=["local", "ray"], default=None,
                   help="run the spec's jobs here (local, the default with SPEC) or on Ray")
    p.add_argument("--address", default=None, help="Ray cluster to join (default: start a local one)")
    p.add_argument("--workers", type=int, default=None, help="Ray worker actors (default: one per GPU, else per CPU)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per worker")
    add_reference(p, "ROC AUC against GPT-2 small's published circuit (needs --model gpt2)")
    add_out(p, "results/sweep", "output folder: job folders or one circuit JSON per threshold, sweep.json")


def run(args: argparse.Namespace) -> int:
    if args.spec is not None or args.executor is not None:
        return _grid_sweep(args)
    if args.thresholds is None:
        raise ValueError("give a sweep SPEC file, or --thresholds (with --executor to run them as a resumable sweep)")
    from acdc_compare.api import check_threshold_scale, run_scaled
    from acdc_compare.compare import roc_auc
    from acdc_compare.export import save_circuit
    from acdc_compare.faithfulness import circuit_faithfulness as faithfulness

    all_options = [method_options(args, SWEEP_EXCLUDE, threshold=tau, **progress_option(args))
                   for tau in args.thresholds]
    for options in all_options:
        check_threshold_scale(args.threshold_scale, options)
    out = writable_dir(args.out, "--out")
    check_task_args(args)
    problem = problem_from_args(args)
    reference = reference_circuit(args.reference, problem.graph) if args.reference else None
    out.mkdir(parents=True, exist_ok=True)
    args.interrupt_note = f"the circuits of the thresholds that finished are in {out}; the others were not saved"
    circuits, rows = [], []
    for tau, options in zip(args.thresholds, all_options):
        c = run_scaled(problem, options, args.threshold_scale)
        circuits.append(c)
        tag = "reltau" if args.threshold_scale == "relative" else "tau"  # a relative run's files apart
        path = save_circuit(c, out / f"{task_label(args.task)}_{args.method}_{tag}{tau:g}.json")
        rows.append({"threshold": tau, "edges": c.n_kept, "faithfulness": faithfulness(c), "file": str(path)})
        print(f"threshold {_threshold_text(tau, c)}: {c.n_kept} edges, normalised faithfulness "
              f"{num(faithfulness(c), fixed=3)}")
    summary: dict[str, Any] = {"task": args.task, "method": args.method, "threshold_scale": args.threshold_scale,
                               "rows": rows}
    if reference is not None:
        summary["edge_auc"] = roc_auc(circuits, reference, over="edges")
        summary["node_auc"] = roc_auc(circuits, reference, over="nodes")
        print(f"edge AUC {num(summary['edge_auc'], fixed=3)}, node AUC {num(summary['node_auc'], fixed=3)} "
              f"against {args.reference}")
    (out / "sweep.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print_paths([out / "sweep.json"])
    return EXIT_OK


def _grid_sweep(args: argparse.Namespace) -> int:
    """A spec sweep: jobs resumable in --out, on the local or Ray executor, then the aggregate."""
    from acdc_compare.sweeps import interrupted_note, run_sweep

    spec = _spec(args)
    out = writable_dir(args.out, "--out")
    try:
        result = run_sweep(spec, out, executor=args.executor or "local", address=args.address,
                           workers=args.workers, device=args.device, threads=args.threads,
                           log=(lambda _: None) if args.quiet else (lambda msg: print(msg, flush=True)))
    except KeyboardInterrupt:
        args.interrupt_note = interrupted_note(spec, out)
        raise
    for g in result.summary["groups"]:
        e, f = g["edges_stats"], g["faithfulness_stats"]
        print(f"{g['task']} ({g['corruption']}) {g['method']} @ {g['threshold']:g}: {len(g['seeds'])} seed(s), "
              f"{e['mean']:.1f} edges, faithfulness {_num(f['mean'])}, edge Jaccard {_num(g['edge_jaccard_mean'])}, "
              f"{g['stable_edges']} stable edges")
    print_paths([result.summary_path, result.report_path])
    if result.failed:
        print(f"acdc-compare: {len(result.failed)} job(s) failed (errors in their folders' failed.json); rerun "
              "the same command to retry them", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _spec(args: argparse.Namespace) -> Any:
    """The sweep spec: the SPEC file, or a one-task grid from the flags (only options that differ from the
    method's defaults)."""
    from acdc_compare.algorithms.registry import make_options
    from acdc_compare.sweeps import load_spec, spec_from_mapping

    if args.spec is not None:
        if args.thresholds is not None or args.seeds is not None or args.threshold_scale != "absolute":
            raise ValueError("the spec file holds the grid: give thresholds, threshold_scale and seeds in it, not "
                             "as flags")
        return load_spec(args.spec)
    if args.thresholds is None:
        raise ValueError("--executor without a SPEC file needs --thresholds")
    options = dataclasses.asdict(method_options(args, SWEEP_EXCLUDE, threshold=args.thresholds[0]))
    defaults = dataclasses.asdict(make_options(args.method, threshold=args.thresholds[0]))
    given = {k: v for k, v in options.items() if v != defaults[k]}
    return spec_from_mapping({
        "models": [args.model], "tasks": [args.task], "corruptions": [args.corruption or "default"],
        "methods": [args.method], "thresholds": args.thresholds, "threshold_scale": args.threshold_scale,
        "seeds": args.seeds or [args.seed],
        "n_prompts": args.n_prompts, "metric": args.metric, "ablation": args.ablation,
        "include_direct": not args.no_direct, "options": {args.method: given} if given else {}})


def _threshold_text(tau: float, circuit: Any) -> str:
    """`tau`, and for a relative one the absolute threshold it became on this task."""
    if circuit.settings.get("threshold_scale") != "relative":
        return f"{tau:g}"
    return f"{tau:g} x the gap = {circuit.settings['threshold']:.4g}"


def _num(x: float | None) -> str:
    return num(x, fixed=3)
