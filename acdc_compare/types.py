"""Small shared value types: model shape, enums for the user-facing options."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Literal, TypeVar

E = TypeVar("E", bound=enum.Enum)


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
        """The factor attention scores are multiplied by in `layer`: 1/sqrt(d_head), and 1/(layer + 1) more
        with GPT-2's inverse-layer scaling."""
        scale = 1.0 / math.sqrt(self.d_head)
        return scale / (layer + 1) if self.scale_attn_by_inverse_layer else scale

    @classmethod
    def gpt2_small(cls) -> "ModelConfig":
        return cls(n_layers=12, n_heads=12, d_model=768, d_head=64, d_mlp=3072, d_vocab=50257, name="gpt2")
