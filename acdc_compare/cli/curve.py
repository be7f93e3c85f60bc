"""`acdc-compare curve`: the faithfulness curve (MIB's CPR and CMD) of edge rankings from EAP, EAP-IG or saved
circuits' scores."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from acdc_compare.cli.checks import check_task_args, writable_dir
from acdc_compare.cli.common import EXIT_OK, HELP_FORMAT, add_common, add_max_memory, add_metric_and_ablation, \
    add_no_direct, add_out, problem_from_args
from acdc_compare.cli.output import print_paths, task_label
from acdc_compare.fmt import num

NAME = "curve"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, formatter_class=HELP_FORMAT, help="faithfulness curve (MIB's CPR and CMD) of edge "
                                                               "rankings: EAP, EAP-IG, or a saved circuit's scores")
    add_common(p)
    add_max_memory(p)
    p.add_argument("--scores", nargs="+", default=["eap-ig"],
                   help="what ranks the edges: 'eap', 'eap-ig' and/or saved circuit files (their scores; "
                        "untested edges rank last): this tool's JSON or MIB / EAP-IG's JSON or .pt (read onto "
                        "the model's graph, what has no counterpart printed)")
    add_metric_and_ablation(p)
    p.add_argument("--steps", type=int, default=5, help="EAP-IG integration steps")
    add_no_direct(p)
    p.add_argument("--fractions", type=float, nargs="+", default=None,
                   help="edge fractions in (0, 1]; None: MIB's log-spaced grid")
    p.add_argument("--log-x", action="store_true", help="areas over log10(fraction) instead of the fraction")
    add_out(p, "results/curve", "output folder of TASK_curve.json")


def run(args: argparse.Namespace) -> int:
    from acdc_compare.algorithms.eap import check_eap_metric, check_steps
    from acdc_compare.export import load_circuit
    from acdc_compare.mib_files import is_mib_file

    files = [Path(s) for s in args.scores if s not in ("eap", "eap-ig")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"--scores takes 'eap', 'eap-ig' or circuit files; not found: {missing}")
    mib = [f for f in files if is_mib_file(f)]
    circuits = {str(f): load_circuit(f) for f in files if f not in mib}  # native files checked before the model
    check_steps(args.steps)
    if "eap" in args.scores:
        check_eap_metric(args.metric)
    out = writable_dir(args.out, "--out")
    check_task_args(args)
    problem = problem_from_args(args)
    circuits.update(_read_mib(mib, problem.graph))
    curves = _curves(args, problem, circuits)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{task_label(args.task)}_curve.json"
    summary = {"task": args.task, "model": problem.model_name, "metric": args.metric, "ablation": args.ablation,
               "n_prompts": problem.task.n_prompts, "n_edges": problem.graph.n_edges, "steps": args.steps,
               "log_x": args.log_x, "curves": curves}
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print_paths([path])
    return EXIT_OK


def _read_mib(files: list[Path], graph: Any) -> dict[str, Any]:
    """MIB files' circuits on the problem's graph, printing what each could not map."""
    from acdc_compare.mib_files import load_any_circuit

    out = {}
    for f in files:
        out[str(f)], report = load_any_circuit(f, graph)
        assert report is not None
        print(f"{f}: MIB circuit file, {out[str(f)].n_kept}/{graph.n_edges} edges kept")
        for line in report.lines():
            print(f"  {line}")
    return out


def _curves(args: argparse.Namespace, problem: Any, circuits: dict[str, Any]) -> dict[str, Any]:
    """Each --scores source's curve (as a dict), printed as it is measured."""
    from dataclasses import asdict

    import torch

    from acdc_compare.algorithms.eap import eap_ig_scores, eap_scores, faithfulness_of_scores
    from acdc_compare.faithfulness import DEFAULT_FRACTIONS

    fractions = tuple(args.fractions) if args.fractions else DEFAULT_FRACTIONS
    curves: dict[str, Any] = {}
    for source in args.scores:
        if source == "eap":
            scores = eap_scores(problem)
        elif source == "eap-ig":
            scores = eap_ig_scores(problem, args.steps, progress=not args.quiet)
        else:
            circuit = circuits[source]
            circuit.check_graph(problem.graph)
            scores = circuit.rank_scores()  # its ranking by the evidence that kept each edge
        curve = faithfulness_of_scores(problem, scores, fractions, log_x=args.log_x, progress=not args.quiet)
        n_scored = int(torch.isfinite(scores).sum())
        curves[source] = {**asdict(curve), "n_scored": n_scored}
        _warn_if_partly_scored(source, n_scored, problem.graph.n_edges)
        print(f"{source}: CPR {num(curve.cpr, fixed=3)} (higher is better), CMD {num(curve.cmd, fixed=3)} "
              "(lower is better)")
        for frac, size, f in zip(curve.fractions, curve.sizes, curve.faithfulness):
            past = "  (past the scored edges: unranked)" if size > n_scored else ""
            print(f"  {frac:8.4f} of edges = {size:6d} edges: faithfulness {num(f, fixed=3)}{past}")
    return curves


def _warn_if_partly_scored(source: str, n_scored: int, n_edges: int) -> None:
    """Say (stderr) when a circuit file ranks only some edges (exact ACDC removes edges untested when their
    receiver is dead; a learned ranking scores only its candidates): past them the curve adds edges in no
    ranked order, so it is flat or arbitrary there."""
    if n_scored >= n_edges:
        return
    print(f"acdc-compare: note: {source} ranks only {n_scored:,} of {n_edges:,} edges (the others were never "
          f"scored); past the top {n_scored:,} ({n_scored / n_edges:.3g} of the edges) the curve adds unranked "
          "edges in no ranked order, so read it only up to there", file=sys.stderr)
