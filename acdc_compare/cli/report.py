"""`acdc-compare report`: one HTML report of the circuit JSON files in a folder (and its sweep, if any);
unreadable circuit files are listed and make the exit code 2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from acdc_compare.cli.checks import writable_file
from acdc_compare.cli.common import EXIT_OK, EXIT_USAGE, HELP_FORMAT, add_out
from acdc_compare.cli.output import add_level, draw, print_paths

NAME = "report"
MAX_PAIR_FIGURES = 3  # comparison figures drawn per graph; every pair is in the table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, formatter_class=HELP_FORMAT, help="HTML report of the circuits in a folder")
    p.add_argument("folder", help="folder holding circuit JSON files (e.g. results/discover)")
    add_out(p, None, "report path; None: FOLDER/report.html (PNGs beside it)")
    add_level(p)


def run(args: argparse.Namespace) -> int:
    from acdc_compare.report import write_report

    folder = Path(args.folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; give the folder holding the circuit JSON files")
    report_path = writable_file(Path(args.out) if args.out else folder / "report.html", "--out")
    circuits, broken = _load_circuits(folder)
    written: list[Path] = []
    sections = _sections(folder, report_path, circuits, broken, written, args.level)
    write_report(report_path, title=f"acdc_compare report: {folder}", sections=sections)
    print_paths([*written, report_path])
    if broken:
        print(f"acdc-compare: {len(broken)} circuit file(s) could not be read and are not in the report: "
              f"{', '.join(str(f) for f in broken)}; fix or remove them", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _load_circuits(folder: Path) -> tuple[list[tuple[Path, Any]], list[Path]]:
    """The folder's (and its circuits/ folder's) circuits, and the circuit files that could not be read;
    other JSON files are passed over."""
    from acdc_compare.export import load_circuit

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
    return circuits, broken


def _sections(folder: Path, report_path: Path, circuits: list[tuple[Path, Any]], broken: list[Path],
              written: list[Path], level: str = "auto") -> list[Any]:
    """The report's sections; each circuit's PNG is drawn beside the report unless it is newer than its JSON.
    Every file drawn is appended to `written`."""
    from acdc_compare.faithfulness import circuit_faithfulness as faithfulness
    from acdc_compare.fmt import num
    from acdc_compare.report import Image, KeyValues, Table, Text

    sections: list[Any] = [Table("Circuits", ["file", "edges kept", "heads on input-to-logits paths", "method",
                                               "threshold", "normalised faithfulness"],
                                 [[f.name, str(c.n_kept), str(len(c.functional_heads())),
                                   str(c.settings.get("method", "")),
                                   _setting(c.settings.get("threshold", "")), num(faithfulness(c), fixed=3)]
                                  for f, c in circuits])]
    if broken:
        sections.append(Text("Unreadable circuit files (left out)", "\n".join(str(f) for f in broken)))
    for f, c in circuits:
        sections.append(KeyValues(f"Settings: {f.name}", {k: _setting(v) for k, v in c.settings.items()}))
        png = report_path.parent / f"{f.stem}.png"
        if png.is_file() and png.stat().st_mtime >= f.stat().st_mtime:
            print(f"{png.name}: up to date, not redrawn")
        else:
            written += draw(c, report_path.parent / f.stem, f.stem, suffixes=(".png",), level=level)
        sections.append(Image(f"Circuit: {f.stem}", png.name, embed=True))
    sections += _viewer_and_comparisons(circuits, report_path, written, level)
    sweep = folder / "sweep.json"
    if sweep.is_file():
        from acdc_compare.plots import sweep_plot

        sections.append(sweep_plot(json.loads(sweep.read_text())["rows"], f"Threshold sweep: {sweep.name}"))
    return sections


def _setting(value: Any) -> str:
    """A setting as the report shows it: floats through `fmt.num` (4 significant digits), lists item by item."""
    from acdc_compare.fmt import num

    if isinstance(value, float):
        return num(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_setting(v) for v in value) + "]"
    return str(value)


def _viewer_and_comparisons(circuits: list[tuple[Path, Any]], report_path: Path, written: list[Path],
                            level: str = "auto") -> list[Any]:
    """Per graph the folder's circuits share: the interactive viewer of them and, for two or more, a table of
    every pair's overlap and the side-by-side figures of the first MAX_PAIR_FIGURES pairs (appended to
    `written`)."""
    from acdc_compare.compare import compare_circuits
    from acdc_compare.draw import draw_comparison
    from acdc_compare.report import Image, Table, Text
    from acdc_compare.viewer import viewer_section

    groups: dict[Any, list[tuple[Path, Any]]] = {}
    for f, c in circuits:
        groups.setdefault(c.graph, []).append((f, c))
    sections: list[Any] = []
    for group in groups.values():
        sections.append(viewer_section({f.stem: c for f, c in group}))
        pairs = [(a, b) for i, a in enumerate(group) for b in group[i + 1:]]
        if not pairs:
            continue
        rows = []
        for (fa, a), (fb, b) in pairs:
            cmp_ = compare_circuits(a, b)
            rows.append([fa.stem, fb.stem, cmp_.edges.jaccard, cmp_.edges.f1, len(cmp_.edges.both),
                         cmp_.heads.jaccard, len(cmp_.heads.both)])
        sections.append(Table("Comparisons", ["left", "right", "edge Jaccard", "edge F1", "edges in both",
                                              "head Jaccard", "heads in both"], rows))
        for (fa, a), (fb, b) in pairs[:MAX_PAIR_FIGURES]:
            png = report_path.parent / f"{fa.stem}_vs_{fb.stem}.png"
            draw_comparison(a, b, png, fa.stem, fb.stem, title=f"{fa.stem} vs {fb.stem}", level=level)
            written.append(png)
            sections.append(Image(f"Comparison: {fa.stem} vs {fb.stem}", png.name, embed=True))
        if len(pairs) > MAX_PAIR_FIGURES:
            sections.append(Text("More comparisons", f"{len(pairs) - MAX_PAIR_FIGURES} more pair(s) are in the "
                                 "table only; draw one with `acdc-compare compare LEFT.json RIGHT.json`"))
    return sections


def _claims_to_be_a_circuit(path: Path) -> bool:
    """Whether a JSON file that failed to load as a circuit is a broken one (not valid JSON, or a circuit
    schema), rather than another result file such as sweep.json."""
    from acdc_compare.export import SCHEMA

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return True
    return isinstance(data, dict) and str(data.get("schema", "")).startswith(SCHEMA.split("/")[0])
