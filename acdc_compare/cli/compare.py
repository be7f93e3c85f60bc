"""`acdc-compare compare`: two saved circuits (or one and a published reference) side by side: overlap at
edge, node and head level, and one drawing of both."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from acdc_compare.cli.checks import readable_file, writable_dir
from acdc_compare.cli.common import EXIT_OK, HELP_FORMAT, MODEL_HELP, REFERENCES, add_no_direct, add_out, \
    add_reference, reference_circuit
from acdc_compare.cli.output import add_level, print_paths

NAME = "compare"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, formatter_class=HELP_FORMAT,
                       help="compare two saved circuits, or one with a reference circuit")
    p.add_argument("left", help="circuit file: this tool's JSON, or MIB / EAP-IG's JSON or .pt")
    p.add_argument("right", nargs="?", default=None, help="circuit file, as LEFT (or use --reference)")
    add_reference(p, "compare with GPT-2 small's published circuit (needs a GPT-2-small graph)")
    p.add_argument("--labels", nargs=2, default=None, metavar=("LEFT", "RIGHT"),
                   help="names of the two circuits in the output; None: the file names")
    add_out(p, "results/compare", "output folder of the side-by-side SVG and PNG")
    add_level(p)
    p.add_argument("--model", default=None,
                   help="the model whose graph MIB files are read onto (loaded on the CPU); None: the graph of "
                        f"the other, native circuit file. {MODEL_HELP}")
    add_no_direct(p)


def run(args: argparse.Namespace) -> int:
    from acdc_compare.compare import compare_circuits, overlap
    from acdc_compare.draw import draw_comparison

    if args.right is None and args.reference is None:
        raise ValueError(f"compare needs two circuits: give a second circuit file after {args.left}, or "
                         f"--reference {{{','.join(REFERENCES)}}} to compare with a published circuit")
    if args.right is not None and args.reference is not None:
        raise ValueError("give a second circuit file or --reference, not both")
    readable_file(args.left, "circuit file")
    if args.right:
        readable_file(args.right, "circuit file")
    writable_dir(args.out, "--out")
    left, right = _load(args)
    labels = args.labels or [Path(args.left).stem,
                             Path(args.right).stem if args.right else f"{args.reference} (reference)"]
    cmp_ = compare_circuits(left, right)
    print(f"{labels[0]} vs {labels[1]}")
    rows = [(level, getattr(cmp_, level)) for level in ("edges", "nodes", "heads")]
    rows.append(("heads on paths", overlap(left.functional_heads(), right.functional_heads(), left.graph.node_names)))
    for level, o in rows:
        print(f"  {level:14s} precision {o.precision:.3f}  recall {o.recall:.3f}  F1 {o.f1:.3f}  "
              f"Jaccard {o.jaccard:.3f}  only-left {len(o.only_a)}  only-right {len(o.only_b)}  both {len(o.both)}")
    if args.reference == "ioi":
        from acdc_compare.compare import format_head_class_recovery, head_class_recovery
        from acdc_compare.reference_circuits import IOI_HEAD_CLASSES

        print("  IOI classes: " + format_head_class_recovery(head_class_recovery(left.heads(), IOI_HEAD_CLASSES)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{labels[0]}_vs_{labels[1]}{suffix}".replace(" ", "_") for suffix in (".svg", ".png")]
    draw_comparison(left, right, paths, labels[0], labels[1], title=f"{labels[0]} vs {labels[1]}", level=args.level)
    print_paths(paths)
    return EXIT_OK


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    """The two circuits: native files as saved; MIB files on --model's graph, else on the native file's graph
    (printing what each could not map)."""
    from acdc_compare.mib_files import is_mib_file, load_any_circuit

    paths = [p for p in (args.left, args.right) if p]
    graph = None
    if args.model and any(is_mib_file(p) for p in paths):
        from acdc_compare.backends import load_model, model_config
        from acdc_compare.graph import Graph

        graph = Graph.from_model_config(model_config(load_model(args.model, device="cpu")),
                                        include_direct=not args.no_direct)
    native = [p for p in paths if not is_mib_file(p)]
    if graph is None and native:
        graph = load_any_circuit(native[0])[0].graph
    circuits = []
    for p in paths:
        circuit, report = load_any_circuit(p, graph)
        if report is not None:
            print(f"{p}: MIB circuit file read onto {graph!r}: {circuit.n_kept}/{circuit.n_edges} edges kept")
            for line in report.lines():
                print(f"  {line}")
        circuits.append(circuit)
    if len(circuits) == 1:
        circuits.append(reference_circuit(args.reference, circuits[0].graph))
    return circuits[0], circuits[1]
