"""`discover(task, threshold)`: the user's main call, and `sweep` over thresholds sharing one preparation."""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, get_args

import torch

from acdc_compare.algorithms.eap import check_eap_metric
from acdc_compare.algorithms.problem import Problem, check_fits, make_problem, span_patcher
from acdc_compare.algorithms.registry import algorithm, make_options, run, spec_of
from acdc_compare.backends import DEFAULT_MODEL, load_model, make_patcher, model_name, tokenizer
from acdc_compare.circuit import Circuit
from acdc_compare.faithfulness import normalized_faithfulness
from acdc_compare.memory import parse_size
from acdc_compare.metrics import parse_metric
from acdc_compare.patching import parse_ablation
from acdc_compare.tasks.base import Corruption, Task, TaskError, parse_corruption
from acdc_compare.tasks.prompts_file import HeldOutSplit, PromptsFile, is_prompts_file, split_rows, task_from_file
from acdc_compare.tasks.registry import make_task
from acdc_compare.types import Ablation, Metric, Positions, ThresholdScale

_loaded: dict[tuple[str, str, str], Any] = {}



def get_model(model: str | Any = DEFAULT_MODEL, device: str | torch.device | None = None,
              dtype: torch.dtype | None = None) -> Any:
    """A loaded model: `model` itself if it is one, else `load_model(model)` (kept for reuse by name)."""
    if not isinstance(model, str):
        return model
    key = (model, str(device), str(dtype))
    if key not in _loaded:
        _loaded.clear()  # hold one model at a time: they are large
        _loaded[key] = load_model(model, device=device, dtype=dtype)
    return _loaded[key]


def resolve_task(task: Task | PromptsFile | str, model: Any, n_prompts: int | None = None, seed: int = 0,
                 corruption: Corruption | str | None = None) -> Task:
    """A Task value, building a named task (e.g. "ioi", "pet-last") with the model's tokenizer and the given
    corruption (None: the task's default), or a prompts file ("my_prompts.jsonl" / ".csv": columns prompt,
    corrupted, answer, wrong answer; its first `n_prompts` rows). A Task given as a value (or a file) keeps
    its own corrupted prompts, so a `corruption` other than the one it was built with is refused."""
    if isinstance(task, PromptsFile) or (isinstance(task, str) and is_prompts_file(task)):
        task = task_from_file(tokenizer(model), task)
    if isinstance(task, Task):
        wanted = None if corruption is None else parse_corruption(corruption, tuple(Corruption), task.name)
        if wanted is not None and task.corruption is not wanted:
            raise TaskError(f"task {task.name!r} was built with corruption "
                            f"{None if task.corruption is None else task.corruption.value!r}; cannot switch it "
                            f"to {corruption!r} (build the task again with corruption=...)")
        return task.subset(n_prompts) if n_prompts is not None and n_prompts < task.n_prompts else task
    if not isinstance(task, str):
        raise TypeError(f"task must be a Task or a task name, got {type(task).__name__}")
    return make_task(task, tokenizer(model), n=n_prompts, seed=seed, corruption=corruption)


def prepare(task: Task | PromptsFile | str, *, model: str | Any = DEFAULT_MODEL, metric: Metric | str = Metric.KL,
            ablation: Ablation | str = Ablation.CORRUPTED, include_direct: bool = True,
            n_prompts: int | None = None, seed: int = 0, device: str | torch.device | None = None,
            dtype: torch.dtype | None = None, corruption: Corruption | str | None = None,
            check: bool = True, max_memory: int | str | None = None, grad: bool = False,
            positions: Positions = "all") -> Problem:
    """Load the model, build the task and run the ablated and full forwards once (shared by every method
    and threshold run on it). The engine is checked against the model's own forward first (`make_patcher`);
    `check=False` skips that probe (never the refusal of unsupported settings). `max_memory` (bytes, or
    '24GiB', '80GB') bounds what the run may hold beyond the weights (default: what the device has free);
    a task that cannot fit it (with `grad`: EAP's and EAP-IG's differentiable run) is refused before any
    activation is computed, naming the prompt count that fits. `positions="spans"` splits every edge by the
    task's named spans (position-aware circuits; `Task.span_schema`)."""
    parse_metric(metric)
    parse_ablation(ablation)
    budget = None if max_memory is None else parse_size(max_memory)
    bridge = get_model(model, device=device, dtype=dtype)
    if isinstance(task, str) and not is_prompts_file(task) and n_prompts is not None and n_prompts > _PROBE_PROMPTS:
        probe = resolve_task(task, bridge, n_prompts=_PROBE_PROMPTS, seed=seed, corruption=corruption)
        patcher = make_patcher(bridge, include_direct=include_direct, check=check)
        check_fits(patcher, n_prompts, probe.clean.shape[1], probe.positions.shape[1], grad=grad,
                   max_memory=budget)  # before building them all
        the_task = resolve_task(task, bridge, n_prompts=n_prompts, seed=seed, corruption=corruption)
    else:
        the_task = resolve_task(task, bridge, n_prompts=n_prompts, seed=seed, corruption=corruption)
        patcher = make_patcher(bridge, include_direct=include_direct, check=check)
    patcher = span_patcher(patcher, the_task, positions)
    return make_problem(patcher, the_task, metric=metric, ablation=ablation, model_name=model_name(bridge),
                        grad=grad, max_memory=budget)


_PROBE_PROMPTS = 16  # a generated task this big is built first to size a large one before all its prompts are made
# (a prompts file is read whole: its rows, not --n-prompts, are what must fit)

_PREPARE_KEYS = frozenset(inspect.signature(prepare).parameters) - {"task"}


def method_options(threshold: Any = None, method: str | None = None, **options: Any) -> Any:
    """A method's options: `threshold` itself when it already is an options value (then `method`, if given,
    must match and no other option may be given), else `method`'s options (default "acdc") made from
    `threshold` and `options`, validated now."""
    if threshold is not None and not isinstance(threshold, (int, float, str)):
        spec = spec_of(threshold)
        if method is not None and algorithm(method) is not spec:
            raise ValueError(f"options of method {spec.name!r} given with method={method!r}")
        if options:
            raise ValueError(f"give the options inside {type(threshold).__name__}, not also as keywords: "
                             f"{', '.join(sorted(options))}")
        return threshold
    return make_options(method or "acdc", threshold, **options)


def run_method(problem: Problem, method: str | Any = "acdc", threshold: float | None = None,
               **options: Any) -> Circuit:
    """Run one discovery method on a prepared problem: `method` is a registered name (options as keywords:
    see each method's options class) or an options value. Scores: higher = more important."""
    if isinstance(method, str):
        return run(problem, method_options(threshold, method, **options))
    return run(problem, method_options(method, None, **options))


def discover(task: Task | str, threshold: float | Any = None, *, method: str | None = None,
             model: str | Any = DEFAULT_MODEL, metric: Metric | str = Metric.KL,
             ablation: Ablation | str = Ablation.CORRUPTED, include_direct: bool = True,
             n_prompts: int | None = None, seed: int = 0, device: str | torch.device | None = None,
             dtype: torch.dtype | None = None, corruption: Corruption | str | None = None,
             threshold_scale: ThresholdScale = "absolute", max_memory: int | str | None = None,
             held_out: float | None = None, positions: Positions = "all", **options: Any) -> Circuit:
    """Discover the circuit behind a task.

    task: a `Task`, a task name ("ioi", "pet-last", ...) built with the model's tokenizer, or a prompts file
        (.jsonl / .csv).
    threshold: ACDC's tau (an edge is removed when the metric rises by less); for "eap"/"eap-ig" a score
        threshold (or give `top_n`); or a method's options value (`AcdcOptions(...)`, `HybridOptions(...)`).
    threshold_scale: "absolute" (default): the threshold is in the metric's own units (KL in nats);
        "relative": a fraction of the task's gap M(empty) - M(full) (KL(full || empty) for KL), as the demo
        and sweep specs use it, so tasks of different strength are comparable (e.g. 0.001).
    method: a registered method (`acdc_compare.algorithms.registry.ALGORITHMS`): "acdc" (exact greedy,
        default), "eap", "eap-ig", or "hybrid" (EAP-IG picks the top `k` candidates, or the fewest top edges
        whose circuit reaches normalised faithfulness `coverage`; exact ACDC decides among them).
    model: a loaded TransformerBridge or a name for `load_model` (default: offline SmolLM2-135M).
    metric: "kl" (KL(full || circuit) at the scored positions) or "logit_diff" (negated).
    ablation: "corrupted" (the task's corrupted prompts), "zero" or "mean".
    corruption: which corrupted prompts a named task gets ("meaning", "answers"; None: the task's default).
    max_memory: bytes (or '24GiB') the run may hold beyond the weights (default: what the device has free);
        batches are chosen to fit it, and a run that cannot fit is refused before any activation is computed.
    held_out: with a prompts file, the fraction of its rows (in (0, 1)) never discovered on: the last ones after
        a shuffle seeded by `seed` (`split_rows`; `n_prompts` then counts the other rows). The circuit's
        normalised faithfulness on them is `metrics["held_out_faithfulness"]`, and which file lines they are
        `settings["held_out_lines"]`; fewer than 8 held-out rows give a warning (too noisy to trust).
    positions: "all" (default): an edge stands for every token position; "spans": one edge per named span of
        the prompts (position-aware circuits after PEAP: `Task.spans`, e.g. IOI's IO, S1, S2, END; a task
        without named spans whose prompts share one length gets end-aligned spans end-0, end-1, end-2, rest).
        The circuit is on the span graph (`circuit.graph.spans`); edges are named 'a3.h5->a9.h9<q>@END'.
    options: the method's own (ACDC: order, abs_value, journal, progress, max_batch, max_tests; hybrid also
        k, coverage, steps; EAP: top_n, absolute; EAP-IG also steps, path, rule). They are validated before
        the model is loaded.
    Returns a `Circuit` carrying kept edges, scores, the full/circuit/empty metric values and the settings.
    """
    chosen = method_options(threshold, method, **options)
    check_candidates(chosen)
    if spec_of(chosen).name == "eap":
        check_eap_metric(metric)  # before the model loads
    check_threshold_scale(threshold_scale, chosen)
    split = None
    if held_out is not None:
        split = split_rows(task if isinstance(task, (str, PromptsFile)) else repr(task), held_out, seed)
        if split.warning():
            warnings.warn(split.warning(), UserWarning, stacklevel=2)
    shared = dict(model=model, metric=metric, ablation=ablation, include_direct=include_direct, device=device,
                  dtype=dtype, corruption=corruption, max_memory=max_memory, positions=positions)
    problem = prepare(task if split is None else split.fit, n_prompts=n_prompts, seed=seed,
                      grad=needs_gradients(chosen), **shared)
    found = run_scaled(problem, chosen, threshold_scale)
    return found if split is None else with_held_out(found, split, **shared)


def with_held_out(circuit: Circuit, split: HeldOutSplit, **prepare_kwargs: Any) -> Circuit:
    """`circuit` with its normalised faithfulness on the split's held-out rows (metrics "held_out_faithfulness";
    NaN where the task has no effect there) and which rows those are (settings "held_out", "held_out_seed",
    "held_out_lines"). `prepare_kwargs`: `prepare`'s model, metric, ablation, ... as the discovery used them."""
    problem = prepare(split.held, check=False, **{k: v for k, v in prepare_kwargs.items()
                                                  if k not in ("n_prompts", "seed", "grad", "check")})
    full, empty = problem.metric_ends
    try:
        faithfulness = normalized_faithfulness(float(problem.evaluate(circuit)[0]), full, empty)
    except ValueError:
        faithfulness = math.nan
    metrics = {**circuit.metrics, "held_out_faithfulness": faithfulness}
    settings = {**circuit.settings, "held_out": split.fraction, "held_out_seed": split.seed,
                "held_out_lines": list(split.held.lines)}
    return dataclasses.replace(circuit, metrics=metrics, settings=settings)


def check_candidates(options: Any, flag: str = "k") -> None:
    """Refuse a hybrid's `k` below 1 (a ValueError saying why): no candidate leaves an empty circuit, found
    only after the EAP-IG ranking's minutes."""
    k = getattr(options, "k", None)
    if k is not None and k < 1:
        raise ValueError(f"{flag} must be at least 1, got {k}: {flag} {k} gives EAP-IG no candidate to keep, so the "
                         "circuit would be empty after the whole ranking run; give the number of top EAP-IG edges "
                         "exact ACDC decides among (e.g. 250), or leave it out for all edges")


def check_threshold_scale(threshold_scale: str, options: Any = None) -> ThresholdScale:
    """`threshold_scale` itself when it is "absolute" or "relative" (a relative one needs `options` to hold a
    threshold to scale, when given); a ValueError saying what to give otherwise."""
    if threshold_scale not in get_args(ThresholdScale):
        raise ValueError(f"threshold_scale must be one of {list(get_args(ThresholdScale))}, got {threshold_scale!r}")
    if threshold_scale == "relative" and options is not None and getattr(options, "threshold", None) is None:
        raise ValueError("threshold_scale='relative' scales a threshold, but none was given (top_n keeps a number "
                         "of edges, which has no scale); give a threshold, or leave threshold_scale 'absolute'")
    return threshold_scale  # type: ignore[return-value]


def scaled_options(problem: Problem, options: Any, threshold_scale: ThresholdScale = "absolute") -> Any:
    """`options` with a relative threshold made absolute for this problem: the fraction x (M(empty) - M(full))
    (`Problem.relative_threshold`); absolute options unchanged."""
    check_threshold_scale(threshold_scale, options)
    if threshold_scale == "absolute":
        return options
    return dataclasses.replace(options, threshold=problem.relative_threshold(options.threshold))


def run_scaled(problem: Problem, options: Any, threshold_scale: ThresholdScale = "absolute") -> Circuit:
    """Run the method on the problem with its threshold on `threshold_scale`; a relative run's circuit records
    the fraction (settings "threshold_scale", "relative_threshold") beside the absolute threshold it used."""
    found = run(problem, scaled_options(problem, options, threshold_scale))
    if threshold_scale == "absolute":
        return found
    settings = {**found.settings, "threshold_scale": "relative", "relative_threshold": options.threshold}
    return dataclasses.replace(found, settings=settings)


def needs_gradients(options: Any) -> bool:
    """Whether a method's run takes a differentiable forward (every method but exact ACDC: EAP, EAP-IG and the
    hybrid, which ranks by EAP-IG)."""
    return spec_of(options).name != "acdc"


def sweep(task: Task | str | Any, thresholds: Sequence[float] | None = None, *, method: str = "acdc",
          executor: str | None = None, out: str | os.PathLike = "results/sweep",
          threshold_scale: ThresholdScale = "absolute", **kwargs: Any) -> Any:
    """Two forms.

    `sweep(task, thresholds, method=..., **kwargs)`: one circuit per threshold, in this process; the model,
    task and ablated run are prepared once and shared. `kwargs` are `prepare`'s and the method's options;
    `threshold_scale="relative"` reads the thresholds as fractions of the task's gap, as `discover` does.
    Returns the circuits.

    `sweep(spec, executor="local" | "ray", out=DIR, **kwargs)`: a grid sweep (`acdc_compare.sweeps`): `spec`
    is a `SweepSpec`, a mapping of its fields or a TOML file; jobs resume from `out`; `kwargs` are
    `run_sweep`'s (address, workers, threads, device, log). Returns a `SweepResult`.
    """
    if _is_spec(task):
        if thresholds is not None or threshold_scale != "absolute":
            raise ValueError("a sweep spec holds its own thresholds and threshold_scale; do not pass them with it")
        from acdc_compare.sweeps import run_sweep

        return run_sweep(task, out, executor=executor or "local", **kwargs)
    if executor is not None:
        raise ValueError("executor= runs a sweep spec: pass a SweepSpec, a mapping or a .toml file")
    if thresholds is None:
        raise ValueError("give the thresholds to sweep over")
    problem_kwargs = {k: v for k, v in kwargs.items() if k in _PREPARE_KEYS}
    method_kwargs = {k: v for k, v in kwargs.items() if k not in _PREPARE_KEYS}
    all_options = [make_options(method, tau, **method_kwargs) for tau in thresholds]
    for options in all_options:
        check_threshold_scale(threshold_scale, options)
    problem = prepare(task, **problem_kwargs)
    return [run_scaled(problem, options, threshold_scale) for options in all_options]


def _is_spec(value: Any) -> bool:
    """A sweep spec value, a mapping of one, or a path to a TOML spec (not a task or a task name)."""
    from acdc_compare.sweeps.spec import SweepSpec

    return isinstance(value, (SweepSpec, Mapping, os.PathLike)) or (isinstance(value, str)
                                                                    and value.endswith(".toml"))
