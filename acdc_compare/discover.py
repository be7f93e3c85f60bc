"""`discover(task, threshold)`: the user's main call, and `sweep` over thresholds sharing one preparation."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from acdc_compare.algorithms.acdc import EdgeOrder, acdc, check_threshold
from acdc_compare.algorithms.problem import Problem, make_problem
from acdc_compare.circuit import Circuit
from acdc_compare.metrics import parse_metric
from acdc_compare.model import DEFAULT_MODEL, load_model, model_name, tokenizer
from acdc_compare.patching import Patcher, _parse_ablation
from acdc_compare.tasks.base import Corruption, Task, TaskError, parse_corruption
from acdc_compare.types import Ablation, Method, Metric

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


def resolve_task(task: Task | str, model: Any, n_prompts: int | None = None, seed: int = 0,
                 corruption: Corruption | str | None = None) -> Task:
    """A Task value, building a named task (e.g. "ioi", "pet-last") with the model's tokenizer and the given
    corruption (None: the task's default). A Task given as a value keeps its own corrupted prompts, so a
    `corruption` other than the one it was built with is refused."""
    if isinstance(task, Task):
        wanted = None if corruption is None else parse_corruption(corruption, tuple(Corruption), task.name)
        if wanted is not None and task.corruption is not wanted:
            raise TaskError(f"task {task.name!r} was built with corruption "
                            f"{None if task.corruption is None else task.corruption.value!r}; cannot switch it "
                            f"to {corruption!r} (build the task again with corruption=...)")
        return task.subset(n_prompts) if n_prompts is not None and n_prompts < task.n_prompts else task
    if not isinstance(task, str):
        raise TypeError(f"task must be a Task or a task name, got {type(task).__name__}")
    from acdc_compare.tasks.registry import make_task

    return make_task(task, tokenizer(model), n=n_prompts, seed=seed, corruption=corruption)


def prepare(task: Task | str, *, model: str | Any = DEFAULT_MODEL, metric: Metric | str = Metric.KL,
            ablation: Ablation | str = Ablation.CORRUPTED, include_direct: bool = True,
            n_prompts: int | None = None, seed: int = 0, device: str | torch.device | None = None,
            dtype: torch.dtype | None = None, corruption: Corruption | str | None = None) -> Problem:
    """Load the model, build the task and run the ablated and full forwards once (shared by every method
    and threshold run on it)."""
    parse_metric(metric)
    _parse_ablation(ablation)
    bridge = get_model(model, device=device, dtype=dtype)
    the_task = resolve_task(task, bridge, n_prompts=n_prompts, seed=seed, corruption=corruption)
    patcher = Patcher.from_model(bridge, include_direct=include_direct)
    return make_problem(patcher, the_task, metric=metric, ablation=ablation, model_name=model_name(bridge))


def run_method(problem: Problem, method: Method | str = Method.ACDC, threshold: float | None = None, *,
               order: EdgeOrder | Sequence[str] = "reference", abs_value: bool = False,
               top_n: int | None = None, steps: int = 5, k: int | None = None,
               journal: str | os.PathLike | None = None, progress: bool = False,
               max_batch: int | None = None, prior: torch.Tensor | None = None,
               coverage: float | None = None) -> Circuit:
    """Run one discovery method on a prepared problem. Scores: higher = more important.

    "hybrid" takes `k` candidates or, with `coverage`, the fewest top EAP-IG edges reaching that normalised
    faithfulness; `prior`: EAP-IG scores [n_edges] already computed for this problem, used instead of running
    EAP-IG again."""
    method = _parse_method(method)
    if method is Method.ACDC:
        return acdc(problem, _needed(threshold, method), order=order, abs_value=abs_value,
                    max_batch=max_batch, journal=journal, progress=progress)
    if method is Method.HYBRID:
        from acdc_compare.algorithms.hybrid import hybrid

        return hybrid(problem, _needed(threshold, method), k=k, coverage=coverage, steps=steps, prior=prior,
                      order=order,
                      abs_value=abs_value, max_batch=max_batch, journal=journal, progress=progress)
    from acdc_compare.algorithms.eap import eap, eap_ig

    if (top_n is None) == (threshold is None):
        raise ValueError(f"method {method.value!r} keeps edges by score: give exactly one of threshold or top_n")
    if method is Method.EAP:
        return eap(problem, top_n=top_n, threshold=threshold)
    return eap_ig(problem, steps=steps, top_n=top_n, threshold=threshold)


def discover(task: Task | str, threshold: float | None = None, *, model: str | Any = DEFAULT_MODEL,
             method: Method | str = Method.ACDC, metric: Metric | str = Metric.KL,
             ablation: Ablation | str = Ablation.CORRUPTED, order: EdgeOrder | Sequence[str] = "reference",
             abs_value: bool = False, include_direct: bool = True, n_prompts: int | None = None, seed: int = 0,
             top_n: int | None = None, steps: int = 5, k: int | None = None, coverage: float | None = None,
             journal: str | os.PathLike | None = None, progress: bool = False, max_batch: int | None = None,
             device: str | torch.device | None = None, dtype: torch.dtype | None = None,
             corruption: Corruption | str | None = None) -> Circuit:
    """Discover the circuit behind a task.

    task: a `Task`, or a task name ("ioi", "pet-last", ...) built with the model's tokenizer.
    threshold: ACDC's tau (an edge is removed when the metric rises by less); for "eap"/"eap-ig" a score
        threshold (or give `top_n`).
    model: a loaded TransformerBridge or a name for `load_model` (default: offline SmolLM2-135M).
    method: "acdc" (exact greedy), "eap", "eap-ig", or "hybrid" (EAP-IG picks the top `k` candidates, or
        the fewest top edges whose circuit reaches normalised faithfulness `coverage`; exact ACDC decides
        among them).
    metric: "kl" (KL(full || circuit) at the scored positions) or "logit_diff" (negated).
    ablation: "corrupted" (the task's corrupted prompts), "zero" or "mean".
    corruption: which corrupted prompts a named task gets ("meaning", "answers"; None: the task's default).
    journal: a file recording ACDC's decisions as it goes; rerunning with the same path resumes.
    Returns a `Circuit` carrying kept edges, scores, the full/circuit/empty metric values and the settings.
    """
    method = _parse_method(method)
    if method in (Method.ACDC, Method.HYBRID):
        check_threshold(_needed(threshold, method))
    elif threshold is not None:
        float(threshold)
    problem = prepare(task, model=model, metric=metric, ablation=ablation, include_direct=include_direct,
                      n_prompts=n_prompts, seed=seed, device=device, dtype=dtype, corruption=corruption)
    return run_method(problem, method, threshold, order=order, abs_value=abs_value, top_n=top_n, steps=steps,
                      k=k, coverage=coverage, journal=journal, progress=progress, max_batch=max_batch)


def sweep(task: Task | str, thresholds: Sequence[float], *, method: Method | str = Method.ACDC,
          progress: bool = False, **kwargs: Any) -> list[Circuit]:
    """One circuit per threshold; the model, task and ablated run are prepared once and shared."""
    for tau in thresholds:
        check_threshold(tau)
    run_keys = {"order", "abs_value", "top_n", "steps", "k", "coverage", "max_batch"}
    problem = prepare(task, **{k: v for k, v in kwargs.items() if k not in run_keys})
    run_kwargs = {k: v for k, v in kwargs.items() if k in run_keys}
    return [run_method(problem, method, tau, progress=progress, **run_kwargs) for tau in thresholds]


def _needed(threshold: float | None, method: Method) -> float:
    if threshold is None:
        raise ValueError(f"method {method.value!r} needs a threshold")
    return threshold


def _parse_method(method: Method | str) -> Method:
    try:
        return Method(method)
    except ValueError:
        raise ValueError(f"unknown method {method!r}; choose one of {[m.value for m in Method]}") from None
