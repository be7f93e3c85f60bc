"""Rooms with one job (issue 24): no function over MAX_FUNCTION_LINES lines (def line to last line, nested
functions and methods counted on their own too) and no module over MAX_MODULE_LINES lines, in the package
and in the GPU run's benchmark modules. A failure names every offender with its size."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import acdc_compare

PACKAGE = Path(acdc_compare.__file__).parent
ROOT = PACKAGE.parent
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 450


def _oversized(paths: list[Path], root: Path = ROOT) -> list[str]:
    """One line per module over MAX_MODULE_LINES and per function over MAX_FUNCTION_LINES in `paths`."""
    found: list[str] = []
    for path in sorted(paths):
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(root).as_posix()
        n_lines = len(text.splitlines())
        if n_lines > MAX_MODULE_LINES:
            found.append(f"{where}: module of {n_lines} lines (limit {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text, filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{where}:{node.lineno}: function {node.name} of {length} lines "
                                 f"(limit {MAX_FUNCTION_LINES})")
    return found


def _check(found: list[str]) -> None:
    """Fail with every offender on its own line."""
    if found:
        pytest.fail(f"{len(found)} over the size limits:\n  " + "\n  ".join(found), pytrace=False)


def test_package_functions_and_modules_are_small() -> None:
    _check(_oversized(list(PACKAGE.rglob("*.py"))))


def test_gpu_run_benchmark_modules_are_small() -> None:
    paths = list((ROOT / "benchmarks").glob("gpu_*.py"))
    assert paths
    _check(_oversized(paths))


def test_the_check_counts_from_the_def_line_to_the_last_line_and_nested_functions_alone(tmp_path: Path) -> None:
    def body(indent: int, n: int) -> str:
        return "".join(f"{' ' * indent}x{i} = {i}\n" for i in range(n))

    (tmp_path / "fits.py").write_text("@staticmethod\ndef f() -> None:\n" + body(4, MAX_FUNCTION_LINES - 1))
    (tmp_path / "over.py").write_text("class C:\n    def g(self) -> None:\n        def inner() -> None:\n"
                                      + body(12, MAX_FUNCTION_LINES))
    (tmp_path / "long.py").write_text(body(0, MAX_MODULE_LINES + 1))
    assert _oversized(list(tmp_path.glob("*.py")), tmp_path) == [
        f"long.py: module of {MAX_MODULE_LINES + 1} lines (limit {MAX_MODULE_LINES})",
        f"over.py:2: function g of {MAX_FUNCTION_LINES + 2} lines (limit {MAX_FUNCTION_LINES})",
        f"over.py:3: function inner of {MAX_FUNCTION_LINES + 1} lines (limit {MAX_FUNCTION_LINES})",
    ]
