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
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import device_name, gpt2_small_shaped, timed  # noqa: E402

from acdc_compare.algorithms.acdc import acdc, reference_order  # noqa: E402
from acdc_compare.algorithms.eap import eap_ig_scores  # noqa: E402
from acdc_compare.algorithms.problem import Problem, make_problem  # noqa: E402
from acdc_compare.backends import make_patcher, run_logits, tiny_model  # noqa: E402
from acdc_compare.backends.hook_oracle import hook_patched_logits, oracle_acdc  # noqa: E402
from acdc_compare.circuit import Circuit  # noqa: E402
from acdc_compare.metrics import kl_divergence  # noqa: E402
from acdc_compare.tasks.base import Task  # noqa: E402

DEFAULT_TASKS = ("ioi", "pet-last", "pet-first")
PUBLISHED = {
    "reference_acdc_ioi_a100": "reference ACDC, IOI on GPT-2 small without q/k/v split, tau 0.0575: 8 min on an "
                               "A100 (Conmy et al. 2023)",
    "eap_paper_acdc_h100": "ACDC 18,783 s on an H100 with 200 examples; edge attribution patching 21 s "
                           "(Syed et al., EAP paper)",
}


# ----- the results file -------------------------------------------------------------------------------------
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


# ----- models and tasks -------------------------------------------------------------------------------------
def random_task(name: str, vocab: int, n: int, seq: int, seed: int) -> Task:
    """Random prompts, three tokens corrupted (as bench_acdc's GPT-2 task), scored at the last position."""
    gen = torch.Generator().manual_seed(seed)
    clean = torch.randint(0, vocab, (n, seq), generator=gen)
    corrupted = clean.clone()
    corrupted[:, 2:5] = torch.randint(0, vocab, (n, 3), generator=gen)
    return Task(name, clean, corrupted, positions=torch.full((n,), seq - 1), correct=clean[:, 3],
                wrong=clean[:, 2])


def gpt2_setup(args: argparse.Namespace, device: torch.device) -> tuple[Any, Task, str]:
    if args.tiny:
        model = tiny_model("gpt2", n_layers=2, n_heads=2, d_model=16, dtype=torch.float64, seed=1).to(device)
        return model, random_task("tiny-random", 64, args.n, args.seq, 0), "tiny GPT-2 (2 layers, 2 heads), random"
    dtype = getattr(torch, args.gpt2_dtype)
    if args.gpt2_init_range == 0.02:
        model = gpt2_small_shaped(device, dtype=dtype)
    else:
        model = tiny_model("gpt2", n_layers=12, n_heads=12, d_model=768, d_mlp=3072, vocab_size=50257, n_ctx=64,
                           init_range=args.gpt2_init_range, dtype=dtype, seed=0).to(device)
    return (model, random_task("random-gpt2", 50257, args.n, args.seq, 0),
            f"GPT-2-small-shaped (GPT2Config shape), random weights (initializer range {args.gpt2_init_range}), "
            f"{args.gpt2_dtype}")


def relative_tau(problem: Problem, relative: float) -> float:
    full, empty = problem.metric_ends
    return max(empty - full, 0.0) * relative


# ----- rows -------------------------------------------------------------------------------------------------
def row_patching(model: Any, problem: Problem, device: torch.device, repeats: int) -> dict[str, Any]:
    n = problem.task.n_prompts
    gen = torch.Generator().manual_seed(0)
    half = Circuit(problem.graph, torch.rand(problem.graph.n_edges, generator=gen) < 0.5)
    with torch.no_grad():
        plain = timed(lambda: run_logits(model, problem.task.clean, batch_size=n), device, repeats=repeats)
    patched = timed(lambda: problem.patcher.run(problem.ctx, half.kept[None]), device, repeats=repeats)
    full = timed(lambda: problem.patcher.run(problem.ctx, torch.ones(1, problem.graph.n_edges, dtype=torch.bool)),
                 device, repeats=repeats)
    return {"patched_half_circuit_s": patched, "patched_full_circuit_s": full,
            "baseline": {"plain_forward_s": plain}, "ratio_patched_to_plain": patched / plain,
            "target": "ratio <= 1.5", "met": patched / plain <= 1.5}


def row_eap_ig(model: Any, problem: Problem, device: torch.device, steps: int, repeats: int) -> dict[str, Any]:
    n = problem.task.n_prompts
    with torch.no_grad():
        plain = timed(lambda: run_logits(model, problem.task.clean, batch_size=n), device, repeats=repeats)
    ig = timed(lambda: eap_ig_scores(problem, steps=steps), device, repeats=repeats)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"steps": steps, "eap_ig_s": ig, "baseline": {"plain_forward_s": plain},
            "eap_ig_over_plain_forward": ig / plain, "peak_gpu_memory_gb": peak,
            "target": "eap_ig_s <= 2 (GPU)", "met": ig <= 2.0}


def journal_tested(path: Path) -> int:
    """Tested decisions (a score, not a dead receiver's NaN) already in a journal file."""
    if not path.exists():
        return 0
    n = 0
    for line in path.read_text().split("\n")[1:-1]:
        try:
            n += json.loads(line).get("s") is not None
        except ValueError:
            pass
    return n


def acdc_with_deadline(problem: Problem, tau: float, journal: Path, deadline: float, chunk: int,
                       max_batch: int | None) -> tuple[Circuit, dict[str, Any]]:
    """Exact greedy ACDC (reference order) with a journal, in chunks of `chunk` tested edges, stopping between
    chunks once `deadline` (perf_counter) has passed. Returns the last circuit (complete or partial) and timings
    of this run alone (resumed decisions excluded)."""
    before = journal_tested(journal)
    sync(problem.patcher.device)
    start = time.perf_counter()
    max_tests, resumed, calls = before + chunk, None, 0
    while True:
        circuit = acdc(problem, tau, journal=str(journal), max_tests=max_tests, max_batch=max_batch)
        calls += 1
        resumed = circuit.settings["resumed_decisions"] if resumed is None else resumed
        if circuit.settings["complete"] or time.perf_counter() >= deadline:
            break
        max_tests = circuit.settings["n_tested"] + chunk
    sync(problem.patcher.device)
    wall = time.perf_counter() - start
    tested_now = circuit.settings["n_tested"] - before
    fresh = resumed == 0
    n = problem.graph.n_edges
    timing = {"wall_s": wall, "complete": circuit.settings["complete"], "resumed_decisions": resumed,
              "resumed_tested": before, "tested_this_run": tested_now, "n_tested": circuit.settings["n_tested"],
              "tested_edges_per_s": tested_now / wall if wall > 0 else math.nan,
              "graph_edges_per_s": n / wall if fresh and circuit.settings["complete"] else None,
              "acdc_calls": calls, "chunk": chunk, "max_batch": circuit.settings["max_batch"],
              "n_kept": circuit.n_kept if circuit.settings["complete"] else None,
              "kept_fraction": circuit.n_kept / n if circuit.settings["complete"] else None,
              "faithfulness": _faithfulness(circuit) if circuit.settings["complete"] else None}
    return circuit, timing


def _faithfulness(c: Circuit) -> float:
    from acdc_compare.faithfulness import circuit_faithfulness

    return circuit_faithfulness(c)


def oracle_evaluator(model: Any, problem: Problem) -> Callable[[torch.Tensor], float]:
    """M(kept) with one full forward through the bridge's own hooks (tests' oracle, REFERENCE.md section 2)."""
    graph, task, device = problem.graph, problem.task, problem.patcher.device
    clean, corrupted = task.clean.to(device), task.corrupted.to(device)
    pos = task.positions[:, 0].to(device)
    reference = problem.clean_logits

    @torch.no_grad()
    def evaluate(kept: torch.Tensor) -> float:
        logits = hook_patched_logits(model, graph, clean, kept, corrupted=corrupted)
        logits = logits[torch.arange(len(pos), device=logits.device), pos]
        return float(kl_divergence(reference.to(logits.device), logits[None, :, None])[0])

    return evaluate


class _Stop(Exception):
    pass


def oracle_prefix(model: Any, problem: Problem, tau: float, max_edges: int, max_s: float) -> dict[str, Any]:
    """`oracle_acdc` stopped once it is about to test edge max_edges + 1 or max_s has passed. Returns the
    tested prefix's length, its decisions (mask at the stop) and metric values, and its rate."""
    evaluate = oracle_evaluator(model, problem)
    values: list[float] = []
    snapshot: list[torch.Tensor] = []
    device = problem.patcher.device
    start = [0.0]

    def counted(kept: torch.Tensor) -> float:
        if len(values) == 1:
            start[0] = time.perf_counter()  # the rate excludes the first (full-circuit) evaluation
        if len(values) > max_edges or (len(values) > 1 and time.perf_counter() - start[0] >= max_s):
            snapshot.append(kept.clone())
            raise _Stop
        values.append(evaluate(kept))
        return values[-1]

    t0 = time.perf_counter()
    try:
        kept, _ = oracle_acdc(counted, problem.graph, tau)
        snapshot.append(kept.clone())
        finished = True
    except _Stop:
        finished = False
    sync(device)
    wall = time.perf_counter() - (start[0] or t0)
    tested = len(values) - 1
    return {"kept": snapshot[-1], "values": values, "tested": tested, "finished": finished,
            "wall_s": wall, "edges_per_s": tested / wall if wall > 0 and tested else math.nan}


def compare_prefix(problem: Problem, circuit: Circuit, oracle: dict[str, Any], tau: float) -> dict[str, Any]:
    """The engine's decisions on the oracle's tested prefix (the first tested edges of the reference order).
    With random GPT-2 weights (initializer range 0.02) KL(full || empty) is ~1e-4, so tau is near the float32
    noise of the metric: `max_abs_score_difference` (engine vs oracle metric change) is that noise, and a
    mismatch on an edge whose score lies within it of tau is a float tie, not a wrong decision."""
    graph = problem.graph
    order = [e for step in reference_order(graph) for e in step.edges]
    engine_tested = [e for e in order if not math.isnan(float(circuit.scores[e]))]
    n = min(oracle["tested"], len(engine_tested))
    prefix = engine_tested[:n]
    mismatched = [graph.edge_names[e] for e in prefix if bool(circuit.kept[e]) != bool(oracle["kept"][e])]
    # the oracle's metric change per tested edge, from its values and its own decisions
    current, worst = oracle["values"][0], 0.0
    for e, value in zip(prefix, oracle["values"][1:]):
        worst = max(worst, abs((value - current) - float(circuit.scores[e])))
        if not bool(oracle["kept"][e]):
            current = value
    margins = [abs(float(circuit.scores[e]) - tau) for e in prefix]
    beyond = [graph.edge_names[e] for e in prefix if bool(circuit.kept[e]) != bool(oracle["kept"][e])
              and abs(float(circuit.scores[e]) - tau) > worst]
    return {"prefix_edges": n, "decisions_identical": not mismatched and n > 0, "mismatched_edges": mismatched[:20],
            "mismatches_beyond_score_noise": beyond[:20], "min_margin_to_threshold": min(margins, default=None),
            "kept_on_prefix": sum(bool(circuit.kept[e]) for e in prefix),
            "max_abs_score_difference": worst}


def row_acdc_gpt2(args: argparse.Namespace, model: Any, problem: Problem, clock: Clock,
                  journal: Path) -> dict[str, Any]:
    tau = relative_tau(problem, args.gpt2_relative)
    oracle_reserve = args.oracle_s + 10
    deadline = clock.deadline(args.acdc_max_s) - (oracle_reserve if clock.left() > 2 * oracle_reserve else 0)
    circuit, timing = acdc_with_deadline(problem, tau, journal, deadline, args.chunk, args.max_batch)
    row: dict[str, Any] = {"n_edges": problem.graph.n_edges, "relative_threshold": args.gpt2_relative,
                           "threshold": tau, "metric_ends": list(problem.metric_ends), "journal": str(journal),
                           **timing, "target": "wall_s <= 60 for the whole graph (fresh run)",
                           "met": bool(timing["complete"] and timing["resumed_decisions"] == 0
                                       and timing["wall_s"] <= 60)}
    oracle = oracle_prefix(model, problem, tau, args.oracle_edges, min(args.oracle_s, max(clock.left() - 5, 1)))
    check = compare_prefix(problem, circuit, oracle, tau)
    row["baseline"] = {"oracle": "hook_oracle.oracle_acdc, one full hook-patched forward per tested edge",
                       "oracle_tested": oracle["tested"], "oracle_finished_graph": oracle["finished"],
                       "oracle_wall_s": oracle["wall_s"], "oracle_edges_per_s": oracle["edges_per_s"],
                       "oracle_whole_graph_estimate_s": (timing["n_tested"] / oracle["edges_per_s"]
                                                          if timing["complete"] else None)}
    row["speedup_tested_edges_per_s"] = timing["tested_edges_per_s"] / oracle["edges_per_s"]
    row.update(check)
    return row


def row_acdc_default(args: argparse.Namespace, model: Any, task: Task | str, label: str, clock: Clock,
                     journal: Path, circuits_dir: Path) -> dict[str, Any]:
    from acdc_compare.api import prepare
    from acdc_compare.experiment import task_threshold
    from acdc_compare.export import save_circuit

    device = model.W_E.device
    problem = prepare(task, model=model, n_prompts=args.n_prompts, seed=args.seed)
    tau = task_threshold(problem, args.relative)
    with torch.no_grad():
        plain = timed(lambda: run_logits(model, problem.task.clean, batch_size=problem.task.n_prompts), device)
    evaluate = oracle_evaluator(model, problem)
    full = torch.ones(problem.graph.n_edges, dtype=torch.bool)
    one_oracle = timed(lambda: evaluate(full), device, repeats=1)
    circuit, timing = acdc_with_deadline(problem, tau, journal, clock.deadline(args.acdc_max_s), args.chunk,
                                         args.max_batch)
    row: dict[str, Any] = {"task": label, "model": problem.model_name, "n_prompts": problem.task.n_prompts,
                           "n_edges": problem.graph.n_edges, "relative_threshold": args.relative, "threshold": tau,
                           "metric_ends": list(problem.metric_ends), "journal": str(journal), **timing,
                           "baseline": {"plain_forward_s": plain, "oracle_one_evaluation_s": one_oracle,
                                        "oracle_estimate_s": timing["n_tested"] * one_oracle}}
    if timing["complete"]:
        circuits_dir.mkdir(parents=True, exist_ok=True)
        row["circuit_json"] = str(save_circuit(circuit, circuits_dir / f"{label}.json"))
    return row


# ----- the run ----------------------------------------------------------------------------------------------
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
    previous = _previous_rows(args.out) if args.resume else {}
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
        _print_row(row)
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


def _previous_rows(path: Path) -> dict[str, dict[str, Any]]:
    """Finished rows of an earlier run's results file (done, and for ACDC complete)."""
    try:
        rows = json.loads(path.read_text()).get("rows", [])
    except (OSError, ValueError):
        return {}
    return {r["row"]: r for r in rows if r.get("status") == "done" and r.get("complete", True)}


def _print_row(row: dict[str, Any]) -> None:
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


if __name__ == "__main__":
    main()
