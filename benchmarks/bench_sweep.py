"""A sweep of 16 jobs on a tiny random Llama (2 tasks x 2 methods x 2 thresholds x 2 prompt seeds): the local
executor (one process, 1 torch thread, and again with torch's default threads) against the Ray executor with
2 worker actors (1 thread each), wall time side by side, and Ray's overhead per job.

Ray's overhead is measured two ways in the same run: (1) rerunning the finished sweep on Ray, where every job
is found done and skipped: the time to the first answer is the actors' start, the time between answers the
dispatch and result round trip of one job; (2) the
Ray sweep's wall time x workers minus the time its jobs spent inside `run_job`, per job (idle actors, model
loads in each actor, dispatch). The circuits of both executors are compared edge for edge.

    python benchmarks/bench_sweep.py [--workers 2] [--n-prompts 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import save  # noqa: E402

from acdc_compare.export import load_circuit  # noqa: E402
from acdc_compare.sweeps import JobPaths, run_sweep, spec_from_mapping  # noqa: E402


def tiny_hf_dir(path: Path) -> Path:
    """A tiny random Llama as a Hugging Face directory with the default model's tokenizer (as the tests)."""
    import transformers

    from acdc_compare.backends.gguf import convert_gguf

    tok = transformers.AutoTokenizer.from_pretrained(convert_gguf())
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_size=32,
                                   intermediate_size=64, vocab_size=len(tok), max_position_embeddings=128,
                                   initializer_range=0.3, tie_word_embeddings=False)
    transformers.LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--n-prompts", type=int, default=4)
    args = parser.parse_args()
    import ray

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = tiny_hf_dir(root / "tiny-llama")
        spec = spec_from_mapping(dict(models=[str(model)], tasks=["ioi", "pet-last"], methods=["acdc", "eap-ig"],
                                      thresholds=[0.002, 0.02], seeds=[0, 1], n_prompts=args.n_prompts,
                                      options={"eap-ig": {"steps": 2}}))
        jobs = spec.jobs()

        started = time.perf_counter()
        local = run_sweep(spec, root / "local", threads=1)
        local_wall = time.perf_counter() - started
        started = time.perf_counter()
        local_default = run_sweep(spec, root / "local-default-threads")
        local_default_wall = time.perf_counter() - started

        started = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, logging_level="warning", log_to_driver=False)
        ray_init = time.perf_counter() - started
        try:
            started = time.perf_counter()
            on_ray = run_sweep(spec, root / "ray", executor="ray", workers=args.workers)
            ray_wall = time.perf_counter() - started
            stamps: list[float] = []
            skip_started = time.perf_counter()
            skipped = run_sweep(spec, root / "ray", executor="ray", workers=args.workers,
                                log=lambda msg: stamps.append(time.perf_counter()) if msg.startswith("[") else None)
            skip_wall = time.perf_counter() - skip_started
        finally:
            ray.shutdown()

        assert all(o.status == "done" for o in local.outcomes + local_default.outcomes + on_ray.outcomes)
        assert all(o.status == "skipped" for o in skipped.outcomes)
        kept_same = bitwise_same = 0
        for job in jobs:
            a = load_circuit(JobPaths.of(local.folder, job.job_id).circuit)
            b = load_circuit(JobPaths.of(on_ray.folder, job.job_id).circuit)
            kept_same += int(torch.equal(a.kept, b.kept))
            bitwise_same += int(torch.equal(a.scores.nan_to_num(-7.0), b.scores.nan_to_num(-7.0)))
        local_work = sum(o.seconds for o in local.outcomes)
        ray_work = sum(o.seconds for o in on_ray.outcomes)
        payload = {
            "model": "tiny random Llama (2 layers, 4 heads, 2 kv heads, d_model 32) with SmolLM2's tokenizer",
            "n_jobs": len(jobs), "n_prompts": args.n_prompts, "workers": args.workers,
            "grid": "tasks ioi, pet-last x methods acdc, eap-ig (2 steps) x thresholds 0.002, 0.02 x seeds 0, 1",
            "local_wall_s": local_wall, "local_threads": 1, "local_job_seconds_sum": local_work,
            "local_default_threads_wall_s": local_default_wall, "local_default_threads": torch.get_num_threads(),
            "ray_init_s": ray_init, "ray_wall_s": ray_wall, "ray_job_seconds_sum": ray_work,
            "speedup_ray_vs_local": local_wall / ray_wall,
            "ray_rerun_all_skipped_wall_s": skip_wall,
            "ray_overhead_per_job_s_skipped_rerun": skip_wall / len(jobs),
            "ray_first_result_s_skipped_rerun": stamps[0] - skip_started,  # actors started, first job answered
            "ray_dispatch_per_job_s": (stamps[-1] - stamps[0]) / (len(stamps) - 1),
            "ray_overhead_per_job_s_idle_and_loads": (ray_wall * args.workers - ray_work) / len(jobs),
            "jobs_with_identical_kept_edges": kept_same, "jobs_with_bitwise_identical_scores": bitwise_same,
            "load_average": os.getloadavg(),
        }
    path = save("sweep", torch.device("cpu"), payload)
    for k, v in payload.items():
        print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
