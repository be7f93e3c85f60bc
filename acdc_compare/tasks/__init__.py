"""Tasks for circuit discovery: the `Task` value, builders from strings, generators, evaluation, registry."""

from acdc_compare.tasks.base import Corruption, Task, TaskError
from acdc_compare.tasks.build import single_token_words, task_from_prompts
from acdc_compare.tasks.comparison import (
    make_analogy,
    make_attribute,
    make_comparative,
    make_opposites,
    make_pet_family,
    make_size,
)
from acdc_compare.tasks.evaluate import TaskEvaluation, evaluate_task
from acdc_compare.tasks.greater_than import make_greater_than
from acdc_compare.tasks.induction import make_induction
from acdc_compare.tasks.ioi import make_ioi, make_ioi_acdc
from acdc_compare.tasks.recall import make_recall
from acdc_compare.tasks.registry import (
    ORDER_MEANING_PAIRS,
    TASKS,
    OrderMeaningPair,
    TaskSpec,
    format_tasks_table,
    held_out_wordings,
    make_task,
    task_names,
    tasks_table,
)

__all__ = [
    "Corruption", "ORDER_MEANING_PAIRS", "TASKS", "OrderMeaningPair", "Task", "TaskError", "TaskEvaluation", "TaskSpec",
    "evaluate_task", "format_tasks_table", "held_out_wordings", "make_analogy", "make_attribute", "make_comparative",
    "make_greater_than", "make_induction", "make_ioi", "make_ioi_acdc", "make_opposites", "make_pet_family",
    "make_recall", "make_size", "make_task", "single_token_words", "task_from_prompts", "task_names", "tasks_table",
]
