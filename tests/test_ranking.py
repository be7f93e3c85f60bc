"""Ranking a circuit's edges by the evidence each was kept on (`Circuit.ranking`), against a plain sort."""

from __future__ import annotations

import math

import pytest
import torch

from acdc_compare.circuit import SCORE_KINDS, Circuit
from acdc_compare.graph import Graph, GraphConfig
from acdc_compare.types import ScoreKind

GRAPH = Graph(GraphConfig(n_layers=3, n_heads=4, n_kv_heads=2))
KEPT_FIRST = {ScoreKind.LEARNED: 0, ScoreKind.EAP_IG: 0, ScoreKind.EAP: 0, ScoreKind.GIVEN: 0,
              ScoreKind.ACDC: 1, ScoreKind.NONE: 2}
REMOVED = {ScoreKind.ACDC: 3, ScoreKind.LEARNED: 4, ScoreKind.EAP_IG: 5, ScoreKind.EAP: 5, ScoreKind.GIVEN: 5,
           ScoreKind.NONE: 6}


def oracle_ranking(c: Circuit) -> list[int]:
    """Kept before removed; the method's ranking before ACDC's tests among kept edges, ACDC's tested ones
    before the rest among removed ones; then a learned logit as it is, other scores by |score|; then index."""
    def key(e: int) -> tuple[int, float, int]:
        kind, score, kept = c.score_kind(e), float(c.scores[e]), bool(c.kept[e])
        value = score if kind is ScoreKind.LEARNED else abs(score)
        return ((KEPT_FIRST if kept else REMOVED)[kind], -value if not math.isnan(value) else math.inf, e)
    return sorted(range(c.n_edges), key=key)


def _mixed(seed: int) -> Circuit:
    g = torch.Generator().manual_seed(seed)
    n = GRAPH.n_edges
    scores = torch.randn(n, generator=g, dtype=torch.float64)
    scores[torch.rand(n, generator=g) < 0.2] = math.nan
    scores[torch.rand(n, generator=g) < 0.1] = 0.5  # ties
    kinds = torch.randint(0, len(SCORE_KINDS), (n,), generator=g).to(torch.int8)
    return Circuit(GRAPH, torch.rand(n, generator=g) < 0.3, scores, score_kinds=kinds)


@pytest.mark.parametrize("seed", range(5))
def test_ranking_matches_the_oracle(seed: int) -> None:
    c = _mixed(seed)
    assert c.ranking().tolist() == oracle_ranking(c)


def test_rank_scores_and_importance_follow_the_ranking() -> None:
    c = _mixed(7)
    order = c.ranking().tolist()
    ranked = c.rank_scores()
    n = c.n_ranked()
    assert n == sum(bool(c.kept[e]) or not math.isnan(float(c.scores[e])) for e in range(c.n_edges))
    assert [float(ranked[e]) for e in order[:n]] == list(range(n, 0, -1))
    assert all(math.isnan(float(ranked[e])) for e in order[n:])
    importance = c.importance()
    kept = order[:c.n_kept]
    assert set(kept) == set(torch.nonzero(c.kept).flatten().tolist())
    assert [float(importance[e]) for e in kept] == pytest.approx([(c.n_kept - i) / c.n_kept for i in range(c.n_kept)])
    assert float(importance[~c.kept].abs().sum()) == 0.0


def test_a_learned_logit_ranks_by_sign_not_size() -> None:
    scores = torch.full((GRAPH.n_edges,), math.nan, dtype=torch.float64)
    scores[:3] = torch.tensor([-5.0, 2.0, 0.1], dtype=torch.float64)
    c = Circuit(GRAPH, torch.zeros(GRAPH.n_edges, dtype=torch.bool), scores, score_kinds=ScoreKind.LEARNED)
    assert c.ranking()[:3].tolist() == [1, 2, 0]
    eap = Circuit(GRAPH, c.kept, scores, score_kinds=ScoreKind.EAP_IG)
    assert eap.ranking()[:3].tolist() == [0, 1, 2]


def test_kinds_are_none_exactly_where_scores_are_nan() -> None:
    scores = torch.zeros(GRAPH.n_edges, dtype=torch.float64)
    scores[0] = math.nan
    kinds = torch.zeros(GRAPH.n_edges, dtype=torch.int8)  # NONE everywhere, against finite scores
    c = Circuit(GRAPH, torch.zeros(GRAPH.n_edges, dtype=torch.bool), scores, score_kinds=kinds)
    assert c.score_kind(0) is ScoreKind.NONE and c.score_kind(1) is ScoreKind.GIVEN
    with pytest.raises(ValueError, match="outside"):
        Circuit(GRAPH, c.kept, scores, score_kinds=torch.full((GRAPH.n_edges,), 99, dtype=torch.int8))
    assert c.kept_score_kinds() == {}
    assert Circuit(GRAPH, ~c.kept, scores).kept_score_kinds() == {ScoreKind.GIVEN: GRAPH.n_edges - 1,
                                                                  ScoreKind.NONE: 1}


def test_repr_names_the_task_and_the_one_head_count() -> None:
    c = Circuit.from_edge_names(GRAPH, ["input->a0.h1<q>", "a0.h1<q>", "a0.h1->logits", "input->a1.h2<q>"],
                                settings={"task": "ioi", "model": "tiny"})
    assert repr(c) == "Circuit(task ioi on tiny: 4 of %d edges kept, 1 head on paths)" % GRAPH.n_edges
    assert GRAPH.config.key in repr(Circuit.empty(GRAPH))
