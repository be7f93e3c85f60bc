"""Patched forwards per second vs the plain forward of the same model (issue: a patched forward should
cost at most 1.5x a plain forward). GPT-2-small-shaped random model, N prompts x 15 tokens.

    python benchmarks/bench_patching.py [--n 100] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import gpt2_small_shaped, save, timed  # noqa: E402

from acdc_compare.backends import make_patcher
from acdc_compare.circuit import Circuit  # noqa: E402
from acdc_compare.backends import run_logits  # noqa: E402
from acdc_compare.patching import Patcher  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seq", type=int, default=15)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--k", type=int, nargs="*", default=[1, 8], help="circuits per batched forward")
    args = parser.parse_args()
    device = torch.device(args.device)
    model = gpt2_small_shaped(device)
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(0, 50257, (args.n, args.seq), generator=gen)
    corrupted = torch.randint(0, 50257, (args.n, args.seq), generator=gen)
    patcher = make_patcher(model)
    graph = patcher.graph
    ctx = patcher.prepare(clean, "corrupted", corrupted)

    with torch.no_grad():
        plain = timed(lambda: run_logits(model, clean, batch_size=args.n), device)
    rows = {"plain_forward_s": plain}
    print(f"plain bridge forward        N={args.n}x{args.seq}: {plain:.3f} s ({1 / plain:.2f} forwards/s)")
    half = Circuit(graph, torch.rand(graph.n_edges, generator=gen) < 0.5)
    for k in args.k:
        kept = torch.stack([half.kept] * k)
        t = timed(lambda: patcher.run(ctx, kept), device)
        per = t / k
        rows[f"patched_k{k}_s_per_circuit"] = per
        print(f"patched forward, K={k:<3d} circuits: {per:.3f} s per circuit ({1 / per:.2f} circuits/s), "
              f"{per / plain:.2f}x the plain forward")
    _, base = patcher.run(ctx, half.kept[None], keep_state=True)
    mid = 2 * (graph.n_layers // 2)
    t = timed(lambda: patcher.run(ctx, half.kept[None], start_stage=mid, base=base), device)
    rows["restart_mid_s"] = t
    print(f"patched forward restarted at layer {graph.n_layers // 2}: {t:.3f} s ({t / plain:.2f}x the plain forward)")
    path = save("patching", device, {"n_prompts": args.n, "seq_len": args.seq, "n_edges": graph.n_edges,
                                     "model": "GPT-2-small-shaped, random weights", **rows,
                                     "ratio_patched_k1_to_plain": rows["patched_k1_s_per_circuit"] / plain})
    print(f"saved {path}")


if __name__ == "__main__":
    main()
