"""Exact edge patching: `Patcher` runs a model's weights with any set of edges ablated, many circuits per
forward (`engine`); `context` holds what a run works on and gives back and checks its inputs; `prompts` the
prompt batch every context holds; `deltas` the sender state a run carries; `autograd` the differentiable
run's custom gradients."""

from acdc_compare.patching.context import (
    PatchContext,
    PatchingError,
    RunState,
    check_spans,
    kept_matrix,
    parse_ablation,
    receiver_stage,
    scored_positions,
)
from acdc_compare.patching.deltas import GradReference
from acdc_compare.patching.engine import Patcher
from acdc_compare.patching.prompts import PromptBatch

__all__ = ["GradReference", "PatchContext", "Patcher", "PatchingError", "PromptBatch", "RunState", "check_spans",
           "kept_matrix", "parse_ablation", "receiver_stage", "scored_positions"]
