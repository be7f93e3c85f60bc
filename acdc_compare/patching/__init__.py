"""Exact edge patching: `Patcher` runs a model's weights with any set of edges ablated, many circuits per
forward (`engine`); `deltas` holds the sender state a run carries; `autograd` the differentiable run's
custom gradients; `prompts` the prompt batch every context holds."""

from acdc_compare.patching.deltas import GradReference
from acdc_compare.patching.engine import (
    PatchContext,
    Patcher,
    PatchingError,
    RunState,
    kept_matrix,
    parse_ablation,
    receiver_stage,
    scored_positions,
)
from acdc_compare.patching.prompts import PromptBatch

__all__ = ["GradReference", "PatchContext", "Patcher", "PatchingError", "PromptBatch", "RunState", "kept_matrix",
           "parse_ablation", "receiver_stage", "scored_positions"]
