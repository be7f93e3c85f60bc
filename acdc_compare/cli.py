"""`acdc-compare`: discover, compare, sweep, curve, tasks, report, demo and attention from the command line.

Exit codes: 0 success; 2 bad arguments or input (unknown task, bad threshold, unreadable file); 3 the model
could not be loaded; 1 any other failure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from acdc_compare.algorithms.registry import ALGORITHMS, make_options

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_MODEL = 0, 1, 2, 3
_SWEEP_EXCLUDE = frozenset({"threshold", "journal"})  # one threshold per run from --thresholds; no shared journal


def _common(p: argparse.ArgumentParser, task: bool = True) -> None:
    p.add_argument("--model", default="smollm2-135m",
                   help="'smollm2-135m' (offline default), a Hugging Face id such as 'gpt2', a local HF "
                        "directory, or a Llama-family .gguf file")
    if task:
        p.add_argument("--task", default="ioi", help="task name (see `acdc-compare tasks`), default ioi")
        p.add_argument("--n-prompts", type=int, default=16, help="prompts used for discovery (default 16)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--corruption", default=None, choices=["meaning", "answers"],
                       help="which corrupted prompts: meaning (the information that picks the answer removed) "
                            "or answers (candidate answers replaced by fresh words); default: the task's own")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _method_args(p: argparse.ArgumentParser, exclude: frozenset[str] = frozenset()) -> None:
    p.add_argument("--method", default="acdc", choices=list(ALGORITHMS),
                   help="; ".join(f"{s.name}: {s.summary}" for s in ALGORITHMS.values()) + " (default acdc)")
    p.add_argument("--metric", default="kl", choices=["kl", "logit_diff"])
    p.add_argument("--ablation", default="corrupted", choices=["corrupted", "zero", "mean"])
    p.add_argument("--no-direct", action="store_true", help="graph without direct q/k/v edges")
    _option_args(p, exclude)


def _cli_fields(exclude: frozenset[str]) -> dict[str, list[tuple[str, dataclasses.Field, Any]]]:
    """Option name -> [(method, field, its type)] over every registered method's command-line options."""
    out: dict[str, list[tuple[str, dataclasses.Field, Any]]] = {}
    for spec in ALGORITHMS.values():
        hints = typing.get_type_hints(spec.options)
        for f in spec.option_fields():
            if f.metadata.get("cli", True) and f.name not in exclude:
                out.setdefault(f.name, []).append((spec.name, f, hints[f.name]))
    return out


def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _option_args(p: argparse.ArgumentParser, exclude: frozenset[str]) -> None:
    """One flag per method option (from the registry's options classes); absent flags keep the method's
    default."""
    for name, uses in _cli_fields(exclude).items():
        _, f, hint = uses[0]
        helps = dict.fromkeys(u[1].metadata.get("help", "") for u in uses)
        methods = ", ".join(u[0] for u in uses)
        text = f"[{methods}] " + "; ".join(h for h in helps if h)
        if f.default is not None and not isinstance(f.default, bool):
            text += f" (default {f.default})"
        kwargs: dict[str, Any] = {"dest": f"opt_{name}", "default": argparse.SUPPRESS, "help": text}
        base = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        kind = base[0]
        if kind is bool:
            p.add_argument(_flag(f), action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if typing.get_origin(kind) is typing.Literal:
            kwargs["choices"] = list(typing.get_args(kind))
        else:
            kwargs["type"] = kind if kind in (int, float) else str
        p.add_argument(_flag(f), **kwargs)


def _method_options(args: argparse.Namespace, exclude: frozenset[str] = frozenset(), **extra: Any) -> Any:
    """The chosen method's options from the flags given; a flag another method takes is refused."""
    cli_fields = _cli_fields(exclude)
    given = {name: getattr(args, f"opt_{name}") for name in cli_fields if hasattr(args, f"opt_{name}")}
    fields = {f.name for f in ALGORITHMS[args.method].option_fields()}
    wrong = [name for name in given if name not in fields]
    if wrong:
        flags = ", ".join(_flag(cli_fields[n][0][1]) for n in wrong)
        raise ValueError(f"{flags} does not apply to --method {args.method}")
    return make_options(args.method, **{**given, **extra})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="acdc-compare", description="Automated circuit discovery (ACDC, EAP, "
                                     "EAP-IG) on TransformerLens models, compared with known circuits.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("discover", help="discover one task's circuit; writes JSON, SVG and PNG")
    _common(p)
    _method_args(p)
    p.add_argument("--out", default="results/discover", help="output folder")

    p = sub.add_parser("compare", help="compare two saved circuits, or one with a reference circuit")
    p.add_argument("left", help="circuit JSON")
    p.add_argument("right", nargs="?", default=None, help="circuit JSON (or use --reference)")
    p.add_argument("--reference", choices=["ioi", "greater-than"], default=None,
                   help="compare with GPT-2 small's published circuit (needs a GPT-2-small graph)")
    p.add_argument("--labels", nargs=2, default=None, metavar=("LEFT", "RIGHT"))
    p.add_argument("--out", default="results/compare")

    p = sub.add_parser("sweep", help="a sweep: a spec file (models x tasks x corruptions x methods x thresholds "
                                     "x seeds) on a local or Ray executor, resumable, with seed stability; or, "
                                     "without SPEC and --executor, a threshold grid in this process")
    p.add_argument("spec", nargs="?", default=None, help="sweep spec (TOML; see README 'Sweeps')")
    _common(p)
    _method_args(p, _SWEEP_EXCLUDE)
    p.add_argument("--thresholds", type=float, nargs="+", default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="prompt seeds (with --executor and no SPEC; default: --seed)")
    p.add_argument("--executor", choices=["local", "ray"], default=None,
                   help="run the spec's jobs here (local, the default with SPEC) or on Ray")
    p.add_argument("--address", default=None, help="Ray cluster to join (default: start a local one)")
    p.add_argument("--workers", type=int, default=None, help="Ray worker actors (default: one per GPU, else per CPU)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per worker")
    p.add_argument("--reference", choices=["ioi", "greater-than"], default=None)
    p.add_argument("--out", default="results/sweep")

    p = sub.add_parser("curve", help="faithfulness curve (MIB's CPR and CMD) of edge rankings: EAP, EAP-IG, "
                                     "or a saved circuit's scores")
    _common(p)
    p.add_argument("--scores", nargs="+", default=["eap-ig"],
                   help="what ranks the edges: 'eap', 'eap-ig' and/or saved circuit JSON files (their scores; "
                        "untested edges rank last). Default eap-ig")
    p.add_argument("--metric", default="kl", choices=["kl", "logit_diff"])
    p.add_argument("--ablation", default="corrupted", choices=["corrupted", "zero", "mean"])
    p.add_argument("--steps", type=int, default=5, help="EAP-IG integration steps")
    p.add_argument("--no-direct", action="store_true", help="graph without direct q/k/v edges")
    p.add_argument("--fractions", type=float, nargs="+", default=None,
                   help="edge fractions in (0, 1] (default: MIB's log-spaced grid)")
    p.add_argument("--log-x", action="store_true", help="areas over log10(fraction) instead of the fraction")
    p.add_argument("--out", default="results/curve")

    p = sub.add_parser("tasks", help="every task's accuracy and logit difference on a model, with the "
                                     "order-vs-meaning pairs side by side")
    _common(p, task=False)
    p.add_argument("--n", type=int, default=40, help="prompts per task (default 40)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--names", nargs="*", default=None, help="only these tasks")

    p = sub.add_parser("attention", help="the analogy measure: does each head attend to the same roles (answer, "
                                         "other candidates, ...) on a task and its twin? Prints a table, writes JSON")
    _common(p)
    p.add_argument("--twin", required=True, help="the analogous task, e.g. pet-first for --task pet-last")
    p.add_argument("--heads", nargs="+", default=None,
                   help="heads such as a23.h0 (default: the --top heads attending most to the correct answer)")
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--shuffles", type=int, default=200, help="role shuffles for the baseline (default 200)")
    p.add_argument("--out", default="results/attention")

    p = sub.add_parser("report", help="HTML report of the circuits in a folder")
    p.add_argument("folder", help="folder holding circuit JSON files (e.g. results/discover)")
    p.add_argument("--out", default=None, help="report path (default FOLDER/report.html)")

    p = sub.add_parser("demo", help="the main experiment on the default model: IOI vs the pet-family task, "
                                    "roles, order-vs-meaning control, report")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--out", default="results/demo")
    p.add_argument("--method", default="hybrid", choices=list(ALGORITHMS))
    p.add_argument("--threshold", type=float, default=None)
    p.add_argument("--k", type=int, default=None, help="hybrid candidates (default 200)")
    p.add_argument("--coverage", type=float, default=None,
                   help="hybrid, instead of --k: fewest top EAP-IG edges reaching this faithfulness (slow on CPU "
                        "for diffuse tasks)")
    p.add_argument("--n-prompts", type=int, default=None)
    p.add_argument("--comparison", default="pet-last")
    p.add_argument("--control", default="pet-first")
    p.add_argument("--quiet", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from acdc_compare.backends import ModelLoadError
    from acdc_compare.tasks.base import TaskError

    try:
        return _COMMANDS[args.command](args)
    except ModelLoadError as err:
        print(f"acdc-compare: {err}", file=sys.stderr)
        return EXIT_MODEL
    except (ValueError, TaskError, FileNotFoundError, KeyError) as err:
        print(f"acdc-compare: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("acdc-compare: interrupted (a --journal run resumes where it stopped)", file=sys.stderr)
        return EXIT_FAILURE


# ----- commands -------------------------------------------------------------------------------------------
def _discover(args: argparse.Namespace) -> int:
    from acdc_compare.algorithms.registry import run
    from acdc_compare.export import save_circuit

    options = _method_options(args, **_progress(args))
    circuit = run(_problem(args), options)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{args.task}_{args.method}"
    paths = [save_circuit(circuit, out / f"{stem}.json"), *_draw(circuit, out / stem, f"{args.task} ({args.method})")]
    _print_circuit(circuit)
    _print_paths(paths)
    return EXIT_OK


def _compare(args: argparse.Namespace) -> int:
    from acdc_compare.compare import compare_circuits
    from acdc_compare.draw import draw_comparison
    from acdc_compare.export import load_circuit

    left = load_circuit(args.left)
    if (args.right is None) == (args.reference is None):
        raise ValueError("give a second circuit file or --reference, not both")
    right = load_circuit(args.right) if args.right else _reference(args.reference, left.graph)
    labels = args.labels or [Path(args.left).stem, Path(args.right).stem if args.right else f"{args.reference} (reference)"]
    cmp_ = compare_circuits(left, right)
    print(f"{labels[0]} vs {labels[1]}")
    for level in ("edges", "nodes", "heads"):
        o = getattr(cmp_, level)
        print(f"  {level:6s} precision {o.precision:.3f}  recall {o.recall:.3f}  F1 {o.f1:.3f}  "
              f"Jaccard {o.jaccard:.3f}  only-left {len(o.only_a)}  only-right {len(o.only_b)}  both {len(o.both)}")
    if args.reference == "ioi":
        from acdc_compare.compare import format_head_class_recovery, head_class_recovery
        from acdc_compare.reference_circuits import IOI_HEAD_CLASSES

        print("  IOI classes: " + format_head_class_recovery(head_class_recovery(left.heads(), IOI_HEAD_CLASSES)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{labels[0]}_vs_{labels[1]}{suffix}".replace(" ", "_") for suffix in (".svg", ".png")]
    draw_comparison(left, right, paths, labels[0], labels[1])
    _print_paths(paths)
    return EXIT_OK


def _sweep(args: argparse.Namespace) -> int:
    if args.spec is not None or args.executor is not None:
        return _grid_sweep(args)
    if args.thresholds is None:
        raise ValueError("give a sweep SPEC file, or --thresholds (with --executor to run them as a resumable sweep)")
    from acdc_compare.algorithms.registry import run
    from acdc_compare.compare import roc_auc
    from acdc_compare.export import save_circuit
    from acdc_compare.faithfulness import circuit_faithfulness as faithfulness

    all_options = [_method_options(args, _SWEEP_EXCLUDE, threshold=tau, **_progress(args)) for tau in args.thresholds]
    problem = _problem(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    circuits, rows = [], []
    for tau, options in zip(args.thresholds, all_options):
        c = run(problem, options)
        circuits.append(c)
        path = save_circuit(c, out / f"{args.task}_{args.method}_tau{tau:g}.json")
        rows.append({"threshold": tau, "edges": c.n_kept, "faithfulness": faithfulness(c), "file": str(path)})
        print(f"threshold {tau:g}: {c.n_kept} edges, normalised faithfulness {faithfulness(c):.3f}")
    summary: dict[str, Any] = {"task": args.task, "method": args.method, "rows": rows}
    if args.reference:
        reference = _reference(args.reference, problem.graph)
        summary["edge_auc"] = roc_auc(circuits, reference, over="edges")
        summary["node_auc"] = roc_auc(circuits, reference, over="nodes")
        print(f"edge AUC {summary['edge_auc']:.3f}, node AUC {summary['node_auc']:.3f} against {args.reference}")
    (out / "sweep.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    _print_paths([out / "sweep.json"])
    return EXIT_OK


def _grid_sweep(args: argparse.Namespace) -> int:
    """A spec sweep: jobs resumable in --out, on the local or Ray executor, then the aggregate."""
    from acdc_compare.sweeps import load_spec, run_sweep, spec_from_mapping

    if args.spec is not None:
        if args.thresholds is not None or args.seeds is not None:
            raise ValueError("the spec file holds the grid: give --thresholds/--seeds in it, not as flags")
        spec = load_spec(args.spec)
    else:
        if args.thresholds is None:
            raise ValueError("--executor without a SPEC file needs --thresholds")
        options = dataclasses.asdict(_method_options(args, _SWEEP_EXCLUDE, threshold=args.thresholds[0]))
        defaults = dataclasses.asdict(make_options(args.method, threshold=args.thresholds[0]))
        given = {k: v for k, v in options.items() if v != defaults[k]}
        spec = spec_from_mapping({
            "models": [args.model], "tasks": [args.task], "corruptions": [args.corruption or "default"],
            "methods": [args.method], "thresholds": args.thresholds, "seeds": args.seeds or [args.seed],
            "n_prompts": args.n_prompts, "metric": args.metric, "ablation": args.ablation,
            "include_direct": not args.no_direct, "options": {args.method: given} if given else {}})
    result = run_sweep(spec, args.out, executor=args.executor or "local", address=args.address,
                       workers=args.workers, device=args.device, threads=args.threads,
                       log=(lambda _: None) if args.quiet else (lambda msg: print(msg, flush=True)))
    for g in result.summary["groups"]:
        e, f = g["edges_stats"], g["faithfulness_stats"]
        print(f"{g['task']} ({g['corruption']}) {g['method']} @ {g['threshold']:g}: {len(g['seeds'])} seed(s), "
              f"{e['mean']:.1f} edges, faithfulness {_num(f['mean'])}, edge Jaccard {_num(g['edge_jaccard_mean'])}, "
              f"{g['stable_edges']} stable edges")
    _print_paths([result.summary_path, result.report_path])
    if result.failed:
        print(f"acdc-compare: {len(result.failed)} job(s) failed (errors in their folders' failed.json); rerun "
              "the same command to retry them", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _curve(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from acdc_compare.algorithms.eap import check_eap_metric, eap_ig_scores, eap_scores, faithfulness_of_scores
    from acdc_compare.export import load_circuit
    from acdc_compare.faithfulness import DEFAULT_FRACTIONS

    files = [Path(s) for s in args.scores if s not in ("eap", "eap-ig")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"--scores takes 'eap', 'eap-ig' or circuit JSON files; not found: {missing}")
    circuits = {str(f): load_circuit(f) for f in files}
    problem = _problem(args)
    if "eap" in args.scores:
        check_eap_metric(problem)
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
            scores = circuit.scores
        curve = faithfulness_of_scores(problem, scores, fractions, log_x=args.log_x, progress=not args.quiet)
        curves[source] = asdict(curve)
        print(f"{source}: CPR {curve.cpr:.3f} (higher is better), CMD {curve.cmd:.3f} (lower is better)")
        for frac, size, f in zip(curve.fractions, curve.sizes, curve.faithfulness):
            print(f"  {frac:8.4f} of edges = {size:6d} edges: faithfulness {f:.3f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{args.task}_curve.json"
    summary = {"task": args.task, "model": problem.model_name, "metric": args.metric, "ablation": args.ablation,
               "n_prompts": problem.task.n_prompts, "n_edges": problem.graph.n_edges, "steps": args.steps,
               "log_x": args.log_x, "curves": curves}
    path.write_text(json.dumps(summary, indent=2) + "\n")
    _print_paths([path])
    return EXIT_OK


def _tasks(args: argparse.Namespace) -> int:
    from acdc_compare.api import get_model
    from acdc_compare.tasks.registry import format_tasks_table, tasks_table

    model = get_model(args.model, device=args.device)
    print(format_tasks_table(tasks_table(model, names=args.names, n=args.n, seed=args.seed, progress=not args.quiet)))
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from acdc_compare.export import load_circuit
    from acdc_compare.faithfulness import circuit_faithfulness as faithfulness
    from acdc_compare.report import Image, KeyValues, Table, write_report

    folder = Path(args.folder)
    files = sorted(folder.glob("*.json")) + sorted((folder / "circuits").glob("*.json"))
    circuits = []
    for f in files:
        try:
            circuits.append((f, load_circuit(f)))
        except ValueError:
            continue  # not a circuit file (e.g. sweep.json)
    if not circuits:
        raise FileNotFoundError(f"no circuit JSON files in {folder}")
    sections: list[Any] = [Table("Circuits", ["file", "edges kept", "heads", "method", "threshold",
                                               "normalised faithfulness"],
                                 [[f.name, str(c.n_kept), str(len(c.heads())), str(c.settings.get("method", "")),
                                   str(c.settings.get("threshold", "")), f"{faithfulness(c):.3f}"]
                                  for f, c in circuits])]
    report_path = Path(args.out) if args.out else folder / "report.html"
    for f, c in circuits:
        sections.append(KeyValues(f"Settings: {f.name}", {k: str(v) for k, v in c.settings.items()}))
        png = report_path.parent / f"{f.stem}.png"
        if png.is_file() and png.stat().st_mtime >= f.stat().st_mtime:
            print(f"{png.name}: up to date, not redrawn")
        else:
            _draw(c, report_path.parent / f.stem, f.stem, suffixes=(".png",))
        sections.append(Image(f"Circuit: {f.stem}", png.name, embed=True))
    sweep = folder / "sweep.json"
    if sweep.is_file():
        from acdc_compare.plots import sweep_plot

        sections.append(sweep_plot(json.loads(sweep.read_text())["rows"], f"Threshold sweep: {sweep.name}"))
    write_report(report_path, title=f"acdc_compare report: {folder}", sections=sections)
    _print_paths([report_path])
    return EXIT_OK


def _attention(args: argparse.Namespace) -> int:
    from acdc_compare.attention import ROLES, analogy_rows, check_heads, format_analogy_table, head_analogies, \
        top_answer_heads
    from acdc_compare.api import get_model
    from acdc_compare.backends import model_name, tokenizer
    from acdc_compare.tasks.registry import make_task

    model = get_model(args.model, device=args.device)
    tasks = [make_task(t, tokenizer(model), n=args.n_prompts, seed=args.seed) for t in (args.task, args.twin)]
    bars = not args.quiet
    heads = check_heads(model, args.heads) if args.heads else top_answer_heads(model, tasks[0], args.top, progress=bars)
    results = head_analogies(model, *tasks, heads, n_shuffles=args.shuffles, seed=args.seed, progress=bars)
    print(format_analogy_table(results, args.task, args.twin))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{args.task}_vs_{args.twin}.json"
    summary = {"model": model_name(model), "task": args.task, "twin": args.twin, "n_prompts": args.n_prompts,
               "seed": args.seed, "shuffles": args.shuffles, "roles": list(ROLES), "heads": analogy_rows(results)}
    path.write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n")
    _print_paths([path])
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from acdc_compare.experiment import ExperimentConfig, run_experiment

    config = ExperimentConfig(model=args.model, method=args.method, comparison=args.comparison,
                              control=args.control, progress=not args.quiet)
    overrides = {k: v for k, v in (("threshold", args.threshold), ("k", args.k), ("coverage", args.coverage),
                                   ("n_prompts", args.n_prompts)) if v is not None}
    if overrides:
        from dataclasses import replace

        config = replace(config, **overrides)
    result = run_experiment(config, args.out, log=lambda msg: print(msg, flush=True))
    print()
    print(result.tasks_table)
    print()
    candidates = f"top-{config.k}" if config.coverage is None else f"coverage {config.coverage}"
    print(f"circuits ({config.method}, threshold {config.threshold}, {candidates} EAP-IG candidates, "
          f"{config.n_prompts} prompts each):")
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
        print("  " + " " * 12 + "".join(f"{n:>8d}" for n in curves[0].curve.sizes) + "     CPR   CMD")
        for run in curves:
            print(f"  {run.name:12s}" + "".join(f"{f:8.2f}" for f in run.curve.faithfulness)
                  + f"  {run.curve.cpr:6.2f}{run.curve.cmd:6.2f}")
    for task, verdict in result.mover_verdicts.items():
        print(f"  movers of {task}: {verdict}")
    print(f"\ndemo finished in {result.seconds:.0f} s")
    _print_paths(result.paths())
    return EXIT_OK


_COMMANDS = {"discover": _discover, "compare": _compare, "sweep": _sweep, "curve": _curve, "tasks": _tasks,
             "report": _report, "demo": _demo, "attention": _attention}


# ----- helpers --------------------------------------------------------------------------------------------
def _reference(name: str, graph: Any) -> Any:
    from acdc_compare.reference_circuits import greater_than_ground_truth, ioi_ground_truth

    return ioi_ground_truth(graph) if name == "ioi" else greater_than_ground_truth(graph)


def _draw(circuit: Any, stem: Path, title: str, suffixes: tuple[str, ...] = (".svg", ".png")) -> list[Path]:
    """Draw the circuit once per format (one layout); print what a large circuit's drawing leaves out."""
    from acdc_compare.draw import draw_circuit, plan_drawing

    paths = [stem.parent / (stem.name + suffix) for suffix in suffixes]
    note = plan_drawing(circuit).note
    if note:
        print(f"{stem.name}: {note}")
    draw_circuit(circuit, paths, title=title)
    return paths


def _problem(args: argparse.Namespace) -> Any:
    """The prepared problem the task/model/metric flags describe."""
    from acdc_compare.api import prepare

    return prepare(args.task, model=args.model, metric=args.metric, ablation=args.ablation,
                   include_direct=not args.no_direct, n_prompts=args.n_prompts, seed=args.seed,
                   device=args.device, corruption=args.corruption)


def _progress(args: argparse.Namespace) -> dict[str, bool]:
    """progress=... for the methods that show a progress bar (on a terminal only: acdc_compare.progress)."""
    fields = {f.name for f in ALGORITHMS[args.method].option_fields()}
    return {"progress": not args.quiet} if "progress" in fields else {}


def _print_circuit(c: Any) -> None:
    from acdc_compare.faithfulness import circuit_faithfulness as faithfulness

    m = c.metrics
    print(f"{c.n_kept}/{c.n_edges} edges kept, {len(c.heads())} heads; metric full {m.get('full', float('nan')):.4g}, "
          f"circuit {m.get('circuit', float('nan')):.4g}, empty {m.get('empty', float('nan')):.4g}; normalised "
          f"faithfulness {faithfulness(c):.3f}; {c.settings.get('seconds', 0):.1f} s")


def _print_paths(paths: Sequence[Path]) -> None:
    print("wrote:")
    for p in paths:
        print(f"  {p}")


if __name__ == "__main__":
    sys.exit(main())
