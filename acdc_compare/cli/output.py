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


def draw(circuit: Any, stem: Path, title: str, suffixes: tuple[str, ...] = (".svg", ".png")) -> list[Path]:
    """Draw the circuit once per format (one layout); print what a large circuit's drawing leaves out."""
    from acdc_compare.draw import draw_circuit, plan_drawing
    from acdc_compare.native_stderr import fontconfig_warnings_dropped

    paths = [stem.parent / (stem.name + suffix) for suffix in suffixes]
    note = plan_drawing(circuit).note
    if note:
        print(f"{stem.name}: {note}")
    with fontconfig_warnings_dropped():
        draw_circuit(circuit, paths, title=title)
    return paths


def print_paths(paths: Sequence[Path]) -> None:
    print("wrote:")
    for p in paths:
        print(f"  {p}")
