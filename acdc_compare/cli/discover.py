"""`acdc-compare discover`: one task's circuit by one method, saved as JSON, SVG and PNG; exact runs journal
their decisions so an interrupted run resumes."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, get_args

from acdc_compare.cli.checks import check_task_args, writable_dir, writable_file
from acdc_compare.cli.common import EXIT_OK, HELP_FORMAT, add_common, add_max_memory, add_out, add_threshold_scale, \
    prepare_kwargs, problem_from_args
from acdc_compare.cli.method_options import add_method_args, method_options, option_names, progress_option
from acdc_compare.cli.output import add_level, draw, print_paths, task_label
from acdc_compare.types import Positions

NAME = "discover"
LONG_RUN_S = 600.0  # an exact run estimated longer than this on a CPU gets a warning
GAP_SHARE = 0.5  # an ACDC threshold at least this share of the task's metric gap gets a warning
SUGGESTED_SHARE = 0.05  # the relative threshold a warning suggests, as a share of the gap
WEAK_CORRUPTION_SHARE = 0.25  # a corruption whose gap is below this share of another's gets a warning


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, formatter_class=HELP_FORMAT,
                       help="discover one task's circuit; writes JSON, SVG and PNG to --out")
    add_common(p)
    add_max_memory(p)
    add_method_args(p)
    add_threshold_scale(p, "--threshold")
    p.add_argument("--held-out", type=float, default=None, metavar="FRACTION",
                   help="with a prompts file: hold out this fraction of its rows (the last ones after a shuffle "
                        "seeded by --seed), discover on the others (the first --n-prompts of them) and report the "
                        "circuit's normalised faithfulness on the held-out rows; at least 8 held-out rows are "
                        "needed for a number to trust. None: no held-out check")
    p.add_argument("--positions", choices=get_args(Positions), default="all",
                   help="all: an edge stands for every token position; spans: one edge per named span of the "
                        "prompts (position-aware circuits: IOI's IO, S1, S2, END, ...; a prompts file's spans "
                        "column; end-aligned spans end-0, end-1, end-2, rest for prompts of one length). The "
                        "figures show spans as columns and layers as rows (--level does not apply)")
    add_level(p)
    add_out(p, "results/discover",
            "output folder: TASK_METHOD.json/.svg/.png; exact ACDC and the hybrid journal their "
            "decisions to TASK_METHOD.journal.jsonl there until the circuit is saved (rerun to resume)")


def run(args: argparse.Namespace) -> int:
    from acdc_compare.api import check_threshold_scale, needs_gradients, run_scaled, scaled_options, with_held_out
    from acdc_compare.export import save_circuit
    from acdc_compare.tasks.prompts_file import split_rows

    out = writable_dir(args.out, "--out")
    stem = f"{task_label(args.task)}_{args.method}"
    journal, default_journal = _journal(args, out / f"{stem}.journal.jsonl")
    extra = {"journal": str(journal)} if journal is not None else {}
    options = method_options(args, **progress_option(args), **extra)
    check_threshold_scale(args.threshold_scale, options)
    check_task_args(args)
    split = None if args.held_out is None else split_rows(args.task, args.held_out, args.seed, "--held-out")
    if split is not None:
        print(split.describe(), flush=True)
        if split.warning():
            print(f"acdc-compare: warning: {split.warning()}", file=sys.stderr, flush=True)
    problem = problem_from_args(args, grad=needs_gradients(options), task=None if split is None else split.fit)
    options = _clamp_k(problem, options)
    _print_task(args, problem)
    _warn_if_weak_corruption(args, problem)
    scaled = scaled_options(problem, options, args.threshold_scale)
    _print_threshold(args, problem, scaled)
    _warn_if_long(problem, scaled, journal)
    _warn_if_threshold_too_big(problem, scaled, args)
    args.journal_in_use = journal
    _print_resume(journal)
    circuit = run_scaled(problem, options, args.threshold_scale)
    if split is not None:
        circuit = with_held_out(circuit, split, **prepare_kwargs(args))
    _warn_if_empty(circuit, problem, scaled)
    out.mkdir(parents=True, exist_ok=True)
    title = f"{task_label(args.task)} ({args.method})"
    paths = [save_circuit(circuit, out / f"{stem}.json"), *draw(circuit, out / stem, title, level=args.level)]
    if default_journal and circuit.settings.get("complete", True):
        journal.unlink(missing_ok=True)  # the saved circuit holds every decision; a rerun starts afresh
    _print_circuit(circuit)
    print_paths(paths)
    return EXIT_OK


def _journal(args: argparse.Namespace, default: Path) -> tuple[Path | None, bool]:
    """(the journal this run writes, whether it is the default one in --out): --journal when given, else
    `default` for the methods that keep one (exact ACDC, the hybrid), else None."""
    given = getattr(args, "opt_journal", None)
    if given is not None:
        return writable_file(given, "--journal"), False
    if "journal" not in option_names(args.method):
        return None, False
    return writable_file(default, "--out"), True


def _print_resume(journal: Path | None) -> None:
    """Say when the run resumes from a journal's decisions (a journal of another run is refused by the run)."""
    from acdc_compare.journal import read_journal

    if journal is None or not journal.is_file():
        return
    try:
        n = len(read_journal(journal, {}))
    except ValueError:
        return
    if n:
        print(f"resuming: {n:,} decisions from {journal}", flush=True)


def _print_task(args: argparse.Namespace, problem: Any) -> None:
    """Before the search: the task's accuracy, logit difference and KL(clean || corrupted) on the model (is it
    worth a circuit?), and a note (stderr) when it has fewer prompts than --n-prompts asked for."""
    from acdc_compare.api import get_model
    from acdc_compare.tasks.evaluate import evaluate_task, format_evaluation

    task = problem.task
    if task.n_prompts < args.n_prompts:
        source = args.task if args.held_out is None else f"{args.task} less its held-out rows"
        print(f"acdc-compare: note: --n-prompts {args.n_prompts}, but {source} holds only {task.n_prompts} "
              f"prompts; using all {task.n_prompts}", file=sys.stderr, flush=True)
    evaluation = evaluate_task(get_model(args.model, device=args.device), task)
    print(f"task {task.name} on the model: {format_evaluation(evaluation)}", flush=True)


def _warn_if_weak_corruption(args: argparse.Namespace, problem: Any) -> None:
    """Warn (stderr) before the search when the task's gap M(empty) - M(full) under the chosen corruption is below
    WEAK_CORRUPTION_SHARE x its gap under another corruption the task offers, naming that one: the corrupted
    prompts barely change the answer, so any circuit explains little of it."""
    from acdc_compare.api import prepare
    from acdc_compare.tasks.prompts_file import is_prompts_file
    from acdc_compare.tasks.registry import task_spec

    if is_prompts_file(args.task) or args.ablation != "corrupted" or problem.task.corruption is None:
        return
    others = [c for c in task_spec(args.task).corruptions if c is not problem.task.corruption]
    if not others:
        return
    gap = _gap(problem)
    gaps = {c: _gap(prepare(args.task, model=args.model, metric=args.metric, ablation=args.ablation,
                            include_direct=not args.no_direct, n_prompts=args.n_prompts, seed=args.seed,
                            device=args.device, corruption=c, check=False)) for c in others}
    best = max(gaps, key=gaps.__getitem__)
    if not gap < WEAK_CORRUPTION_SHARE * gaps[best]:
        return
    chosen = problem.task.corruption.value
    demo = " (the demo's choice for such tasks)" if best.value == "answers" else ""
    print(f"acdc-compare: warning: under --corruption {chosen} removing every edge moves the metric by only "
          f"{gap:.4g} ({_metric_name(problem)}), against {gaps[best]:.4g} under --corruption {best.value}: these "
          "corrupted prompts barely change the model's answer, so a circuit found on them explains little of "
          f"the task; use --corruption {best.value}{demo}", file=sys.stderr, flush=True)


def _print_threshold(args: argparse.Namespace, problem: Any, scaled: Any) -> None:
    """A relative threshold's value in the metric's units on this task."""
    if args.threshold_scale == "relative":
        print(f"threshold {args.opt_threshold:g} x this task's gap {_gap(problem):.4g} ({_metric_name(problem)}) "
              f"= {scaled.threshold:.4g}", flush=True)


def _clamp_k(problem: Any, options: Any) -> Any:
    """A hybrid's `k` above the graph's edge count made that count, with a note (stderr) saying so."""
    k, n = getattr(options, "k", None), problem.graph.n_edges
    if k is None or k <= n:
        return options
    print(f"acdc-compare: note: --k {k:,} is more than this graph's {n:,} edges; using --k {n:,}: every edge is a "
          "candidate, so the hybrid runs exact ACDC over all edges", file=sys.stderr, flush=True)
    return dataclasses.replace(options, k=n)


def tested_edges(problem: Any, options: Any) -> int | None:
    """At most how many edges an ACDC-deciding run tests (exact ACDC: every edge; a hybrid: its `k` candidates
    or `tested` of them; both capped by `max_tests`), or None when only the run knows (a hybrid's `coverage`)."""
    if getattr(options, "coverage", None) is not None:
        return None
    n = problem.graph.n_edges
    caps = (getattr(options, "k", None), getattr(options, "tested", None), options.max_tests)
    return min([n, *(c for c in caps if c is not None)])


def _warn_if_long(problem: Any, options: Any, journal: Path | None) -> None:
    """Warn (stderr) before an exact ACDC or hybrid run on the CPU whose tested edges are estimated to take
    longer than LONG_RUN_S."""
    from acdc_compare.algorithms import acdc
    from acdc_compare.fmt import duration

    if not isinstance(options, acdc.AcdcOptions) or problem.patcher.device.type != "cpu":
        return
    n_tests = tested_edges(problem, options)
    if not n_tests:
        return
    seconds = acdc.estimated_seconds(problem, n_tests)
    if seconds <= LONG_RUN_S:
        return
    resume = (f"Every decision is journalled to {journal}: Ctrl-C (or a kill) loses nothing, and the same "
              "command resumes." if journal is not None else "")
    faster = ("For a result in minutes use a smaller --k, e.g. 250" if getattr(options, "k", None) is not None
              else "For a result in minutes use --method hybrid --k 250 (EAP-IG picks the candidates, exact ACDC "
                   "decides among them)")
    print(f"acdc-compare: warning: exact ACDC tests up to {n_tests:,} edges one forward each: about "
          f"{duration(seconds)} on this CPU. {faster}, or run on a GPU. {resume}", file=sys.stderr, flush=True)


def _gap(problem: Any) -> float:
    """M(empty) - M(full): how far removing every edge moves the metric (KL(full || empty) for KL)."""
    full, empty = problem.metric_ends
    return empty - full


def _smaller_threshold(problem: Any) -> str:
    gap = _gap(problem)
    if gap <= 0:
        return ("this task's metric does not rise when every edge is removed (gap M(empty) - M(full) = "
                f"{gap:.4g}): check the task's prompts, corruption and --metric")
    return (f"use a smaller threshold, e.g. one relative to this task's gap: --threshold {SUGGESTED_SHARE:g} "
            f"--threshold-scale relative ({SUGGESTED_SHARE:g} x the gap {gap:.4g} = {SUGGESTED_SHARE * gap:.3g})")


def _warn_if_threshold_too_big(problem: Any, options: Any, args: argparse.Namespace) -> None:
    """Warn (stderr) before an ACDC run whose threshold (`options`: absolute) is at least GAP_SHARE x the task's
    metric gap: removing edges one at a time, each rise stays under it, so the run removes every edge."""
    from acdc_compare.algorithms.acdc import AcdcOptions

    if not isinstance(options, AcdcOptions):
        return
    gap = _gap(problem)
    if options.threshold < GAP_SHARE * gap and gap > 0:
        return
    share = f"{options.threshold / gap:.3g} x" if gap > 0 else "not below"
    given = f"--threshold {args.opt_threshold:g} --threshold-scale relative (= {options.threshold:.4g})" \
        if args.threshold_scale == "relative" else f"--threshold {options.threshold:g}"
    print(f"acdc-compare: warning: {given} is {share} this task's gap M(empty) - M(full) "
          f"= {gap:.4g} ({_metric_name(problem)}): it removes every edge or nearly; {_smaller_threshold(problem)}.",
          file=sys.stderr, flush=True)


def _warn_if_empty(circuit: Any, problem: Any, options: Any) -> None:
    """Warn (stderr) when the circuit found keeps no edge, or none on an input->logits path, with what to
    change."""
    from acdc_compare.algorithms.acdc import AcdcOptions

    if circuit.n_kept and not circuit.n_functional_edges:
        print(f"acdc-compare: warning: none of the {circuit.n_kept:,} kept edges lies on an input->logits path of "
              "kept edges, so the circuit acts like the empty one; keep more edges (a larger --top-n or a smaller "
              "--threshold) until some reach the logits.", file=sys.stderr, flush=True)
    if circuit.n_kept:
        return
    fix = _smaller_threshold(problem) if isinstance(options, AcdcOptions) else \
        "keep the highest-scoring edges with --top-n N, or use a smaller --threshold"
    print(f"acdc-compare: warning: the circuit keeps 0 of {circuit.n_edges:,} edges, so it explains nothing of "
          f"the model's behaviour on this task; {fix}.", file=sys.stderr, flush=True)


def _metric_name(problem: Any) -> str:
    return "KL(full || empty) in nats" if problem.metric_kind.value == "kl" else problem.metric_kind.value


def _print_circuit(c: Any) -> None:
    from acdc_compare.faithfulness import circuit_faithfulness as faithfulness

    from acdc_compare.draw import edge_counts
    from acdc_compare.fmt import num
    from acdc_compare.span_circuits import collapse_spans, kept_per_span

    if c.graph.has_spans:
        per_span = ", ".join(f"{name} {n}" for name, n in kept_per_span(c).items())
        print(f"kept span edges per span: {per_span} (figures merge the spans)")
        c = collapse_spans(c)
    m = {k: c.metrics.get(k, float("nan")) for k in ("full", "circuit", "empty")}
    scale = max((abs(v) for v in m.values() if v == v), default=1.0)
    full, circuit, empty = (num(m[k], scale=scale) for k in ("full", "circuit", "empty"))
    held_out = ""
    if "held_out_faithfulness" in c.metrics:
        held_out = (f" ({num(c.metrics['held_out_faithfulness'], fixed=3)} on the "
                    f"{len(c.settings.get('held_out_lines', ()))} held-out rows)")
    print(f"{edge_counts(c)}; {len(c.functional_heads())} heads on input-to-logits paths (of {len(c.heads())} heads "
          f"any kept edge touches); metric full {full}, circuit {circuit}, "
          f"empty {empty}; normalised faithfulness {num(faithfulness(c), fixed=3)}{held_out}; "
          f"{c.settings.get('seconds', 0):.1f} s")
