"""Shared helpers for the benchmark scripts: device naming, timing, JSON results."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).parent / "results"


def device_name(device: torch.device) -> str:
    """A human-readable name of the device the numbers come from (the study's label, written once)."""
    from acdc_compare.experiment.study import device_label

    return device_label(device)


def timed(fn: Callable[[], Any], device: torch.device, repeats: int = 3, warmup: int = 1) -> float:
    """Median wall time of fn() in seconds, synchronising the GPU around each call."""
    return timed_with_cpu(fn, device, repeats, warmup)[0]


def timed_with_cpu(fn: Callable[[], Any], device: torch.device, repeats: int = 3,
                   warmup: int = 1) -> tuple[float, float]:
    """(median wall seconds, process CPU seconds of that call). On the CPU, CPU time well below
    wall x threads means other processes took cores during the run."""
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
    return sorted(runs)[len(runs) // 2]


def gpt2_small_shaped(device: torch.device, dtype: torch.dtype = torch.float32) -> Any:
    """A GPT-2-small-shaped model with random weights (the real weights cannot be downloaded here)."""
    from acdc_compare.backends import tiny_model

    model = tiny_model("gpt2", n_layers=12, n_heads=12, d_model=768, d_mlp=3072, vocab_size=50257, n_ctx=64,
                       init_range=0.02, dtype=dtype, seed=0)
    return model.to(device)


def save(name: str, device: torch.device, payload: dict[str, Any], path: Path | None = None) -> Path:
    """Write the benchmark's JSON (default: results/<name>_<cpu|cuda>.json) with the device, torch and date."""
    tag = "cuda" if device.type == "cuda" else "cpu"
    path = Path(path) if path is not None else RESULTS / f"{name}_{tag}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    from acdc_compare.allocator import allocator_tuned

    record = {"benchmark": name, "device": device_name(device), "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "cpu_allocator_tuned": allocator_tuned(), **payload}
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
