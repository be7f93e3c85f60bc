"""Tasks for circuit discovery: the `Task` value, builders from strings, generators, evaluation, registry.

`acdc_compare.metrics` imports `acdc_compare.tasks.base`, and evaluation imports the metrics, so the names
that depend on evaluation (and the registry) are loaded lazily on first access to keep imports one-way.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from acdc_compare.tasks.base import Corruption, Task, TaskError

if TYPE_CHECKING:
    from acdc_compare.tasks.build import single_token_words, task_from_prompts
    from acdc_compare.tasks.comparison import (
        make_analogy,
        make_attribute,
        make_comparative,
        make_opposites,
        make_pet_family,
        make_recall,
        make_size,
    )
    from acdc_compare.tasks.evaluate import TaskEvaluation, evaluate_task
    from acdc_compare.tasks.greater_than import make_greater_than
    from acdc_compare.tasks.induction import make_induction
    from acdc_compare.tasks.ioi import make_ioi, make_ioi_acdc
    from acdc_compare.tasks.registry import (
        ORDER_MEANING_PAIRS,
        TASKS,
        OrderMeaningPair,
        TaskSpec,
        format_tasks_table,
        make_task,
        task_names,
        task_spec,
        tasks_table,
    )

_LAZY = {
    "task_from_prompts": "build", "single_token_words": "build",
    "make_ioi": "ioi", "make_ioi_acdc": "ioi",
    "make_pet_family": "comparison", "make_comparative": "comparison", "make_attribute": "comparison",
    "make_size": "comparison", "make_opposites": "comparison", "make_analogy": "comparison",
    "make_recall": "comparison",
    "make_greater_than": "greater_than", "make_induction": "induction",
    "TaskEvaluation": "evaluate", "evaluate_task": "evaluate",
    "TASKS": "registry", "TaskSpec": "registry", "ORDER_MEANING_PAIRS": "registry",
    "OrderMeaningPair": "registry", "make_task": "registry", "task_names": "registry", "task_spec": "registry",
    "tasks_table": "registry", "format_tasks_table": "registry",
}

__all__ = ["Corruption", "Task", "TaskError", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'acdc_compare.tasks' has no attribute {name!r}")
    value = getattr(import_module(f"acdc_compare.tasks.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
