"""Families users bring (Qwen3, Gemma 1/2/3, Phi-3, OLMo-2): the engine is exact against the bridge and the
plain-hook oracle on tiny random models, every family feature is exercised, and what is not implemented
within a family is refused by name."""

from dataclasses import replace

import pytest
import torch

from acdc_compare.backends import UnsupportedModelError, make_patcher, run_logits, tiny_model
from acdc_compare.backends.hook_oracle import ablated_cache, hook_patched_logits
from acdc_compare.circuit import Circuit
from acdc_compare.patching import Patcher
from conftest import make_tiny, random_tokens

N, P = 3, 8
FAMILIES = ["qwen3", "gemma", "gemma2", "gemma3", "phi3", "olmo2"]
TOL = 1e-4  # fp32

# what sets each family apart, as (ModelConfig fields, ModelWeights fields) that switch it off
FEATURES = {
    "qwen3": {"q/k norms per head": ({"qk_norm": None}, {"q_norm_w": None, "k_norm_w": None})},
    "gemma": {"embedding scale": ({"embedding_scale": 1.0}, {})},
    "gemma2": {
        "attention soft-cap": ({"attn_softcap": None}, {}),
        "final soft-cap": ({"final_softcap": None}, {}),
        "query_pre_attn_scalar": ({"query_scale": None}, {}),
        "embedding scale": ({"embedding_scale": 1.0}, {}),
        "alternating sliding window": ({"sliding_layers": None}, {}),
        "post-attention norm": ({}, {"ln1_post_w": None}),
        "post-MLP norm": ({}, {"ln2_post_w": None}),
    },
    "gemma3": {
        "q/k norms per head": ({"qk_norm": None}, {"q_norm_w": None, "k_norm_w": None}),
        "local rotary base": ({"local_rotary_base": None}, {}),
    },
    "olmo2": {
        "q/k norms over all heads": ({"qk_norm": None}, {"q_norm_w": None, "k_norm_w": None}),
        "post-attention norm": ({}, {"ln1_post_w": None}),
    },
}


@pytest.fixture(scope="module", params=FAMILIES)
def family(request):
    return request.param, make_tiny(request.param, dtype=torch.float32, seed=3)


@pytest.fixture(scope="module")
def batch():
    return random_tokens(N, P, seed=11), random_tokens(N, P, seed=12)


def _random_kept(n_edges: int, seed: int, fraction: float) -> torch.Tensor:
    return torch.rand(n_edges, generator=torch.Generator().manual_seed(seed)) < fraction


def test_all_kept_is_clean_none_kept_is_corrupted_and_random_circuits_match_the_oracle(family, batch):
    name, model = family
    clean, corrupted = batch
    patcher = make_patcher(model, fallback=False)
    g = patcher.graph
    ctx = patcher.prepare(clean, "corrupted", corrupted, positions=torch.arange(P).expand(N, P))
    ends = patcher.logits(ctx, [Circuit.full(g), Circuit.empty(g)])
    assert (ends[0] - run_logits(model, clean)).abs().max() <= TOL
    assert (ends[1] - run_logits(model, corrupted)).abs().max() <= TOL
    cache = ablated_cache(model, g, corrupted)
    for seed, fraction in ((1, 0.3), (2, 0.7)):
        kept = _random_kept(g.n_edges, seed, fraction)
        got = patcher.logits(ctx, Circuit(g, kept))[0]
        want = hook_patched_logits(model, g, clean, kept, zero_cache=cache)
        assert (got - want).abs().max() <= TOL, (name, fraction)
        assert (got - ends[0]).abs().max() > 1e-2, "the random circuit changed nothing"


def test_zero_ablation_matches_the_oracle(family, batch):
    name, model = family
    clean, _ = batch
    patcher = make_patcher(model, fallback=False)
    g = patcher.graph
    ctx = patcher.prepare(clean, "zero", positions=torch.arange(P).expand(N, P))
    cache = ablated_cache(model, g, None)
    for kept in (torch.zeros(g.n_edges, dtype=torch.bool), _random_kept(g.n_edges, 5, 0.5)):
        got = patcher.logits(ctx, Circuit(g, kept))[0]
        want = hook_patched_logits(model, g, clean, kept, zero_cache=cache)
        assert (got - want).abs().max() <= TOL, name


def test_restart_at_any_stage_equals_the_full_forward(family, batch):
    _, model = family
    clean, corrupted = batch
    patcher = make_patcher(model, fallback=False)
    g = patcher.graph
    ctx = patcher.prepare(clean, "corrupted", corrupted)
    base_kept = _random_kept(g.n_edges, 7, 0.6)
    _, base = patcher.run(ctx, base_kept[None], keep_state=True)
    for stage in range(1, patcher.n_stages):
        later = torch.tensor([patcher.receiver_stage(g.edge_receiver(e)) >= stage for e in range(g.n_edges)])
        kept = base_kept.clone()
        flip = later & _random_kept(g.n_edges, 100 + stage, 0.3)
        kept[flip] = ~kept[flip]
        restarted, _ = patcher.run(ctx, torch.stack([kept, base_kept]), start_stage=stage, base=base)
        full, _ = patcher.run(ctx, torch.stack([kept, base_kept]))
        assert (restarted - full).abs().max() <= 1e-5, stage


def test_the_differentiable_run_computes_the_same_logits_and_finite_gradients(family, batch):
    _, model = family
    clean, corrupted = batch
    patcher = make_patcher(model, fallback=False)
    ctx = patcher.prepare(clean, "corrupted", corrupted)
    kept = _random_kept(patcher.graph.n_edges, 9, 0.5).float()[None].requires_grad_(True)
    logits = patcher.run_grad(ctx, kept)
    plain, _ = patcher.run(ctx, kept.detach())
    assert (logits - plain).abs().max() <= TOL
    logits.sum().backward()
    assert torch.isfinite(kept.grad).all() and kept.grad.abs().sum() > 0


@pytest.mark.parametrize("name, feature", [(f, x) for f, xs in FEATURES.items() for x in xs])
def test_each_family_feature_matters(name, feature):
    """Switching the feature off in the engine moves it away from the bridge: the exactness above covers it."""
    model = make_tiny(name, dtype=torch.float32, seed=3)
    clean = random_tokens(N, 12, seed=11)
    patcher = make_patcher(model, fallback=False)
    config_fields, weight_fields = FEATURES[name][feature]
    weights = replace(patcher.w, config=replace(patcher.cfg, **config_fields), **weight_fields)
    crippled = Patcher(weights, patcher.graph)
    want = run_logits(model, clean)
    everything = torch.ones(1, patcher.graph.n_edges, dtype=torch.bool)
    positions = torch.arange(12).expand(N, 12)
    exact = patcher.logits(patcher.prepare(clean, "zero", positions=positions), everything)[0]
    off = crippled.logits(crippled.prepare(clean, "zero", positions=positions), everything)[0]
    assert (exact - want).abs().max() <= TOL
    assert (off - want).abs().max() > 1e-2, feature


@pytest.mark.parametrize("overrides, field", [
    ({"rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 1000.0},
                          "sliding_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 10.0}}},
     "rope_type"),
])
def test_what_a_family_does_beyond_the_engine_is_refused_by_name(overrides, field):
    model = tiny_model("gemma3", n_layers=2, n_heads=2, d_model=16, config_overrides=overrides)
    with pytest.raises(UnsupportedModelError, match=field):
        make_patcher(model, check=False, fallback=False)


def test_gemma_fields_stay_refused_on_families_whose_modules_ignore_them():
    model = tiny_model("llama", n_layers=1, n_heads=2, d_model=16, config_overrides={"query_pre_attn_scalar": 3})
    with pytest.raises(UnsupportedModelError, match="query_pre_attn_scalar"):
        make_patcher(model, check=False, fallback=False)
