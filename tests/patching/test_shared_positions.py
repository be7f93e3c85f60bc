"""Positions shared by the clean and corrupted prompts are not run (`Patcher.prepare(skip_shared=True)`): every
circuit's run there is the ablated one, so skipping them changes no logit, restart, span edge or gradient."""

import pytest
import torch

from acdc_compare.backends import make_patcher, tiny_model
from acdc_compare.backends.hook_oracle import hook_patched_logits
from acdc_compare.circuit import Circuit
from acdc_compare.patching.context import shared_length
from acdc_compare.spans import PromptSpans
from conftest import TINY, random_tokens

N, P, SHARED = 4, 9, 4
MODELS = {**TINY, "mistral-window-3": dict(arch="mistral", n_layers=2, n_heads=4, n_kv_heads=2, d_model=32,
                                           config_overrides={"sliding_window": 3})}


def _batch():
    clean = random_tokens(N, P, seed=1)
    corrupted = clean.clone()
    corrupted[:, SHARED:SHARED + 3] = random_tokens(N, 3, seed=5)
    corrupted[0, SHARED] = (clean[0, SHARED] + 1) % 64  # position SHARED differs in some prompt for sure
    positions = torch.stack([torch.full((N,), P - 1), torch.full((N,), SHARED + 1)], 1)
    return clean, corrupted, positions


def _contexts(patcher, spans=None):
    clean, corrupted, positions = _batch()
    skip, run_all = (patcher.prepare(clean, "corrupted", corrupted, positions=positions, spans=spans, skip_shared=s)
                     for s in (True, False))
    return skip, run_all


def _circuits(n_edges: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    return torch.stack([torch.rand(n_edges, generator=gen) < f for f in (0.05, 0.5, 0.9)]
                       + [torch.ones(n_edges, dtype=torch.bool), torch.zeros(n_edges, dtype=torch.bool)])


@pytest.fixture(scope="module", params=sorted(MODELS))
def model_patcher(request):
    model = tiny_model(dtype=torch.float64, seed=1, **MODELS[request.param])
    return model, make_patcher(model, fallback=False)


def test_the_shared_positions_are_not_run(model_patcher):
    _, patcher = model_patcher
    skip, run_all = _contexts(patcher)
    assert (skip.n_shared, run_all.n_shared) == (SHARED, 0)
    d = patcher.cfg.d_model
    assert skip.corr_in_attn.shape[1] == N * (P - SHARED) * d
    assert run_all.corr_in_attn.shape[1] == N * P * d


def test_circuits_and_restarts_are_the_same_as_running_every_position(model_patcher):
    _, patcher = model_patcher
    skip, run_all = _contexts(patcher)
    kept = _circuits(patcher.graph.n_edges)
    got, want = patcher.logits(skip, kept), patcher.logits(run_all, kept)
    assert (got - want).abs().max() <= 1e-9 * max(1.0, float(want.abs().max()))
    assert (got[0] - got[3]).abs().max() > 1e-3, "the sparse circuit changed nothing"
    _, base = patcher.run(skip, kept[1:2], keep_state=True)
    for stage in (1, patcher.n_stages // 2, patcher.n_stages - 1):
        restarted, _ = patcher.run(skip, kept[1:2], start_stage=stage, base=base)
        assert (restarted - want[1:2]).abs().max() <= 1e-9 * max(1.0, float(want.abs().max()))


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_skipping_agrees_with_the_hook_oracle(kind):
    model = tiny_model(dtype=torch.float64, seed=1, **TINY[kind])
    patcher = make_patcher(model)
    skip, _ = _contexts(patcher)
    clean, corrupted, positions = _batch()
    kept = _circuits(patcher.graph.n_edges)[1]
    want = hook_patched_logits(model, patcher.graph, clean, kept, corrupted=corrupted)
    got = patcher.logits(skip, kept[None])[0]
    assert (got - want[torch.arange(N)[:, None], positions]).abs().max() <= 1e-4


def test_gradients_are_the_same_as_running_every_position(model_patcher):
    _, patcher = model_patcher
    skip, run_all = _contexts(patcher)
    kept = _circuits(patcher.graph.n_edges)[1:3].double()
    grads = []
    for ctx in (skip, run_all):
        reference = patcher.grad_reference(ctx)
        for options in ({}, {"reference": reference, "input_scale": torch.tensor([0.3, 0.7])}):
            mask = kept.clone().requires_grad_(True)
            grads.append(torch.autograd.grad(patcher.run_grad(ctx, mask, **options).square().sum(), mask)[0])
    for got, want in zip(grads[:2], grads[2:]):
        assert (got - want).abs().max() <= 1e-9 * max(1.0, float(want.abs().max()))
        assert want.abs().max() > 0


def test_span_edges_at_and_after_the_shared_positions():
    model = tiny_model(dtype=torch.float64, seed=1, **TINY["llama"])
    base = make_patcher(model)
    patcher = type(base)(base.w, base.graph.with_spans(("A", "B", "rest")))
    index = torch.randint(0, 3, (N, P), generator=torch.Generator().manual_seed(4))
    index[:, 0], index[:, -1], index[:, 2] = 1, 0, 2  # every span occurs, some within the shared positions
    skip, run_all = _contexts(patcher, PromptSpans(("A", "B", "rest"), index))
    kept = _circuits(patcher.graph.n_edges)
    got, want = patcher.logits(skip, kept), patcher.logits(run_all, kept)
    assert (got - want).abs().max() <= 1e-9 * max(1.0, float(want.abs().max()))


def test_shared_length():
    clean = torch.tensor([[1, 2, 3, 4, 5], [1, 2, 3, 4, 6]])
    corrupted = torch.tensor([[1, 2, 9, 4, 5], [1, 2, 3, 9, 6]])
    last = torch.tensor([[4], [4]])
    assert shared_length(clean, corrupted, last) == 2  # the first position any prompt differs at
    assert shared_length(clean, corrupted, torch.tensor([[4], [1]])) == 1  # a scored position is always run
    assert shared_length(clean, clean, last) == 4
    assert shared_length(clean, corrupted.roll(1, 1), last) == 0


def test_other_ablations_run_every_position(model_patcher):
    _, patcher = model_patcher
    clean, corrupted, positions = _batch()
    assert patcher.prepare(clean, "zero", positions=positions).n_shared == 0
    assert patcher.prepare(clean, "mean", reference=corrupted, positions=positions).n_shared == 0
