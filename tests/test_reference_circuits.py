"""The cited reference circuits and the ACDC reference's ground-truth edge sets on GPT-2 small's graph."""

import pytest

from acdc_compare.compare import hook_nodes
from acdc_compare.graph import Graph
from acdc_compare.reference_circuits import (
    GREATER_THAN_HEADS,
    GREATER_THAN_MLPS,
    IOI_HEAD_CLASSES,
    IOI_HEADS,
    IOI_ROLES,
    greater_than_ground_truth,
    head_roles,
    ioi_ground_truth,
)
from acdc_compare.types import ModelConfig


@pytest.fixture(scope="module")
def gpt2_graph() -> Graph:
    return Graph.from_model_config(ModelConfig.gpt2_small())


@pytest.fixture(scope="module")
def ioi(gpt2_graph):
    return ioi_ground_truth(gpt2_graph)


@pytest.fixture(scope="module")
def gt(gpt2_graph):
    return greater_than_ground_truth(gpt2_graph)


def test_ioi_head_classes_are_the_papers_26_heads():
    assert len(IOI_ROLES) == 7 and set(IOI_HEAD_CLASSES) == set(IOI_ROLES)
    assert len(IOI_HEADS) == 26 == len(set(IOI_HEADS))
    assert IOI_HEAD_CLASSES["name mover"] == ("a9.h9", "a9.h6", "a10.h0")
    assert IOI_HEAD_CLASSES["negative name mover"] == ("a10.h7", "a11.h10")
    roles = head_roles()
    assert len(roles) == 26
    assert roles["a9.h9"] == "name mover"
    assert roles["a8.h10"] == "S-inhibition"
    assert roles["a4.h11"] == "previous token"
    assert roles["a3.h0"] == "duplicate token"


def test_greater_than_components():
    assert GREATER_THAN_HEADS == ("a0.h1", "a0.h3", "a0.h5", "a5.h5", "a6.h1", "a6.h9", "a7.h10", "a8.h11", "a9.h1")
    assert GREATER_THAN_MLPS == ("m0", "m1", "m2", "m3", "m8", "m9", "m10", "m11")


def test_gpt2_graph_size(gpt2_graph):
    assert gpt2_graph.n_edges == 32_923


def test_ioi_ground_truth_counts(ioi):
    assert ioi.n_kept == 1_041
    assert ioi.heads() == set(IOI_HEADS)
    # ours: input + 26 heads + 12 MLPs + logits; the reference's hook-level count: 26 x 7 + 12 + 2
    assert len(ioi.nodes()) == 40
    assert len(hook_nodes(ioi)) == 196


def test_greater_than_ground_truth_counts(gt):
    assert gt.n_kept == 262
    assert gt.heads() == set(GREATER_THAN_HEADS)
    assert len(gt.nodes()) == 23  # input + 9 heads + 12 MLPs + logits
    assert len(hook_nodes(gt)) == 77  # 9 x 7 + 12 + 2


def test_without_direct_edges_only_the_direct_edges_go():
    graph = Graph.from_model_config(ModelConfig.gpt2_small(), include_direct=False)
    assert ioi_ground_truth(graph).n_kept == 1_041 - 26 * 3
    assert greater_than_ground_truth(graph).n_kept == 262 - 9 * 3


@pytest.mark.parametrize("edge", [
    "a9.h9->logits",          # name mover -> output
    "a11.h10->logits",        # negative name mover -> output
    "a9.h9->m10",             # circuit head -> later MLP
    "a9.h9<q>",               # circuit head's direct edge
    "input->a7.h3<q>",        # INPUT -> S-inhibition q
    "m6->a7.h3<q>",           # an MLP is part of INPUT
    "m3->a7.h3<k>",           # MLP -> circuit head, any letter (the reference keeps these)
    "a5.h5->a7.h3<k>",        # induction -> S-inhibition k
    "a0.h1->a8.h6<v>",        # duplicate token -> S-inhibition v
    "a2.h2->a5.h5<k>",        # previous token -> induction k
    "a7.h9->a10.h7<q>",       # S-inhibition -> negative name mover q
    "input->a9.h6<v>",        # INPUT -> name mover v
    "input->a0.h10<q>",       # INPUT -> duplicate token q
    "input->m0", "m0->m5", "m11->logits", "input->logits",
])
def test_ioi_edges_in(ioi, edge):
    assert edge in ioi


@pytest.mark.parametrize("edge", [
    "a1.h5->logits",          # not a circuit head
    "a1.h5->m3",
    "m0->a1.h5<q>",
    "a1.h5<q>",
    "input->a7.h3<k>",        # S-inhibition reads INPUT only through q
    "input->a9.h9<q>",        # name movers read INPUT only through k, v
    "a5.h5->a7.h3<q>",        # induction feeds S-inhibition k, v only
    "a9.h9->a10.h0<q>",       # no mover -> mover edges
    "a7.h3->logits",          # S-inhibition is not an output head
    "a2.h2->a5.h5<q>",
])
def test_ioi_edges_out(ioi, edge):
    assert edge not in ioi


@pytest.mark.parametrize("edge", [
    "input->a0.h1<q>", "input->a0.h5<v>", "input->m3",
    "a0.h1->m0", "a0.h3->a5.h5<k>", "a0.h1->a9.h1<v>",
    "m2->a9.h1<k>", "m5->a9.h1<q>", "m4->m8", "m0->m3", "m8->m9",
    "a8.h11->m8", "a6.h9->m11", "a6.h9->logits", "m11->logits", "a6.h9<k>",
])
def test_greater_than_edges_in(gt, edge):
    assert edge in gt


@pytest.mark.parametrize("edge", [
    "input->logits", "input->a5.h5<q>", "m5->a9.h1<k>", "a5.h5->a6.h1<q>", "a7.h10->m7", "m4->logits", "m3->m9",
    "a0.h1->logits", "a0.h3->m0", "a1.h5<q>", "a5.h5->a9.h1<q>",
])
def test_greater_than_edges_out(gt, edge):
    assert edge not in gt


@pytest.mark.parametrize("cfg", [
    ModelConfig(n_layers=2, n_heads=2),
    ModelConfig(n_layers=12, n_heads=12, attn_only=True),
    ModelConfig(n_layers=12, n_heads=12, n_kv_heads=4),
    ModelConfig(n_layers=12, n_heads=12, parallel_attn_mlp=True),
])
def test_non_gpt2_small_graph_is_refused(cfg):
    graph = Graph.from_model_config(cfg)
    with pytest.raises(ValueError, match="GPT-2 small"):
        ioi_ground_truth(graph)
    with pytest.raises(ValueError, match="GPT-2 small"):
        greater_than_ground_truth(graph)
