"""Graph names (key-value heads of grouped models), edge counts, a circuit's functional size, and loading
circuit files written with the old k/v names."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from acdc_compare.circuit import Circuit
from acdc_compare.compare import hook_nodes
from acdc_compare.export import load_circuit, prune_to_paths, save_circuit
from acdc_compare.graph import Graph, GraphConfig
from acdc_compare.types import ReceiverKind

SMALL = Graph(GraphConfig(n_layers=3, n_heads=4, n_kv_heads=4))
GQA = Graph(GraphConfig(n_layers=3, n_heads=4, n_kv_heads=2))
NO_DIRECT_GQA = Graph(GraphConfig(n_layers=3, n_heads=4, n_kv_heads=2, include_direct=False))
SMOLLM2 = GraphConfig(n_layers=30, n_heads=9, n_kv_heads=3)
GPT2 = GraphConfig(n_layers=12, n_heads=12, n_kv_heads=12)


# ----- names and counts ------------------------------------------------------------------------------
def test_grouped_kv_receivers_have_their_own_names() -> None:
    kv = [r for r in GQA.receivers if r.kind in (ReceiverKind.K, ReceiverKind.V)]
    assert [r.name for r in kv if r.layer == 1] == ["a1.kv0<k>", "a1.kv1<k>", "a1.kv0<v>", "a1.kv1<v>"]
    assert all(r.unit == f"a{r.layer}.kv{r.head}" for r in kv)
    assert [r.name for r in GQA.receivers if r.kind is ReceiverKind.Q and r.layer == 0] == \
        [f"a0.h{h}<q>" for h in range(4)]
    assert GQA.grouped and not SMALL.grouped
    assert {r.name for r in SMALL.receivers if r.layer == 0 and r.kind is ReceiverKind.K} == \
        {f"a0.h{h}<k>" for h in range(4)}
    with pytest.raises(KeyError, match=r"a3\.kv1<k>"):
        GQA.receiver_index("a1.h1<k>")


def test_edge_counts_do_not_depend_on_the_names() -> None:
    smollm = Graph(SMOLLM2)
    assert smollm.n_edges == 71_101
    assert Graph(GraphConfig(**{**SMOLLM2.__dict__, "include_direct": False})).n_edges == 70_651
    assert Graph(GPT2).n_edges == 32_923
    assert len(set(smollm.edge_names)) == smollm.n_edges
    assert sum(".kv" in n for n in smollm.receiver_names) == 2 * 3 * 30


def test_hook_nodes_name_key_value_heads() -> None:
    c = Circuit.from_edge_names(GQA, ["input->a1.kv1<k>", "a1.kv1<k>", "a1.h3<q>"])
    assert hook_nodes(c) == {"input", "a1.kv1<k>", "a1.kv1.k", "a1.h3<q>", "a1.h3.q"}


# ----- functional size -------------------------------------------------------------------------------
PATH = ["input->a0.h1<q>", "a0.h1<q>", "a0.h1->m1", "m1->logits"]


def test_an_edge_from_a_head_without_input_path_is_not_functional() -> None:
    dangling = ["a1.h2->logits",          # a1.h2 has no kept input: it sends its ablated value
                "a0.h3->a2.h0<v>"]        # a0.h3 has no kept input either, and a2.h0 feeds nothing
    c = Circuit.from_edge_names(SMALL, PATH + dangling)
    f = c.functional()
    assert set(f.kept_edge_names()) == set(PATH)
    assert c.n_functional_edges == len(PATH) == f.n_kept and c.n_kept == len(PATH) + len(dangling)
    assert c.functional_heads() == {"a0.h1"}
    assert c.heads() >= {"a0.h1", "a1.h2", "a0.h3", "a2.h0"}
    assert torch.equal(f.functional().kept, f.kept) and torch.equal(prune_to_paths(c).kept, f.kept)


def test_an_edge_into_a_receiver_that_reaches_nothing_is_not_functional() -> None:
    into_nothing = ["a0.h1->a2.h2<q>", "a2.h2<q>"]   # a2.h2 sends no kept edge
    c = Circuit.from_edge_names(SMALL, PATH + into_nothing)
    assert set(c.functional().kept_edge_names()) == set(PATH)
    # its direct edge gates a head's input: without it the q input reaches nothing
    without_direct = [e for e in PATH if e != "a0.h1<q>"]
    assert Circuit.from_edge_names(SMALL, without_direct).n_functional_edges == 0


def test_gqa_a_head_counts_for_what_it_sends_not_its_groups_kv_input() -> None:
    # key-value head 0 of layer 1 serves query heads 0 and 1; only a1.h1 sends anything
    names = ["input->a1.kv0<v>", "a1.kv0<v>", "a1.h1->logits"]
    c = Circuit.from_edge_names(GQA, names)
    assert c.heads() == {"a1.h0", "a1.h1"}  # the kv edge touches both query heads of the group
    assert c.functional_heads() == {"a1.h1"}
    assert set(c.functional().kept_edge_names()) == set(names)
    # with its direct edge removed, the key-value head passes nothing to either query head
    assert Circuit.from_edge_names(GQA, names[::2]).n_functional_edges == 0
    # without direct edges in the graph a k/v input always feeds its query heads
    no_direct = Circuit.from_edge_names(NO_DIRECT_GQA, ["input->a1.kv0<v>", "a1.h0->m2", "m2->logits"])
    assert no_direct.n_functional_edges == 3 and no_direct.functional_heads() == {"a1.h0"}


def test_functional_part_of_random_circuits_is_a_closed_subset() -> None:
    rng = random.Random(1)
    for graph in (SMALL, GQA, NO_DIRECT_GQA):
        assert Circuit.full(graph).n_functional_edges == graph.n_edges
        assert Circuit.empty(graph).n_functional_edges == 0
        for _ in range(10):
            c = Circuit(graph, torch.tensor([rng.random() < 0.15 for _ in range(graph.n_edges)]))
            f = c.functional()
            assert not (f.kept & ~c.kept).any() and torch.equal(f.functional().kept, f.kept)
            assert c.functional_heads() <= c.heads() and f.functional_heads() == c.functional_heads()


# ----- old names in circuit files --------------------------------------------------------------------
def _old_spelling(name: str) -> str:
    return name.replace(".kv", ".h")


def test_circuit_files_with_the_old_kv_names_load(tmp_path: Path) -> None:
    c = Circuit.from_edge_names(GQA, ["input->a1.kv1<k>", "a1.kv1<k>", "a0.h2->a2.kv0<v>", "a1.h3->a2.h1<q>",
                                      "a1.h2->logits"], metrics={"kl": 0.5})
    path = save_circuit(c, tmp_path / "new.json")
    data = json.loads(path.read_text())
    data["kept"] = [_old_spelling(n) for n in data["kept"]]
    assert "a1.h1<k>" in data["kept"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    loaded = load_circuit(old)
    assert loaded.kept_edge_names() == c.kept_edge_names() and dict(loaded.metrics) == {"kl": 0.5}
    # without grouped-query attention `a1.h1<k>` is query head 1's own k input, and stays so
    plain = Circuit.from_edge_names(SMALL, ["input->a1.h1<k>", "a1.h1<k>"])
    assert load_circuit(save_circuit(plain, tmp_path / "plain.json")).kept_edge_names() == plain.kept_edge_names()
