"""Verdicts with their uncertainty (issue 33 item 4): the percentile bootstrap against a plain-Python oracle,
the mover rule on intervals (a mover's lower bound must pass), mover scores toward the answer the model gives,
and verdicts that quote their evidence."""

from __future__ import annotations

import math
import random

import pytest
import torch

from acdc_compare.movers import MoverOverlap
from acdc_compare.roles import (
    HeadScores,
    MoverSet,
    RoleThresholds,
    both_movers,
    find_movers,
    movers_of,
)
from acdc_compare.roles.mover_score import PromptMovers, given_answers, prompt_movers
from acdc_compare.stats import bootstrap_indices, bootstrap_interval
from acdc_compare.tasks.base import Task


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's and torch's default)."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (pos - lo) * (sorted_values[hi] - sorted_values[lo])


def _oracle(values: list[float], weights: list[float], n_resamples: int, seed: int, level: float = 0.95):
    idx = bootstrap_indices(len(values), n_resamples, seed).tolist()
    stats = []
    for draw in idx:
        num = den = 0.0
        for i in draw:
            num += weights[i] * values[i]
            den += weights[i]
        stats.append(num / den)
    stats.sort()
    return _percentile(stats, (1 - level) / 2), _percentile(stats, (1 + level) / 2)


@pytest.mark.parametrize("weights", [None, [1, 2, 1, 3, 1, 1, 2]])
def test_bootstrap_matches_a_plain_python_loop(weights) -> None:
    values = [0.3, -1.2, 2.5, 0.0, 0.7, 1.1, -0.4]
    low, high = bootstrap_interval(values, weights, n_resamples=500, seed=3)
    expect = _oracle(values, weights or [1.0] * len(values), 500, 3)
    assert float(low) == pytest.approx(expect[0], abs=1e-12) and float(high) == pytest.approx(expect[1], abs=1e-12)
    w = torch.tensor(weights or [1.0] * len(values), dtype=torch.float64)
    mean = float((torch.tensor(values) * w).sum() / w.sum())
    assert float(low) <= mean <= float(high)  # the interval contains the (weighted) mean
    # the same draws for every column: a column of a 2-D array gives the 1-D answer; deterministic in the seed
    table = torch.tensor([values, [2 * v for v in values]], dtype=torch.float64).T
    low2, high2 = bootstrap_interval(table, weights, n_resamples=500, seed=3)
    assert low2.shape == (2,) and float(low2[0]) == pytest.approx(float(low), abs=1e-12)
    assert float(high2[1]) == pytest.approx(2 * float(high), abs=1e-12)
    assert torch.equal(bootstrap_interval(values, weights, seed=3)[0], bootstrap_interval(values, weights, seed=3)[0])


def test_bootstrap_known_cases() -> None:
    low, high = bootstrap_interval([0.4] * 9)
    assert float(low) == pytest.approx(0.4) and float(high) == pytest.approx(0.4)  # constant: zero width
    low, high = bootstrap_interval([1.0, 5.0], weights=[1.0, 0.0])  # a zero-weight row is dropped
    assert float(low) == float(high) == 1.0
    random.seed(0)
    values = [random.gauss(1.0, 1.0) for _ in range(200)]
    low, high = bootstrap_interval(values)
    se = (sum((v - sum(values) / 200) ** 2 for v in values) / 199 / 200) ** 0.5
    assert float(high - low) == pytest.approx(2 * 1.96 * se, rel=0.2)  # about the normal interval's width
    assert all(math.isnan(float(x)) for x in bootstrap_interval(torch.zeros(0, 3))[0])
    with pytest.raises(ValueError):
        bootstrap_interval([1.0, 2.0], weights=[1.0])


def test_mover_rule_on_intervals() -> None:
    """a0.h0 passes on its lower bound (mover); a0.h1's point estimate passes but its lower bound does not
    (borderline; a mover by the point-estimate rule); a0.h2's point estimate fails but its upper bound passes
    (borderline); a0.h3 is far off either way."""
    mover = torch.tensor([[1.0, 0.6, 0.2, 0.05]], dtype=torch.float64)
    att = torch.full_like(mover, 0.6)
    low = torch.tensor([[0.8, 0.1, 0.05, 0.0]], dtype=torch.float64)
    high = torch.tensor([[1.2, 1.1, 0.5, 0.1]], dtype=torch.float64)
    t = RoleThresholds(mover_fraction=0.4)
    assert find_movers(mover, att, t) == MoverSet("", ("a0.h0", "a0.h1"), ("a0.h2",))
    found = find_movers(mover, att, t, low=low, high=high)
    assert found == MoverSet("", ("a0.h0",), ("a0.h1", "a0.h2"))
    assert found.intervals == {"a0.h0": (0.8, 1.2), "a0.h1": (0.1, 1.1), "a0.h2": (0.05, 0.5)}
    assert found.describe(intervals=True) == "a0.h0 [0.8, 1.2] (borderline: a0.h1 [0.1, 1.1], a0.h2 [0.05, 0.5])"
    assert found.within({"a0.h1"}).intervals == {"a0.h1": (0.1, 1.1)}
    # the attention floor still holds: a lower bound passing does not make a head that looks elsewhere a mover
    att[0, 0] = 0.1
    assert "a0.h0" not in find_movers(mover, att, t, low=low, high=high).heads


def _scores_with_prompts(per_prompt: torch.Tensor, attention: float = 0.6) -> HeadScores:
    """Hand-set scores [1, H] from per-prompt mover scores [N, 1, H] (one scored position per prompt)."""
    n = per_prompt.shape[0]
    pm = PromptMovers(per_prompt, torch.full_like(per_prompt, attention), per_prompt / attention,
                      torch.ones(n, dtype=torch.float64))
    z = torch.zeros_like(per_prompt[0])
    return HeadScores("t", z, z, z, pm.pooled(pm.mover), torch.full_like(z, math.nan), pm.pooled(pm.attention),
                      pm.pooled(pm.direct_logit), n_mover_prompts=n, prompt_movers=pm, given_movers=pm)


def test_a_steady_head_is_a_mover_a_noisy_one_with_the_same_mean_borderline() -> None:
    gen = torch.Generator().manual_seed(0)
    n = 24
    steady = 1.0 + 0.05 * torch.randn(n, generator=gen, dtype=torch.float64)
    noisy = 0.6 + 3.0 * torch.randn(n, generator=gen, dtype=torch.float64)
    noisy = noisy - noisy.mean() + steady.mean()  # the same point estimate
    per_prompt = torch.stack([steady, noisy, torch.zeros(n, dtype=torch.float64)], -1)[:, None, :]
    scores = _scores_with_prompts(per_prompt)
    low, high = scores.mover_interval()
    assert low[0, 0] > 0.9 and low[0, 1] < 0.3 and high[0, 1] > 1.0
    found = movers_of(scores)
    assert found.heads == ("a0.h0",) and found.borderline == ("a0.h1",)
    assert set(found.intervals) == {"a0.h0", "a0.h1"}
    # without per-prompt scores the point-estimate rule counts both
    plain = HeadScores("t", *(getattr(scores, f) for f in ("previous_token", "duplicate_token", "induction",
                                                         "mover", "s_inhibition", "answer_attention", "direct_logit")),
                       n_mover_prompts=n)
    assert set(movers_of(plain).heads) == {"a0.h0", "a0.h1"} and plain.mover_interval() is None


def test_movers_toward_the_answer_the_model_gives() -> None:
    """Prompt tokens [c, w, x, y] (c: the correct answer, w: the wrong one), scored at the last position. a0.h0
    attends to w and pushes it up, a0.h1 attends to c and pushes it up a little; the model gives w on prompts 0-2
    (negative logit difference) and c on prompt 3. Toward the correct answer a0.h1 is the mover; toward the given
    answer a0.h0 is, and where the model is right (prompt 3) the two scores agree."""
    n, p = 4, 4
    clean = torch.tensor([[5, 6, 7, 8]] * n)
    task = Task("t", clean, clean, positions=torch.full((n, 1), p - 1), correct=torch.full((n,), 5),
                wrong=torch.full((n,), 6))
    patterns = torch.zeros(1, n, 2, p, p, dtype=torch.float64)
    patterns[0, :, :, :, 0] = 1.0  # rows before the last: anything
    patterns[0, :, 0, p - 1] = torch.tensor([0.0, 0.9, 0.1, 0.0])
    patterns[0, :, 1, p - 1] = torch.tensor([0.8, 0.0, 0.2, 0.0])
    dla = torch.zeros(n, 1, 1, 2, dtype=torch.float64)  # (correct - wrong) contributions
    dla[..., 0] = -2.0
    dla[..., 1] = 0.5
    logit_diff = torch.tensor([[-1.5], [-1.5], [-1.5], [0.3]], dtype=torch.float64)
    answers, sign = given_answers(task, logit_diff)
    assert answers[:, 0].tolist() == [6, 6, 6, 5] and sign[:, 0].tolist() == [-1, -1, -1, 1]
    correct = prompt_movers(task, patterns, dla, None)
    given = prompt_movers(task, patterns, dla, None, answers, sign)
    # toward the correct answer: a0.h0 0 x -2, a0.h1 0.8 x 0.5 on every prompt
    assert torch.allclose(correct.mover[:, 0], torch.tensor([[0.0, 0.4]] * n, dtype=torch.float64))
    # toward the given one: where w is given, a0.h0 0.9 x +2 and a0.h1 0 x -0.5; where c is, as above
    assert torch.allclose(given.mover[:, 0], torch.tensor([[1.8, 0.0]] * 3 + [[0.0, 0.4]], dtype=torch.float64))
    z = torch.zeros(1, 2, dtype=torch.float64)
    scores = HeadScores("t", z, z, z, correct.pooled(correct.mover), z + math.nan, correct.pooled(correct.attention),
                        correct.pooled(correct.direct_logit), n_mover_prompts=n, prompt_movers=correct,
                        given_movers=given, n_wrong_given=3)
    to_correct, to_given = both_movers(scores, RoleThresholds(min_attention=0.5))
    assert to_correct.heads == ("a0.h1",) and to_correct.answer == "correct"
    assert to_given.heads[0] == "a0.h0" and to_given.answer == "given"
    assert "a0.h0" not in to_correct.heads + to_correct.borderline


def test_verdict_states_its_evidence() -> None:
    movers = MoverSet("pet-first", ("a2.h0", "a1.h1", "a0.h3"), intervals={"a2.h0": (0.21, 0.35)})
    ioi = MoverSet("ioi", ("a2.h0", "a2.h1"))
    overlap = MoverOverlap.of(movers, ioi, n_heads=150)
    assert overlap.answer() == "partly: 1 of its 3 movers are IOI's (a2.h0 [0.21, 0.35]); chance 0.04"
    assert "1 shared: a2.h0 [0.21, 0.35]" in overlap.verdict()
    assert MoverOverlap.of(MoverSet("x", ("a1.h1",), intervals={"a1.h1": (0.1, 0.2)}), ioi, 150).answer() == (
        "no: 1 mover of its own (a1.h1 [0.1, 0.2]), none of IOI's; chance 0.01")
    assert MoverOverlap.of(MoverSet("x"), ioi, 150).answer().startswith("no: no head")
    assert MoverOverlap.of(MoverSet("x", ("a2.h1",)), ioi, 150).answer().startswith("yes: 1 of its 1 movers")
