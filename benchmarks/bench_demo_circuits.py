"""The demo's circuits, recorded: runs the demo's configuration (`ExperimentConfig()` on the default model,
everything `make demo` does, into a temporary folder) and writes, per task, the circuit's edges, its
normalised faithfulness on the discovery prompts (`n_prompts` per task: IOI's masks are learned over 32)
and on the held-out prompts (`n_held_out` prompts of
`held_out_seed`), and its discovery seconds; then the demo's total seconds, the per-stage times and the
machine's load average at the start and end (other processes on the cores inflate the times).

    python benchmarks/bench_demo_circuits.py [--out-dir DIR]

Writes results/demo_circuits_<cpu|cuda>.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import save  # noqa: E402

from acdc_compare.experiment import ExperimentConfig, ExperimentResult, run_experiment  # noqa: E402


def record(config: ExperimentConfig, result: ExperimentResult, load: list[float]) -> dict[str, Any]:
    """The JSON payload: the demo's settings, one entry per circuit task, the totals."""
    tasks = {}
    for name, run in result.runs.items():
        c = run.circuit
        tasks[name] = {"edges": c.n_kept, "edge_share": c.n_kept / c.n_edges,
                       "functional_edges": c.n_functional_edges, "faithfulness": run.faithfulness,
                       "held_out_faithfulness": run.held_out_faithfulness,
                       "seconds": result.stage_seconds.get(f"discovery: {name}", c.settings.get("seconds")),
                       "n_tested": c.settings.get("n_tested"), "k": c.settings.get("k"),
                       "tested": c.settings.get("tested"), "n_fixed": c.settings.get("n_fixed"),
                       "n_prompts": c.settings.get("n_prompts"), "ranking": c.settings.get("ranking"),
                       "learn_steps": c.settings.get("learn_steps")}
    return {"model": config.model, "method": config.method, "relative_threshold": config.threshold,
            "n_prompts": config.n_prompts, "n_held_out": config.n_held_out, "held_out_seed": config.held_out_seed,
            "targets": {"faithfulness": config.target_faithfulness, "held_out_faithfulness": config.target_held_out,
                        "max_edge_fraction": config.max_edge_fraction},
            "tasks": tasks, "stage_seconds": result.stage_seconds, "total_seconds": result.seconds,
            "load_average": load}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default=None, help="where the demo's files go (default: a temporary folder)")
    args = ap.parse_args()
    config = ExperimentConfig(progress=False)
    start_load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        result = run_experiment(config, args.out_dir or tmp, log=lambda msg: print(msg, flush=True))
    from acdc_compare.api import get_model

    device = next(get_model(config.model).parameters()).device
    payload = record(config, result, [start_load, os.getloadavg()[0]])
    path = save("demo_circuits", device, payload)
    for name, row in payload["tasks"].items():
        print(f"{name:16s} {row['edges']:5d} edges  faithfulness {row['faithfulness']:.3f}  held-out "
              f"{row['held_out_faithfulness']:.3f}  {row['seconds']:.0f} s")
    print(f"total {result.seconds:.0f} s; wrote {path}")


if __name__ == "__main__":
    main()
