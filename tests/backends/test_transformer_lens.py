import pytest
import torch

from acdc_compare.backends import ModelLoadError, extract_weights, load_model, model_config, run_logits, tiny_model


@pytest.mark.parametrize("arch,kwargs", [("gpt2", {}), ("llama", {"n_heads": 6, "n_kv_heads": 2, "d_model": 48}),
                                         ("neox", {})])
def test_tiny_bridge_matches_the_transformers_model(arch, kwargs):
    model = tiny_model(arch, n_layers=2, seed=3, **kwargs)
    tokens = torch.randint(0, 64, (3, 9), generator=torch.Generator().manual_seed(0))
    ours = run_logits(model, tokens)
    theirs = model.original_model(tokens).logits
    assert (ours - theirs).abs().max() <= 1e-4
    assert ours.std() > 0.5  # init_range 0.3 gives a model whose outputs vary, not a near-uniform one


def test_tiny_models_are_seeded():
    a, b, c = (tiny_model("llama", seed=s, n_heads=4, n_kv_heads=2) for s in (1, 1, 2))
    assert torch.equal(a.W_Q, b.W_Q)
    assert not torch.equal(a.W_Q, c.W_Q)


def test_config_reads_grouped_query_and_parallel_shapes():
    llama = model_config(tiny_model("llama", n_heads=6, n_kv_heads=3, d_model=48))
    assert (llama.n_heads, llama.kv_heads, llama.group_size, llama.normalization) == (6, 3, 2, "RMS")
    neox = model_config(tiny_model("neox"))
    assert neox.parallel_attn_mlp and neox.positional == "rotary" and neox.rotary_dim == neox.d_head // 2
    w = extract_weights(tiny_model("gpt2", n_layers=3, n_heads=4, d_model=32))
    assert w.W_Q.shape == (3, 4, 32, 8) and w.b_O.shape == (3, 32) and w.W_pos is not None


def test_unreachable_hub_model_gives_the_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as err:
        load_model("no-such-org/no-such-model-xyz", device="cpu")
    message = str(err.value)
    assert "no-such-org/no-such-model-xyz" in message
    assert "smollm2-135m" in message and "local" in message
    assert "Traceback" not in message


def test_missing_gguf_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "model.gguf"))
