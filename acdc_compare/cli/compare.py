"""`acdc-compare compare`: two saved circuits (or one and a published reference) side by side: overlap at
edge, node and head level, and one drawing of both."""

from __future__ import annotations

import argparse
from pathlib import Path

from acdc_compare.cli.checks import readable_file, writable_dir
from acdc_compare.cli.common import EXIT_OK, HELP_FORMAT, REFERENCES, add_out, add_reference, reference_circuit
from acdc_compare.cli.output import print_paths

NAME = "compare"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, formatter_class=HELP_FORMAT,
                       help="compare two saved circuits, or one with a reference circuit")
    p.add_argument("left", help="circuit JSON file")
    p.add_argument("right", nargs="?", default=None, help="circuit JSON file (or use --reference)")
    add_reference(p, "compare with GPT-2 small's published circuit (needs a GPT-2-small graph)")
    p.add_argument("--labels", nargs=2, default=None, metavar=("LEFT", "RIGHT"),
                   help="names of the two circuits in the output; None: the file names")
    add_out(p, "results/compare", "output folder of the side-by-side SVG and PNG")


def run(args: argparse.Namespace) -> int:
    from acdc_compare.compare import compare_circuits
    from acdc_compare.draw import draw_comparison
    from acdc_compare.export import load_circuit

    if args.right is None and args.reference is None:
        raise ValueError(f"compare needs two circuits: give a second circuit file after {args.left}, or "
                         f"--reference {{{','.join(REFERENCES)}}} to compare with a published circuit")
    if args.right is not None and args.reference is not None:
        raise ValueError("give a second circuit file or --reference, not both")
    readable_file(args.left, "circuit file")
    if args.right:
        readable_file(args.right, "circuit file")
    writable_dir(args.out, "--out")
    left = load_circuit(args.left)
    right = load_circuit(args.right) if args.right else reference_circuit(args.reference, left.graph)
    labels = args.labels or [Path(args.left).stem,
                             Path(args.right).stem if args.right else f"{args.reference} (reference)"]
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
    print_paths(paths)
    return EXIT_OK
