"""Known circuits of GPT-2 small, as cited data, and the ACDC reference's ground-truth edge sets.

Sources:
- IOI: Wang, Variengien, Conmy, Shlegeris, Steinhardt (2022), "Interpretability in the Wild: a Circuit for
  Indirect Object Identification in GPT-2 small", arXiv:2211.00593 (26 heads in 7 classes, their Fig. 2).
- Greater-Than: Hanna, Liu, Variengien (2023), "How does GPT-2 compute greater-than?", arXiv:2305.00586.
- Ground-truth edge sets: Conmy et al. (2023), "Towards Automated Circuit Discovery for Mechanistic
  Interpretability", arXiv:2304.14997, and its public code (ArthurConmy/Automatic-Circuit-Discovery,
  `acdc/ioi/utils.py:get_ioi_true_edges`, `acdc/greaterthan/utils.py:get_greaterthan_true_edges`). The
  construction rules below were read from that code and re-implemented on our `Graph`; on GPT-2 small's graph
  (32,923 edges with direct edges) they give the reference's 1,041 (IOI) and 262 (Greater-Than) edges.

Node names follow `Graph`: heads `a9.h9`, MLPs `m3`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

import torch

from acdc_compare.circuit import Circuit
from acdc_compare.graph import Graph, parse_head
from acdc_compare.types import Role

# ----- IOI (Wang et al. 2022) ----------------------------------------------------------------------------

IOIRole = Role
IOI_ROLES: tuple[Role, ...] = (Role.NAME_MOVER, Role.BACKUP_NAME_MOVER, Role.NEGATIVE_NAME_MOVER,
                               Role.S_INHIBITION, Role.INDUCTION, Role.DUPLICATE_TOKEN, Role.PREVIOUS_TOKEN)

IOI_HEAD_CLASSES: Mapping[Role, tuple[str, ...]] = MappingProxyType({
    Role.NAME_MOVER: ("a9.h9", "a9.h6", "a10.h0"),
    Role.BACKUP_NAME_MOVER: ("a9.h0", "a9.h7", "a10.h1", "a10.h2", "a10.h6", "a10.h10", "a11.h2", "a11.h9"),
    Role.NEGATIVE_NAME_MOVER: ("a10.h7", "a11.h10"),
    Role.S_INHIBITION: ("a7.h3", "a7.h9", "a8.h6", "a8.h10"),
    Role.INDUCTION: ("a5.h5", "a5.h8", "a5.h9", "a6.h9"),
    Role.DUPLICATE_TOKEN: ("a0.h1", "a0.h10", "a3.h0"),
    Role.PREVIOUS_TOKEN: ("a2.h2", "a4.h11"),
})
"""The 26 IOI heads of GPT-2 small by class (Wang et al. 2022, arXiv:2211.00593)."""

IOI_HEADS: tuple[str, ...] = tuple(h for role in IOI_ROLES for h in IOI_HEAD_CLASSES[role])


def head_roles() -> dict[str, Role]:
    """IOI head name -> its class (e.g. 'a9.h9' -> 'name mover')."""
    return {head: role for role in IOI_ROLES for head in IOI_HEAD_CLASSES[role]}


# ----- Greater-Than (Hanna et al. 2023) --------------------------------------------------------------------

GREATER_THAN_GROUPS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "attention 0.1": ("a0.h1",),
    "attention 0.3/0.5": ("a0.h3", "a0.h5"),
    "early MLPs": ("m0", "m1", "m2", "m3"),
    "mid attention": ("a5.h5", "a6.h1", "a6.h9", "a7.h10", "a8.h11", "a9.h1"),
    "late MLPs": ("m8", "m9", "m10", "m11"),
})
"""Greater-Than components of GPT-2 small (Hanna et al. 2023, arXiv:2305.00586), grouped as in the ACDC
reference's `CIRCUIT` dict ('01', '0305', 'MEARLY', 'AMID', 'MLATE')."""

GREATER_THAN_HEADS: tuple[str, ...] = tuple(
    n for group in GREATER_THAN_GROUPS.values() for n in group if n.startswith("a")
)
GREATER_THAN_MLPS: tuple[str, ...] = tuple(
    n for group in GREATER_THAN_GROUPS.values() for n in group if n.startswith("m")
)


# ----- ground-truth edge sets ---------------------------------------------------------------------------

def _check_gpt2_small(graph: Graph) -> None:
    c = graph.config
    if (c.n_layers, c.n_heads, c.n_kv_heads, c.has_mlp, c.parallel_attn_mlp) != (12, 12, 12, True, False):
        raise ValueError(
            f"the IOI and Greater-Than ground truths are GPT-2 small's circuits: they need a 12-layer x 12-head "
            f"graph with sequential MLPs and no grouped-query attention, got {graph.config.key}"
        )


class _EdgeSet:
    """Kept flags over a graph's edges, filled by sender/receiver index; edges the graph lacks are skipped
    (the reference only sets edges that exist, e.g. a later head never feeds an earlier one)."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.kept = torch.zeros(graph.n_edges, dtype=torch.bool)
        self._resid = graph.resid_index

    def add(self, senders: Iterable[int], receivers: Iterable[int]) -> None:
        receivers = list(receivers)
        for s in senders:
            for r in receivers:
                e = int(self._resid[s, r])
                if e >= 0:
                    self.kept[e] = True

    def add_direct(self, receivers: Iterable[int]) -> None:
        for r in receivers:
            e = int(self.graph.direct_index[r])
            if e >= 0:  # graphs built without direct edges simply lack them
                self.kept[e] = True

    # -- node -> sender / receiver indices --
    def out(self, names: Iterable[str]) -> list[int]:
        return [self.graph.sender_index(n) for n in names]

    def inp(self, names: Iterable[str], letters: str = "qkv") -> list[int]:
        """Receivers of heads (their `letters` inputs) or MLPs (their input)."""
        g = self.graph
        out: list[int] = []
        for n in names:
            if n.startswith("m"):
                out.append(g.mlp_receiver(int(n[1:])))
                continue
            layer, head = parse_head(n)
            for letter in letters:
                out.append({"q": g.q_receiver, "k": g.k_receiver, "v": g.v_receiver}[letter](layer, head))
        return out


def _mlps(graph: Graph) -> list[str]:
    return [f"m{layer}" for layer in range(graph.n_layers)]


def ioi_ground_truth(graph: Graph) -> Circuit:
    """The ACDC reference's IOI ground truth on GPT-2 small's graph: 1,041 edges with direct edges.

    Rule (from `get_ioi_true_edges`): start from the full graph minus every edge touching a non-circuit head;
    for the 26 circuit heads remove every edge from the embedding or another head into their q/k/v inputs and
    their edges into the logits; then add the class-to-class connections, with INPUT = embedding + every MLP
    output and OUTPUT = logits + every MLP input. What remains besides those connections: every
    embedding/MLP -> MLP/logits edge, each circuit head's direct q/k/v edges and its edges into MLPs, and
    every MLP -> circuit-head q/k/v edge (any letter).
    """
    _check_gpt2_small(graph)
    es = _EdgeSet(graph)
    cls = IOI_HEAD_CLASSES
    mlps = _mlps(graph)
    circuit_inputs = ["input", *mlps]
    circuit_outputs_recv = [graph.logits_receiver, *es.inp(mlps)]

    # What the reference never removes.
    es.add(es.out(circuit_inputs), es.inp(mlps) + [graph.logits_receiver])
    es.add(es.out(IOI_HEADS), es.inp(mlps))
    es.add(es.out(mlps), es.inp(IOI_HEADS))
    es.add_direct(es.inp(IOI_HEADS))

    movers = cls[Role.NAME_MOVER] + cls[Role.BACKUP_NAME_MOVER] + cls[Role.NEGATIVE_NAME_MOVER]
    connections: tuple[tuple[list[int], list[int]], ...] = (
        (es.out(circuit_inputs), es.inp(cls[Role.PREVIOUS_TOKEN], "qkv")),
        (es.out(circuit_inputs), es.inp(cls[Role.DUPLICATE_TOKEN], "qkv")),
        (es.out(circuit_inputs), es.inp(cls[Role.S_INHIBITION], "q")),
        (es.out(circuit_inputs), es.inp(movers, "kv")),
        (es.out(cls[Role.PREVIOUS_TOKEN]), es.inp(cls[Role.INDUCTION], "kv")),
        (es.out(cls[Role.INDUCTION]), es.inp(cls[Role.S_INHIBITION], "kv")),
        (es.out(cls[Role.DUPLICATE_TOKEN]), es.inp(cls[Role.S_INHIBITION], "kv")),
        (es.out(cls[Role.S_INHIBITION]), es.inp(movers, "q")),
        (es.out(movers), circuit_outputs_recv),
    )
    for senders, receivers in connections:
        es.add(senders, receivers)
    return Circuit(graph, es.kept, settings={"reference": "ioi", "source": "Wang et al. 2022; ACDC ground truth"})


def greater_than_ground_truth(graph: Graph) -> Circuit:
    """The ACDC reference's Greater-Than ground truth on GPT-2 small's graph: 262 edges with direct edges.

    Rule (from `get_greaterthan_true_edges`), starting from no edges: embedding -> the q/k/v inputs of heads
    0.1, 0.3, 0.5 and the inputs of MLPs 0-3; mid heads and late MLPs -> logits; early MLPs among themselves
    and late MLPs among themselves; group connections 0.1 -> early MLPs, 0.1 -> mid heads, 0.3/0.5 -> mid
    heads, early MLPs -> mid heads, mid heads -> late MLPs (all q/k/v letters; a head feeds its own layer's
    MLP); every circuit head's direct q/k/v edges; every MLP below the last mid head's layer (9) into every
    later such MLP (MLPs 0-8); and every earlier MLP into each mid head's q input.
    """
    _check_gpt2_small(graph)
    es = _EdgeSet(graph)
    grp = GREATER_THAN_GROUPS
    g01, g0305, early, mid, late = (grp[k] for k in grp)

    es.add(es.out(["input"]), es.inp(g0305 + g01 + early))
    es.add(es.out(mid + late), [graph.logits_receiver])
    for group in (early, late):
        es.add(es.out(group), es.inp(group))
    for senders, receivers in ((g01, early), (g01, mid), (g0305, mid), (early, mid), (mid, late)):
        es.add(es.out(senders), es.inp(receivers))
    es.add_direct(es.inp(GREATER_THAN_HEADS))

    last_mid_layer = max(parse_head(h)[0] for h in mid)
    below = [f"m{layer}" for layer in range(last_mid_layer)]
    es.add(es.out(below), es.inp(below))
    for h in mid:
        es.add(es.out(_mlps(graph)), es.inp([h], "q"))
    return Circuit(
        graph, es.kept, settings={"reference": "greater-than", "source": "Hanna et al. 2023; ACDC ground truth"}
    )
