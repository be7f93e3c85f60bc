"""Edge attribution timings (issue 6), and the hybrid on the default model's IOI.

Default part: EAP and EAP-IG (5 steps) on a GPT-2-small-shaped random model, N=100 prompts x 15 tokens,
next to the plain forward of the same model measured in the same run (targets: EAP-IG <= 60 s on 2 CPU
cores, <= 2 s on a GPU). Writes results/eap_<cpu|cuda>.json.

`--hybrid`: the demo's discovery on the default model (SmolLM2-135M, IOI, KL; the demo's prompts, relative
threshold tau = r x (M(empty) - M(full)) and k top EAP-IG edges as candidates, from `ExperimentConfig`) with
its time and normalised faithfulness, beside exact ACDC's with `--exact` (a day on 2 CPU cores; use a GPU),
and hybrid vs exact ACDC on a tiny random model, where both run in seconds.
Writes results/eap_hybrid_<cpu|cuda>.json.

    python benchmarks/bench_eap.py [--n 100] [--seq 15] [--steps 5] [--device cpu|cuda]
    python benchmarks/bench_eap.py --hybrid [--k K] [--n-prompts N] [--relative R] [--exact] [--coverage C ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import gpt2_small_shaped, save, timed, timed_with_cpu  # noqa: E402

from acdc_compare.backends import make_patcher
from acdc_compare.algorithms.eap import eap_ig_scores, eap_scores  # noqa: E402
from acdc_compare.algorithms.problem import make_problem  # noqa: E402
from acdc_compare.circuit import Circuit  # noqa: E402
from acdc_compare.faithfulness import normalized_faithfulness  # noqa: E402
from acdc_compare.backends import run_logits  # noqa: E402
from acdc_compare.patching import Patcher  # noqa: E402
from acdc_compare.tasks.base import Task  # noqa: E402


def peak_memory_gb(device: torch.device) -> float:
    """Peak memory of this process so far: GPU allocations, or the resident set on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def bare_transformers_times(tokens: torch.Tensor, device: torch.device) -> tuple[float, float]:
    """Forward, and forward + backward to the input embeddings (weights frozen, logits at the last position
    only), of a bare transformers GPT-2 of the same shape: what the hardware does without any patching."""
    import transformers

    cfg = transformers.GPT2Config(n_layer=12, n_head=12, n_embd=768, vocab_size=50257, n_positions=64)
    hf = transformers.GPT2LMHeadModel(cfg).to(device).eval()
    for p in hf.parameters():
        p.requires_grad_(False)
    ids = tokens.to(device)
    head = hf.get_output_embeddings().weight

    def forward() -> None:
        with torch.no_grad():
            hf.transformer(input_ids=ids)

    def forward_backward() -> None:
        emb = hf.transformer.wte(ids).detach().requires_grad_(True)
        last = hf.transformer(inputs_embeds=emb).last_hidden_state[:, -1]
        (last @ head.T).logsumexp(-1).sum().backward()

    out = timed(forward, device), timed(forward_backward, device)
    del hf
    return out


def bench_attribution(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = gpt2_small_shaped(device)
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(0, 50257, (args.n, args.seq), generator=gen)
    corrupted = torch.randint(0, 50257, (args.n, args.seq), generator=gen)
    answers = torch.randint(0, 50257, (args.n, 2), generator=gen)
    task = Task("random", clean, corrupted, positions=torch.full((args.n,), args.seq - 1),
                correct=answers[:, 0], wrong=answers[:, 1])
    patcher = make_patcher(model)
    graph = patcher.graph
    kl = make_problem(patcher, task, metric="kl", model_name="gpt2-small-shaped")
    logit_diff = make_problem(patcher, task, metric="logit_diff", model_name="gpt2-small-shaped")
    heavy = dict(repeats=3, warmup=1) if device.type == "cuda" else dict(repeats=1, warmup=0)
    load_before = os.getloadavg()[0]

    with torch.no_grad():
        plain = timed(lambda: run_logits(model, clean, batch_size=args.n), device)
    bare_fwd, bare_fwd_bwd = bare_transformers_times(clean, device)
    full = torch.ones(1, graph.n_edges, dtype=torch.bool)
    patched = timed(lambda: patcher.run(kl.ctx, full), device)
    eap_s = timed(lambda: eap_scores(logit_diff), device, **heavy)
    ig_s, ig_cpu = timed_with_cpu(lambda: eap_ig_scores(kl, steps=args.steps), device, **heavy)
    load_after = os.getloadavg()[0]

    rows: dict[str, Any] = {
        "plain_forward_s": plain, "bare_transformers_forward_s": bare_fwd,
        "bare_transformers_forward_backward_s": bare_fwd_bwd, "patched_full_forward_s": patched, "eap_s": eap_s,
        f"eap_ig_{args.steps}_steps_s": ig_s, f"eap_ig_{args.steps}_steps_process_cpu_s": ig_cpu,
        "eap_ig_over_plain_forward": ig_s / plain, "peak_memory_gb": peak_memory_gb(device),
        "threads": torch.get_num_threads(), "load_average_before": load_before, "load_average_after": load_after,
    }
    shape = f"N={args.n}x{args.seq}"
    print(f"plain bridge forward          {shape}: {plain:.3f} s")
    print(f"bare transformers GPT-2       {shape}: forward {bare_fwd:.3f} s, forward + backward to the "
          f"embeddings {bare_fwd_bwd:.3f} s (hardware calibration: an EAP-IG step cannot cost less)")
    print(f"patched forward, full circuit {shape}: {patched:.3f} s ({patched / plain:.2f}x plain)")
    print(f"EAP (logit diff)              {shape}: {eap_s:.3f} s ({eap_s / plain:.2f}x plain)")
    print(f"EAP-IG, {args.steps} steps (KL)        {shape}: {ig_s:.3f} s ({ig_s / plain:.2f}x plain; "
          f"target {'2 s (GPU)' if device.type == 'cuda' else '60 s (2 CPU cores)'})")
    path = save("eap", device, {"n_prompts": args.n, "seq_len": args.seq, "steps": args.steps,
                                "n_edges": graph.n_edges, "model": "GPT-2-small-shaped, random weights",
                                **rows})
    print(f"saved {path}")


def bench_hybrid(args: argparse.Namespace) -> None:
    from acdc_compare.algorithms.acdc import acdc
    from acdc_compare.algorithms.hybrid import hybrid
    from acdc_compare.api import prepare
    from acdc_compare.experiment import task_threshold

    device = torch.device(args.device)
    started = time.perf_counter()
    problem = prepare("ioi", n_prompts=args.n_prompts, device=device)
    prepare_s = time.perf_counter() - started
    tau = task_threshold(problem, args.relative)
    started = time.perf_counter()
    prior = eap_ig_scores(problem, args.steps)  # computed once, shared by every hybrid below
    eap_ig_s = time.perf_counter() - started
    found = hybrid(problem, tau, k=args.k, steps=args.steps, prior=prior, progress=False)
    summary = _summary(found)
    summary["seconds"] += eap_ig_s
    rows: dict[str, Any] = {"prepare_s": prepare_s, "threshold": tau, "k": args.k, "steps": args.steps,
                            "eap_ig_s": eap_ig_s, "hybrid": summary}
    print(f"hybrid, IOI on {problem.model_name} ({problem.task.n_prompts} prompts, {problem.graph.n_edges} edges), "
          f"tau={tau:.4g}, k={args.k}: {summary['seconds']:.1f} s (EAP-IG {eap_ig_s:.1f} s"
          f", ACDC {found.settings['acdc_seconds']:.1f} s, {found.settings['n_tested']} tested), "
          f"{found.n_kept} edges kept, faithfulness {rows['hybrid']['faithfulness']:.3f}")
    same_size = Circuit.from_scores(problem.graph, prior, top_n=found.n_kept)
    f_ig = _faithfulness(problem, same_size)
    rows["eap_ig_same_size_faithfulness"] = f_ig
    print(f"EAP-IG top {found.n_kept} edges (same size):  faithfulness {f_ig:.3f}")
    for coverage in args.coverage or []:
        started = time.perf_counter()
        covered = hybrid(problem, tau, coverage=coverage, steps=args.steps, prior=prior, progress=False)
        row = {"coverage": coverage, "k": covered.settings["k"],
               "candidate_faithfulness": covered.settings["candidate_faithfulness"], **_summary(covered),
               "seconds_without_eap_ig": time.perf_counter() - started,
               "eap_ig_same_size_faithfulness": _faithfulness(
                   problem, Circuit.from_scores(problem.graph, prior, top_n=covered.n_kept))}
        rows.setdefault("hybrid_coverage", []).append(row)
        print(f"hybrid, coverage {coverage}: k={row['k']} candidates (their faithfulness "
              f"{row['candidate_faithfulness']:.3f}), {row['seconds_without_eap_ig']:.1f} s without EAP-IG, "
              f"{covered.n_kept} edges kept, faithfulness {row['faithfulness']:.3f} (EAP-IG top {covered.n_kept}: "
              f"{row['eap_ig_same_size_faithfulness']:.3f})")
    if args.exact:
        exact = acdc(problem, tau, progress=False)
        rows["exact_acdc"] = _summary(exact)
        both = int((exact.kept & found.kept).sum())
        rows["shared_edges"] = both
        print(f"exact ACDC: {exact.settings['seconds']:.1f} s, {exact.n_kept} edges kept, faithfulness "
              f"{rows['exact_acdc']['faithfulness']:.3f}; {both} edges shared with the hybrid")
    else:
        rows["exact_acdc"] = "not run (pass --exact; about a day on 2 CPU cores)"
    rows["tiny_model_vs_exact"] = hybrid_vs_exact_on_a_tiny_model(args)
    path = save("eap_hybrid", device, {"model": problem.model_name, "task": "ioi",
                                       "n_prompts": problem.task.n_prompts, "n_edges": problem.graph.n_edges,
                                       **rows})
    print(f"saved {path}")


def hybrid_vs_exact_on_a_tiny_model(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Where exact ACDC is cheap enough to run beside the hybrid: a tiny random GPT-2 (3 layers, 4 heads,
    float64, initializer range 0.3), random prompts with three corrupted tokens, KL, the same relative tau.
    Random weights: this shows how the hybrid's circuit departs from exact ACDC's as k shrinks, not a real
    circuit."""
    from acdc_compare.algorithms.acdc import acdc
    from acdc_compare.algorithms.hybrid import hybrid
    from acdc_compare.compare import compare_circuits
    from acdc_compare.experiment import task_threshold
    from acdc_compare.backends import tiny_model

    model = tiny_model("gpt2", n_layers=3, n_heads=4, d_model=32, dtype=torch.float64, seed=1)
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(0, 64, (16, 8), generator=gen)
    corrupted = clean.clone()
    corrupted[:, 1:4] = torch.randint(0, 64, (16, 3), generator=gen)
    task = Task("tiny-random", clean, corrupted, positions=torch.full((16,), 7), correct=clean[:, 2],
                wrong=clean[:, 0])
    problem = make_problem(make_patcher(model), task, metric="kl", model_name="tiny-gpt2-random")
    tau = task_threshold(problem, args.relative)
    exact = acdc(problem, tau)
    n = problem.graph.n_edges
    out = [{"method": "exact acdc", "k": n, **_summary(exact)}]
    print(f"tiny random GPT-2 ({n} edges), tau={tau:.3g}: exact ACDC keeps {exact.n_kept} edges, "
          f"faithfulness {out[0]['faithfulness']:.3f}, {out[0]['n_tested']} tested")
    for frac in (0.05, 0.1, 0.25, 0.5, 1.0):
        k = max(1, round(frac * n))
        found = hybrid(problem, tau, k=k, steps=args.steps)
        jaccard = compare_circuits(found, exact).edges.jaccard
        out.append({"method": "hybrid", "k": k, "edge_jaccard_with_exact": jaccard, **_summary(found)})
        print(f"  hybrid k={k:4d} ({frac:.0%}): keeps {found.n_kept} edges, faithfulness "
              f"{out[-1]['faithfulness']:.3f}, {found.settings['n_tested']} tested, edge Jaccard with exact "
              f"{jaccard:.3f}")
    return out


def _faithfulness(problem, circuit: Circuit) -> float:
    return normalized_faithfulness(float(problem.evaluate(circuit)[0]), *problem.metric_ends)


def _summary(c: Circuit) -> dict[str, Any]:
    m = c.metrics
    return {"seconds": c.settings["seconds"], "n_kept": c.n_kept, "n_tested": c.settings.get("n_tested"),
            "metric_full": m["full"], "metric_circuit": m["circuit"], "metric_empty": m["empty"],
            "faithfulness": normalized_faithfulness(m["circuit"], m["full"], m["empty"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seq", type=int, default=15)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--hybrid", action="store_true", help="the hybrid on the default model's IOI instead")
    parser.add_argument("--k", type=int, default=None, help="hybrid candidates (default: the demo's)")
    parser.add_argument("--n-prompts", type=int, default=None, help="IOI prompts (default: the demo's)")
    parser.add_argument("--relative", type=float, default=None,
                        help="tau as a fraction of M(empty) - M(full) (default: the demo's)")
    parser.add_argument("--exact", action="store_true", help="also run exact ACDC (slow on a CPU)")
    parser.add_argument("--coverage", type=float, nargs="*", default=None,
                        help="also run the hybrid with coverage= each of these (candidates sized by faithfulness)")
    args = parser.parse_args()
    if args.hybrid:
        from acdc_compare.experiment import ExperimentConfig

        demo = ExperimentConfig()
        args.k = demo.k if args.k is None else args.k
        args.n_prompts = demo.n_prompts if args.n_prompts is None else args.n_prompts
        args.relative = demo.threshold if args.relative is None else args.relative
    if args.hybrid:
        bench_hybrid(args)
    else:
        bench_attribution(args)


if __name__ == "__main__":
    main()
