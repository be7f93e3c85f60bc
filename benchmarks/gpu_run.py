"""The GPU run (issue 18): every GPU target of the project measured in ONE run of at most 10 minutes on an
H100/H200, each row beside its baseline measured in the same run, written to one JSON file row by row.

Rows (in this order):
  patching      patched forward of a random half-kept circuit vs the plain bridge forward, GPT-2-small-shaped
                random model (transformers GPT2Config shape, random init), N=100 x 15 tokens (target <= 1.5x)
  eap_ig        EAP-IG, 5 steps, KL, same model and batch, vs the plain forward (target <= 2 s)
  acdc_gpt2     exact greedy ACDC over the whole 32,923-edge graph, reference order, tau = a fraction of
                M(empty) - M(full) (`--gpt2-relative`), journalled (target <= 60 s), against the
                one-edge-one-forward oracle (`hook_oracle.oracle_acdc`) on the first `--oracle-edges` tested
                edges of the same order, time-boxed by `--oracle-s`; decisions compared on that prefix
  acdc_<task>   exact ACDC on the default model (SmolLM2-135M) for ioi, pet-last, pet-first with the demo's
                prompts and relative threshold (ExperimentConfig: 8 prompts, 0.005); wall time, kept edges,
                normalised faithfulness, the circuit saved with `export.save_circuit` into `--circuits-dir`;
                baseline: the plain forward and one oracle evaluation of the same model and prompts

`--budget-s`: no row is started once the time left is under that row's minimum, and ACDC runs in chunks of
tested edges (journal kept), stopping between chunks at its deadline, so a cut run keeps its rows and a
rerun with the same `--journal-dir` resumes where it stopped. `--tiny`: every row on tiny random models
(tiny GPT-2 for the GPT-2 rows, tiny Llama with grouped-query attention and random tasks for the
default-model rows), for the CPU test of the same code path.

    python benchmarks/gpu_run.py --device cuda --out benchmarks/results/gpu_cuda.json --budget-s 540 \
        --journal-dir benchmarks/results/gpu_journals_cuda --circuits-dir acdc_compare/data/exact_circuits
    python benchmarks/gpu_run.py --tiny --device cpu --out /tmp/gpu_cpu.json
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import device_name  # noqa: E402
from gpu_results import Clock, Results, previous_rows, print_row, versions  # noqa: E402
from gpu_rows import (  # noqa: E402
    gpt2_setup,
    random_task,
    row_acdc_default,
    row_acdc_gpt2,
    row_eap_ig,
    row_patching,
)

from acdc_compare.algorithms.problem import make_problem  # noqa: E402
from acdc_compare.backends import make_patcher, tiny_model  # noqa: E402
from acdc_compare.tasks.base import Task  # noqa: E402

DEFAULT_TASKS = ("ioi", "pet-last", "pet-first")
PUBLISHED = {
    "reference_acdc_ioi_a100": "reference ACDC, IOI on GPT-2 small without q/k/v split, tau 0.0575: 8 min on an "
                               "A100 (Conmy et al. 2023)",
    "eap_paper_acdc_h100": "ACDC 18,783 s on an H100 with 200 examples; edge attribution patching 21 s "
                           "(Syed et al., EAP paper)",
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default=None, help="results JSON (default benchmarks/results/gpu_<device>.json)")
    p.add_argument("--budget-s", type=float, default=540.0, help="no row starts after this (whole run)")
    p.add_argument("--tiny", action="store_true", help="tiny random models everywhere (CPU test)")
    p.add_argument("--journal-dir", default=None, help="ACDC journals (default: beside --out); rerun to resume")
    p.add_argument("--circuits-dir", default=None, help="exact circuits (default: beside --out)")
    p.add_argument("--n", type=int, default=None, help="prompts of the GPT-2 rows (default 100, tiny 8)")
    p.add_argument("--seq", type=int, default=None, help="tokens per prompt (default 15, tiny 8)")
    p.add_argument("--steps", type=int, default=5, help="EAP-IG steps")
    p.add_argument("--gpt2-relative", type=float, default=None,
                   help="GPT-2 ACDC tau as a fraction of M(empty) - M(full) (default 5e-4, bench_acdc's "
                        "empty / 2000; tiny 0.02)")
    p.add_argument("--gpt2-dtype", default="float32", choices=["float32", "float64"],
                   help="dtype of the GPT-2-shaped model (float64: decisions free of float32 ties)")
    p.add_argument("--gpt2-init-range", type=float, default=0.02,
                   help="initializer range of the GPT-2-shaped model (0.02: GPT2Config's default)")
    p.add_argument("--oracle-edges", type=int, default=None, help="oracle prefix length (default 200, tiny 10)")
    p.add_argument("--oracle-s", type=float, default=60.0, help="time box of the oracle")
    p.add_argument("--acdc-max-s", type=float, default=240.0, help="cap of one ACDC row (journal resumes)")
    p.add_argument("--chunk", type=int, default=None, help="tested edges between deadline checks (default "
                                                           "2000, tiny 25)")
    p.add_argument("--max-batch", type=int, default=None, help="ACDC speculative batch (default: the engine's)")
    p.add_argument("--model", default=None, help="default-model rows' model (default smollm2-135m; a .gguf path "
                                                 "works)")
    p.add_argument("--tasks", nargs="*", default=list(DEFAULT_TASKS))
    p.add_argument("--n-prompts", type=int, default=None, help="default: the demo's (ExperimentConfig)")
    p.add_argument("--relative", type=float, default=None, help="default: the demo's relative threshold")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true",
                   help="keep the finished rows of an existing --out file (rows done, ACDC complete) and run "
                        "only the others; ACDC rows resume from their journals either way")
    p.add_argument("--skip", nargs="*", default=[], help="rows to skip: patching eap_ig acdc_gpt2 default")
    args = p.parse_args(argv)
    from acdc_compare.experiment import ExperimentConfig

    demo = ExperimentConfig()
    tiny = args.tiny
    args.n = args.n or (8 if tiny else 100)
    args.gpt2_relative = args.gpt2_relative or (0.02 if tiny else 5e-4)
    args.seq = args.seq or (8 if tiny else 15)
    args.oracle_edges = args.oracle_edges or (10 if tiny else 200)
    args.chunk = args.chunk or (25 if tiny else 2000)
    args.n_prompts = args.n_prompts or demo.n_prompts
    args.relative = demo.threshold if args.relative is None else args.relative
    args.model = args.model or demo.model
    tag = "cuda" if torch.device(args.device).type == "cuda" else "cpu"
    args.out = Path(args.out or Path(__file__).parent / "results" / f"gpu_{tag}.json")
    args.journal_dir = Path(args.journal_dir or args.out.parent / f"gpu_journals_{tag}{'_tiny' if tiny else ''}")
    args.circuits_dir = Path(args.circuits_dir or args.out.parent / f"gpu_circuits_{tag}{'_tiny' if tiny else ''}")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # decisions compared with the oracle: full fp32
    clock = Clock(args.budget_s)
    header = {"benchmark": "gpu_run", "device": device_name(device), "device_type": device.type,
              "versions": versions(), "date": time.strftime("%Y-%m-%d %H:%M:%S"), "tiny": args.tiny,
              "budget_s": args.budget_s, "argv": list(sys.argv[1:] if argv is None else argv),
              "published_reference": PUBLISHED}
    previous = previous_rows(args.out) if args.resume else {}
    results = Results(args.out, header)
    repeats = 3 if device.type == "cuda" else 1

    def run_row(name: str, min_s: float, fn: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        started = time.perf_counter()
        base = {"row": name}
        if name in previous:
            row = {**previous[name], "from_previous_run": True}
            results.add(row)
            print(f"{name}: kept from the previous run in {args.out}", flush=True)
            return row
        if name in args.skip or (name.startswith("acdc_") and name != "acdc_gpt2" and "default" in args.skip):
            row = {**base, "status": "skipped", "reason": "--skip"}
        elif clock.left() < min_s:
            row = {**base, "status": "skipped",
                   "reason": f"budget: {clock.left():.0f} s left of {args.budget_s:.0f} s, row needs >= {min_s:.0f} s"}
        else:
            try:
                row = {**base, "status": "done", **fn()}
            except Exception as err:  # one failing row must not lose the others
                row = {**base, "status": "error", "reason": f"{type(err).__name__}: {err}",
                       "traceback": traceback.format_exc(limit=6)}
        row["row_s"] = time.perf_counter() - started
        row["elapsed_s"] = clock.elapsed()
        results.add(row)
        print_row(row)
        return row

    model, task, label = gpt2_setup(args, device)
    problem = make_problem(make_patcher(model), task, metric="kl", model_name=label)
    shape = {"model": label, "n_prompts": task.n_prompts, "seq_len": task.seq_len}
    min_short = 1 if args.tiny else 20
    run_row("patching", min_short, lambda: {**shape, **row_patching(model, problem, device, repeats)})
    run_row("eap_ig", min_short, lambda: {**shape, **row_eap_ig(model, problem, device, args.steps, repeats)})
    run_row("acdc_gpt2", 2 if args.tiny else 60,
            lambda: {**shape, **row_acdc_gpt2(args, model, problem, clock, args.journal_dir / "acdc_gpt2.jsonl")})
    del model, problem

    default_model: list[Any] = []

    def get_default() -> Any:
        if not default_model:
            if args.tiny:
                default_model.append(tiny_model("llama", n_layers=1, n_heads=4, n_kv_heads=2, d_model=16,
                                                dtype=torch.float64, seed=2).to(device))
            else:
                from acdc_compare.backends import load_model

                default_model.append(load_model(args.model, device=device))
        return default_model[0]

    for i, name in enumerate(args.tasks):
        task_arg: Task | str = random_task(f"tiny-{name}", 64, 8, 8, 10 + i) if args.tiny else name
        run_row(f"acdc_{name}", 2 if args.tiny else 30,
                lambda: row_acdc_default(args, get_default(), task_arg, name, clock,
                                         args.journal_dir / f"acdc_{name}.jsonl", args.circuits_dir))
    results.record["total_s"] = clock.elapsed()
    results.write()
    print(f"saved {args.out} ({clock.elapsed():.1f} s)", flush=True)
    return results.record


if __name__ == "__main__":
    main()
