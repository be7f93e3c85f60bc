"""Span reads on a tiny grouped-query model: one effect per span with an interval around it, exactly zero for
a span the clean and corrupted prompts share (with everything before it; float64 rounding aside), and cuts only at the movers'
key-value groups."""

import math

import pytest
import torch
from conftest import random_tokens

from acdc_compare.algorithms.problem import make_problem, span_patcher
from acdc_compare.backends import make_patcher
from acdc_compare.span_reads import (
    NO_SINGLE_SPAN,
    SpanRead,
    SpanReads,
    cut_circuits,
    ioi_story,
    mover_kv_receivers,
    pair_text,
    span_reads,
)
from acdc_compare.spans import PromptSpans
from acdc_compare.tasks.base import Task
from acdc_compare.tasks.registry import ORDER_MEANING_PAIRS

N, P = 8, 7
SPANS = ("pre", "X", "post", "END")
MOVERS = ("a2.h1", "a1.h4")


def span_task() -> Task:
    """Prompts whose tokens 1-3 (span X) are corrupted; span "pre" (token 0) is the same in both."""
    clean = random_tokens(N, P, seed=3)
    corrupted = clean.clone()
    corrupted[:, 1:4] = random_tokens(N, 3, seed=4)
    index = torch.tensor([0, 1, 1, 1, 2, 2, 3]).expand(N, P)
    return Task("spanned", clean, corrupted, positions=torch.full((N,), P - 1), correct=clean[:, 2],
                wrong=clean[:, 0], spans=PromptSpans(SPANS, index))


@pytest.fixture(scope="module")
def problem(tiny_llama):
    task = span_task()
    return make_problem(span_patcher(make_patcher(tiny_llama), task), task)


def test_receivers_are_the_movers_key_value_groups(problem):
    g = problem.graph
    names = [g.receiver_names[r] for r in mover_kv_receivers(g, MOVERS)]
    assert names == ["a1.kv1<k>", "a1.kv1<v>", "a2.kv0<k>", "a2.kv0<v>"]  # 3 query heads per group
    with pytest.raises(ValueError, match="not in a model"):
        mover_kv_receivers(g, ["a9.h0"])
    with pytest.raises(ValueError, match="at least one"):
        mover_kv_receivers(g, [])


def test_each_cut_removes_only_its_span_s_edges_into_those_receivers(problem):
    g = problem.graph
    receivers = mover_kv_receivers(g, MOVERS)
    kept = cut_circuits(g, receivers)
    assert kept.shape == (1 + len(SPANS), g.n_edges) and bool(kept[0].all())
    for j, span in enumerate(SPANS):
        cut = torch.nonzero(~kept[1 + j]).flatten().tolist()
        assert cut and all(g.edge_span(e) == j and g.edge_receiver(e) in receivers for e in cut)
        assert g.edge_index(f"input->a2.kv0<v>@{span}") in cut and g.edge_index(f"a2.kv0<k>@{span}") in cut
    assert 2 * sum(g.receivers[r].n_upstream + 1 for r in receivers) * len(SPANS) == 2 * int((~kept[1:]).sum())


def test_span_reads_give_an_effect_and_interval_per_span(problem):
    found = span_reads(problem, MOVERS, n_resamples=200)
    assert [r.span for r in found.reads] == list(SPANS) and all(r.n == N for r in found.reads)
    assert set(found.readers) == {"a2.h0", "a2.h1", "a2.h2", "a1.h3", "a1.h4", "a1.h5"}
    assert found.full == pytest.approx(float(problem.task.score(problem.clean_logits[None])[0]), abs=1e-9)
    for r in found.reads:
        assert r.low <= r.mean <= r.high
    pre = found.read("pre")
    # the same tokens, and nothing before them: zero up to float64 rounding of the summed deltas
    assert max(abs(pre.mean), abs(pre.low), abs(pre.high)) < 1e-12
    assert any(abs(r.mean) > 1e-3 for r in found.reads)  # the corrupted span reaches the movers
    per_prompt = problem.task.score_per_prompt(problem.clean_logits[None])
    assert per_prompt.shape == (1, N) and float(per_prompt.mean()) == pytest.approx(found.full)


def test_refuses_a_graph_without_spans(tiny_llama):
    task = span_task()
    problem = make_problem(make_patcher(tiny_llama), task)
    with pytest.raises(ValueError, match="span graph"):
        span_reads(problem, MOVERS)


def reads(*rows: tuple[str, float, float, float]) -> SpanReads:
    return SpanReads("t", ("a1.h0",), ("a1.h0",), ("a1.h0<k>",), 3.0, "logit difference",
                     tuple(SpanRead(s, m, lo, hi, 10) for s, m, lo, hi in rows))


def test_verdict_names_the_largest_span_above_zero_and_round_trips():
    one = reads(("IO", 2.0, 1.5, 2.5), ("S1", 0.5, 0.1, 0.9), ("END", 3.0, -1.0, 7.0))
    assert one.source == "IO" and one.verdict().startswith("the movers read the answer from IO (effect 2.00")
    tied = reads(("IO", 2.0, 1.5, 2.5), ("S1", 1.8, 1.2, 2.1))
    assert tied.source == "IO or S1" and "intervals overlap" in tied.verdict()
    none = reads(("IO", 0.2, -0.1, 0.5), ("S1", math.nan, math.nan, math.nan))
    assert none.source == NO_SINGLE_SPAN and none.verdict().startswith(NO_SINGLE_SPAN)
    assert SpanReads.from_dict(one.to_dict()) == one
    assert one.to_dict()["source"] == "IO"


def test_ioi_story_and_pair_texts():
    io = reads(("IO", 4.8, 4.1, 5.5), ("S1", -1.6, -1.8, -1.4), ("END", 0.0, 0.0, 0.0))
    assert ioi_story(io).endswith("the largest is IO (effect 4.80 [4.10, 5.50]): agrees")
    s1 = reads(("IO", 0.5, 0.1, 0.9), ("S1", 2.0, 1.5, 2.5))
    assert ioi_story(s1).endswith(": differs") and "the largest is S1" in ioi_story(s1)
    assert ioi_story(reads(("IO", 0.1, -0.2, 0.4))).endswith("no span's interval lies above 0: differs")
    pet = ORDER_MEANING_PAIRS[0]
    text = pair_text(pet, io, s1)
    assert text.startswith(f"{pet.name}: in {pet.agree_task} (order agrees) the movers read from IO (effect 4.80")
    assert f"in {pet.disagree_task} (order disagrees) from S1 (effect 2.00" in text
