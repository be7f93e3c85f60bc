"""Span edges in the engine: exact against the per-position hook oracle, and equal to span-free edges when
every span of an edge is kept or removed alike."""

import pytest
import torch

from acdc_compare.backends import make_patcher, tiny_model
from acdc_compare.backends.hook_oracle import hook_patched_logits
from acdc_compare.circuit import Circuit
from acdc_compare.patching import PatchingError
from acdc_compare.spans import PromptSpans
from conftest import TINY, random_tokens

N, P = 3, 7
SPANS = ("A", "B", "rest")
MODELS = {"gpt2": TINY["gpt2"], "gqa": TINY["llama"],
          "mqa": dict(arch="llama", n_layers=2, n_heads=4, n_kv_heads=1, d_model=32)}
# float64 models; the bridge's rotary embedding rounds to float32 (span-free circuits differ by ~3e-6 too)
TOL = {"gpt2": 1e-9, "gqa": 1e-5, "mqa": 1e-5}


@pytest.fixture(scope="module", params=sorted(MODELS))
def setup(request):
    model = tiny_model(dtype=torch.float64, seed=1, **MODELS[request.param])
    clean, corrupted = random_tokens(N, P, seed=1), random_tokens(N, P, seed=2)
    index = torch.randint(0, len(SPANS), (N, P), generator=torch.Generator().manual_seed(4))
    index[:, -1] = 0  # every span occurs
    index[0, :3] = torch.tensor([1, 2, 2])
    base = make_patcher(model)
    patcher = type(base)(base.w, base.graph.with_spans(SPANS))
    spans = PromptSpans(SPANS, index)
    ctx = patcher.prepare(clean, "corrupted", corrupted, positions=torch.arange(P).expand(N, P), spans=spans)
    return model, patcher, ctx, clean, corrupted, index, TOL[request.param]


def test_random_span_circuits_match_the_per_position_oracle(setup):
    model, patcher, ctx, clean, corrupted, index, tol = setup
    g = patcher.graph
    gen = torch.Generator().manual_seed(3)
    circuits = [Circuit(g, torch.rand(g.n_edges, generator=gen) < frac) for frac in (0.3, 0.8)]
    ours = patcher.logits(ctx, circuits)
    for c, got in zip(circuits, ours):
        want = hook_patched_logits(model, g, clean, c.kept, corrupted=corrupted, spans=index)
        assert (got - want).abs().max() <= tol
    assert (ours[0] - ours[1]).abs().max() > 1e-6


@pytest.mark.parametrize("edge", ["a0.h1->a1.h0<k>", "a0.h1->a1.h0<v>", "a0.h0->a1.h1<q>", "input->m0", "m0->logits",
                                  "a1.h0<q>", "a0.h0<k>", "a0.h0<v>"])
def test_one_span_edge_removed_matches_the_oracle_and_acts_only_at_its_span(setup, edge):
    model, patcher, ctx, clean, corrupted, index, tol = setup
    g = patcher.graph
    if g.grouped:
        edge = edge.replace(".h0<k>", ".kv0<k>").replace(".h0<v>", ".kv0<v>")
    for span in SPANS:
        kept = torch.ones(g.n_edges, dtype=torch.bool)
        kept[g.edge_index(f"{edge}@{span}")] = False
        got = patcher.logits(ctx, Circuit(g, kept))[0]
        want = hook_patched_logits(model, g, clean, kept, corrupted=corrupted, spans=index)
        assert (got - want).abs().max() <= tol, (edge, span)
        full = patcher.logits(ctx, Circuit.full(g))[0]
        # causal attention: positions before the span's first position in a prompt never see the cut
        for i in range(N):
            first = int(torch.nonzero(index[i] == SPANS.index(span)).min())
            assert float((got[i, :first] - full[i, :first]).abs().sum()) <= 1e-11
        assert (got - full).abs().max() > 1e-9, f"removing {edge}@{span} changed nothing"


def test_uniform_span_circuits_equal_span_free_circuits(setup):
    _, patcher, ctx, clean, corrupted, _, _ = setup
    g = patcher.graph
    plain = make_patcher_like(patcher)
    plain_ctx = plain.prepare(clean, "corrupted", corrupted, positions=torch.arange(P).expand(N, P))
    base_kept = torch.rand(g.n_base_edges, generator=torch.Generator().manual_seed(7)) < 0.5
    span_kept = base_kept.repeat_interleave(g.n_spans)
    assert torch.equal(patcher.logits(ctx, Circuit(g, span_kept)), plain.logits(plain_ctx, Circuit(g.base, base_kept)))
    assert torch.equal(patcher.logits(ctx, Circuit.empty(g)), plain.logits(plain_ctx, Circuit.empty(g.base)))


def test_grad_run_per_span_masks_sum_to_the_span_free_gradient(setup):
    _, patcher, ctx, clean, corrupted, _, _ = setup
    g = patcher.graph
    plain = make_patcher_like(patcher)
    plain_ctx = plain.prepare(clean, "corrupted", corrupted, positions=torch.arange(P).expand(N, P))
    span_mask = torch.ones(1, g.n_edges, dtype=torch.float64, requires_grad=True)
    base_mask = torch.ones(1, g.n_base_edges, dtype=torch.float64, requires_grad=True)
    patcher.run_grad(ctx, span_mask).sum().backward()
    plain.run_grad(plain_ctx, base_mask).sum().backward()
    per_span = span_mask.grad.view(g.n_base_edges, g.n_spans)
    assert torch.allclose(per_span.sum(1), base_mask.grad[0], atol=1e-9, rtol=1e-9)
    assert (per_span.abs() > 0).sum(0).min() > 0, "some span got no gradient"


def test_a_span_graph_needs_span_indices(setup):
    model, patcher, _, clean, corrupted, _, _ = setup
    with pytest.raises(PatchingError, match="graph has spans"):
        patcher.prepare(clean, "corrupted", corrupted)
    with pytest.raises(PatchingError, match="the graph's"):
        patcher.prepare(clean, "corrupted", corrupted, spans=PromptSpans(("x", "y", "z"), torch.zeros(N, P).long()))
    with pytest.raises(PatchingError, match=r"\[N, P\]"):
        patcher.prepare(clean, "corrupted", corrupted, spans=torch.zeros(N, P + 1).long())


def make_patcher_like(patcher):
    """The same weights on the span-free graph."""
    return type(patcher)(patcher.w, patcher.graph.base)
