"""The memory model: peak bytes of the patching engine, EAP-IG and ACDC from the model's shape alone.

Written once and used twice: to choose the largest batch of circuits (EAP-IG interpolation steps, ACDC's
speculative candidates, curve circuits) that fits a budget, and to refuse, before any activation is
computed, a run that cannot fit, naming the largest prompt count or batch that does.

Terms (b bytes per element of the dtype; T = prompts x tokens; X = T x d_model; S senders, L layers,
H query heads, G key-value heads, R = H + 2G q/k/v receivers per layer, F = d_mlp, V = vocab):
- weights: `ModelWeights` plus the engine's fused q/k/v copy;
- the ablated run (`Patcher.prepare`): every sender's ablated output S x X, each layer's ablated attention
  and MLP inputs 2L x X, the ablated q/k/v vectors L x R x T x d_head;
- one forward of K circuits: the sender-delta buffer K x S x X (per sender, never per edge), the edge
  masks K x S x receivers (x spans), the largest layer's temporaries (a span graph's gathers: x spans), the
  logits and the metric's float64 copies;
- one differentiable forward of K circuits (EAP, EAP-IG): the buffer and its gradient 2 K x S x X, what
  every layer keeps for backward, and the reference differences EAP-IG multiplies its gradients by.
The coefficients of the temporaries were read off the engine's code and checked against measured peaks
(`benchmarks/bench_scale.py`, `benchmarks/results/scale_cpu.json`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from acdc_compare.types import ModelConfig

MAX_BATCH = 256  # no pass takes more circuits than this, whatever the budget


class MemoryBudgetError(ValueError):
    """A run would need more memory than the budget; the message names the size that fits."""


@dataclass(frozen=True)
class GraphSize:
    """Counts of a model's edge graph, in closed form (no `Graph` built: a 70B graph has millions of edges)."""

    n_senders: int
    n_receivers: int
    n_edges: int


def graph_size(cfg: ModelConfig, include_direct: bool = True) -> GraphSize:
    """Senders, receivers and edges of `Graph.from_model_config(cfg, include_direct)`."""
    L, H, G, mlp = cfg.n_layers, cfg.n_heads, cfg.kv_heads, int(not cfg.attn_only)
    per_layer = H + mlp
    edges = 0
    for layer in range(L):
        up = 1 + layer * per_layer
        edges += (H + 2 * G) * up + (H + 2 * G) * int(include_direct)
        if mlp:
            edges += up + (0 if cfg.parallel_attn_mlp else H)
    edges += 1 + L * per_layer
    return GraphSize(1 + L * per_layer, L * (H + 2 * G + mlp) + 1, edges)


@dataclass(frozen=True)
class Workload:
    """What the activations scale with: prompts x tokens, scored positions per prompt."""

    n_prompts: int
    seq_len: int
    n_positions: int = 1

    @property
    def tokens(self) -> int:
        return self.n_prompts * self.seq_len


@dataclass(frozen=True)
class MemoryModel:
    """Peak bytes of a discovery on a model of shape `cfg` in `dtype` (see the module docstring)."""

    cfg: ModelConfig
    dtype: torch.dtype = torch.float32
    include_direct: bool = True
    tied_embeddings: bool = False
    n_ctx: int = 0  # rows of a learned position table (0 for rotary models)
    n_spans: int = 1  # edges per base edge (a span graph, position-aware circuits): masks and gathers grow with it

    @property
    def elem(self) -> int:
        return torch.finfo(self.dtype).bits // 8

    @property
    def graph(self) -> GraphSize:
        return graph_size(self.cfg, self.include_direct)

    # ----- weights --------------------------------------------------------------------------------------
    def n_parameters(self) -> int:
        """Parameters of `ModelWeights` (tied embedding and unembedding counted once)."""
        c = self.cfg
        d, dh, F, V, R = c.d_model, c.d_head, c.d_mlp, c.d_vocab, c.n_heads + 2 * c.kv_heads
        norms = (2 if c.pre_norms else 0) + (2 if c.post_norms else 0)
        if c.normalization == "LN":
            norms += 2 if c.pre_norms else 0
        layer = (d * dh + dh) * R + c.n_heads * dh * d + d + norms * d
        layer += (2 if c.gated_mlp else 1) * d * F + F * d + F + d
        layer += 2 * dh * (c.n_heads if c.qk_norm == "full" else 1) if c.qk_norm else 0
        embed = V * d * (1 if self.tied_embeddings else 2) + V + d * (2 if c.normalization == "LN" else 1)
        return c.n_layers * layer + embed + self.n_ctx * d

    def layer_parameters(self) -> int:
        """Parameters of the layers alone (no embedding, unembedding or final norm)."""
        c = self.cfg
        embed = c.d_vocab * c.d_model * (1 if self.tied_embeddings else 2) + c.d_vocab
        embed += c.d_model * (2 if c.normalization == "LN" else 1) + self.n_ctx * c.d_model
        return self.n_parameters() - embed

    def bridge_weight_bytes(self) -> int:
        """Weights resident when the model is loaded through TransformerLens (`load_model` + `make_patcher`):
        the transformers model's own parameters, plus the engine's stacked copies of the layer weights
        (`ModelWeights` shares only the embeddings with the model) and its fused q/k/v copy."""
        return self.weight_bytes() + self.layer_parameters() * self.elem

    def weight_bytes(self) -> int:
        """The weights plus the engine's fused q/k/v copy (`Patcher._w_qkv`, `_b_qkv`)."""
        c = self.cfg
        fused = c.n_layers * (c.d_model + 1) * c.d_head * (c.n_heads + 2 * c.kv_heads)
        return (self.n_parameters() + fused) * self.elem

    # ----- activations ----------------------------------------------------------------------------------
    def context_bytes(self, w: Workload) -> int:
        """The prepared ablated run (`PatchContext`) and the full model's logits kept beside it."""
        c, g = self.cfg, self.graph
        X = w.tokens * c.d_model
        units = (g.n_senders + 2 * c.n_layers + 1) * X + c.n_layers * self._r_attn * w.tokens * c.d_head
        return units * self.elem + self._logits(w, 1)

    def pass_bytes(self, w: Workload, batch: int, *, grad: bool) -> int:
        """One forward of `batch` circuits (with `grad`: differentiable, with its backward), beyond the
        context: the delta buffer(s), masks, the largest stage's temporaries, the logits and the metric."""
        c, g = self.cfg, self.graph
        X = w.tokens * c.d_model
        masks = batch * (g.n_senders * g.n_receivers + g.n_edges + g.n_receivers) * self.n_spans * self.elem
        index = g.n_senders * g.n_receivers * 9 + g.n_edges * 16
        if not grad:
            return (batch * g.n_senders * X * self.elem + masks + index + batch * self._stage_bytes(w)
                    + self._logits(w, batch))
        kept = batch * c.n_layers * self._saved_layer_bytes(w)
        return (2 * batch * g.n_senders * X * self.elem + 3 * masks + index + kept
                + batch * self._stage_bytes(w) + self._logits(w, batch))

    def reference_bytes(self, w: Workload) -> int:
        """EAP-IG's clean-minus-ablated differences (`GradReference`) and the clean context built for them."""
        c, g = self.cfg, self.graph
        X = w.tokens * c.d_model
        units = 2 * g.n_senders * X + 2 * c.n_layers * X + 2 * c.n_layers * self._r_attn * w.tokens * c.d_head
        return units * self.elem

    def peak_bytes(self, w: Workload, batch: int = 1, *, grad: bool = False) -> int:
        """Peak activation bytes of a run (weights excluded): the context plus, for ACDC (`grad` False), a
        checkpoint run and `batch` candidates per forward; for EAP / EAP-IG the reference differences and
        `batch` interpolation steps per differentiable forward. Preparing the context stays below this.
        Live tensors: on the CPU with `acdc_compare.allocator`'s tuning the resident size can exceed it."""
        g, X = self.graph, w.tokens * self.cfg.d_model
        if grad:
            return self.context_bytes(w) + self.reference_bytes(w) + self.pass_bytes(w, batch, grad=True)
        checkpoint = g.n_senders * X * self.elem
        return self.context_bytes(w) + checkpoint + self.pass_bytes(w, batch, grad=False)

    def largest_batch(self, w: Workload, budget: float, *, grad: bool, limit: int = MAX_BATCH) -> int:
        """The most circuits per forward whose peak fits `budget` bytes (0: not even one)."""
        lo, hi = 0, limit
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.peak_bytes(w, mid, grad=grad) <= budget:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def largest_prompts(self, w: Workload, budget: float, *, grad: bool) -> int:
        """The most prompts (of `w`'s length) whose run fits `budget` bytes with one circuit per forward."""
        lo, hi = 0, max(1, w.n_prompts)
        while self.peak_bytes(Workload(hi, w.seq_len, w.n_positions), 1, grad=grad) <= budget:
            lo, hi = hi, 2 * hi
        while lo < hi - 1:
            mid = (lo + hi) // 2
            if self.peak_bytes(Workload(mid, w.seq_len, w.n_positions), 1, grad=grad) <= budget:
                lo = mid
            else:
                hi = mid
        return lo

    # ----- pieces ---------------------------------------------------------------------------------------
    @property
    def _r_attn(self) -> int:
        return self.cfg.n_heads + 2 * self.cfg.kv_heads

    @property
    def _float(self) -> int:
        """Bytes of a norm's temporaries: half precision is normalised in float32 (`forward.norm`)."""
        return max(self.elem, 4)

    def _stage_bytes(self, w: Workload) -> int:
        """One circuit's temporaries in the largest stage: attention (gathered and normed inputs of every
        q/k/v receiver, the projections, scores, head results) or the MLP (hidden activations)."""
        c, T = self.cfg, w.tokens
        X = T * c.d_model
        R, H, P = self._r_attn, c.n_heads, w.seq_len
        attn = (R * X + H * X + 4 * R * T * c.d_head + 2 * w.n_prompts * H * P * P) * self.elem
        attn += 2 * R * X * self._float
        if self.n_spans > 1:  # a span mask gathers every span's input before each position picks its own
            attn += self.n_spans * R * X * self.elem
        mlp = (3 * X + (4 if c.gated_mlp else 3) * T * c.d_mlp) * self.elem + 2 * X * self._float
        return max(attn, mlp)

    def _saved_layer_bytes(self, w: Workload) -> int:
        """What one layer keeps for backward per circuit in a differentiable forward: the normed q/k/v inputs
        (and, in half precision, the float32 copy the RMSNorm saves), the q/k/v vectors, attention scores,
        the head results' post-norm shares (Gemma 2), the MLP's hidden activations."""
        c, T = self.cfg, w.tokens
        X = T * c.d_model
        R, H, P = self._r_attn, c.n_heads, w.seq_len
        half = 4 if self.elem < 4 else 0  # bytes per element of the float32 copies half precision adds
        attn = (R * X + 4 * R * T * c.d_head + 2 * w.n_prompts * H * P * P + H * T * c.d_head) * self.elem
        attn += R * X * half
        mlp = (X + (3 if c.gated_mlp else 2) * T * c.d_mlp) * self.elem + X * half
        post = (H * X + 2 * X) * self._float if c.post_norms else 0
        return attn + mlp + post + 2 * X * self._float

    def _logits(self, w: Workload, batch: int) -> int:
        """Logits at the scored positions in the dtype and the metric's float64 log-softmax temporaries."""
        per = w.n_prompts * w.n_positions * self.cfg.d_vocab
        return batch * per * (self.elem + 4 * 8) + per * 2 * 8


def available_memory(device: torch.device) -> int:
    """What the device has free: free GPU memory, or the RAM available to new allocations (MemAvailable;
    8 GiB where unknown)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


def parse_size(text: str | int | float) -> int:
    """Bytes from '24GiB', '80GB', '500MB', '1.5e9' or a number (decimal units: GB = 1e9; binary: GiB)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        raw = str(text).strip()
        units = {"tib": 1 << 40, "gib": 1 << 30, "mib": 1 << 20, "kib": 1 << 10, "tb": 1e12, "gb": 1e9,
                 "mb": 1e6, "kb": 1e3, "t": 1e12, "g": 1e9, "m": 1e6, "k": 1e3, "b": 1}
        lower = raw.lower()
        scale = next((v for u, v in units.items() if lower.endswith(u)), 1)
        number = raw[: len(raw) - next((len(u) for u in units if lower.endswith(u)), 0)].strip()
        try:
            value = float(number) * scale
        except ValueError:
            raise ValueError(f"a memory size must be a number of bytes or like '24GiB', '80GB', '500MB'; "
                             f"got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"a memory size must be positive, got {text!r}")
    return int(value)


def size_text(n_bytes: float) -> str:
    """Bytes in words: '2.1 GB', '350.0 MB'."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes / 1e3:.1f} kB"
