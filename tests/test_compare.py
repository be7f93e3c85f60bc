"""Comparison, ROC/AUC and faithfulness maths on small hand-made circuits (no model)."""

import math

import pytest
import torch

from acdc_compare.circuit import Circuit
from acdc_compare.compare import (
    RocPoint,
    compare_circuits,
    format_head_class_recovery,
    head_class_recovery,
    hook_nodes,
    pareto_front,
    pessimistic_auc,
    roc_auc,
    roc_point,
    roc_points,
    score_auc,
    score_roc_points,
)
from acdc_compare.faithfulness import DEFAULT_FRACTIONS, faithfulness_curve, log_spaced_fractions, normalized_faithfulness
from acdc_compare.graph import Graph, GraphConfig
from acdc_compare.reference_circuits import IOI_HEAD_CLASSES, ioi_ground_truth
from acdc_compare.types import ModelConfig


@pytest.fixture(scope="module")
def tiny() -> Graph:
    # 19 edges: input/a0.h0/a0.h1/m0 -> ..., six direct edges
    return Graph(GraphConfig(n_layers=1, n_heads=2, n_kv_heads=2))


@pytest.fixture(scope="module")
def a(tiny):
    return Circuit.from_edge_names(tiny, ["input->m0", "a0.h0->m0", "m0->logits", "a0.h0->logits"])


@pytest.fixture(scope="module")
def b(tiny):
    return Circuit.from_edge_names(tiny, ["input->m0", "m0->logits", "a0.h1->logits", "a0.h1<q>"])


# ----- compare_circuits -----------------------------------------------------------------------------

def test_edge_overlap_by_hand(a, b):
    c = compare_circuits(a, b)
    assert c.edges.both == ("input->m0", "m0->logits")
    assert c.edges.only_a == ("a0.h0->m0", "a0.h0->logits")
    assert c.edges.only_b == ("a0.h1<q>", "a0.h1->logits")
    assert c.edges.precision == pytest.approx(2 / 4)
    assert c.edges.recall == pytest.approx(2 / 4)
    assert c.edges.f1 == pytest.approx(0.5)
    assert c.edges.jaccard == pytest.approx(2 / 6)


def test_node_and_head_overlap_by_hand(a, b):
    c = compare_circuits(a, b)
    # a touches input, a0.h0, m0, logits; b touches input, a0.h1 (its direct edge too), m0, logits
    assert c.nodes.both == ("input", "m0", "logits")
    assert c.nodes.only_a == ("a0.h0",) and c.nodes.only_b == ("a0.h1",)
    assert c.nodes.precision == pytest.approx(3 / 4)
    assert c.nodes.recall == pytest.approx(3 / 4)
    assert c.nodes.jaccard == pytest.approx(3 / 5)
    assert c.heads.only_a == ("a0.h0",) and c.heads.only_b == ("a0.h1",) and c.heads.both == ()
    assert c.heads.f1 == 0.0


def test_asymmetric_precision_recall(tiny, b):
    sub = Circuit.from_edge_names(tiny, ["input->m0"])
    c = compare_circuits(sub, b)
    assert c.edges.precision == 1.0
    assert c.edges.recall == pytest.approx(1 / 4)
    assert c.edges.f1 == pytest.approx(2 * 1 * 0.25 / 1.25)


def test_empty_sets_do_not_divide_by_zero(tiny, b):
    empty = Circuit.empty(tiny)
    both_empty = compare_circuits(empty, empty)
    assert (both_empty.edges.precision, both_empty.edges.recall, both_empty.edges.f1, both_empty.edges.jaccard) == (
        1.0, 1.0, 1.0, 1.0)
    found_nothing = compare_circuits(empty, b)
    assert found_nothing.edges.precision == 1.0
    assert found_nothing.edges.recall == 0.0
    assert found_nothing.edges.f1 == 0.0
    assert found_nothing.edges.jaccard == 0.0


def test_compare_needs_one_graph(a):
    other = Circuit.empty(Graph(GraphConfig(n_layers=2, n_heads=2, n_kv_heads=2)))
    with pytest.raises(ValueError, match="graph"):
        compare_circuits(a, other)
    with pytest.raises(ValueError, match="graph"):
        roc_point(a, other)


def test_hook_nodes_by_hand(b):
    # input->m0, m0->logits, a0.h1->logits, and the direct edge a0.h1<q> (q input -> q vector)
    assert hook_nodes(b) == {"input", "m0", "logits", "a0.h1", "a0.h1<q>", "a0.h1.q"}


# ----- head classes ------------------------------------------------------------------------------------

def test_head_class_recovery():
    found = {"a9.h9", "a9.h6", "a10.h0", "a7.h3", "a8.h6", "a1.h5"}
    rec = head_class_recovery(found, IOI_HEAD_CLASSES)
    assert rec["name mover"] == (3, 3)
    assert rec["S-inhibition"] == (2, 4)
    assert rec["backup name mover"] == (0, 8)
    assert sum(t for _, t in rec.values()) == 26
    text = format_head_class_recovery(rec)
    assert text.startswith("name mover 3/3, backup name mover 0/8, negative name mover 0/2, S-inhibition 2/4")
    assert format_head_class_recovery(head_class_recovery(set(), {"x": ("a0.h0",)})) == "x 0/1"


# ----- ROC / AUC -------------------------------------------------------------------------------------

def test_roc_point_by_hand(a, b, tiny):
    # b has 4 of the 19 edges; a finds 2 of them and 2 of the 15 others
    assert roc_point(a, b) == RocPoint(2 / 15, 2 / 4)
    assert roc_point(b, b) == RocPoint(0.0, 1.0)
    assert roc_point(Circuit.full(tiny), b) == RocPoint(1.0, 1.0)
    # nodes: 5 in all, b has 4 (input, a0.h1, m0, logits); a finds 3 of them and a0.h0
    assert roc_point(a, b, over="nodes") == RocPoint(1 / 1, 3 / 4)
    with pytest.raises(ValueError):
        roc_point(a, b, over="heads")  # type: ignore[arg-type]


def test_staircase_by_hand():
    # the ACDC reference's own checks
    assert pessimistic_auc([]) == 0.0
    assert pessimistic_auc([(0.5, 0.5)]) == pytest.approx(0.25)
    assert pessimistic_auc([(0.25, 0.25)]) == pytest.approx(0.25 * 0.75)
    assert pessimistic_auc([(0.25, 0.25), (0.5, 0.5)]) == pytest.approx(5 / 16)
    assert pessimistic_auc([(0.25, 0.25), (0.75, 0.5)]) == pytest.approx(4 / 16)
    # rises of 0.5 at FPR 0.25 and 0.25 at FPR 0.5: 0.75 * 0.5 + 0.5 * 0.25 (+ 0 * 0.25 at FPR 1)
    pts = [(0.25, 0.5), (0.5, 0.75)]
    assert pessimistic_auc(pts) == pytest.approx(0.5)
    # a dominated point (higher FPR, lower TPR than (0.25, 0.5)) changes nothing; so does a duplicate
    assert pessimistic_auc(pts + [(0.6, 0.4), (0.25, 0.5)]) == pytest.approx(0.5)
    assert pessimistic_auc([(0.0, 1.0)]) == 1.0


def test_pareto_front_drops_only_strictly_dominated():
    front = pareto_front([(0.5, 0.75), (0.25, 0.5), (0.6, 0.4), (0.5, 0.6), (0.25, 0.5)])
    assert front == [RocPoint(0.25, 0.5), RocPoint(0.5, 0.6), RocPoint(0.5, 0.75)]


def test_roc_auc_of_circuits(tiny, b):
    perfect = [Circuit.empty(tiny), b, Circuit.full(tiny)]
    assert roc_points(perfect, b) == [RocPoint(0, 0), RocPoint(0, 1), RocPoint(1, 1)]
    assert roc_auc(perfect, b) == 1.0
    assert roc_auc(perfect, b, over="nodes") == 1.0
    complement = Circuit(tiny, ~b.kept)
    assert roc_auc([complement], b) == 0.0


def test_roc_auc_of_a_threshold_sweep(tiny, b):
    scores = b.kept.double()
    circuits = [Circuit.from_scores(tiny, scores, threshold=t) for t in (2.0, 0.5, -1.0)]
    assert [c.n_kept for c in circuits] == [0, 4, 19]
    assert roc_auc(circuits, b) == 1.0


@pytest.fixture(scope="module")
def ioi():
    return ioi_ground_truth(Graph.from_model_config(ModelConfig.gpt2_small()))


def test_score_auc_perfect_reversed_random(ioi):
    truth = ioi.kept.double()
    gen = torch.Generator().manual_seed(0)
    noise = torch.rand(ioi.n_edges, generator=gen, dtype=torch.float64) * 0.9
    assert score_auc(truth + noise, ioi) == 1.0
    assert score_auc(-(truth + noise), ioi) == 0.0
    aucs = [score_auc(torch.rand(ioi.n_edges, generator=gen), ioi) for _ in range(3)]
    assert all(abs(x - 0.5) < 0.05 for x in aucs)


def test_score_auc_matches_pair_counting(b):
    # pessimistic AUC with distinct scores = P(a reference edge outscores a non-reference edge)
    gen = torch.Generator().manual_seed(1)
    scores = torch.randn(b.n_edges, generator=gen, dtype=torch.float64)
    pos, neg = scores[b.kept], scores[~b.kept]
    expected = float((pos[:, None] > neg[None, :]).double().mean())
    assert score_auc(scores, b) == pytest.approx(expected)


def test_score_ties_and_nans_are_pessimistic(tiny, b):
    # all tied: one step from (0, 0) to (1, 1): the staircase gives 0
    assert score_roc_points(torch.zeros(tiny.n_edges), b) == [RocPoint(0, 0), RocPoint(1, 1)]
    assert score_auc(torch.zeros(tiny.n_edges), b) == 0.0
    # reference edges scored, the rest NaN: perfect
    scores = torch.where(b.kept, torch.tensor(1.0, dtype=torch.float64), torch.tensor(math.nan, dtype=torch.float64))
    assert score_auc(scores, b) == 1.0
    with pytest.raises(ValueError, match="edges"):
        score_auc(torch.zeros(3), b)


# ----- faithfulness ------------------------------------------------------------------------------------

def test_normalized_faithfulness():
    assert normalized_faithfulness(3.0, 4.0, 2.0) == pytest.approx(0.5)
    assert normalized_faithfulness(4.0, 4.0, 2.0) == 1.0
    assert normalized_faithfulness(2.0, 4.0, 2.0) == 0.0
    assert normalized_faithfulness(-1.0, -2.0, 0.0) == pytest.approx(0.5)  # works for minimised metrics too
    with pytest.raises(ValueError, match="undefined"):
        normalized_faithfulness(1.0, 2.0, 2.0)


def test_default_fractions_span_a_thousandth_to_all():
    assert DEFAULT_FRACTIONS[0] == pytest.approx(1e-3)
    assert DEFAULT_FRACTIONS[-1] == 1.0
    ratios = [y / x for x, y in zip(DEFAULT_FRACTIONS, DEFAULT_FRACTIONS[1:])]
    assert all(r == pytest.approx(ratios[0]) for r in ratios)
    assert log_spaced_fractions(4, 0.001) == pytest.approx((0.001, 0.01, 0.1, 1.0))


def test_faithfulness_curve_linear_metric(tiny):
    n = tiny.n_edges  # 19
    scores = torch.arange(n, dtype=torch.float64)
    evaluated: list[Circuit] = []

    def evaluate(c: Circuit) -> float:  # linear in kept edges: f = k / n
        evaluated.append(c)
        return 3.0 + 2.0 * c.n_kept

    fractions = (1 / n, 5 / n, 1.0)
    curve = faithfulness_curve(scores, tiny, evaluate, fractions)
    assert curve.sizes == (1, 5, n)
    assert curve.m_full == 3.0 + 2.0 * n and curve.m_empty == 3.0
    assert curve.faithfulness == pytest.approx((1 / n, 5 / n, 1.0))
    # f = x on [a, 1], width 1 - a: CPR = (1 + a) / 2, CMD = (1 - a) / 2 (trapezoids exact for lines)
    a = 1 / n
    assert curve.cpr == pytest.approx((1 + a) / 2)
    assert curve.cmd == pytest.approx((1 - a) / 2)
    # top-k by score: the single kept edge is the highest-scoring one
    first = evaluated[2]
    assert first.n_kept == 1 and bool(first.kept[n - 1])


def test_faithfulness_curve_given_baselines_and_log_axis(tiny):
    n = tiny.n_edges
    calls = []

    def evaluate(c: Circuit) -> float:
        calls.append(c.n_kept)
        return float(c.n_kept >= 2)  # a step: faithful from two edges on

    fractions = (1 / n, 2 / n, 4 / n)
    curve = faithfulness_curve(torch.ones(n), tiny, evaluate, fractions, m_full=1.0, m_empty=0.0, log_x=True)
    assert calls == [1, 2, 4]  # full and empty not evaluated when given
    assert curve.faithfulness == (0.0, 1.0, 1.0)
    # log2 spacing is even: two equal segments, areas 0.5 and 1 -> 0.75; |1 - f| -> 0.25
    assert curve.cpr == pytest.approx(0.75)
    assert curve.cmd == pytest.approx(0.25)


def test_faithfulness_curve_rejects_bad_fractions(tiny):
    with pytest.raises(ValueError, match="fractions"):
        faithfulness_curve(torch.ones(tiny.n_edges), tiny, lambda c: 0.0, (0.0, 1.0), m_full=1.0, m_empty=0.0)
