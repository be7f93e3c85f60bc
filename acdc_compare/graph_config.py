"""The values that name and shape a graph: `GraphConfig` (everything that determines its edges), `Receiver`
(one receiver input) and the head-name helpers. Re-exported by `acdc_compare.graph`."""

from __future__ import annotations

from dataclasses import dataclass

from acdc_compare.spans import check_span_names
from acdc_compare.types import ModelConfig, ReceiverKind


def head_name(layer: int, head: int) -> str:
    """A head's node name, e.g. 'a9.h9'."""
    return f"a{layer}.h{head}"


def parse_head(name: str) -> tuple[int, int]:
    """'a9.h9' -> (9, 9); ValueError for anything else."""
    layer, sep, head = name[1:].partition(".h")
    if not (name.startswith("a") and sep and layer.isdigit() and head.isdigit()):
        raise ValueError(f"{name!r} is not a head name like 'a9.h9'")
    return int(layer), int(head)


@dataclass(frozen=True)
class GraphConfig:
    """Everything that determines a graph's edges."""

    n_layers: int
    n_heads: int
    n_kv_heads: int
    has_mlp: bool = True
    parallel_attn_mlp: bool = False
    include_direct: bool = True
    spans: tuple[str, ...] = ()  # span names of a position-aware graph; empty: every edge spans all positions

    def __post_init__(self) -> None:
        object.__setattr__(self, "spans", check_span_names(self.spans))

    @classmethod
    def from_model_config(cls, cfg: ModelConfig, include_direct: bool = True) -> "GraphConfig":
        return cls(
            n_layers=cfg.n_layers,
            n_heads=cfg.n_heads,
            n_kv_heads=cfg.kv_heads,
            has_mlp=not cfg.attn_only,
            parallel_attn_mlp=cfg.parallel_attn_mlp,
            include_direct=include_direct,
        )

    @property
    def key(self) -> str:
        """A stable identity string: two graphs with the same key have the same edges in the same order."""
        return (
            f"L{self.n_layers}.H{self.n_heads}.G{self.n_kv_heads}"
            f".{'mlp' if self.has_mlp else 'attn-only'}"
            f".{'parallel' if self.parallel_attn_mlp else 'sequential'}"
            f".{'direct' if self.include_direct else 'no-direct'}"
            + (f".spans={','.join(self.spans)}" if self.spans else "")
        )


@dataclass(frozen=True)
class Receiver:
    index: int
    name: str
    kind: ReceiverKind
    layer: int  # n_layers for logits
    head: int  # query head (q), key-value head (k, v), -1 otherwise
    n_upstream: int  # senders 0 .. n_upstream-1 feed it

    @property
    def unit(self) -> str:
        """The name without its `<q>`/`<k>`/`<v>` suffix: `a3.h5` for a head, `a3.kv1` for a key-value head
        of a grouped model; the name itself for an MLP input or the logits."""
        return self.name.split("<", 1)[0]
