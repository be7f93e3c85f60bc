"""The GPU run's results file and clock (benchmarks/gpu_run.py): the JSON rewritten after every row, the
versions it records, the budget clock, and the one line per row it prints."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import torch


class Results:
    """The JSON file, rewritten (atomically) after every row so a cut run keeps what finished."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path, self.record = path, {**header, "rows": []}
        self.write()

    def add(self, row: dict[str, Any]) -> None:
        self.record["rows"].append(row)
        self.write()

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(_clean(self.record), indent=2) + "\n")
        os.replace(tmp, self.path)


def _clean(x: Any) -> Any:
    """NaN/inf as null, so the file stays strict JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "torch": torch.__version__}
    for dist in ("transformers", "transformer-lens"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    out["cuda"] = str(torch.version.cuda)
    return out


class Clock:
    def __init__(self, budget_s: float) -> None:
        self.start, self.budget_s = time.perf_counter(), budget_s

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def deadline(self, cap_s: float | None = None) -> float:
        """perf_counter time by which a row must stop: the budget's end, or sooner by `cap_s`."""
        end = self.start + self.budget_s
        return end if cap_s is None else min(end, time.perf_counter() + cap_s)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def previous_rows(path: Path) -> dict[str, dict[str, Any]]:
    """Finished rows of an earlier run's results file (done, and for ACDC complete)."""
    try:
        rows = json.loads(path.read_text()).get("rows", [])
    except (OSError, ValueError):
        return {}
    return {r["row"]: r for r in rows if r.get("status") == "done" and r.get("complete", True)}


def print_row(row: dict[str, Any]) -> None:
    name, status = row["row"], row["status"]
    if status != "done":
        print(f"[{row['elapsed_s']:6.1f} s] {name}: {status} ({row.get('reason')})", flush=True)
        return
    b = row["baseline"]
    if name == "patching":
        text = (f"patched {row['patched_half_circuit_s']:.4f} s vs plain {b['plain_forward_s']:.4f} s = "
                f"{row['ratio_patched_to_plain']:.2f}x (target <= 1.5x)")
    elif name == "eap_ig":
        text = (f"EAP-IG {row['steps']} steps {row['eap_ig_s']:.3f} s vs plain {b['plain_forward_s']:.4f} s "
                f"({row['eap_ig_over_plain_forward']:.1f}x; target <= 2 s)")
    elif name == "acdc_gpt2":
        text = (f"{row['n_edges']} edges, tau {row['threshold']:.3g}: {row['wall_s']:.2f} s, complete "
                f"{row['complete']}, {row['tested_this_run']} tested this run ({row['tested_edges_per_s']:.1f}/s), "
                f"resumed {row['resumed_decisions']}, kept {row['n_kept']}; oracle {b['oracle_tested']} tested at "
                f"{b['oracle_edges_per_s']:.2f}/s -> {row['speedup_tested_edges_per_s']:.1f}x; identical on "
                f"{row['prefix_edges']}-edge prefix: {row['decisions_identical']}")
    else:
        text = (f"{row['model']} {row['n_edges']} edges, tau {row['threshold']:.3g}: {row['wall_s']:.2f} s, "
                f"complete {row['complete']}, resumed {row['resumed_decisions']}, kept {row['n_kept']}, "
                f"faithfulness {row['faithfulness']}; one oracle evaluation {b['oracle_one_evaluation_s']:.3f} s "
                f"(x {row['n_tested']} tested = {b['oracle_estimate_s']:.1f} s)")
    print(f"[{row['elapsed_s']:6.1f} s] {name}: {text}", flush=True)
