"""Model sizes researchers use (issue 25): memory and time of a discovery on random-weight models of the
shapes of Qwen2.5-0.5B, Llama-3.2-1B and Gemma-2-2B, beside the memory model's prediction
(`acdc_compare.memory`), and the prediction alone for Llama-3-8B and a Llama-3-70B shape on 80 GB and 141 GB
GPUs.

Each shape runs in a fresh child process: random `ModelWeights` made straight in the dtype (no model library),
the patcher, a task of random tokens (`--prompts` x `--tokens`, KL, corrupted ablation), one EAP-IG run
(`--steps`, its batch chosen by the memory model) and `--tests` ACDC tests (restarts from a checkpoint at
edges spread over the reference order). The peak resident memory is /proc/self/status VmHWM minus the RSS
after torch is imported and warmed up; `clear_refs` resets the high-water mark between phases, so each phase
has its own peak. The load average is recorded beside the times: other jobs share this machine.

    ACDC_COMPARE_MALLOC=default python benchmarks/bench_scale.py [--prompts 4] [--tokens 16] [--only NAME ...]

The memory model counts live tensors. With the CPU allocator tuning on (`acdc_compare.allocator`, the default
on the CPU, for speed) the process keeps what it frees and its resident size can reach twice that (measured
on a 26-layer Gemma-2-2B shape in bfloat16: 10.3 GB tuned, 4.4 GB with plain malloc, 4.9 GB predicted), so
the recorded run (`results/scale_cpu.json`) measures with ACDC_COMPARE_MALLOC=default.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import save  # noqa: E402

from acdc_compare.memory import MemoryModel, Workload, graph_size  # noqa: E402
from acdc_compare.types import ModelConfig, RopeScaling  # noqa: E402

GIB = 1 << 30

# (config, tied embeddings): the shapes of the published configs (config.json of each model)
SHAPES: dict[str, tuple[ModelConfig, bool]] = {
    "smollm2-135m": (ModelConfig(n_layers=30, n_heads=9, n_kv_heads=3, d_model=576, d_head=64, d_mlp=1536,
                                 d_vocab=49152, normalization="RMS", positional="rotary", rotary_base=100000.0,
                                 act_fn="silu", gated_mlp=True, name="smollm2-135m-shaped"), True),
    "qwen2.5-0.5b": (ModelConfig(n_layers=24, n_heads=14, n_kv_heads=2, d_model=896, d_head=64, d_mlp=4864,
                                 d_vocab=151936, normalization="RMS", positional="rotary", rotary_base=1e6,
                                 act_fn="silu", gated_mlp=True, eps=1e-6, name="qwen2.5-0.5b-shaped"), True),
    "llama-3.2-1b": (ModelConfig(n_layers=16, n_heads=32, n_kv_heads=8, d_model=2048, d_head=64, d_mlp=8192,
                                 d_vocab=128256, normalization="RMS", positional="rotary", rotary_base=500000.0,
                                 act_fn="silu", gated_mlp=True,
                                 rope_scaling=RopeScaling("llama3", 32.0, 1.0, 4.0, 8192),
                                 name="llama-3.2-1b-shaped"), True),
    "gemma-2-2b": (ModelConfig(n_layers=26, n_heads=8, n_kv_heads=4, d_model=2304, d_head=256, d_mlp=9216,
                               d_vocab=256000, normalization="RMS", positional="rotary", act_fn="gelu_pytorch_tanh",
                               gated_mlp=True, eps=1e-6, post_norms=True, embedding_scale=2304 ** 0.5,
                               query_scale=256 ** -0.5, attn_softcap=50.0, final_softcap=30.0,
                               sliding_window=4096, sliding_layers=tuple(i % 2 == 0 for i in range(26)),
                               name="gemma-2-2b-shaped"), True),
    "llama-3-8b": (ModelConfig(n_layers=32, n_heads=32, n_kv_heads=8, d_model=4096, d_head=128, d_mlp=14336,
                               d_vocab=128256, normalization="RMS", positional="rotary", rotary_base=500000.0,
                               act_fn="silu", gated_mlp=True, name="llama-3-8b-shaped"), False),
    "llama-3-70b": (ModelConfig(n_layers=80, n_heads=64, n_kv_heads=8, d_model=8192, d_head=128, d_mlp=28672,
                                d_vocab=128256, normalization="RMS", positional="rotary", rotary_base=500000.0,
                                act_fn="silu", gated_mlp=True, name="llama-3-70b-shaped"), False),
}
MEASURED = ("qwen2.5-0.5b", "llama-3.2-1b", "gemma-2-2b")
PREDICTED_ONLY = ("llama-3-8b", "llama-3-70b")
GPUS = {"80 GB GPU (A100/H100 80GB)": 80e9, "141 GB GPU (H200)": 141e9}


# ----- the child: one shape, measured ---------------------------------------------------------------------
def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS


def child(name: str, dtype: torch.dtype, prompts: int, tokens: int, steps: int, n_tests: int) -> dict[str, Any]:
    from acdc_compare.algorithms.acdc import reference_order
    from acdc_compare.algorithms.eap import circuits_per_pass, eap_ig_scores
    from acdc_compare.algorithms.problem import make_problem
    from acdc_compare.patching.engine import Patcher
    from acdc_compare.tasks.base import Task
    from acdc_compare.weights import random_weights

    cfg, tied = SHAPES[name]
    torch.ones(64, 64) @ torch.ones(64, 64)  # thread pools up before the baseline
    _reset_peak()
    baseline = _status("VmRSS")
    started = time.perf_counter()
    patcher = Patcher.from_weights(random_weights(cfg, dtype=dtype, tied_embeddings=tied))
    build_s = time.perf_counter() - started
    weights_peak = _status("VmHWM") - baseline
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(0, cfg.d_vocab, (prompts, tokens), generator=gen)
    corrupted = clean.clone()
    corrupted[:, 1:4] = torch.randint(0, cfg.d_vocab, (prompts, 3), generator=gen)
    task = Task("random", clean, corrupted, positions=torch.full((prompts,), tokens - 1),
                correct=clean[:, 2], wrong=clean[:, 0])
    _reset_peak()
    problem = make_problem(patcher, task)
    prepare_peak = _status("VmHWM") - baseline
    # ACDC's tests before EAP-IG: with the CPU allocator tuned the process keeps what it frees, so a phase's
    # high-water mark can only be read when no larger phase ran before it
    _reset_peak()
    test_s, acdc_peak = _acdc_tests(problem, reference_order(problem.graph), n_tests, baseline)
    started = time.perf_counter()
    problem.evaluate(torch.ones(1, problem.graph.n_edges, dtype=torch.bool))
    forward_s = time.perf_counter() - started
    batch = min(circuits_per_pass(problem, grad=True), steps)
    _reset_peak()
    started = time.perf_counter()
    eap_ig_scores(problem, steps, batch=batch)
    eap_s = time.perf_counter() - started
    eap_peak = _status("VmHWM") - baseline
    return {"weights_build_s": build_s, "weights_peak_bytes": weights_peak, "prepare_peak_bytes": prepare_peak,
            "eap_ig_peak_bytes": eap_peak, "acdc_peak_bytes": acdc_peak, "eap_ig_batch": batch,
            "seconds_eap_ig": eap_s, "seconds_per_acdc_test": test_s, "seconds_full_forward": forward_s,
            "baseline_rss_bytes": baseline, "measured_peak_bytes": max(weights_peak, prepare_peak, eap_peak,
                                                                       acdc_peak)}


def _acdc_tests(problem: Any, steps: list, n_tests: int, baseline: int) -> tuple[float, int]:
    """Median seconds of `n_tests` ACDC tests at edges spread evenly over the reference order (a test restarts
    the forward at its receiver's stage from the checkpoint of the current circuit), and the peak."""
    kept = torch.ones(problem.graph.n_edges, dtype=torch.bool)
    base = problem.checkpoint(kept)
    edges = [(step.receiver, e) for step in steps for e in step.edges]
    picks = [edges[int((i + 0.5) * len(edges) / n_tests)] for i in range(n_tests)]
    times = []
    for receiver, e in picks:
        mask = kept.clone()
        mask[e] = False
        started = time.perf_counter()
        problem.evaluate_from(base, problem.stage(receiver), mask[None])
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2], _status("VmHWM") - baseline


# ----- the parent: predictions, children, the JSON --------------------------------------------------------
def prediction(name: str, dtype: torch.dtype, w: Workload, eap_batch: int) -> dict[str, Any]:
    cfg, tied = SHAPES[name]
    model = MemoryModel(cfg, dtype, tied_embeddings=tied)
    weights = model.weight_bytes()
    eap = model.peak_bytes(w, eap_batch, grad=True)
    acdc = model.peak_bytes(w, 1, grad=False)
    return {"predicted_weight_bytes": weights, "predicted_eap_ig_activation_bytes": eap,
            "predicted_acdc_activation_bytes": acdc, "predicted_peak_bytes": weights + max(eap, acdc)}


def shape_record(name: str, dtype: torch.dtype) -> dict[str, Any]:
    cfg, tied = SHAPES[name]
    g = graph_size(cfg)
    return {"shape": name, "dtype": str(dtype).replace("torch.", ""), "n_layers": cfg.n_layers,
            "d_model": cfg.d_model, "n_heads": cfg.n_heads, "n_kv_heads": cfg.kv_heads, "d_head": cfg.d_head,
            "d_mlp": cfg.d_mlp, "vocab": cfg.d_vocab, "tied_embeddings": tied,
            "parameters": MemoryModel(cfg, dtype, tied_embeddings=tied).n_parameters(),
            "edges": g.n_edges, "senders": g.n_senders, "receivers": g.n_receivers}


def gpu_fit(name: str, dtype: torch.dtype, seq_len: int) -> dict[str, Any]:
    """What the memory model says fits on each GPU, with the weights loaded through TransformerLens (the
    model's own plus the engine's copies) and handed straight to the engine (`random_weights`, or a backend
    that shares them): prompts of `seq_len` tokens at one circuit per forward (ACDC, EAP-IG), and the largest
    batch at 16 prompts."""
    cfg, tied = SHAPES[name]
    model = MemoryModel(cfg, dtype, tied_embeddings=tied)
    w16 = Workload(16, seq_len)
    out: dict[str, Any] = {}
    for gpu, total in GPUS.items():
        for how, weights in (("loaded_via_transformer_lens", model.bridge_weight_bytes()),
                             ("weights_given_to_engine", model.weight_bytes())):
            budget = total - weights
            ok = budget > 0
            out.setdefault(gpu, {})[how] = {
                "weights_bytes": weights, "weights_fit": ok,
                "max_prompts_acdc": model.largest_prompts(w16, budget, grad=False) if ok else 0,
                "max_prompts_eap_ig": model.largest_prompts(w16, budget, grad=True) if ok else 0,
                "acdc_batch_at_16_prompts": model.largest_batch(w16, budget, grad=False) if ok else 0,
                "eap_ig_batch_at_16_prompts": model.largest_batch(w16, budget, grad=True) if ok else 0}
    return out


def predicted_only(w: Workload) -> list[dict[str, Any]]:
    """The shapes not measured here: their graph, weights and peak at `w`, and what fits on each GPU."""
    out = []
    for name in PREDICTED_ONLY:
        cfg, tied = SHAPES[name]
        bridge = MemoryModel(cfg, torch.bfloat16, tied_embeddings=tied).bridge_weight_bytes()
        out.append({**shape_record(name, torch.bfloat16), **prediction(name, torch.bfloat16, w, 1),
                    "predicted_bridge_weight_bytes": bridge, "fits_at_64_tokens": gpu_fit(name, torch.bfloat16, 64)})
    return out


def run_child(name: str, dtype: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", name, "--dtype", dtype, "--prompts", str(args.prompts),
           "--tokens", str(args.tokens), "--steps", str(args.steps), "--tests", str(args.tests)]
    load_before = os.getloadavg()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"error": out.stderr[-2000:]}
    record = json.loads(out.stdout.strip().splitlines()[-1])
    record["loadavg_before"], record["loadavg_after"] = load_before, os.getloadavg()
    return record


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--tokens", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--tests", type=int, default=5)
    p.add_argument("--only", nargs="*", default=list(MEASURED))
    p.add_argument("--dtype", default=None, help="(child) the dtype; parent: every shape's dtype")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default="scale", help="result name (results/<out>_cpu.json)")
    p.add_argument("--predict-only", action="store_true",
                   help="recompute the predictions in results/<out>_cpu.json with the current memory model "
                        "(measurements unchanged)")
    args = p.parse_args()
    if args.predict_only:
        path = Path(__file__).parent / "results" / f"{args.out}_cpu.json"
        record = json.loads(path.read_text())
        w = Workload(record["prompts"], record["tokens"])
        for m in record["models"]:  # measurements stay as measured; predictions from the current model
            m.update(prediction(m["shape"], getattr(torch, m["dtype"]), w, m["eap_ig_batch"]))
            m["prediction_error"] = m["predicted_peak_bytes"] / m["measured_peak_bytes"] - 1
        record["predicted_only"] = predicted_only(w)
        record["predictions_recomputed"] = time.strftime("%Y-%m-%d %H:%M:%S")
        path.write_text(json.dumps(record, indent=2) + "\n")
        return
    if args.child:
        dtype = getattr(torch, args.dtype)
        print(json.dumps(child(args.child, dtype, args.prompts, args.tokens, args.steps, args.tests)))
        return
    w = Workload(args.prompts, args.tokens)
    models = []
    for name in args.only:
        dtype_name = args.dtype or _dtype_for(name)
        dtype = getattr(torch, dtype_name)
        measured = run_child(name, dtype_name, args)
        record = {**shape_record(name, dtype), **prediction(name, dtype, w, measured.get("eap_ig_batch", 1)),
                  **measured}
        if "measured_peak_bytes" in record:
            record["prediction_error"] = record["predicted_peak_bytes"] / record["measured_peak_bytes"] - 1
        print(json.dumps({k: v for k, v in record.items() if not isinstance(v, dict)}), flush=True)
        models.append(record)
    predicted = predicted_only(w)
    save(args.out, torch.device("cpu"), {
        "prompts": args.prompts, "tokens": args.tokens, "eap_ig_steps": args.steps, "acdc_tests": args.tests,
        "memory_total_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "note": "random weights of each model's shape; measured = VmHWM - baseline RSS in a fresh process",
        "malloc": os.environ.get("ACDC_COMPARE_MALLOC", "tuned (acdc_compare.allocator)"),
        "models": models, "predicted_only": predicted})


def _dtype_for(name: str) -> str:
    """float32 where the weights take under a third of this machine's memory, else bfloat16."""
    cfg, tied = SHAPES[name]
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    fp32 = MemoryModel(cfg, torch.float32, tied_embeddings=tied).weight_bytes()
    return "float32" if fp32 < total / 3 and not math.isnan(fp32) else "bfloat16"


if __name__ == "__main__":
    main()
