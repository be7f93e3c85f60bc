"""Hybrid discovery: EAP-IG picks the candidates, exact greedy ACDC decides among them.

What it does, exactly:
1. Score every edge with EAP-IG (`eap_ig_scores(problem, steps)`, |score| by default) - or take the
   scores given as `prior` (e.g. to share one EAP-IG run across a threshold sweep).
2. Keep the `k` highest-scoring edges as candidates (ties broken by edge index, NaN last) - or, with
   `coverage=c` instead of `k`, the smallest k on the grid 25 x 2^i (and all edges) whose top-k EAP-IG
   circuit alone reaches normalised faithfulness c, so the candidates hold that much of the task's effect
   before ACDC prunes them (`settings["k"]`, `settings["candidate_faithfulness"]`). Every other edge
   is removed before ACDC starts and is never tested; its score in the result is NaN, like an edge ACDC
   removed untested because its receiver was dead.
   With `functional`, the candidates are first reduced to their part on input->logits paths
   (`Circuit.functional`): the dropped edges change no metric, so no test is spent on them and the edge
   budget goes to edges that can matter.
   With `ranking="learned"`, the EAP-IG scores only start a mask-learning run (`algorithms.learned`) whose
   edge budget is k, and its learned logits rank the candidates instead: on IOI the learned top 1,422 keep
   0.87 of the behaviour on new prompts where EAP-IG's keep 0.75. With `rank_prompts=n`, EAP-IG
   scores the first n prompts only (the learning and ACDC use them all).
   With `tested=t`, ACDC tests only the t lowest-ranked candidates; the higher-ranked ones are kept without a
   test (`run_acdc(..., fixed=...)`). A circuit of a few hundred edges chosen by ACDC on 8 prompts keeps
   less of the behaviour on new prompts than a larger one chosen by attribution: the fixed edges carry the
   mechanism, ACDC decides the uncertain boundary exactly.
3. Run greedy ACDC (`acdc(problem, threshold, candidates=...)`) from that circuit: same reference order,
   same threshold rule, same dead-receiver rule, testing only candidates. Scores of tested edges are
   ACDC's (the metric change their removal caused, on the circuit at that moment); every other edge keeps the
   ranking's score that placed it (the learned logit, or EAP-IG's score), with its kind (`Circuit.score_kinds`),
   so the circuit can be ranked by the evidence each edge was kept on (`Circuit.ranking`).

How its circuit relates to exact ACDC's: with k = None or k >= n_edges (and no `tested`) nothing is filtered
and EAP-IG is not even run: the result is exact ACDC's, edge for edge. With fewer candidates it is a subset of the candidates,
and it differs from exact ACDC's in two ways: an edge that ACDC would keep but EAP-IG ranks below the
top k is lost, and every test is made on a circuit that already lacks the non-candidates, so borderline
decisions can go either way. Its faithfulness should be checked (`metrics["circuit"]` against "full" and
"empty", or `faithfulness_of_scores`), as the benchmark does beside exact ACDC's. Cost: EAP-IG's forward
and backward passes plus at most k tested edges instead of n_edges.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Literal

import torch

from acdc_compare.algorithms.acdc import AcdcOptions, run_acdc
from acdc_compare.algorithms.base import AlgorithmSpec, option
from acdc_compare.algorithms.eap import IGRule, check_steps, eap_ig_scores, evaluate_many, ig_alphas
from acdc_compare.algorithms.learned import MaskLearning, learned_mask_scores
from acdc_compare.algorithms.problem import Problem
from acdc_compare.circuit import SCORE_KINDS, Circuit, kind_codes
from acdc_compare.faithfulness import normalized_faithfulness
from acdc_compare.progress import ProgressLike
from acdc_compare.types import ScoreKind


Ranking = Literal["eap-ig", "learned"]


@dataclass(frozen=True)
class HybridOptions(AcdcOptions):
    """ACDC's settings plus how the EAP-IG candidates are chosen: the top `k`, or with `coverage` the fewest
    top edges whose circuit reaches that normalised faithfulness; `prior`: EAP-IG scores [n_edges] already
    computed for this problem, used instead of running EAP-IG again."""

    k: int | None = option(None, "hybrid: number of candidates, the top k by the ranking; with --ranking learned "
                                 "also the learned circuit's edge budget (None: all edges)")
    coverage: float | None = option(None, "hybrid, instead of --k: the fewest top EAP-IG edges whose circuit "
                                          "reaches this normalised faithfulness (e.g. 0.8) become the candidates")
    steps: int = option(5, "EAP-IG integration steps")
    prior: torch.Tensor | None = option(None, "EAP-IG scores to rank by instead of running EAP-IG", cli=False)
    absolute: bool = option(True, "rank edges by |score| (MIB's convention)")
    rule: IGRule = option("left", "Riemann rule of the integration", flag="--ig-rule")
    tested: int | None = option(None, "hybrid: ACDC tests only this many lowest-ranked candidates; the "
                                      "higher-ranked ones are kept untested (None: test every candidate)")
    functional: bool = option(False, "hybrid: reduce the candidates to their input->logits paths first (the "
                                     "dropped edges change nothing)")
    ranking: Ranking = option("eap-ig", "hybrid: rank the candidates by EAP-IG, or by masks learned from it "
                                        "with an edge budget of --k (see acdc_compare.algorithms.learned)")
    learn_steps: int = option(16, "hybrid, --ranking learned: optimisation steps")
    learn_batch: int = option(8, "hybrid, --ranking learned: prompts per step (minibatches, in order)")
    rank_prompts: int | None = option(None, "hybrid: EAP-IG scores only the first this many prompts "
                                            "(None: all)")

    def __post_init__(self) -> None:
        super().__post_init__()
        k, coverage = self.k, self.coverage
        if k is not None and (isinstance(k, bool) or int(k) != k or k < 0):
            raise ValueError(f"k must be a whole number >= 0 (or None for all edges), got {k!r}")
        if coverage is not None:
            if k is not None:
                raise ValueError("give k or coverage, not both")
            if not 0.0 < float(coverage) <= 1.0:
                raise ValueError(f"coverage must be a faithfulness in (0, 1], got {coverage!r}")
        check_steps(self.steps)
        ig_alphas(1, self.rule)
        if self.ranking not in ("eap-ig", "learned"):
            raise ValueError(f"ranking must be 'eap-ig' or 'learned', got {self.ranking!r}")
        if self.ranking == "learned":
            if k is None and coverage is None:
                raise ValueError("ranking='learned' needs k (or coverage), the learned circuit's edge budget")
            mask_learning(self, max(1, int(k or 1)))
        r = self.rank_prompts
        if r is not None and (isinstance(r, bool) or int(r) != r or r < 1):
            raise ValueError(f"rank_prompts must be a whole number >= 1 (or None for all), got {r!r}")
        t = self.tested
        if t is not None and (isinstance(t, bool) or int(t) != t or t < 0):
            raise ValueError(f"tested must be a whole number >= 0 (or None for every candidate), got {t!r}")


def hybrid(problem: Problem, threshold: float, **options: Any) -> Circuit:
    """ACDC over the top-`k` edges by EAP-IG score, or over the fewest top edges reaching faithfulness
    `coverage` (options: `HybridOptions`; see the module docstring)."""
    if "candidates" in options:
        raise TypeError("hybrid chooses the candidates itself; call acdc(..., candidates=...) directly instead")
    return run_hybrid(problem, HybridOptions(threshold=threshold, **options))


def run_hybrid(problem: Problem, options: HybridOptions) -> Circuit:
    graph = problem.graph
    n = graph.n_edges
    k, coverage, prior = options.k, options.coverage, options.prior
    started = time.perf_counter()
    filtered = coverage is not None or (k is not None and k < n)
    ranked = filtered or options.tested is not None  # `tested` picks the lowest-ranked: it needs the ranking
    candidates = attribution = None
    prior_seconds = 0.0
    extra: dict[str, Any] = {}
    if ranked:
        if prior is None:
            prior = eap_ig_scores(ranking_problem(problem, options.rank_prompts), options.steps,
                                  absolute=options.absolute, rule=options.rule, progress=options.progress)
        else:
            prior = torch.as_tensor(prior, dtype=torch.float64).detach().cpu()
            if prior.shape != (n,):
                raise ValueError(f"prior has shape {tuple(prior.shape)}; the graph has {n} edges")
        if coverage is not None:
            k, reached = smallest_covering_k(problem, prior, float(coverage), progress=options.progress)
            extra = {"coverage": float(coverage), "candidate_faithfulness": reached}
        attribution = prior
        if options.ranking == "learned":
            learning = mask_learning(options, min(int(k), n))  # type: ignore[arg-type]
            prior = learned_mask_scores(problem, prior, learning, progress=options.progress)
        prior_seconds = time.perf_counter() - started
        top = Circuit.from_scores(graph, prior, top_n=n if k is None else min(int(k), n))
        candidates = (top.functional() if options.functional else top).kept
    fixed = None
    if candidates is not None and options.tested is not None:
        fixed, candidates = split_by_rank(candidates, prior, options.tested)  # type: ignore[arg-type]
        extra["n_fixed"] = int(fixed.sum())
    found = run_acdc(problem, options, candidates=candidates, fixed=fixed)
    settings = {**found.settings, "method": "hybrid", "k": n if k is None else int(k), **extra,
                "tested": options.tested, "functional": options.functional, "ranking": options.ranking,
                **({"learn_steps": options.learn_steps, "learn_batch": options.learn_batch}
                   if options.ranking == "learned" else {}),
                "rank_prompts": options.rank_prompts,
                "steps": options.steps if ranked else 0, "absolute": options.absolute, "rule": options.rule,
                "prior_seconds": prior_seconds, "acdc_seconds": found.settings["seconds"],
                "seconds": time.perf_counter() - started}
    scores, kinds = found.scores, found.score_kinds
    if ranked:
        scores, kinds = evidence(found, prior, attribution, options.ranking)  # type: ignore[arg-type]
    return Circuit(graph, found.kept, scores, metrics=found.metrics, settings=settings, score_kinds=kinds)


def evidence(found: Circuit, ranking: torch.Tensor, attribution: torch.Tensor,
             kind: Ranking) -> tuple[torch.Tensor, torch.Tensor]:
    """Per edge, the score it was kept or removed on, and its kind: ACDC's metric change where ACDC tested
    it, else the ranking's score (a learned logit; EAP-IG's score outside the learned candidates)."""
    tested = found.score_kinds == SCORE_KINDS.index(ScoreKind.ACDC)
    ranked = torch.as_tensor(ranking, dtype=torch.float64)
    ranking_kind = ScoreKind.LEARNED if kind == "learned" else ScoreKind.EAP_IG
    from_ranking = torch.where(torch.isnan(ranked), attribution, ranked)
    from_ranking_kinds = torch.where(torch.isnan(ranked), kind_codes(ScoreKind.EAP_IG, attribution),
                                     kind_codes(ranking_kind, ranked))
    return (torch.where(tested, found.scores, from_ranking),
            torch.where(tested, found.score_kinds, from_ranking_kinds))


def mask_learning(options: HybridOptions, budget: int) -> MaskLearning:
    """The mask learning of `ranking="learned"` for an edge budget: the options' steps and minibatch, and at
    least as many candidates as the budget."""
    return MaskLearning(budget=budget, steps=options.learn_steps, batch_prompts=options.learn_batch,
                        candidates=max(MaskLearning.candidates, budget))


def ranking_problem(problem: Problem, n_prompts: int | None) -> Problem:
    """The problem EAP-IG ranks on: the first `n_prompts` prompts (None, or at least all: the problem)."""
    if n_prompts is None or n_prompts >= problem.task.n_prompts:
        return problem
    return problem.select(range(n_prompts))


def split_by_rank(chosen: torch.Tensor, scores: torch.Tensor, n_low: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(high, low): the chosen edges [n_edges] split into the `n_low` lowest-scored (NaN lowest; ties: the
    later edge lower) and the rest."""
    idx = torch.nonzero(chosen).flatten()
    key = torch.nan_to_num(scores[idx].double(), nan=-math.inf)
    order = idx[torch.sort(-key, stable=True).indices]
    n_high = max(0, len(order) - int(n_low))
    high = torch.zeros_like(chosen)
    high[order[:n_high]] = True
    return high, chosen & ~high


def coverage_grid(n_edges: int, start: int = 25) -> list[int]:
    """Candidate counts tried by `coverage`: start, 2 x start, 4 x start, ... below n_edges, then n_edges."""
    sizes, k = [], start
    while k < n_edges:
        sizes.append(k)
        k *= 2
    return [*sizes, n_edges]


def smallest_covering_k(problem: Problem, scores: torch.Tensor, coverage: float, *,
                        progress: ProgressLike = None) -> tuple[int, float]:
    """The smallest grid size k whose circuit of the k highest `scores` has normalised faithfulness
    >= coverage, and that faithfulness. All grid circuits are evaluated together (batched forwards;
    `progress`: one bar over them)."""
    graph = problem.graph
    n = graph.n_edges
    m_full, m_empty = problem.metric_ends
    sizes = coverage_grid(n)
    masks = torch.stack([Circuit.from_scores(graph, scores, top_n=size).kept for size in sizes])
    values = evaluate_many(problem, masks, progress=progress, desc="coverage").tolist()
    if m_full == m_empty:
        return n, 1.0  # the task's effect is nil: nothing to cover, keep every edge
    for size, value in zip(sizes, values):
        reached = normalized_faithfulness(value, m_full, m_empty)
        if reached >= coverage:
            return size, reached
    return n, 1.0


SPEC = AlgorithmSpec("hybrid", HybridOptions, run_hybrid, "EAP-IG picks the candidates (top k, or by coverage), "
                     "exact greedy ACDC decides among them")

__all__ = ["SPEC", "HybridOptions", "Ranking", "coverage_grid", "hybrid", "ranking_problem", "run_hybrid",
           "smallest_covering_k", "split_by_rank"]
