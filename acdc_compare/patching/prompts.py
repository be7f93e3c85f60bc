"""What every patching context holds about its batch of prompts, written once for the engine's
`PatchContext` and the hook fallback's `HookContext`."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from acdc_compare.types import Ablation


@dataclass(frozen=True)
class PromptBatch:
    """A batch of prompts as patched: clean tokens [N, P], scored positions [N, Q], and the ablation."""

    tokens: torch.Tensor
    positions: torch.Tensor
    ablation: Ablation

    @property
    def n_prompts(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.tokens.shape[1])
