"""What a patching run works on and gives back: a batch's ablated run (`PatchContext`), a finished run's
sender state (`RunState`), and the checks that turn caller input into them (ablation, scored positions,
circuits as a kept matrix)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from acdc_compare.circuit import Circuit
from acdc_compare.graph import Graph
from acdc_compare.patching.prompts import PromptBatch
from acdc_compare.spans import PromptSpans
from acdc_compare.types import Ablation, ReceiverKind, parse_enum


class PatchingError(ValueError):
    """Bad input to the patching engine."""


@dataclass(frozen=True)
class PatchContext(PromptBatch):
    """Everything about one batch of prompts that does not depend on the circuit.

    corr_out [S, N*P*d]: each sender's ablated output; corr_in_attn [L, N*P*d] / corr_in_mlp [L, N*P*d]:
    the ablated residual read by layer l's heads / MLP; corr_in_final [N, Q, d] at the scored positions;
    corr_q [L, H, N, P, dh], corr_k / corr_v [L, G, N, P, dh]: ablated q/k/v vectors (for direct edges);
    spans [N, P]: each position's span index, for a span graph's edges (None: a graph without spans).

    `n_shared` leading positions where every clean prompt equals its corrupted one hold the ablated run's
    values in every circuit (a causal model computes the same there), so they are not run: every tensor
    above covers positions n_shared..P-1 only (P is then P - n_shared), and the heads attend to those
    positions' ablated keys and values, shared_k / shared_v [L, G, N, n_shared, dh] (normed and rotated).
    """

    corr_out: torch.Tensor
    corr_in_attn: torch.Tensor
    corr_in_mlp: torch.Tensor | None
    corr_in_final: torch.Tensor
    corr_q: torch.Tensor
    corr_k: torch.Tensor
    corr_v: torch.Tensor
    input_delta: torch.Tensor  # [N*P*d]: clean embedding minus ablated input
    spans: torch.Tensor | None = None
    n_shared: int = 0
    shared_k: torch.Tensor | None = None
    shared_v: torch.Tensor | None = None

    @property
    def n_run(self) -> int:
        """Positions a patched run computes: those after the shared ones."""
        return self.seq_len - self.n_shared

    @property
    def run_positions(self) -> torch.Tensor:
        """The scored positions [N, Q] counted from the first position run."""
        return self.positions - self.n_shared


@dataclass(frozen=True)
class RunState:
    """Sender deltas (patched minus ablated output) of a finished run: [K, S, N*P*d]."""

    deltas: torch.Tensor


def shared_length(clean: torch.Tensor, corrupted: torch.Tensor, positions: torch.Tensor) -> int:
    """How many leading positions every clean prompt [N, P] shares with its corrupted one, short of the first
    scored position (which a run must compute)."""
    differs = (clean != corrupted).any(0)
    first = int(torch.nonzero(differs)[0]) if bool(differs.any()) else clean.shape[1]
    return min(first, int(positions.min()))


def receiver_stage(graph: Graph, r: int) -> int:
    """The stage that reads receiver r: 2l for layer l's heads, 2l + 1 for its MLP, 2L for the logits."""
    rec = graph.receivers[r]
    if rec.kind is ReceiverKind.LOGITS:
        return 2 * graph.n_layers
    return 2 * rec.layer + int(rec.kind is ReceiverKind.MLP)


def scored_positions(positions: torch.Tensor | None, n: int, p: int, device: torch.device) -> torch.Tensor:
    """Scored positions as [N, Q] (default: the last one), checked against the batch shape [n, p]."""
    if positions is None:
        return torch.full((n, 1), p - 1, dtype=torch.long, device=device)
    positions = torch.as_tensor(positions, dtype=torch.long, device=device)
    if positions.dim() == 1:
        positions = positions[:, None]
    if positions.shape[0] != n or positions.min() < 0 or positions.max() >= p:
        raise PatchingError(f"positions must be [N] or [N, Q] with N={n} and values in 0..{p - 1}")
    return positions


def check_spans(graph: Graph, spans: torch.Tensor | PromptSpans | None, n: int, p: int,
                device: torch.device) -> torch.Tensor | None:
    """Span indices [N, P] for a batch [n, p], checked against the graph's spans (required on a span graph;
    `PromptSpans` must name the graph's spans in its order)."""
    if spans is None:
        if graph.has_spans:
            raise PatchingError(f"the graph has spans ({', '.join(graph.spans)}): pass each position's span "
                                "index (spans=task.spans, a PromptSpans or a LongTensor[N, P])")
        return None
    if isinstance(spans, PromptSpans):
        if graph.has_spans and spans.names != graph.spans:
            raise PatchingError(f"the prompts' spans are {', '.join(spans.names)}, the graph's "
                                f"{', '.join(graph.spans)}: build the graph with graph.with_spans(spans.names)")
        spans = spans.index
    index = torch.as_tensor(spans)
    if index.shape != (n, p) or index.dtype not in (torch.long, torch.int, torch.int32, torch.int64):
        raise PatchingError(f"spans must be an integer tensor [N, P] = [{n}, {p}], got {index.dtype} "
                            f"{tuple(index.shape)}")
    if int(index.min()) < 0 or int(index.max()) >= graph.n_spans:
        raise PatchingError(f"span indices must lie in 0..{graph.n_spans - 1} (the graph's spans), got "
                            f"{int(index.min())}..{int(index.max())}")
    return index.long().to(device)


def kept_matrix(graph: Graph, circuits: Circuit | list[Circuit] | torch.Tensor) -> torch.Tensor:
    """Circuits as a kept matrix [K, n_edges] (a tensor passes through; circuits are checked against graph)."""
    if isinstance(circuits, torch.Tensor):
        return circuits
    circuits = [circuits] if isinstance(circuits, Circuit) else list(circuits)
    for c in circuits:
        c.check_graph(graph)
    return torch.stack([c.kept for c in circuits])


def parse_ablation(ablation: Ablation | str) -> Ablation:
    return parse_enum(Ablation, ablation, "ablation", PatchingError)
