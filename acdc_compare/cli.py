"""`acdc-compare`: discover, compare, sweep, curve, tasks, report, demo and attention from the command line.

Exit codes: 0 success; 2 bad arguments or input (unknown task, bad threshold, unreadable file); 3 the model
could not be loaded; 1 any other failure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from acdc_compare.algorithms.registry import ALGORITHMS, make_options
from acdc_compare.tasks.base import Corruption

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_MODEL = 0, 1, 2, 3
_SWEEP_EXCLUDE = frozenset({"threshold", "journal"})  # one threshold per run from --thresholds; no shared journal


_MODEL_HELP = ("'smollm2-135m' (offline default; a Q4_1 GGUF dequantized to float32), a Hugging Face id such as "
               "'gpt2', a local HF directory, or a Llama-family .gguf file")
_TASK_HELP = ("a registered task (`acdc-compare tasks --list`) or a prompts file: .jsonl or .csv with the columns "
              "prompt, corrupted, answer, wrong answer (answers with their leading space, e.g. ' Mary')")


def _common(p: argparse.ArgumentParser, task: bool = True) -> None:
    p.add_argument("--model", default="smollm2-135m", help=_MODEL_HELP)
    if task:
        p.add_argument("--task", default="ioi", help=_TASK_HELP)
        p.add_argument("--n-prompts", type=int, default=16, help="prompts used for discovery")
        p.add_argument("--seed", type=int, default=0, help="seed of the task's prompt generator")
        p.add_argument("--corruption", default=None, choices=["meaning", "answers"],
                       help="which corrupted prompts: meaning (the information that picks the answer removed) "
                            "or answers (candidate answers replaced by fresh words); None: the task's own")
    p.add_argument("--device", default=None, help="cpu or cuda; None: cuda when available")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _method_args(p: argparse.ArgumentParser, exclude: frozenset[str] = frozenset()) -> None:
    p.add_argument("--method", default="acdc", choices=list(ALGORITHMS),
                   help="; ".join(f"{s.name}: {s.summary}" for s in ALGORITHMS.values()))
    p.add_argument("--metric", default="kl", choices=["kl", "logit_diff"], help=_METRIC_HELP)
    p.add_argument("--ablation", default="corrupted", choices=["corrupted", "zero", "mean"], help=_ABLATION_HELP)
    p.add_argument("--no-direct", action="store_true", help="graph without direct q/k/v edges")
    _option_args(p, exclude)


_METRIC_HELP = "kl: KL(full model || circuit) at the scored positions; logit_diff: the negated logit difference"
_ABLATION_HELP = "what a removed edge carries: the sender's output on the corrupted prompt, zero, or its mean"


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


_CLI_DEFAULTS = {"journal": "TASK_METHOD.journal.jsonl in --out, removed once the circuit is saved",
                 "threshold": "none; required, except eap/eap-ig with --top-n",
                 "top_n": "none; or --threshold", "max_batch": "64 on a GPU, 1 on a CPU", "k": "all edges",
                 "max_tests": "no limit"}


def _option_args(p: argparse.ArgumentParser, exclude: frozenset[str]) -> None:
    """One flag per method option (from the registry's options classes); absent flags keep the method's
    default."""
    for name, uses in _cli_fields(exclude).items():
        _, f, hint = uses[0]
        helps = dict.fromkeys(u[1].metadata.get("help", "") for u in uses)
        methods = ", ".join(u[0] for u in uses)
        text = f"[{methods}] " + "; ".join(h for h in helps if h)
        if name in _CLI_DEFAULTS:
            text = text.split(" (None: ")[0] + f" (default: {_CLI_DEFAULTS[name]})"
        else:
            text += f" (default: {'none' if f.default is None else f.default})"
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
            kwargs["metavar"] = name.upper()
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
    from acdc_compare import __version__
    from acdc_compare.experiment import ExperimentConfig, candidates_description

    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="acdc-compare", formatter_class=fmt, description="Automated circuit "
                                     "discovery (ACDC, EAP, EAP-IG) on TransformerLens models, compared with known "
                                     "circuits. Exit codes: 0 success, 2 bad arguments or input, 3 the model could "
                                     "not be loaded, 1 anything else.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("discover", formatter_class=fmt,
                       help="discover one task's circuit; writes JSON, SVG and PNG to --out")
    _common(p)
    _method_args(p)
    p.add_argument("--out", default="results/discover",
                   help="output folder: TASK_METHOD.json/.svg/.png; exact ACDC and the hybrid journal their "
                        "decisions to TASK_METHOD.journal.jsonl there until the circuit is saved (rerun to resume)")

    p = sub.add_parser("compare", formatter_class=fmt,
                       help="compare two saved circuits, or one with a reference circuit")
    p.add_argument("left", help="circuit JSON file")
    p.add_argument("right", nargs="?", default=None, help="circuit JSON file (or use --reference)")
    p.add_argument("--reference", choices=["ioi", "greater-than"], default=None,
                   help="compare with GPT-2 small's published circuit (needs a GPT-2-small graph)")
    p.add_argument("--labels", nargs=2, default=None, metavar=("LEFT", "RIGHT"),
                   help="names of the two circuits in the output; None: the file names")
    p.add_argument("--out", default="results/compare", help="output folder of the side-by-side SVG and PNG")

    p = sub.add_parser("sweep", formatter_class=fmt, help="a sweep: a spec file (models x tasks x corruptions x methods x thresholds "
                                     "x seeds) on a local or Ray executor, resumable, with seed stability; or, "
                                     "without SPEC and --executor, a threshold grid in this process")
    p.add_argument("spec", nargs="?", default=None, help="sweep spec (TOML; see README 'Sweeps')")
    _common(p)
    _method_args(p, _SWEEP_EXCLUDE)
    p.add_argument("--thresholds", type=float, nargs="+", default=None,
                   help="the thresholds, in --threshold's units (absolute, the metric's own); without SPEC")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="prompt seeds (with --executor and no SPEC; default: --seed)")
    p.add_argument("--executor", choices=["local", "ray"], default=None,
                   help="run the spec's jobs here (local, the default with SPEC) or on Ray")
    p.add_argument("--address", default=None, help="Ray cluster to join (default: start a local one)")
    p.add_argument("--workers", type=int, default=None, help="Ray worker actors (default: one per GPU, else per CPU)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per worker")
    p.add_argument("--reference", choices=["ioi", "greater-than"], default=None,
                   help="ROC AUC against GPT-2 small's published circuit (needs --model gpt2)")
    p.add_argument("--out", default="results/sweep", help="output folder: job folders or one circuit JSON per "
                                                            "threshold, sweep.json")

    p = sub.add_parser("curve", formatter_class=fmt, help="faithfulness curve (MIB's CPR and CMD) of edge "
                                                          "rankings: EAP, EAP-IG, or a saved circuit's scores")
    _common(p)
    p.add_argument("--scores", nargs="+", default=["eap-ig"],
                   help="what ranks the edges: 'eap', 'eap-ig' and/or saved circuit JSON files (their scores; "
                        "untested edges rank last)")
    p.add_argument("--metric", default="kl", choices=["kl", "logit_diff"], help=_METRIC_HELP)
    p.add_argument("--ablation", default="corrupted", choices=["corrupted", "zero", "mean"], help=_ABLATION_HELP)
    p.add_argument("--steps", type=int, default=5, help="EAP-IG integration steps")
    p.add_argument("--no-direct", action="store_true", help="graph without direct q/k/v edges")
    p.add_argument("--fractions", type=float, nargs="+", default=None,
                   help="edge fractions in (0, 1]; None: MIB's log-spaced grid")
    p.add_argument("--log-x", action="store_true", help="areas over log10(fraction) instead of the fraction")
    p.add_argument("--out", default="results/curve", help="output folder of TASK_curve.json")

    p = sub.add_parser("tasks", formatter_class=fmt, help="list the tasks (--list), or every task's accuracy and "
                                                          "logit difference on a model with the order-vs-meaning "
                                                          "pairs side by side")
    _common(p, task=False)
    p.add_argument("--list", action="store_true",
                   help="only list the tasks: name, description and one example prompt (seconds, no model run)")
    p.add_argument("--n", type=int, default=40, help="prompts per task")
    p.add_argument("--seed", type=int, default=0, help="seed of the prompt generators")
    p.add_argument("--names", nargs="*", default=None, help="only these tasks; None: all")

    p = sub.add_parser("attention", formatter_class=fmt,
                       help="the analogy measure: does each head attend to the same roles (answer, other "
                            "candidates, ...) on a task and its twin? Prints a table, writes JSON")
    _common(p)
    p.add_argument("--twin", required=True, help="the analogous task, e.g. pet-first for --task pet-last")
    p.add_argument("--heads", nargs="+", default=None,
                   help="heads such as a23.h0; None: the --top heads attending most to the correct answer")
    p.add_argument("--top", type=int, default=10, help="how many heads when --heads is not given")
    p.add_argument("--shuffles", type=int, default=200, help="role shuffles for the baseline")
    p.add_argument("--out", default="results/attention", help="output folder of TASK_vs_TWIN.json")

    p = sub.add_parser("report", formatter_class=fmt, help="HTML report of the circuits in a folder")
    p.add_argument("folder", help="folder holding circuit JSON files (e.g. results/discover)")
    p.add_argument("--out", default=None, help="report path; None: FOLDER/report.html (PNGs beside it)")

    demo = ExperimentConfig()
    p = sub.add_parser("demo", formatter_class=fmt,
                       help="the main experiment on the default model: IOI vs the pet-family task, roles, "
                            "order-vs-meaning control, report; writes everything to --out")
    p.add_argument("--model", default="smollm2-135m", help=_MODEL_HELP)
    p.add_argument("--out", default="results/demo",
                   help="output folder: report.html, one SVG/PNG per circuit, circuits/TASK.json, tasks.txt, "
                        "analogy.json")
    p.add_argument("--method", default=demo.method, choices=list(ALGORITHMS), help="discovery method")
    p.add_argument("--threshold", type=float, default=demo.threshold,
                   help="RELATIVE: a fraction of each task's metric gap KL(full || empty circuit), so tasks of "
                        "different strength are comparable (discover's --threshold is absolute)")
    p.add_argument("--k", type=int, default=None,
                   help=f"hybrid: the top-k EAP-IG edges become ACDC's candidates, for every task; None: "
                        f"{candidates_description(demo)}")
    p.add_argument("--coverage", type=float, default=None,
                   help="hybrid, instead of --k: fewest top EAP-IG edges reaching this faithfulness (slow on CPU "
                        "for diffuse tasks)")
    p.add_argument("--n-prompts", type=int, default=demo.n_prompts, help="prompts per discovery")
    p.add_argument("--comparison", default=demo.comparison, help="the task compared with IOI")
    p.add_argument("--control", default=demo.control, help="the comparison task's order-vs-meaning twin")
    p.add_argument("--extra", nargs="*", default=list(demo.extra),
                   help="more tasks whose circuits join the mover table (e.g. adjective-first verb-first)")
    p.add_argument("--corruption", default=demo.corruption.value, choices=[c.value for c in Corruption],
                   help="the comparison tasks' corruption, where a task offers it (IOI's is always ABC)")
    p.add_argument("--held-out-seed", type=int, default=demo.held_out_seed,
                   help="prompt seed the circuits are also evaluated on (not discovered on)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    from acdc_compare.backends import ModelLoadError
    from acdc_compare.tasks.base import TaskError

    args.interrupt_note = "nothing of this run was saved"
    try:
        return _COMMANDS[args.command](args)
    except ModelLoadError as err:
        print(f"acdc-compare: {err}", file=sys.stderr)
        return EXIT_MODEL
    except (ValueError, TaskError, FileNotFoundError, KeyError) as err:
        print(f"acdc-compare: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError) as err:
        print(f"acdc-compare: cannot use {err.filename}: {err.strerror}; choose a path you can write to",
              file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:
        print(f"acdc-compare: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        note = args.interrupt_note
        if getattr(args, "journal_in_use", None) and Path(args.journal_in_use).is_file():
            note = (f"the decisions made so far are saved in {args.journal_in_use}; run the same command again to "
                    f"resume from there: acdc-compare {shlex.join(argv)}")
        print(f"acdc-compare: interrupted; {note}", file=sys.stderr)
        return EXIT_FAILURE


# ----- checks made before any model loads ------------------------------------------------------------------
def _writable_dir(path: str | Path, flag: str) -> Path:
    """A folder the command can create or write into; ValueError saying which flag and why otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} is an existing file, not a folder; give a folder (created if missing)")
    _check_can_create(path, flag)
    return path


def _writable_file(path: str | Path, flag: str) -> Path:
    """A file the command can create or overwrite; ValueError saying which flag and why otherwise."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder; give a file path")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise ValueError(f"{flag} {path} is not writable (permission denied); choose a file you can write")
        return path
    _check_can_create(path, flag)
    return path


def _check_can_create(path: Path, flag: str) -> None:
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{flag} {path} cannot be created: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path} cannot be written: no write permission in {existing}; choose a folder "
                         "you can write to")


def _readable_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.json"))[:5]
        hint = f" (it holds {', '.join(found)})" if found else ""
        raise ValueError(f"{what} {path} is a folder{hint}; give a circuit JSON file")
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist; give a circuit JSON file")
    return path


def _check_task_args(args: argparse.Namespace, *names: str) -> None:
    """Task names (or prompts files), prompt counts and the device, checked before the model loads."""
    from acdc_compare.backends import check_device
    from acdc_compare.tasks.build import is_prompts_file, read_prompts_file
    from acdc_compare.tasks.registry import task_spec

    check_device(args.device)
    for name in names or ("task",):
        value = getattr(args, name)
        read_prompts_file(value) if is_prompts_file(value) else task_spec(value)
    for flag in ("n_prompts", "n"):
        value = getattr(args, flag, None)
        if value is not None and value < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")


# ----- commands -------------------------------------------------------------------------------------------
def _discover(args: argparse.Namespace) -> int:
    from acdc_compare.algorithms.registry import run
    from acdc_compare.export import save_circuit

    out = _writable_dir(args.out, "--out")
    stem = f"{_task_label(args.task)}_{args.method}"
    journal, default_journal = _journal(args, out / f"{stem}.journal.jsonl")
    extra = {"journal": str(journal)} if journal is not None else {}
    options = _method_options(args, **_progress(args), **extra)
    _check_task_args(args)
    problem = _problem(args)
    _warn_if_long(problem, options, journal)
    args.journal_in_use = journal
    circuit = run(problem, options)
    out.mkdir(parents=True, exist_ok=True)
    title = f"{_task_label(args.task)} ({args.method})"
    paths = [save_circuit(circuit, out / f"{stem}.json"), *_draw(circuit, out / stem, title)]
    if default_journal and circuit.settings.get("complete", True):
        journal.unlink(missing_ok=True)  # the saved circuit holds every decision; a rerun starts afresh
    _print_circuit(circuit)
    _print_paths(paths)
    return EXIT_OK


def _compare(args: argparse.Namespace) -> int:
    from acdc_compare.compare import compare_circuits
    from acdc_compare.draw import draw_comparison
    from acdc_compare.export import load_circuit

    if (args.right is None) == (args.reference is None):
        raise ValueError("give a second circuit file or --reference, not both")
    _readable_file(args.left, "circuit file")
    if args.right:
        _readable_file(args.right, "circuit file")
    _writable_dir(args.out, "--out")
    left = load_circuit(args.left)
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
    out = _writable_dir(args.out, "--out")
    _check_task_args(args)
    problem = _problem(args)
    reference = _reference(args.reference, problem.graph) if args.reference else None
    out.mkdir(parents=True, exist_ok=True)
    args.interrupt_note = f"the circuits of the thresholds that finished are in {out}; the others were not saved"
    circuits, rows = [], []
    for tau, options in zip(args.thresholds, all_options):
        c = run(problem, options)
        circuits.append(c)
        path = save_circuit(c, out / f"{_task_label(args.task)}_{args.method}_tau{tau:g}.json")
        rows.append({"threshold": tau, "edges": c.n_kept, "faithfulness": faithfulness(c), "file": str(path)})
        print(f"threshold {tau:g}: {c.n_kept} edges, normalised faithfulness {faithfulness(c):.3f}")
    summary: dict[str, Any] = {"task": args.task, "method": args.method, "rows": rows}
    if reference is not None:
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

    from acdc_compare.algorithms.eap import check_eap_metric, check_steps, eap_ig_scores, eap_scores, \
        faithfulness_of_scores
    from acdc_compare.export import load_circuit
    from acdc_compare.faithfulness import DEFAULT_FRACTIONS

    files = [Path(s) for s in args.scores if s not in ("eap", "eap-ig")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"--scores takes 'eap', 'eap-ig' or circuit JSON files; not found: {missing}")
    circuits = {str(f): load_circuit(f) for f in files}
    check_steps(args.steps)
    out = _writable_dir(args.out, "--out")
    _check_task_args(args)
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
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{_task_label(args.task)}_curve.json"
    summary = {"task": args.task, "model": problem.model_name, "metric": args.metric, "ablation": args.ablation,
               "n_prompts": problem.task.n_prompts, "n_edges": problem.graph.n_edges, "steps": args.steps,
               "log_x": args.log_x, "curves": curves}
    path.write_text(json.dumps(summary, indent=2) + "\n")
    _print_paths([path])
    return EXIT_OK


def _tasks(args: argparse.Namespace) -> int:
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


def _report(args: argparse.Namespace) -> int:
    from acdc_compare.export import load_circuit
    from acdc_compare.faithfulness import circuit_faithfulness as faithfulness
    from acdc_compare.report import Image, KeyValues, Table, Text, write_report

    folder = Path(args.folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; give the folder holding the circuit JSON files")
    report_path = _writable_file(Path(args.out) if args.out else folder / "report.html", "--out")
    files = sorted(folder.glob("*.json")) + sorted((folder / "circuits").glob("*.json"))
    circuits, broken = [], []
    for f in files:
        try:
            circuits.append((f, load_circuit(f)))
        except ValueError as err:
            if _claims_to_be_a_circuit(f):
                broken.append(f)
                print(f"acdc-compare: warning: skipped {err}", file=sys.stderr)
    if not circuits:
        raise FileNotFoundError(f"no readable circuit JSON files in {folder}"
                                + (f" ({len(broken)} unreadable, see above)" if broken else ""))
    sections: list[Any] = [Table("Circuits", ["file", "edges kept", "heads", "method", "threshold",
                                               "normalised faithfulness"],
                                 [[f.name, str(c.n_kept), str(len(c.heads())), str(c.settings.get("method", "")),
                                   str(c.settings.get("threshold", "")), f"{faithfulness(c):.3f}"]
                                  for f, c in circuits])]
    if broken:
        sections.append(Text("Unreadable circuit files (left out)", "\n".join(str(f) for f in broken)))
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
    if broken:
        print(f"acdc-compare: {len(broken)} circuit file(s) could not be read and are not in the report: "
              f"{', '.join(str(f) for f in broken)}; fix or remove them", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _claims_to_be_a_circuit(path: Path) -> bool:
    """Whether a JSON file that failed to load as a circuit is a broken one (not valid JSON, or a circuit
    schema), rather than another result file such as sweep.json."""
    from acdc_compare.export import SCHEMA

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return True
    return isinstance(data, dict) and str(data.get("schema", "")).startswith(SCHEMA.split("/")[0])


def _attention(args: argparse.Namespace) -> int:
    from acdc_compare.attention import ROLES, analogy_rows, check_heads, format_analogy_table, head_analogies, \
        top_answer_heads
    from acdc_compare.api import get_model, resolve_task
    from acdc_compare.backends import model_name

    out = _writable_dir(args.out, "--out")
    _check_task_args(args, "task", "twin")
    model = get_model(args.model, device=args.device)
    tasks = [resolve_task(t, model, n_prompts=args.n_prompts, seed=args.seed) for t in (args.task, args.twin)]
    bars = not args.quiet
    heads = check_heads(model, args.heads) if args.heads else top_answer_heads(model, tasks[0], args.top, progress=bars)
    results = head_analogies(model, *tasks, heads, n_shuffles=args.shuffles, seed=args.seed, progress=bars)
    print(format_analogy_table(results, args.task, args.twin))
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{_task_label(args.task)}_vs_{_task_label(args.twin)}.json"
    summary = {"model": model_name(model), "task": args.task, "twin": args.twin, "n_prompts": args.n_prompts,
               "seed": args.seed, "shuffles": args.shuffles, "roles": list(ROLES), "heads": analogy_rows(results)}
    path.write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n")
    _print_paths([path])
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from acdc_compare.experiment import ExperimentConfig, candidates_description, run_experiment

    config = ExperimentConfig(model=args.model, method=args.method, comparison=args.comparison,
                              control=args.control, extra=tuple(args.extra), corruption=Corruption(args.corruption),
                              threshold=args.threshold, coverage=args.coverage, n_prompts=args.n_prompts,
                              **({} if args.k is None else {"k": args.k, "task_k": ()}),
                              held_out_seed=args.held_out_seed, progress=not args.quiet)
    out = _writable_dir(args.out, "--out")
    args.interrupt_note = f"the files finished so far are in {out}; a rerun starts the demo afresh"
    result = run_experiment(config, out, log=lambda msg: print(msg, flush=True))
    print()
    print(result.tasks_table)
    print()
    candidates = (f"top-{candidates_description(config)}" if config.coverage is None
                  else f"coverage {config.coverage}")
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


def _task_label(task: str) -> str:
    """The task's name in output file names: a prompts file's stem, else the registered name."""
    from acdc_compare.tasks.build import is_prompts_file

    return Path(task).stem if is_prompts_file(task) else task


def _journal(args: argparse.Namespace, default: Path) -> tuple[Path | None, bool]:
    """(the journal this run writes, whether it is the default one in --out): --journal when given, else
    `default` for the methods that keep one (exact ACDC, the hybrid), else None."""
    given = getattr(args, "opt_journal", None)
    if given is not None:
        return _writable_file(given, "--journal"), False
    if "journal" not in {f.name for f in ALGORITHMS[args.method].option_fields()}:
        return None, False
    return _writable_file(default, "--out"), True


LONG_RUN_S = 600.0  # an exact run estimated longer than this on a CPU gets a warning


def _warn_if_long(problem: Any, options: Any, journal: Path | None) -> None:
    """Warn (stderr) before an exact ACDC run on the CPU estimated to take longer than LONG_RUN_S."""
    from acdc_compare.algorithms.acdc import AcdcOptions, estimated_seconds

    if not isinstance(options, AcdcOptions) or problem.patcher.device.type != "cpu":
        return
    if getattr(options, "k", None) is not None or getattr(options, "coverage", None) is not None:
        return  # a filtered hybrid tests only its candidates
    n_tests = min(problem.graph.n_edges, options.max_tests or problem.graph.n_edges)
    seconds = estimated_seconds(problem, n_tests)
    if seconds <= LONG_RUN_S:
        return
    resume = (f"Every decision is journalled to {journal}: Ctrl-C (or a kill) loses nothing, and the same "
              "command resumes." if journal is not None else "")
    print(f"acdc-compare: warning: exact ACDC tests up to {n_tests:,} edges one forward each: about "
          f"{_duration(seconds)} on this CPU. For a result in minutes use --method hybrid --k 250 (EAP-IG picks "
          f"the candidates, exact ACDC decides among them), or run on a GPU. {resume}", file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds // 3600:.0f} h {seconds % 3600 / 60:.0f} min"


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
