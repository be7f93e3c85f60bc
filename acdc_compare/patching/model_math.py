"""The model's own maths on its weights, which every patched run shares (`ModelMath`, the base of the engine's
`Patcher`): norms, embedding, unembedding, rotary tables, which keys a query sees, token checks."""

from __future__ import annotations

import torch

from acdc_compare import forward
from acdc_compare.patching.autograd import SharedLayerNorm
from acdc_compare.patching.context import PatchingError
from acdc_compare.weights import ModelWeights


class ModelMath:
    """One model's weights and config, with the pieces of its forward that do not depend on a circuit."""

    def __init__(self, weights: ModelWeights) -> None:
        self.w = weights
        self.cfg = weights.config
        self._rope_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def device(self) -> torch.device:
        return self.w.device

    @property
    def dtype(self) -> torch.dtype:
        return self.w.dtype

    def _unembed(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of final residuals [..., d]: the final norm, the unembedding, the soft-cap."""
        w = self.w
        return forward.softcap(self._norm(x, w.lnf_w, w.lnf_b) @ w.W_U + w.b_U, self.cfg.final_softcap)

    def _norm(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """The model's norm over the last dim; an input broadcast over receivers (a uniform mask's running sum,
        `Deltas.gather`) is normalised once: by `SharedLayerNorm` in a differentiable run, else on one receiver."""
        shared = weight.dim() == 1 and x.dim() > 2 and x.shape[1] > 1 and x.stride(1) == 0
        if shared and torch.is_grad_enabled():
            if self.cfg.normalization == "LN":
                return SharedLayerNorm.apply(x, weight, bias, self.cfg.eps)
        elif shared:
            return forward.norm(x[:, :1], weight, bias, self.cfg.normalization, self.cfg.eps).expand_as(x)
        return forward.norm(x, weight, bias, self.cfg.normalization, self.cfg.eps)

    def _resid_attn_bias(self) -> torch.Tensor:
        """b_O [L, d] as added to the residual outside the head senders; with a post-attention norm it is
        inside the heads' shares (`forward.post_norm_shares`), so zero here."""
        return torch.zeros_like(self.w.b_O) if self.w.ln1_post_w is not None else self.w.b_O

    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.w.W_E[tokens]
        if self.cfg.embedding_scale != 1.0:
            x = x * torch.tensor(self.cfg.embedding_scale, dtype=x.dtype, device=x.device)
        if self.w.W_pos is not None:
            x = x + self.w.W_pos[: tokens.shape[1]]
        return x

    def _rotary(self, layer: int, p: int, first: int = 0, stop: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin of `layer` at positions first..stop-1 of p (layers may differ in base: Gemma 3's local
        rotary)."""
        base, scaling = self.cfg.rotary_of(layer)
        key = (base, scaling, p)
        if key not in self._rope_cache:
            self._rope_cache[key] = forward.rotary_tables(self.cfg.rotary_dim or self.cfg.d_head, base, p,
                                                          self.device, self.dtype, scaling)
        cos, sin = self._rope_cache[key]
        return cos[first:stop], sin[first:stop]

    def _visible(self, layer: int, n_shared: int, p: int) -> torch.Tensor | None:
        """Which of the p keys the queries at positions n_shared..p-1 see in `layer` ([P - n_shared, P], True:
        visible; causal, within its sliding window), or None where plain causal attention is the same."""
        window = self.cfg.window(layer)
        if n_shared == 0 and (window is None or window >= p):
            return None
        return forward.visible_keys(torch.arange(n_shared, p, device=self.device), p, window)

    def _check_tokens(self, tokens: torch.Tensor, what: str) -> torch.Tensor:
        tokens = torch.as_tensor(tokens)
        if tokens.dim() != 2 or tokens.shape[0] == 0 or tokens.shape[1] == 0:
            raise PatchingError(f"{what} tokens must be a non-empty [N, P] tensor, got {tuple(tokens.shape)}")
        if tokens.dtype not in (torch.long, torch.int, torch.int32, torch.int64):
            raise PatchingError(f"{what} tokens must be integer ids, got {tokens.dtype}")
        if int(tokens.min()) < 0 or int(tokens.max()) >= self.w.W_E.shape[0]:
            raise PatchingError(f"{what} tokens hold ids outside the model's vocabulary (0..{self.w.W_E.shape[0] - 1})")
        if self.w.W_pos is not None and tokens.shape[1] > self.w.W_pos.shape[0]:
            raise PatchingError(f"{what} prompts have {tokens.shape[1]} tokens; the model's context is {self.w.W_pos.shape[0]}")
        return tokens.long().to(self.device)
