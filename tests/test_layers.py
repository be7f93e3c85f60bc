"""Imports flow one way: a module imports only modules of its own layer or below, and no import cycle
exists (function-level imports included). The layers are README's development section."""

from __future__ import annotations

import ast
from pathlib import Path

import acdc_compare

PACKAGE = Path(acdc_compare.__file__).parent

LAYERS: tuple[tuple[str, ...], ...] = (
    ("types", "allocator", "files", "progress", "stats", "fmt", "native_stderr", "spans"),
    ("graph", "graph_config"),
    ("circuit", "metrics", "weights", "forward", "faithfulness", "journal", "memory"),
    ("patching",),
    ("backends",),
    ("tasks",),
    ("algorithms",),
    ("compare", "reference_circuits", "roles", "movers", "export", "mib", "mib_pt", "mib_files", "attention",
     "span_circuits", "span_reads"),
    ("draw", "report", "plots", "viewer", "notebook", "role_tables"),
    ("api", "experiment", "sweeps"),
    ("cli",),
)
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("acdc_compare"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("acdc_compare"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in modules else node.module)
    return found


def _rank(module: str) -> int | None:
    parts = module.split(".")
    return RANK.get(parts[1]) if len(parts) > 1 else None


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: {i for i in _imports(p, modules) if i != m} for m, p in modules.items()}


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in _modules() if m != "acdc_compare" and _rank(m) is None)
    assert not unplaced, f"add these modules to LAYERS (and README's development section): {unplaced}"


def test_no_module_imports_a_layer_above_it():
    upward = [(m, i) for m, deps in _graph().items() for i in deps
              if _rank(m) is not None and _rank(i) is not None and _rank(i) > _rank(m)]  # type: ignore[operator]
    assert not upward, f"imports pointing up the stack (importer, imported): {sorted(upward)}"


def test_no_import_cycle():
    graph = {m: {d for d in deps if d in _modules() and d != "acdc_compare"} for m, deps in _graph().items()
             if m != "acdc_compare"}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if d.startswith(m + "."):
                continue  # a package importing its own submodules
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d] if d in stack else [m, d])
            elif d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, f"import cycles: {cycles}"


def test_only_the_backend_wing_imports_transformer_lens_or_transformers():
    offenders = []
    for m, path in _modules().items():
        if m.startswith("acdc_compare.backends"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [(m, n) for n in names if n.split(".")[0] in ("transformer_lens", "transformers")]
    assert not offenders, offenders


def test_only_the_sweep_executors_import_ray_and_only_inside_a_function():
    """The core imports without ray installed: ray is an extra for users who sweep on it."""
    offenders = []
    for m, path in _modules().items():
        tree = ast.parse(path.read_text())
        top_level = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "ray" for n in names):
                if m != "acdc_compare.sweeps.executors" or id(node) in top_level:
                    offenders.append((m, node.lineno))
    assert not offenders, offenders


def test_the_layer_check_catches_an_upward_import(tmp_path):
    bad = tmp_path / "graph.py"
    bad.write_text("from acdc_compare.cli import main\n")
    imported = _imports(bad, _modules())
    assert any(_rank(i) > RANK["graph"] for i in imported)  # type: ignore[operator]
