"""Every transformers setting the engine meets is exact against the bridge, or refused by name."""

import pytest
import torch

from acdc_compare.backends import EngineMismatchError, UnsupportedModelError, make_patcher, run_logits, tiny_model
from acdc_compare.backends.hook_oracle import hook_patched_logits
from acdc_compare.circuit import Circuit
from conftest import random_tokens

N, P = 3, 8
LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 16}

SETTINGS = {
    "llama-rope-linear": ("llama", {"rope_scaling": {"rope_type": "linear", "factor": 2.0}}),
    "llama-rope-llama3": ("llama", {"rope_scaling": LLAMA3}),
    "llama-mlp-bias": ("llama", {"mlp_bias": True}),
    "llama-attention-bias": ("llama", {"attention_bias": True}),
    "mistral-sliding-window": ("mistral", {"sliding_window": 3}),
    "gpt2-inverse-layer-scale": ("gpt2", {"scale_attn_by_inverse_layer_idx": True}),
    "neox-sequential": ("neox", {"use_parallel_residual": False}),
}


def _model(setting: str, dtype: torch.dtype = torch.float64):
    arch, overrides = SETTINGS[setting]
    return tiny_model(arch, n_layers=2, n_heads=4, n_kv_heads=2 if arch in ("llama", "mistral") else None,
                      d_model=32, seed=3, dtype=dtype, config_overrides=overrides)


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_setting_is_exact_against_the_bridge_and_the_hook_oracle(setting):
    model = _model(setting)
    clean, corrupted = random_tokens(N, P, seed=11), random_tokens(N, P, seed=12)
    patcher = make_patcher(model, fallback=False)
    g = patcher.graph
    ctx = patcher.prepare(clean, "corrupted", corrupted, positions=torch.arange(P).expand(N, P))
    full = patcher.logits(ctx, Circuit.full(g))[0]
    assert (full - run_logits(model, clean)).abs().max() <= 1e-4
    kept = torch.rand(g.n_edges, generator=torch.Generator().manual_seed(4)) < 0.5
    got = patcher.logits(ctx, Circuit(g, kept))[0]
    want = hook_patched_logits(model, g, clean, kept, corrupted=corrupted)
    assert (got - want).abs().max() <= 1e-4
    assert (got - full).abs().max() > 1e-3, "the random circuit changed nothing"


def test_settings_change_the_model():
    """Each setting matters on the probe model, so the exactness above is not vacuous."""
    clean = random_tokens(N, P, seed=11)
    for setting, (arch, _) in SETTINGS.items():
        plain = tiny_model(arch, n_layers=2, n_heads=4, n_kv_heads=2 if arch in ("llama", "mistral") else None,
                           d_model=32, seed=3, dtype=torch.float64)
        diff = (run_logits(_model(setting), clean) - run_logits(plain, clean)).abs().max()
        assert diff > 1e-3, setting


@pytest.mark.parametrize("overrides, field", [
    ({"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, "rope_type"),
    ({"rope_scaling": {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 16}}, "rope_type"),
    ({"final_logit_softcapping": 30.0}, "final_logit_softcapping"),
    ({"attn_logit_softcapping": 50.0}, "attn_logit_softcapping"),
])
def test_unimplemented_settings_are_refused_by_name(overrides, field):
    model = tiny_model("llama", n_layers=1, n_heads=2, d_model=16, config_overrides=overrides)
    with pytest.raises(UnsupportedModelError, match=field) as err:
        make_patcher(model, check=False, fallback=False)
    message = str(err.value)
    assert model.cfg.model_name in message and "does not implement" in message


def test_a_forward_the_engine_gets_wrong_is_refused_unless_check_is_off():
    model = tiny_model("gpt2", n_layers=2, n_heads=2, d_model=16, dtype=torch.float64)
    model.original_model.config.scale_attn_by_inverse_layer_idx = True  # the built modules ignore it
    with pytest.raises(EngineMismatchError, match=r"tiny-gpt2.*differs from the bridge's by \d"):
        make_patcher(model, fallback=False)
    assert make_patcher(model, check=False).cfg.scale_attn_by_inverse_layer


def test_float32_probe_passes_on_every_setting():
    for setting in SETTINGS:
        make_patcher(_model(setting, dtype=torch.float32), fallback=False)
