"""The hook-based fallback's patched forward against the fast engine's, same model, same run.

A Llama-shaped random model (grouped-query attention) that both paths run; for K circuits per call, the
seconds per circuit of each path and the plain forward as the baseline, plus the largest logit difference
between the two paths on the same random circuits (they must agree: both are exact), and the engine's
restart from the middle layer (what greedy ACDC mostly runs; the fallback always runs the full forward).

    python benchmarks/bench_fallback.py [--device cpu|cuda] [--n 20] [--layers 6] [--d-model 256]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import save, timed  # noqa: E402

from acdc_compare.backends import make_patcher, run_logits, tiny_model  # noqa: E402
from acdc_compare.backends.hook_patcher import HookPatcher  # noqa: E402
from acdc_compare.patching import Patcher  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--seq", type=int, default=16)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--k", type=int, nargs="*", default=[1, 8], help="circuits per call")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    model = tiny_model("llama", n_layers=args.layers, n_heads=args.heads, n_kv_heads=args.kv_heads,
                       d_model=args.d_model, vocab_size=args.vocab, n_ctx=max(64, args.seq), init_range=0.02,
                       seed=0).to(device)
    fast = make_patcher(model, fallback=False)
    assert isinstance(fast, Patcher)
    hooked = HookPatcher(model)
    graph = fast.graph
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(0, args.vocab, (args.n, args.seq), generator=gen)
    corrupted = torch.randint(0, args.vocab, (args.n, args.seq), generator=gen)
    fast_ctx = fast.prepare(clean, "corrupted", corrupted)
    hook_ctx = hooked.prepare(clean, "corrupted", corrupted)
    result: dict[str, float | int | str | list] = {
        "model": f"Llama-shaped random, L{args.layers} d{args.d_model} H{args.heads} G{args.kv_heads} "
                 f"vocab {args.vocab}",
        "n_prompts": args.n, "seq_len": args.seq, "n_edges": graph.n_edges,
        "plain_forward_s": timed(lambda: run_logits(model, clean.to(device)), device),
    }
    for k in args.k:
        kept = (torch.rand(k, graph.n_edges, generator=torch.Generator().manual_seed(k)) < 0.5).to(device)
        fast_s = timed(lambda: fast.logits(fast_ctx, kept), device) / k
        hook_s = timed(lambda: hooked.logits(hook_ctx, kept), device) / k
        diff = float((fast.logits(fast_ctx, kept) - hooked.logits(hook_ctx, kept)).abs().max())
        result[f"fast_k{k}_s_per_circuit"] = fast_s
        result[f"fallback_k{k}_s_per_circuit"] = hook_s
        result[f"ratio_fallback_to_fast_k{k}"] = hook_s / fast_s
        result[f"max_logit_diff_k{k}"] = diff
    # what greedy ACDC mostly runs: one circuit restarted at a middle layer's attention (the fallback has no
    # restarts: it runs the full forward timed above)
    kept = (torch.rand(1, graph.n_edges, generator=torch.Generator().manual_seed(0)) < 0.5).to(device)
    _, base = fast.run(fast_ctx, kept, keep_state=True)
    mid = 2 * (args.layers // 2)
    result["fast_restart_mid_s_per_circuit"] = timed(lambda: fast.run(fast_ctx, kept, start_stage=mid, base=base),
                                                     device)
    result["load_average_1min_after"] = os.getloadavg()[0]
    path = save("fallback", device, result)
    for key, value in result.items():
        print(f"{key}: {value}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
