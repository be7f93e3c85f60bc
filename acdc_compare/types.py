"""Small shared value types: model shape, enums for the user-facing options."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Literal, TypeVar

E = TypeVar("E", bound=enum.Enum)

# what a threshold is measured in: the metric's units, or a fraction of the task's gap M(empty) - M(full)
ThresholdScale = Literal["absolute", "relative"]
# which positions an edge stands for: all of them (one edge per sender and receiver), or each named span of the
# prompt apart (position-aware circuits: one edge per sender, receiver and span)
Positions = Literal["all", "spans"]


class Metric(str, enum.Enum):
    """What greedy ACDC minimises. KL(full || circuit) is the reference default."""

    KL = "kl"
    LOGIT_DIFF = "logit_diff"  # negated (correct - wrong) logit difference


class Ablation(str, enum.Enum):
    """What a removed edge carries instead of the sender's current value."""

    CORRUPTED = "corrupted"  # the sender's value on the corrupted prompts
    ZERO = "zero"  # zero (biases still flow)
    MEAN = "mean"  # the sender's mean over the reference batch, per position


class Role(str, enum.Enum):
    """Head roles: IOI's seven classes (Wang et al. 2022) and the task-neutral names of the mover roles."""

    NAME_MOVER = "name mover"
    BACKUP_NAME_MOVER = "backup name mover"
    NEGATIVE_NAME_MOVER = "negative name mover"
    S_INHIBITION = "S-inhibition"
    INDUCTION = "induction"
    DUPLICATE_TOKEN = "duplicate token"
    PREVIOUS_TOKEN = "previous token"
    MOVER = "mover"
    NEGATIVE_MOVER = "negative mover"

    __hash__ = str.__hash__  # a member and its text are the same dict key

    def __str__(self) -> str:
        return self.value


class ScoreKind(str, enum.Enum):
    """What a circuit's score of an edge is: the evidence the method kept (or removed) the edge on."""

    NONE = "none"  # never scored (a legacy file's untested edge, an edge removed untested)
    ACDC = "acdc"  # the metric change when exact ACDC tested removing it
    LEARNED = "learned"  # the learned mask logit (higher = keep; its sign matters)
    EAP_IG = "eap-ig"  # EAP-IG attribution score
    EAP = "eap"  # EAP attribution score
    GIVEN = "given"  # a score of another origin (`Circuit.from_scores`, a MIB file, a sweep's stability)

    __hash__ = str.__hash__

    def __str__(self) -> str:
        return self.value


class ReceiverKind(str, enum.Enum):
    Q = "q"
    K = "k"
    V = "v"
    MLP = "mlp"
    LOGITS = "logits"


def parse_enum(cls: type[E], value: E | str, what: str, error: type[Exception] = ValueError) -> E:
    """`cls(value)`, or `error` naming the bad value and the choices."""
    try:
        return cls(value)
    except ValueError:
        raise error(f"unknown {what} {value!r}; choose one of {[m.value for m in cls]}") from None


@dataclass(frozen=True)
class RopeScaling:
    """A rotary embedding's frequency rescaling, as transformers' `rope_parameters` define it: "linear"
    divides every frequency by `factor` (positions / factor); "llama3" divides the low frequencies by
    `factor`, keeps the high ones and interpolates between (`_compute_llama3_parameters`)."""

    kind: Literal["linear", "llama3"]
    factor: float
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_positions: int = 8192


Normalization = Literal["LN", "RMS"]
Positional = Literal["standard", "rotary"]
QKNorm = Literal["head", "full"]  # RMSNorm of each head's q/k over d_head, or of all heads' over H * d_head


@dataclass(frozen=True)
class ModelConfig:
    """The shape of a transformer: all a `Graph` needs, plus what the patching forward needs."""

    n_layers: int
    n_heads: int
    d_model: int = 0
    d_head: int = 0
    d_mlp: int = 0
    d_vocab: int = 0
    n_kv_heads: int | None = None
    attn_only: bool = False
    parallel_attn_mlp: bool = False
    normalization: Normalization = "LN"
    positional: Positional = "standard"
    rotary_dim: int | None = None
    rotary_base: float = 10000.0
    act_fn: str = "gelu_new"
    gated_mlp: bool = False
    eps: float = 1e-5
    name: str = "unnamed"
    rope_scaling: RopeScaling | None = None
    sliding_window: int | None = None  # a query at q sees keys k with q - sliding_window < k <= q
    scale_attn_by_inverse_layer: bool = False  # GPT-2's scale_attn_by_inverse_layer_idx
    sliding_layers: tuple[bool, ...] | None = None  # which layers use sliding_window (None: all of them)
    local_rotary_base: float | None = None  # the rotary base of the sliding layers (Gemma 3), no scaling there
    pre_norms: bool = True  # a norm before attention and before the MLP (OLMo-2 has none)
    post_norms: bool = False  # an RMSNorm on the attention and MLP outputs before the residual (Gemma 2/3, OLMo-2)
    qk_norm: QKNorm | None = None  # an RMSNorm on queries and keys after the projection (Qwen3, Gemma 3, OLMo-2)
    embedding_scale: float = 1.0  # the embedding is multiplied by this (Gemma: sqrt(d_model))
    query_scale: float | None = None  # the score scale when not 1/sqrt(d_head) (Gemma's query_pre_attn_scalar)
    attn_softcap: float | None = None  # scores -> cap * tanh(scores / cap) before the mask (Gemma 2)
    final_softcap: float | None = None  # logits -> cap * tanh(logits / cap) (Gemma 2)

    def __post_init__(self) -> None:
        if self.n_layers < 1 or self.n_heads < 1:
            raise ValueError(f"a model needs at least one layer and one head, got {self.n_layers} x {self.n_heads}")
        if self.n_heads % self.kv_heads != 0:
            raise ValueError(f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.kv_heads})")

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def group_size(self) -> int:
        """Query heads per key-value head (1 without grouped-query attention)."""
        return self.n_heads // self.kv_heads

    def attention_scale(self, layer: int) -> float:
        """The factor attention scores are multiplied by in `layer`: 1/sqrt(d_head) (or `query_scale`), and
        1/(layer + 1) more with GPT-2's inverse-layer scaling."""
        scale = 1.0 / math.sqrt(self.d_head) if self.query_scale is None else self.query_scale
        return scale / (layer + 1) if self.scale_attn_by_inverse_layer else scale

    def is_sliding(self, layer: int) -> bool:
        """Whether `layer` attends through the sliding window (and, with `local_rotary_base`, its rotary)."""
        if self.sliding_window is None:
            return False
        return self.sliding_layers is None or self.sliding_layers[layer]

    def window(self, layer: int) -> int | None:
        """The attention window of `layer` (None: plain causal attention)."""
        return self.sliding_window if self.is_sliding(layer) else None

    def rotary_of(self, layer: int) -> tuple[float, RopeScaling | None]:
        """(rotary base, scaling) of `layer`: the local base without scaling on sliding layers when the model
        has one (Gemma 3), else the model's."""
        if self.local_rotary_base is not None and self.is_sliding(layer):
            return self.local_rotary_base, None
        return self.rotary_base, self.rope_scaling

    @classmethod
    def gpt2_small(cls) -> "ModelConfig":
        return cls(n_layers=12, n_heads=12, d_model=768, d_head=64, d_mlp=3072, d_vocab=50257, name="gpt2")
