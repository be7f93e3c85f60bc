"""The computational graph of a transformer: senders, receivers and the edges between them.

Built from a model's shape alone (no weights). Names follow EAP-IG: nodes `input`, `a3.h5`, `m7`, `logits`;
receivers `a3.h5<q>`, `a3.h5<k>`, `m7`, `logits`; residual edges `a3.h5->a9.h9<q>`; direct edges (a head's
q/k/v input into its q/k/v vector) are named by their receiver, `a9.h9<q>`. Under grouped-query attention
(fewer key-value heads than query heads) k/v inputs exist per key-value head and are named `a3.kv1<k>`,
`a3.kv1<v>`, so they are never mistaken for query head 1 (`a3.h1`, which reads key-value head
1 // group size). See ../shared/REFERENCE.md section 1 for the convention and the reference edge counts.

Index layout (all in forward order):
- senders: 0 is `input`; layer l's heads are `1 + l*(H+M) + h`, its MLP `1 + l*(H+M) + H` (M = 1 with MLPs);
- receivers: per layer, H query inputs, G key inputs, G value inputs, then the MLP input; `logits` last;
- the senders that can feed a receiver are always a prefix `0 .. n_upstream(r) - 1` of the senders;
- edges: receiver by receiver, its residual edges (sender ascending), then its direct edge if any.

Span graphs (position-aware circuits, `GraphConfig.spans`): every edge above (a "base edge") splits into one
edge per named span of the prompt, flat index `base * n_spans + span`, named `a3.h5->a9.h9<q>@END`. A span
edge carries the sender's contribution only at the receiver-input positions of its span (the receiver's own
position for q, MLP and logits inputs; the key/value position for k/v inputs). See `acdc_compare.spans`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property

import torch

from acdc_compare.graph_config import GraphConfig, Receiver, head_name, parse_head
from acdc_compare.types import ModelConfig, ReceiverKind

INPUT = "input"
LOGITS = "logits"
SPAN_SEP = "@"  # between a base edge's name and its span's: 'a3.h5->a9.h9<q>@END'

__all__ = ["INPUT", "LOGITS", "SPAN_SEP", "Graph", "GraphConfig", "Receiver", "head_name", "parse_head"]


@dataclass(frozen=True, eq=False)
class Graph:
    """An immutable edge list with name <-> index maps and tensor views."""

    config: GraphConfig
    _receivers: tuple[Receiver, ...] = field(init=False, repr=False)
    _edge_sender: tuple[int, ...] = field(init=False, repr=False)  # -1 for direct edges
    _edge_receiver: tuple[int, ...] = field(init=False, repr=False)
    _n_base_edges: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        receivers = tuple(self._build_receivers())
        senders: list[int] = []
        rec_of_edge: list[int] = []
        for r in receivers:
            senders.extend(range(r.n_upstream))
            rec_of_edge.extend([r.index] * r.n_upstream)
            if self.config.include_direct and r.kind in _ATTN_KINDS:
                senders.append(-1)
                rec_of_edge.append(r.index)
        object.__setattr__(self, "_n_base_edges", len(senders))
        j = max(1, len(self.config.spans))
        senders = [s for s in senders for _ in range(j)]
        rec_of_edge = [r for r in rec_of_edge for _ in range(j)]
        object.__setattr__(self, "_receivers", receivers)
        object.__setattr__(self, "_edge_sender", tuple(senders))
        object.__setattr__(self, "_edge_receiver", tuple(rec_of_edge))

    @classmethod
    def from_model_config(cls, cfg: ModelConfig, include_direct: bool = True) -> "Graph":
        return cls(GraphConfig.from_model_config(cfg, include_direct=include_direct))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Graph) and other.config == self.config

    def __hash__(self) -> int:
        return hash(self.config)

    def __repr__(self) -> str:
        return f"Graph({self.config.key}, {self.n_edges} edges)"

    # ----- sizes and layout -------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return self.config.n_layers

    @property
    def n_heads(self) -> int:
        return self.config.n_heads

    @property
    def n_kv_heads(self) -> int:
        return self.config.n_kv_heads

    @property
    def group_size(self) -> int:
        return self.config.n_heads // self.config.n_kv_heads

    @property
    def grouped(self) -> bool:
        """Grouped-query attention: fewer key-value heads than query heads (k/v receivers named `a3.kv1<k>`)."""
        return self.config.n_kv_heads < self.config.n_heads

    @property
    def senders_per_layer(self) -> int:
        return self.config.n_heads + int(self.config.has_mlp)

    @property
    def receivers_per_layer(self) -> int:
        return self.config.n_heads + 2 * self.config.n_kv_heads + int(self.config.has_mlp)

    @property
    def n_senders(self) -> int:
        return 1 + self.n_layers * self.senders_per_layer

    @property
    def n_receivers(self) -> int:
        return len(self._receivers)

    @property
    def n_edges(self) -> int:
        return len(self._edge_sender)

    # ----- spans --------------------------------------------------------------------------------------
    @property
    def spans(self) -> tuple[str, ...]:
        """Span names of a position-aware graph; empty for a graph whose edges span all positions."""
        return self.config.spans

    @property
    def has_spans(self) -> bool:
        return bool(self.config.spans)

    @property
    def n_spans(self) -> int:
        """Edges per base edge: the number of spans, 1 for a graph without spans."""
        return max(1, len(self.config.spans))

    @property
    def n_base_edges(self) -> int:
        """Edges of the span-free graph (`base`)."""
        return self._n_base_edges

    @cached_property
    def base(self) -> "Graph":
        """The same graph without spans (itself when it has none)."""
        return Graph(replace(self.config, spans=())) if self.has_spans else self

    def with_spans(self, spans: tuple[str, ...] | list[str]) -> "Graph":
        """The same graph with every edge split into one edge per span (`spans` empty: the span-free graph)."""
        return Graph(replace(self.config, spans=tuple(spans)))

    def edge_span(self, e: int) -> int:
        """Span index of edge e (0 on a graph without spans)."""
        return e % self.n_spans

    def base_edge(self, e: int) -> int:
        """Index in `base` of the edge that span edge e restricts."""
        return e // self.n_spans

    def span_edges(self, base_edge: int) -> range:
        """Flat indices of a base edge's span edges, span by span."""
        j = self.n_spans
        return range(base_edge * j, (base_edge + 1) * j)

    # ----- senders ------------------------------------------------------------------------------------
    def head_sender(self, layer: int, head: int) -> int:
        return 1 + layer * self.senders_per_layer + head

    def mlp_sender(self, layer: int) -> int:
        if not self.config.has_mlp:
            raise ValueError("this graph has no MLPs (attention-only model)")
        return 1 + layer * self.senders_per_layer + self.n_heads

    @cached_property
    def sender_names(self) -> tuple[str, ...]:
        names = [INPUT]
        for layer in range(self.n_layers):
            names.extend(head_name(layer, h) for h in range(self.n_heads))
            if self.config.has_mlp:
                names.append(f"m{layer}")
        return tuple(names)

    @cached_property
    def sender_layer(self) -> tuple[int, ...]:
        """Layer of each sender; -1 for the input."""
        return tuple([-1] + [layer for layer in range(self.n_layers) for _ in range(self.senders_per_layer)])

    def sender_index(self, name: str) -> int:
        try:
            return self._sender_lookup[name]
        except KeyError:
            raise KeyError(f"no sender named {name!r} in {self!r}; senders look like 'input', 'a3.h5', 'm7'") from None

    @cached_property
    def _sender_lookup(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.sender_names)}

    def is_head_sender(self, s: int) -> bool:
        return s > 0 and (s - 1) % self.senders_per_layer < self.n_heads

    def sender_head(self, s: int) -> tuple[int, int]:
        """(layer, head) of a head sender."""
        if not self.is_head_sender(s):
            raise ValueError(f"sender {self.sender_names[s]!r} is not an attention head")
        return (s - 1) // self.senders_per_layer, (s - 1) % self.senders_per_layer

    # ----- receivers ----------------------------------------------------------------------------------
    @property
    def receivers(self) -> tuple[Receiver, ...]:
        return self._receivers

    @cached_property
    def receiver_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self._receivers)

    def receiver_index(self, name: str) -> int:
        try:
            return self._receiver_lookup[name]
        except KeyError:
            kv = " (k/v per key-value head: 'a3.kv1<k>')" if self.grouped else ""
            raise KeyError(
                f"no receiver named {name!r} in {self!r}; receivers look like 'a3.h5<q>'{kv}, 'm7', 'logits'"
            ) from None

    @cached_property
    def _receiver_lookup(self) -> dict[str, int]:
        return {r.name: r.index for r in self._receivers}

    def q_receiver(self, layer: int, head: int) -> int:
        return layer * self.receivers_per_layer + head

    def k_receiver(self, layer: int, kv_head: int) -> int:
        return layer * self.receivers_per_layer + self.n_heads + kv_head

    def v_receiver(self, layer: int, kv_head: int) -> int:
        return layer * self.receivers_per_layer + self.n_heads + self.n_kv_heads + kv_head

    def mlp_receiver(self, layer: int) -> int:
        if not self.config.has_mlp:
            raise ValueError("this graph has no MLPs (attention-only model)")
        return layer * self.receivers_per_layer + self.n_heads + 2 * self.n_kv_heads

    @property
    def logits_receiver(self) -> int:
        return self.n_receivers - 1

    def layer_receivers(self, layer: int) -> range:
        start = layer * self.receivers_per_layer
        return range(start, start + self.receivers_per_layer)

    def receiver_node_senders(self, r: int) -> tuple[int, ...]:
        """Senders whose output the receiver's node produces: the head (q), every query head reading a
        key-value head (k, v), the MLP; empty for logits."""
        rec = self._receivers[r]
        if rec.kind is ReceiverKind.Q:
            return (self.head_sender(rec.layer, rec.head),)
        if rec.kind in (ReceiverKind.K, ReceiverKind.V):
            g = self.group_size
            return tuple(self.head_sender(rec.layer, h) for h in range(rec.head * g, (rec.head + 1) * g))
        if rec.kind is ReceiverKind.MLP:
            return (self.mlp_sender(rec.layer),)
        return ()

    # ----- edges --------------------------------------------------------------------------------------
    @cached_property
    def edge_names(self) -> tuple[str, ...]:
        if self.has_spans:
            return tuple(f"{b}{SPAN_SEP}{span}" for b in self.base.edge_names for span in self.spans)
        return tuple(self._edge_name(s, r) for s, r in zip(self._edge_sender, self._edge_receiver))

    def _edge_name(self, s: int, r: int) -> str:
        if s < 0:
            return self.receiver_names[r]
        return f"{self.sender_names[s]}->{self.receiver_names[r]}"

    def edge_index(self, name: str) -> int:
        try:
            return self._edge_lookup[name]
        except KeyError:
            k = "a5.kv1<k>" if self.grouped else "a5.h5<k>"
            at = f"@{self.spans[0]}" if self.has_spans else ""
            spans = f" (spans: {', '.join(self.spans)})" if self.has_spans else ""
            raise KeyError(
                f"no edge named {name!r} in {self!r}; edges look like 'a0.h1->{k}{at}', 'm3->logits{at}', "
                f"or 'a2.h7<q>{at}' for a direct edge{spans}"
            ) from None

    @cached_property
    def _edge_lookup(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.edge_names)}

    def edge_sender(self, e: int) -> int:
        """Sender index of an edge; -1 for a direct edge."""
        return self._edge_sender[e]

    def edge_receiver(self, e: int) -> int:
        return self._edge_receiver[e]

    def is_direct(self, e: int) -> bool:
        return self._edge_sender[e] < 0

    def resid_edge(self, s: int, r: int) -> int:
        """Flat index of the residual edge s -> r (a graph without spans; see `resid_edges`)."""
        idx = int(self.resid_index[s, r])
        if idx < 0:
            raise KeyError(f"no edge {self.sender_names[s]} -> {self.receiver_names[r]}: the sender runs later")
        return idx

    def direct_edge(self, r: int) -> int:
        """Flat index of receiver r's direct edge (a graph without spans; see `direct_edges`)."""
        idx = int(self.direct_index[r])
        if idx < 0:
            raise KeyError(f"receiver {self.receiver_names[r]!r} has no direct edge in {self!r}")
        return idx

    def resid_edges(self, s: int, r: int) -> range:
        """Flat indices of the residual edge s -> r: one per span (one edge on a graph without spans)."""
        return self.span_edges(self.base.resid_edge(s, r))

    def direct_edges(self, r: int) -> range:
        """Flat indices of receiver r's direct edge: one per span (one edge on a graph without spans)."""
        return self.span_edges(self.base.direct_edge(r))

    def _span_free(self, what: str) -> None:
        if self.has_spans:
            raise ValueError(f"{what} maps (sender, receiver) to one edge, but {self!r} has one edge per span: "
                             "use resid_edges / direct_edges, or graph.base for the span-free indices")

    @cached_property
    def edge_sender_tensor(self) -> torch.Tensor:
        return torch.tensor(self._edge_sender, dtype=torch.long)

    @cached_property
    def edge_receiver_tensor(self) -> torch.Tensor:
        return torch.tensor(self._edge_receiver, dtype=torch.long)

    @cached_property
    def resid_index(self) -> torch.Tensor:
        """LongTensor[n_senders, n_receivers]: flat edge index of s -> r, or -1 (graphs without spans)."""
        self._span_free("resid_index")
        out = torch.full((self.n_senders, self.n_receivers), -1, dtype=torch.long)
        snd, rcv = self.edge_sender_tensor, self.edge_receiver_tensor
        resid = snd >= 0
        out[snd[resid], rcv[resid]] = torch.nonzero(resid).squeeze(1)
        return out

    @cached_property
    def direct_index(self) -> torch.Tensor:
        """LongTensor[n_receivers]: flat index of the receiver's direct edge, or -1 (graphs without spans)."""
        self._span_free("direct_index")
        out = torch.full((self.n_receivers,), -1, dtype=torch.long)
        direct = self.edge_sender_tensor < 0
        out[self.edge_receiver_tensor[direct]] = torch.nonzero(direct).squeeze(1)
        return out

    def masks(self, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Split flat edge states `kept[..., n_edges]` into residual `[..., n_senders, n_receivers]` and direct
        `[..., n_receivers]` masks (a receiver without a direct edge reads as kept). Works for bool or float.
        On a span graph each mask gains a last dimension [..., n_spans]."""
        if kept.shape[-1] != self.n_edges:
            raise ValueError(f"edge vector has {kept.shape[-1]} entries, {self!r} has {self.n_edges} edges")
        batch, j, base = kept.shape[:-1], self.n_spans, self.base
        per_span = kept.reshape(*batch, self.n_base_edges, j)
        resid = torch.zeros(*batch, self.n_senders * self.n_receivers, j, dtype=kept.dtype, device=kept.device)
        flat = (base.resid_index.clamp(min=0) + 0).flatten().to(kept.device)
        valid = (base.resid_index >= 0).flatten().to(kept.device)
        resid[..., valid, :] = per_span[..., flat[valid], :]
        direct = torch.ones(*batch, self.n_receivers, j, dtype=kept.dtype, device=kept.device)
        has_direct = (base.direct_index >= 0).to(kept.device)
        direct[..., has_direct, :] = per_span[..., base.direct_index.to(kept.device)[has_direct], :]
        resid = resid.reshape(*batch, self.n_senders, self.n_receivers, j)
        if not self.has_spans:
            return resid[..., 0], direct[..., 0]
        return resid, direct

    # ----- nodes (for comparison and export) ----------------------------------------------------------
    @cached_property
    def node_names(self) -> tuple[str, ...]:
        return self.sender_names + (LOGITS,)

    def receiver_nodes(self, r: int) -> tuple[str, ...]:
        """Node names a receiver belongs to: its head, every query head reading a key-value head (k, v),
        its MLP, or `logits`."""
        if self._receivers[r].kind is ReceiverKind.LOGITS:
            return (LOGITS,)
        return tuple(self.sender_names[s] for s in self.receiver_node_senders(r))

    def edge_nodes(self, e: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(upstream nodes, downstream nodes) of an edge; a direct edge joins a head to itself."""
        down = self.receiver_nodes(self._edge_receiver[e])
        s = self._edge_sender[e]
        return (down if s < 0 else (self.sender_names[s],)), down

    # ----- construction -------------------------------------------------------------------------------
    def _build_receivers(self) -> Iterator[Receiver]:
        c = self.config
        per_layer = self.senders_per_layer
        kv_unit = "kv" if self.grouped else "h"
        idx = 0
        for layer in range(c.n_layers):
            before_layer = 1 + layer * per_layer
            for kind, count, unit in ((ReceiverKind.Q, c.n_heads, "h"), (ReceiverKind.K, c.n_kv_heads, kv_unit),
                                      (ReceiverKind.V, c.n_kv_heads, kv_unit)):
                for h in range(count):
                    yield Receiver(idx, f"a{layer}.{unit}{h}<{kind.value}>", kind, layer, h, before_layer)
                    idx += 1
            if c.has_mlp:
                upstream = before_layer if c.parallel_attn_mlp else before_layer + c.n_heads
                yield Receiver(idx, f"m{layer}", ReceiverKind.MLP, layer, -1, upstream)
                idx += 1
        yield Receiver(idx, LOGITS, ReceiverKind.LOGITS, c.n_layers, -1, 1 + c.n_layers * per_layer)


_ATTN_KINDS = (ReceiverKind.Q, ReceiverKind.K, ReceiverKind.V)
