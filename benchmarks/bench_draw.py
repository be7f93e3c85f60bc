"""Drawing time vs circuit size: the bounded drawing (`draw_circuit` / `draw_comparison` defaults: at most
MAX_DRAWN_EDGES arrows, fast dot settings over FAST_LAYOUT_ARROWS, one layout for SVG + PNG) against the
unbounded one as it was before (every edge, dot's default iterations, one layout per format), in one run.

Circuits: on the SmolLM2-135M-shaped graph (30 layers, 9 heads, 3 key-value heads, 71,101 edges; no weights
needed), random chains input -> chosen nodes -> logits whose residual edges on input-to-logits paths number
about 141, 611 and 2,000 (scores random). Each drawing runs in a child process under a timeout, so an
unbounded layout that does not finish is recorded as timed out rather than hanging the benchmark.

    python benchmarks/bench_draw.py [--sizes 141 611 2000] [--timeout-s 180]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import save  # noqa: E402

from acdc_compare.circuit import Circuit, random_circuit  # noqa: E402
from acdc_compare.graph import Graph, GraphConfig  # noqa: E402

SMOLLM2 = GraphConfig(n_layers=30, n_heads=9, n_kv_heads=3)


def n_residual(c: Circuit) -> int:
    return sum(1 for name in c.kept_edge_names() if "->" in name)


def circuit_of_size(graph: Graph, target: int, seed: int = 0) -> Circuit:
    """A `random_circuit` (chains) whose residual edge count is the closest found to `target` (bisecting the
    node count)."""
    degree = 3 if target < 400 else 4 if target < 1000 else 7
    lo, hi = 5, graph.n_senders - 1
    best: Circuit | None = None
    while lo <= hi:
        mid = (lo + hi) // 2
        c = random_circuit(graph, mid, seed, degree)
        if best is None or abs(n_residual(c) - target) < abs(n_residual(best) - target):
            best = c
        if n_residual(c) < target:
            lo = mid + 1
        else:
            hi = mid - 1
    assert best is not None
    return best


def _child(args: argparse.Namespace) -> None:
    """One timed drawing (in its own process); prints a JSON line."""
    from acdc_compare import draw
    from acdc_compare.draw import render

    graph = Graph(SMOLLM2)
    c = circuit_of_size(graph, args.size)
    out = Path(args.workdir)
    paths = [out / f"{args.mode}_{args.size}.svg", out / f"{args.mode}_{args.size}.png"]
    if args.mode == "comparison":  # the circuit against a second one sharing half its edges
        other = circuit_of_size(graph, args.size, seed=1)
        mixed = c.kept & (torch.rand(graph.n_edges, generator=torch.Generator().manual_seed(0)) < 0.5)
        right = other.with_kept(other.kept | mixed).functional()
    started = time.perf_counter()
    if args.mode == "before":  # the old path: every edge, dot's default iterations, one layout per format
        render.FAST_LAYOUT_ARROWS = math.inf
        for path in paths:
            source = draw.draw_circuit(c, path, title="before", max_edges=None)
    elif args.mode == "after":
        source = draw.draw_circuit(c, paths, title="after")
    else:
        source = draw.draw_comparison(c, right, paths, "left", "right", title="comparison")
    seconds = time.perf_counter() - started
    arrows = _circuit_arrows(source)
    row = {"seconds": seconds, "residual_edges": n_residual(c), "kept_edges": c.n_kept,
           "arrows_drawn": len(arrows), "edges_drawn": len({key for _, _, key in arrows})}
    if args.mode == "comparison":
        row["union_residual_edges"] = len({n for x in (c, right) for n in x.kept_edge_names() if "->" in n})
    else:
        row["note"] = draw.plan_drawing(c, max_edges=None if args.mode == "before" else draw.MAX_DRAWN_EDGES).note
    print(json.dumps(row))


def _circuit_arrows(source: str) -> list[tuple[str, str, str]]:
    """The circuit arrows (tail, head, edge name) of a drawing's DOT source."""
    import pygraphviz

    ag = pygraphviz.AGraph(string=source)
    return [(u, v, k) for u, v, k in ag.edges(keys=True) if ag.get_edge(u, v, k).attr.get("class") == "circuit"]


def _run_child(mode: str, size: int, timeout_s: float, workdir: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", "--mode", mode, "--size", str(size), "--workdir", workdir]
    started = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=True)
    except subprocess.TimeoutExpired:
        return {"mode": mode, "size": size, "timed_out": True, "seconds": f">{timeout_s:g}",
                "wall_with_startup_s": time.perf_counter() - started}
    row = json.loads(done.stdout.strip().splitlines()[-1])
    return {"mode": mode, "size": size, "timed_out": False, **row,
            "wall_with_startup_s": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[141, 611, 2000])
    parser.add_argument("--timeout-s", type=float, default=180.0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="after", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    from acdc_compare.draw import FAST_LAYOUT_ARROWS, MAX_DRAWN_EDGES

    rows = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as workdir:
        for size in args.sizes:
            for mode in ("before", "after", "comparison"):
                row = _run_child(mode, size, args.timeout_s, workdir)
                rows.append(row)
                print(json.dumps(row), flush=True)
    payload = {"graph": f"SmolLM2-135M-shaped ({SMOLLM2.key}, {Graph(SMOLLM2).n_edges} edges), no weights",
               "circuits": "random chains pruned to input-to-logits paths (acdc_compare.circuit.random_circuit)",
               "outputs": "SVG + PNG per drawing", "max_drawn_edges": MAX_DRAWN_EDGES,
               "fast_layout_arrows": FAST_LAYOUT_ARROWS, "timeout_s": args.timeout_s,
               "threads": torch.get_num_threads(), "load_average_before": load_before,
               "load_average_after": os.getloadavg()[0], "rows": rows}
    print(save("draw", torch.device("cpu"), payload))


if __name__ == "__main__":
    main()
