"""`acdc-compare convert`: a circuit file from this tool's JSON to MIB / EAP-IG's (`--to mib`), to a MIB
leaderboard submission folder (`--to mib-submission`), or back (`--to native`, from a MIB file or a submission
folder holding importances), printing what the other format cannot express."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from acdc_compare.cli.checks import readable_file, writable_dir, writable_file
from acdc_compare.cli.common import EXIT_OK, HELP_FORMAT, MODEL_HELP
from acdc_compare.cli.output import print_paths

NAME = "convert"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, formatter_class=HELP_FORMAT,
                       help="convert a circuit file between this tool's JSON and MIB / EAP-IG's")
    p.add_argument("input", metavar="IN", help="circuit file: native JSON (--to mib, mib-submission), or a MIB "
                                               "JSON / .pt file or a MIB submission folder (--to native)")
    p.add_argument("output", metavar="OUT", help="file to write; with --to mib-submission the root folder "
                                                 "(OUT/METHOD/TASK_MIBMODEL/ is written)")
    p.add_argument("--to", required=True, choices=["mib", "mib-submission", "native"], help="the format of OUT")
    p.add_argument("--model", required=True,
                   help=f"the circuit's model, for its shape (and d_model for MIB's cfg): {MODEL_HELP}")
    p.add_argument("--no-direct", action="store_true",
                   help="with --to native: a graph without direct q/k/v edges (--to mib uses the circuit's graph)")
    s = p.add_argument_group("--to mib-submission")
    s.add_argument("--method", default=None, help="the method's folder name (required)")
    s.add_argument("--task", default=None, help="the task's name in the folder name, e.g. ioi (required)")
    s.add_argument("--mib-model", default=None,
                   help="the model's name in the folder name (MIB: gpt2, qwen2.5, gemma2, llama3); "
                        "None: the last part of --model")
    s.add_argument("--binary", action="store_true",
                   help="write 9 binary circuits (<= 0.1 ... 50%% of the edges, by |score|) instead of importances")
    s.add_argument("--format", default="json", choices=["json", "pt"], help="file format of the submission")


def _model_shape(name: str, include_direct: bool) -> tuple[Any, int]:
    """(the model's graph, its d_model), loading the model on the CPU."""
    from acdc_compare.backends import load_model, model_config
    from acdc_compare.graph import Graph

    cfg = model_config(load_model(name, device="cpu"))
    return Graph.from_model_config(cfg, include_direct=include_direct), cfg.d_model


def _to_submission(args: argparse.Namespace) -> tuple[list[str], list[Path]]:
    from acdc_compare.export import load_circuit
    from acdc_compare.mib_files import submission_folder, write_submission

    missing = [flag for flag, v in (("--method", args.method), ("--task", args.task)) if not v]
    if missing:
        raise ValueError(f"--to mib-submission needs {' and '.join(missing)} (the folder is METHOD/TASK_MODEL)")
    mib_model = args.mib_model or Path(args.model.rstrip("/")).name.removesuffix(".gguf")
    submission_folder(args.output, args.method, args.task, mib_model)  # names checked before the model loads
    readable_file(args.input, "circuit file")
    writable_dir(args.output, "OUT")
    circuit = load_circuit(args.input)
    graph, d_model = _model_shape(args.model, circuit.graph.config.include_direct)
    circuit.check_graph(graph)
    report = write_submission(circuit, args.output, args.method, args.task, mib_model, d_model=d_model,
                              binary=args.binary, fmt=args.format)
    return report.lines(), list(report.paths)


def _to_native(args: argparse.Namespace, out: Path) -> list[str]:
    from acdc_compare.export import save_circuit
    from acdc_compare.mib import load_mib
    from acdc_compare.mib_files import read_submission

    graph, d_model = _model_shape(args.model, not args.no_direct)
    if Path(args.input).is_dir():
        sub = read_submission(args.input, graph, d_model=d_model)
        if sub.importances is None:
            raise ValueError(f"{args.input} holds binary circuits ({len(sub.circuits)}), not importances; read "
                             "them in Python with acdc_compare.mib_files.read_submission")
        circuit, report = sub.importances, next(iter(sub.reports.values()))
    else:
        circuit, report = load_mib(args.input, graph, d_model=d_model)
    save_circuit(circuit, out)
    return [f"read {circuit.n_kept}/{circuit.n_edges} edges kept", *report.lines()]


def run(args: argparse.Namespace) -> int:
    from acdc_compare.export import load_circuit
    from acdc_compare.mib import save_mib

    if args.to == "mib-submission":
        lines, paths = _to_submission(args)
    else:
        if not (args.to == "native" and Path(args.input).is_dir()):
            readable_file(args.input, "circuit file")
        out = writable_file(args.output, "OUT")
        paths = [out]
        if args.to == "mib":
            circuit = load_circuit(args.input)
            graph, d_model = _model_shape(args.model, circuit.graph.config.include_direct)
            circuit.check_graph(graph)
            lines = save_mib(circuit, out, d_model=d_model).lines()
        else:
            lines = _to_native(args, out)
    for line in lines:
        print(line)
    print_paths(paths)
    return EXIT_OK
