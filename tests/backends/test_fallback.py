"""The hook-based fallback: chosen with a notice where the fast engine refuses, exact against the oracle and
the engine, and refusing the gradient methods clearly."""

import warnings

import pytest
import torch

from acdc_compare.algorithms.acdc import acdc
from acdc_compare.algorithms.registry import make_options, run
from acdc_compare.algorithms.problem import make_problem
from acdc_compare.backends import UnsupportedModelError, make_patcher, run_logits, tiny_model
from acdc_compare.backends.hook_oracle import ablated_cache, hook_patched_logits, oracle_acdc
from acdc_compare.backends.hook_patcher import FallbackError, HookPatcher
from acdc_compare.backends.bridge_patcher import FallbackWarning
from acdc_compare.metrics import kl_divergence
from acdc_compare.patching import Patcher
from conftest import make_tiny, random_tokens, tiny_task

N, P = 3, 8
DYNAMIC_ROPE = {"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}


def _refused_model(dtype: torch.dtype = torch.float64):
    """A Llama with a rope scaling the fast engine refuses by name (the bridge runs it exactly)."""
    return tiny_model("llama", n_layers=2, n_heads=4, n_kv_heads=2, d_model=32, seed=3, dtype=dtype,
                      config_overrides=DYNAMIC_ROPE)


def _fallback(model) -> HookPatcher:
    with pytest.warns(FallbackWarning, match=r"rope_type.*dynamic.*hook-based fallback"):
        patcher = make_patcher(model)
    assert isinstance(patcher, HookPatcher)
    return patcher


def _oracle_evaluate(model, graph, task):
    clean_logits = hook_patched_logits(model, graph, task.clean, torch.ones(graph.n_edges, dtype=torch.bool),
                                       corrupted=task.corrupted)[:, -1]
    cache = ablated_cache(model, graph, task.corrupted)

    def evaluate(kept):
        logits = hook_patched_logits(model, graph, task.clean, kept, zero_cache=cache)[:, -1]
        return float(kl_divergence(clean_logits[:, None], logits[None, :, None])[0])

    return evaluate


def test_a_refused_setting_runs_on_the_fallback_and_its_acdc_decisions_equal_the_oracle():
    model = _refused_model()
    patcher = _fallback(model)
    task = tiny_task()
    problem = make_problem(patcher, task, metric="kl")
    threshold = 0.005
    found = acdc(problem, threshold, max_batch=8)
    kept, scores = oracle_acdc(_oracle_evaluate(model, patcher.graph, task), patcher.graph, threshold)
    assert 0 < found.n_kept < patcher.graph.n_edges
    assert torch.equal(found.kept, kept)
    for name, s in scores.items():
        assert abs(found.edge_score(name) - s) <= 1e-5


@pytest.mark.parametrize("method, threshold, options", [("eap", None, {"top_n": 5}), ("eap-ig", None, {"top_n": 5}),
                                                        ("hybrid", 0.01, {"k": 5})])
def test_the_fallback_refuses_gradient_methods_by_name(method, threshold, options):
    problem = make_problem(_fallback(_refused_model(torch.float32)), tiny_task(), metric="logit_diff")
    with pytest.raises(FallbackError, match=r"hook-based fallback.*no gradients.*'acdc'"):
        run(problem, make_options(method, threshold, **options))


def test_without_fallback_the_refusal_is_raised_and_nothing_is_warned():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UnsupportedModelError, match="rope_type"):
            make_patcher(_refused_model(torch.float32), fallback=False)


@pytest.mark.parametrize("kind", ["gpt2", "llama", "neox", "qwen3", "gemma", "gemma2", "gemma3", "phi3", "olmo2"])
@pytest.mark.parametrize("ablation", ["corrupted", "zero", "mean"])
def test_the_fallback_equals_the_fast_engine(kind, ablation):
    model = make_tiny(kind, dtype=torch.float32, seed=2)
    fast = make_patcher(model)
    assert isinstance(fast, Patcher)
    hooked = HookPatcher(model)
    assert hooked.graph == fast.graph
    clean, corrupted = random_tokens(N, P, seed=1), random_tokens(N, P, seed=2)
    reference = random_tokens(5, P, seed=4)
    kwargs = dict(corrupted=corrupted if ablation == "corrupted" else None, positions=torch.arange(P).expand(N, P),
                  reference=reference if ablation == "mean" else None)
    gen = torch.Generator().manual_seed(5)
    n_edges = fast.graph.n_edges
    kept = torch.stack([torch.ones(n_edges, dtype=torch.bool), torch.zeros(n_edges, dtype=torch.bool)]
                       + [torch.rand(n_edges, generator=gen) < f for f in (0.3, 0.7)])
    ours = hooked.logits(hooked.prepare(clean, ablation, **kwargs), kept)
    theirs = fast.logits(fast.prepare(clean, ablation, **kwargs), kept)
    assert (ours - theirs).abs().max() <= 1e-4
    assert (ours[0] - run_logits(model, clean)).abs().max() <= 1e-4
    assert (ours[2] - ours[0]).abs().max() > 1e-2


def test_an_architecture_the_engine_does_not_know_runs_on_the_fallback():
    """StableLM (partial rotary, LayerNorm, parallel-free blocks) is not among the engine's architectures."""
    import transformers
    from transformer_lens.model_bridge.sources import build_bridge_from_module

    from acdc_compare.backends.bridge_loading import prepare_bridge

    torch.manual_seed(0)
    cfg = transformers.StableLmConfig(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                      hidden_size=32, intermediate_size=64, vocab_size=64,
                                      max_position_embeddings=64, initializer_range=0.3, tie_word_embeddings=False)
    hf = transformers.StableLmForCausalLM(cfg).eval()
    model = prepare_bridge(build_bridge_from_module(hf, "StableLmForCausalLM", hf_config=cfg, dtype=torch.float32))
    with pytest.warns(FallbackWarning, match="StableLmForCausalLM"):
        patcher = make_patcher(model)
    clean, corrupted = random_tokens(N, P, seed=1), random_tokens(N, P, seed=2)
    ctx = patcher.prepare(clean, "corrupted", corrupted, positions=torch.arange(P).expand(N, P))
    kept = torch.rand(patcher.graph.n_edges, generator=torch.Generator().manual_seed(1)) < 0.5
    got = patcher.logits(ctx, kept[None])[0]
    assert (got - hook_patched_logits(model, patcher.graph, clean, kept, corrupted=corrupted)).abs().max() <= 1e-4


def test_the_fallback_refuses_span_graphs_saying_what_works():
    from acdc_compare.patching import PatchingError

    hooked = HookPatcher(make_tiny("gpt2", dtype=torch.float32))
    assert hooked.with_graph(hooked.graph) is hooked
    with pytest.raises(PatchingError, match="span.*positions='all'"):
        hooked.with_graph(hooked.graph.with_spans(("a", "rest")))
    with pytest.raises(PatchingError, match="positions='all'"):
        hooked.prepare(random_tokens(N, P, seed=1), "zero", spans=torch.zeros(N, P, dtype=torch.long))
