"""`acdc-compare convert`: a circuit file from this tool's JSON to MIB / EAP-IG's (`--to mib`) or back
(`--to native`), printing what the other format cannot express."""

from __future__ import annotations

import argparse
from typing import Any

from acdc_compare.cli.checks import readable_file, writable_file
from acdc_compare.cli.common import EXIT_OK, HELP_FORMAT, MODEL_HELP
from acdc_compare.cli.output import print_paths

NAME = "convert"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, formatter_class=HELP_FORMAT,
                       help="convert a circuit file between this tool's JSON and MIB / EAP-IG's")
    p.add_argument("input", metavar="IN", help="circuit file: native JSON (--to mib) or MIB JSON (--to native)")
    p.add_argument("output", metavar="OUT", help="file to write")
    p.add_argument("--to", required=True, choices=["mib", "native"], help="the format of OUT")
    p.add_argument("--model", required=True,
                   help=f"the circuit's model, for its shape (and d_model for MIB's cfg): {MODEL_HELP}")
    p.add_argument("--no-direct", action="store_true",
                   help="with --to native: a graph without direct q/k/v edges (--to mib uses the circuit's graph)")


def _model_shape(name: str, include_direct: bool) -> tuple[Any, int]:
    """(the model's graph, its d_model), loading the model on the CPU."""
    from acdc_compare.backends import load_model, model_config
    from acdc_compare.graph import Graph

    cfg = model_config(load_model(name, device="cpu"))
    return Graph.from_model_config(cfg, include_direct=include_direct), cfg.d_model


def run(args: argparse.Namespace) -> int:
    from acdc_compare.export import load_circuit, save_circuit
    from acdc_compare.mib import load_mib, save_mib

    readable_file(args.input, "circuit file")
    out = writable_file(args.output, "OUT")
    if args.to == "mib":
        circuit = load_circuit(args.input)
        graph, d_model = _model_shape(args.model, circuit.graph.config.include_direct)
        circuit.check_graph(graph)
        lines = save_mib(circuit, out, d_model=d_model).lines()
    else:
        graph, d_model = _model_shape(args.model, not args.no_direct)
        circuit, report = load_mib(args.input, graph, d_model=d_model)
        save_circuit(circuit, out)
        lines = [f"read {circuit.n_kept}/{circuit.n_edges} edges kept", *report.lines()]
    for line in lines:
        print(line)
    print_paths([out])
    return EXIT_OK
