"""What the subcommands share in their output: file names from the task, circuit drawings, the list of files
written."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def task_label(task: str) -> str:
    """The task's name in output file names: a prompts file's stem, else the registered name."""
    from acdc_compare.tasks.prompts_file import is_prompts_file

    return Path(task).stem if is_prompts_file(task) else task


def draw(circuit: Any, stem: Path, title: str, suffixes: tuple[str, ...] = (".svg", ".png"),
         level: str = "auto") -> list[Path]:
    """Draw the circuit once per format (one layout) at `level` (auto, heads, edges); print what a large
    circuit's drawing leaves out. A span circuit is drawn with spans as columns and layers as rows
    (`draw_span_circuit`; `level` does not apply)."""
    from acdc_compare.draw import draw_circuit, draw_span_circuit, figure_note

    paths = [stem.parent / (stem.name + suffix) for suffix in suffixes]
    if circuit.graph.has_spans:
        draw_span_circuit(circuit, paths, title=title)
        return paths
    note = figure_note(circuit, level=level)  # type: ignore[arg-type]
    if note:
        print(f"{stem.name}: {note}")
    draw_circuit(circuit, paths, title=title, level=level)  # type: ignore[arg-type]
    return paths


def add_level(p: Any) -> None:
    """The --level flag of commands that draw circuits."""
    p.add_argument("--level", default="auto", choices=["auto", "heads", "edges"],
                   help="figures: heads and MLPs with merged arrows (heads), every edge (edges), or heads above "
                        "150 edges on input-to-logits paths (auto)")


def print_paths(paths: Sequence[Path]) -> None:
    print("wrote:")
    for p in paths:
        print(f"  {p}")
