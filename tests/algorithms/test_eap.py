"""EAP, EAP-IG and the hybrid on tiny float64 models.

What is asserted, and why it must hold:
- EAP's score is -dM/dmask_e at the full circuit, so it must equal a central finite difference of the
  patched metric in the edge's mask (mask values 1 +- h run through the same engine as ACDC).
- Under KL the full circuit is KL's minimum: the gradient, hence every EAP score, is zero.
- IG along the mask path (all edges scaled by alpha from 0 to 1) is complete: by the fundamental theorem of
  calculus its scores sum to M(empty) - M(full) (midpoint rule: error O(1/steps^2)).
- Integrating ONE edge's mask gradient from 0 to 1 (others kept) gives exactly that edge's patching effect
  M(full - e) - M(full): gradients along the edge's own path integrate to the exact effect. EAP-IG
  integrates along a different path (all inputs move together), so its single-edge scores equal the exact
  effects only to first order: we check that where first order holds, with an ablated run close to the
  clean one (effects O(eps), errors O(eps^2)), using the logit difference (KL's effects are second order).
- The hybrid with k = all edges runs no filter and is exact ACDC; with k < all edges it is exactly greedy
  ACDC over the candidates starting from the circuit without the others (checked against the
  one-edge-one-forward oracle).
"""

import dataclasses
import math

import pytest
import torch

from acdc_compare.backends import make_patcher
from acdc_compare.algorithms.acdc import acdc
from acdc_compare.algorithms.eap import (circuits_per_pass, eap, eap_ig, eap_ig_scores, eap_scores, evaluate_many,
                                         faithfulness_of_scores, ig_alphas)
from acdc_compare.algorithms.hybrid import coverage_grid, hybrid
from acdc_compare.algorithms.problem import Problem, make_problem
from acdc_compare.circuit import SCORE_KINDS, Circuit
from acdc_compare.types import ScoreKind
from acdc_compare.faithfulness import faithfulness_curve
from conftest import make_tiny, tiny_task
from acdc_compare.backends.hook_oracle import oracle_acdc


_problems: dict[tuple[str, str], Problem] = {}


def problem_for(kind: str, metric: str) -> Problem:
    if (kind, metric) not in _problems:
        _problems[kind, metric] = make_problem(make_patcher(make_tiny(kind)), tiny_task(), metric=metric)
    return _problems[kind, metric]


def exact_single_edge_effects(problem: Problem) -> torch.Tensor:
    """M(full - e) - M(full) for every edge e."""
    n = problem.graph.n_edges
    full = evaluate_many(problem, torch.ones(1, n, dtype=torch.bool))[0]
    return evaluate_many(problem, ~torch.eye(n, dtype=torch.bool)) - full


@pytest.mark.parametrize("kind", ["gpt2", "llama", "neox"])
def test_eap_is_the_finite_difference_of_the_patched_metric(kind):
    problem = problem_for(kind, "logit_diff")
    n, h = problem.graph.n_edges, 1e-4
    signed = eap_scores(problem, absolute=False)
    eye = torch.eye(n, dtype=torch.float64)
    down = evaluate_many(problem, 1.0 - h * eye)  # edge e at 1 - h, everything else kept
    up = evaluate_many(problem, 1.0 + h * eye)
    central = (down - up) / (2 * h)  # -dM/dmask_e
    scale = signed.abs().max()
    assert scale > 1e-3
    assert (signed - central).abs().max() <= 1e-6 * scale
    full = evaluate_many(problem, torch.ones(1, n))[0]
    one_sided = (down - full) / h  # the brief's first-order estimate of removing the edge
    assert (signed - one_sided).abs().max() <= 1e-3 * scale
    assert torch.equal(eap_scores(problem), signed.abs())


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_eap_under_kl_is_zero(kind):
    scores = eap_scores(problem_for(kind, "kl"), absolute=False)
    assert scores.abs().max() <= 1e-10
    assert eap_ig_scores(problem_for(kind, "kl"), steps=3).abs().max() > 1e-4  # EAP-IG is not blind to KL


@pytest.mark.parametrize("kind,metric", [("gpt2", "kl"), ("gpt2", "logit_diff"), ("llama", "kl"),
                                         ("neox", "logit_diff")])
def test_ig_along_the_mask_is_complete(kind, metric):
    problem = problem_for(kind, metric)
    n = problem.graph.n_edges
    full, empty = evaluate_many(problem, torch.stack([torch.ones(n, dtype=torch.bool),
                                                      torch.zeros(n, dtype=torch.bool)])).tolist()
    scores = eap_ig_scores(problem, steps=256, absolute=False, path="mask", rule="midpoint")
    assert abs(empty - full) > 1e-3
    assert float(scores.sum()) == pytest.approx(empty - full, rel=1e-3)  # llama-kl: 64 steps give 5e-3


def test_one_edge_path_integral_is_its_exact_effect():
    problem = problem_for("gpt2", "logit_diff")
    g, patcher = problem.graph, problem.patcher
    steps = 200
    t = ig_alphas(steps, "midpoint")
    exact = exact_single_edge_effects(problem)
    names = [f"a{g.n_layers - 1}.h1->logits", "m1->logits", "input->logits", "a0.h2->a2.h1<v>", "a2.h3<q>"]
    for name in names:
        e = g.edge_index(name)
        kept = torch.ones(steps, g.n_edges, dtype=torch.float64)
        kept[:, e] = t
        kept.requires_grad_(True)
        problem.metric(patcher.run_grad(problem.ctx, kept)).sum().backward()
        integral = -float(kept.grad[:, e].mean())  # -int_0^1 dM/dm_e dm_e = M(full - e) - M(full)
        assert integral == pytest.approx(float(exact[e]), rel=1e-4, abs=1e-9), name


def test_eap_ig_matches_exact_effects_to_first_order():
    base = problem_for("gpt2", "logit_diff")
    patcher, ctx = base.patcher, base.ctx
    clean_out = ctx.corr_out + patcher.grad_reference(ctx).deltas
    errors = []
    for eps in (1e-2, 5e-3):
        near = patcher._context(ctx.tokens, ctx.positions, ctx.ablation, clean_out + eps * (ctx.corr_out - clean_out),
                                ctx.spans, ctx.n_shared, ctx.shared_k, ctx.shared_v)
        problem = dataclasses.replace(base, ctx=near)
        exact = exact_single_edge_effects(problem)
        ig = eap_ig_scores(problem, steps=50, absolute=False, rule="midpoint")
        errors.append(float((ig - exact).abs().max() / exact.abs().max()))
    assert errors[0] < 0.05
    assert errors[1] < 0.6 * errors[0]  # the relative error shrinks with eps (first-order agreement)


def test_eap_ig_converges_with_steps_and_batching_does_not_matter():
    problem = problem_for("llama", "kl")
    a = eap_ig_scores(problem, steps=100, absolute=False, rule="midpoint")
    b = eap_ig_scores(problem, steps=200, absolute=False, rule="midpoint")
    assert (a - b).abs().max() <= 1e-3 * b.abs().max()
    one = eap_ig_scores(problem, steps=6, absolute=False, batch=1)
    many = eap_ig_scores(problem, steps=6, absolute=False, batch=6)
    assert torch.allclose(one, many, rtol=1e-9, atol=1e-12)
    assert circuits_per_pass(problem, grad=True) >= 1


def test_eap_ig_left_rule_with_one_step_uses_the_ablated_input():
    """steps=1: the gradient at alpha=0 (the model on the ablated embeddings) times clean-minus-ablated."""
    problem = problem_for("gpt2", "logit_diff")
    patcher, ctx = problem.patcher, problem.ctx
    one = eap_ig_scores(problem, steps=1, absolute=False)
    mid = eap_ig_scores(problem, steps=1, absolute=False, rule="midpoint")
    assert not torch.allclose(one, mid)
    # for edges out of the input the IG factor is the full input delta, at alpha=0.5 it is twice the run's own
    leaf = torch.ones(1, problem.graph.n_edges, dtype=torch.float64, requires_grad=True)
    half = dataclasses.replace(ctx, input_delta=0.5 * ctx.input_delta)
    problem.metric(patcher.run_grad(half, leaf)).sum().backward()
    inputs = [e for e in range(problem.graph.n_edges) if problem.graph.edge_sender(e) == 0]
    assert torch.allclose(mid[inputs], -2 * leaf.grad[0, inputs], rtol=1e-9, atol=1e-12)


def test_eap_circuits_carry_metrics_and_settings():
    problem = problem_for("gpt2", "logit_diff")
    c = eap(problem, top_n=25)
    assert c.n_kept == 25
    assert set(c.metrics) >= {"full", "circuit", "empty"}
    assert c.metrics["circuit"] == pytest.approx(float(problem.evaluate(c)[0]))
    assert c.settings["method"] == "eap" and c.settings["seconds"] >= 0
    assert torch.equal(c.scores, eap_scores(problem))
    d = eap_ig(problem, steps=3, threshold=float(c.scores.median()))
    assert d.settings["method"] == "eap-ig" and d.settings["steps"] == 3
    assert bool((d.scores[d.kept] >= float(c.scores.median())).all())
    with pytest.raises(ValueError, match="exactly one"):
        eap(problem)


def test_eap_refuses_kl_and_names_what_works():
    problem = problem_for("gpt2", "kl")
    with pytest.raises(ValueError, match="KL.*logit_diff.*eap-ig"):
        eap(problem, top_n=10)
    assert eap_ig(problem, steps=2, top_n=10).n_kept == 10


def test_faithfulness_of_scores_equals_the_unbatched_curve():
    problem = problem_for("gpt2", "logit_diff")
    scores = eap_ig_scores(problem, steps=3)
    fractions = (0.01, 0.05, 0.2, 0.5, 1.0)
    batched = faithfulness_of_scores(problem, scores, fractions, batch=3)
    plain = faithfulness_curve(scores, problem.graph, lambda c: float(problem.evaluate(c)[0]), fractions)
    assert batched.sizes == plain.sizes
    assert batched.faithfulness == pytest.approx(plain.faithfulness, rel=1e-9, abs=1e-12)
    assert batched.cpr == pytest.approx(plain.cpr) and batched.cmd == pytest.approx(plain.cmd)
    assert batched.faithfulness[-1] == pytest.approx(1.0)


@pytest.mark.parametrize("kind,metric,threshold", [("gpt2", "kl", 0.005), ("llama", "logit_diff", 0.02)])
def test_hybrid_with_every_edge_is_exact_acdc(kind, metric, threshold):
    problem = problem_for(kind, metric)
    exact = acdc(problem, threshold)
    for k in (None, problem.graph.n_edges):
        found = hybrid(problem, threshold, k=k)
        assert torch.equal(found.kept, exact.kept)
        assert torch.equal(torch.isnan(found.scores), torch.isnan(exact.scores))
        assert torch.equal(torch.nan_to_num(found.scores), torch.nan_to_num(exact.scores))
        assert found.settings["n_tested"] == exact.settings["n_tested"]
        assert found.settings["method"] == "hybrid" and found.settings["k"] == problem.graph.n_edges


@pytest.mark.parametrize("k", [0, 20, 120])
def test_hybrid_tests_only_its_candidates_and_is_greedy_acdc_over_them(k):
    problem = problem_for("gpt2", "kl")
    g, threshold = problem.graph, 0.002
    prior = eap_ig_scores(problem, steps=5)
    found = hybrid(problem, threshold, k=k, steps=5)
    candidates = torch.zeros(g.n_edges, dtype=torch.bool)
    candidates[torch.argsort(prior, descending=True, stable=True)[:k]] = True
    tested = found.score_kinds == SCORE_KINDS.index(ScoreKind.ACDC)  # the others keep EAP-IG's score
    assert found.settings["n_tested"] == int(tested.sum()) <= k
    assert found.settings["n_candidates"] == k
    assert not bool((tested & ~candidates).any()) and not bool((found.kept & ~candidates).any())
    # the one-edge-one-forward oracle on the circuit restricted to the candidates (a non-candidate's
    # "test" changes nothing, delta 0 < tau, so the oracle drops it where ours drops it up front)
    kept, scores = oracle_acdc(lambda m: float(problem.evaluate((m & candidates)[None])[0]), g, threshold)
    assert torch.equal(found.kept, kept & candidates)
    for name in found.kept_edge_names() + [g.edge_names[e] for e in torch.nonzero(tested).flatten().tolist()]:
        assert found.edge_score(name) == pytest.approx(scores[name], abs=1e-9)
    assert math.isclose(found.metrics["circuit"], found.metrics["final_greedy"], rel_tol=1e-9, abs_tol=1e-12)
    same = hybrid(problem, threshold, k=k, prior=prior, max_batch=1)
    assert torch.equal(same.kept, found.kept)


@pytest.mark.parametrize("k,tested", [(60, 0), (60, 25), (120, 60), (120, 120)])
def test_hybrid_tested_keeps_the_top_candidates_untested_and_is_greedy_acdc_over_the_rest(k, tested):
    problem = problem_for("gpt2", "kl")
    g, threshold = problem.graph, 0.002
    prior = eap_ig_scores(problem, steps=5)
    found = hybrid(problem, threshold, k=k, prior=prior, tested=tested)
    ranked = torch.argsort(prior, descending=True, stable=True)[:k].tolist()
    fixed, candidates = set(ranked[:k - tested]), torch.zeros(g.n_edges, dtype=torch.bool)
    candidates[ranked[k - tested:]] = True
    assert found.settings["n_fixed"] == len(fixed) and found.settings["n_candidates"] == tested
    tested_edges = set(torch.nonzero(found.score_kinds == SCORE_KINDS.index(ScoreKind.ACDC)).flatten().tolist())
    assert tested_edges <= set(ranked[k - tested:]) and not tested_edges & fixed
    start = candidates.clone()
    start[list(fixed)] = True
    kept, scores = oracle_acdc(lambda m: float(problem.evaluate(m[None])[0]), g, threshold, start=start,
                               fixed=frozenset(g.edge_names[e] for e in fixed))
    assert torch.equal(found.kept, kept)
    for e in tested_edges:
        assert float(found.scores[e]) == pytest.approx(scores[g.edge_names[e]], abs=1e-9)
    assert math.isclose(found.metrics["circuit"], found.metrics["final_greedy"], rel_tol=1e-9, abs_tol=1e-12)


def test_hybrid_tested_ranks_every_edge_when_k_keeps_them_all():
    problem = problem_for("gpt2", "kl")
    g, threshold, tested = problem.graph, 0.002, 30
    prior = eap_ig_scores(problem, steps=5)
    everything = hybrid(problem, threshold, prior=prior, tested=tested)
    same = hybrid(problem, threshold, k=g.n_edges, prior=prior, tested=tested)
    assert everything.settings["n_candidates"] == tested and everything.settings["n_fixed"] == g.n_edges - tested
    assert torch.equal(everything.kept, same.kept)
    assert int((everything.score_kinds == SCORE_KINDS.index(ScoreKind.ACDC)).sum()) <= tested


def test_hybrid_functional_candidates_change_no_metric_and_save_tests():
    problem = problem_for("gpt2", "kl")
    g, threshold = problem.graph, 0.002
    prior = eap_ig_scores(problem, steps=5)
    top = Circuit.from_scores(g, prior, top_n=120)
    assert top.functional().n_kept < top.n_kept  # the check needs candidates off every path
    assert float(problem.evaluate(top.functional())[0]) == pytest.approx(float(problem.evaluate(top)[0]), abs=1e-12)
    plain = hybrid(problem, threshold, k=120, prior=prior)
    functional = hybrid(problem, threshold, k=120, prior=prior, functional=True)
    assert functional.settings["n_candidates"] == top.functional().n_kept
    assert functional.settings["n_tested"] <= plain.settings["n_tested"]
    assert not bool((functional.kept & ~top.functional().kept).any())


def test_hybrid_refuses_bad_tested_and_fixed_overlapping_candidates():
    problem = problem_for("gpt2", "kl")
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="tested must"):
            hybrid(problem, 0.01, k=10, tested=bad)
    both = torch.zeros(problem.graph.n_edges, dtype=torch.bool)
    both[:3] = True
    with pytest.raises(ValueError, match="both fixed"):
        acdc(problem, 0.01, candidates=both, fixed=both)
    with pytest.raises(ValueError, match="fixed edges need candidates"):
        acdc(problem, 0.01, fixed=both)


@pytest.mark.parametrize("coverage", [0.3, 0.9, 1.0])
def test_hybrid_coverage_takes_the_fewest_grid_candidates_reaching_it(coverage):
    problem = problem_for("gpt2", "kl")
    g, threshold = problem.graph, 0.002
    prior = eap_ig_scores(problem, steps=5)
    found = hybrid(problem, threshold, coverage=coverage, prior=prior)
    k = found.settings["k"]
    grid = coverage_grid(g.n_edges)
    assert k in grid and found.settings["coverage"] == coverage

    def top_faithfulness(size: int) -> float:
        full, top, empty = problem.evaluate([Circuit.full(g), Circuit.from_scores(g, prior, top_n=size),
                                             Circuit.empty(g)]).tolist()
        return (top - empty) / (full - empty)

    assert top_faithfulness(k) >= coverage or k == g.n_edges
    assert found.settings["candidate_faithfulness"] == pytest.approx(top_faithfulness(k), abs=1e-9)
    assert all(top_faithfulness(smaller) < coverage for smaller in grid if smaller < k)
    same = hybrid(problem, threshold, k=k, prior=prior)
    assert torch.equal(same.kept, found.kept)


def test_hybrid_coverage_errors():
    problem = problem_for("gpt2", "kl")
    with pytest.raises(ValueError, match="k or coverage"):
        hybrid(problem, 0.01, k=10, coverage=0.5)
    for bad in (0.0, 1.5, -0.2):
        with pytest.raises(ValueError, match="coverage must"):
            hybrid(problem, 0.01, coverage=bad)


def test_hybrid_refuses_bad_k():
    problem = problem_for("gpt2", "kl")
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="k must"):
            hybrid(problem, 0.01, k=bad)


@pytest.mark.parametrize("kind", ["gpt2", "llama", "neox"])
@pytest.mark.parametrize("metric", ["kl", "logit_diff"])
def test_metric_ends_equal_evaluating_the_full_and_empty_circuits(kind, metric):
    problem = make_problem(make_patcher(make_tiny(kind)), tiny_task(), metric=metric)
    g = problem.graph
    full, empty = (float(v) for v in problem.evaluate([Circuit.full(g), Circuit.empty(g)]))
    assert problem.metric_ends == pytest.approx((full, empty), abs=1e-12)
