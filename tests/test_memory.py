"""The memory model (issue 25): closed-form graph and weight sizes, batches chosen to fit a budget without
changing any result, and runs that cannot fit refused before any activation is computed, naming what fits."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import tiny_task

from acdc_compare.algorithms.eap import circuits_per_pass, eap_ig, eap_ig_scores, faithfulness_of_scores
from acdc_compare.algorithms.problem import check_fits, make_problem, memory_model
from acdc_compare.graph import Graph
from acdc_compare.memory import MemoryBudgetError, MemoryModel, Workload, graph_size, parse_size
from acdc_compare.patching.engine import Patcher
from acdc_compare.types import ModelConfig
from acdc_compare.weights import random_weights

LLAMA = ModelConfig(n_layers=3, n_heads=6, n_kv_heads=2, d_model=48, d_head=8, d_mlp=96, d_vocab=64,
                    normalization="RMS", positional="rotary", act_fn="silu", gated_mlp=True, name="tiny-llama")
SHAPES = [
    LLAMA,
    ModelConfig(n_layers=2, n_heads=4, d_model=32, d_head=8, d_mlp=64, d_vocab=64, parallel_attn_mlp=True),
    ModelConfig(n_layers=2, n_heads=4, n_kv_heads=2, d_model=32, d_head=8, d_mlp=64, d_vocab=64,
                normalization="RMS", positional="rotary", act_fn="gelu_pytorch_tanh", gated_mlp=True,
                post_norms=True, qk_norm="head"),
    ModelConfig(n_layers=30, n_heads=9, n_kv_heads=3, d_model=576, d_head=64, d_mlp=1536, d_vocab=49152),
]


@pytest.mark.parametrize("cfg", SHAPES)
@pytest.mark.parametrize("direct", [True, False])
def test_graph_size_is_the_graphs_own(cfg, direct):
    graph = Graph.from_model_config(cfg, include_direct=direct)
    size = graph_size(cfg, direct)
    assert (size.n_senders, size.n_receivers, size.n_edges) == (graph.n_senders, graph.n_receivers, graph.n_edges)


def test_smollm2_shaped_graph_has_its_known_edge_count():
    assert graph_size(SHAPES[-1]).n_edges == 71_101 and graph_size(SHAPES[-1], False).n_edges == 70_651


@pytest.mark.parametrize("cfg", SHAPES[:3])
@pytest.mark.parametrize("tied", [True, False])
def test_parameter_count_is_that_of_the_weights(cfg, tied):
    weights = random_weights(cfg, tied_embeddings=tied)
    seen: dict[int, int] = {}
    for value in vars(weights).values():
        if isinstance(value, torch.Tensor):
            seen[value.untyped_storage().data_ptr()] = value.untyped_storage().nbytes() // 4
    assert MemoryModel(cfg, tied_embeddings=tied).n_parameters() == sum(seen.values())


def test_peak_grows_with_prompts_and_batch_and_halves_in_bfloat16():
    model = MemoryModel(LLAMA)
    small, large = Workload(4, 16), Workload(8, 16)
    for grad in (False, True):
        assert model.peak_bytes(small, 1, grad=grad) < model.peak_bytes(large, 1, grad=grad)
        assert model.peak_bytes(small, 1, grad=grad) < model.peak_bytes(small, 2, grad=grad)
    assert MemoryModel(LLAMA, torch.bfloat16).weight_bytes() * 2 == model.weight_bytes()


def test_largest_batch_and_prompts_are_the_largest_that_fit():
    model, work = MemoryModel(LLAMA), Workload(4, 16)
    budget = model.peak_bytes(work, 3, grad=True) + 1
    assert model.largest_batch(work, budget, grad=True) == 3
    fits = model.largest_prompts(work, budget, grad=False)
    assert model.peak_bytes(Workload(fits, 16), 1) <= budget < model.peak_bytes(Workload(fits + 1, 16), 1)
    assert model.largest_batch(work, 10, grad=False) == 0 and model.largest_prompts(work, 10, grad=False) == 0


@pytest.mark.parametrize("text, expected", [("24GiB", 24 << 30), ("80GB", 80 * 10**9), ("500 MB", 5 * 10**8),
                                            ("1.5e9", 1_500_000_000), (4096, 4096)])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["lots", "-1GB", "0", ""])
def test_parse_size_refuses_nonsense(text):
    with pytest.raises(ValueError, match="memory size"):
        parse_size(text)


def _patcher() -> Patcher:
    return Patcher.from_weights(random_weights(LLAMA, dtype=torch.float64, std=0.3, seed=1))


def test_a_tight_budget_chunks_without_changing_the_circuit_or_scores():
    patcher, task = _patcher(), tiny_task(n=6, p=7)
    work = Workload(task.n_prompts, task.clean.shape[1])
    tight = memory_model(patcher).peak_bytes(work, 1, grad=True)  # exactly one circuit per forward
    loose = make_problem(patcher, task, max_memory=1 << 34)
    chunked = make_problem(patcher, task, max_memory=tight, grad=True)
    assert circuits_per_pass(chunked, grad=True) == 1 and circuits_per_pass(loose, grad=True) >= 6
    a, b = eap_ig(loose, top_n=40, steps=6), eap_ig(chunked, top_n=40, steps=6)
    assert torch.equal(a.kept, b.kept)
    assert torch.allclose(a.scores, b.scores, rtol=1e-12, atol=1e-15)
    assert a.metrics == pytest.approx(b.metrics, rel=1e-12)
    curve_a, curve_b = faithfulness_of_scores(loose, a.scores), faithfulness_of_scores(chunked, a.scores)
    assert curve_a.faithfulness == pytest.approx(curve_b.faithfulness, rel=1e-12, abs=1e-15)
    assert chunked.default_batch == 1


def test_a_run_that_cannot_fit_is_refused_before_any_activation_naming_the_prompts_that_fit(monkeypatch):
    patcher, task = _patcher(), tiny_task(n=6, p=7)
    model = memory_model(patcher)
    budget = model.peak_bytes(Workload(2, 7), 1, grad=True) + 1

    def no_activations(*args, **kwargs):
        raise AssertionError("activations computed before the refusal")

    monkeypatch.setattr(patcher, "prepare", no_activations)
    with pytest.raises(MemoryBudgetError, match=r"6 prompts of 7 tokens need about") as caught:
        make_problem(patcher, task, grad=True, max_memory=budget)
    message = str(caught.value)
    assert "the --max-memory budget" in message
    fits = int(re.search(r"use at most (\d+) prompts", message).group(1))
    assert fits == 2
    check_fits(patcher, fits, 7, grad=True, max_memory=budget)
    with pytest.raises(MemoryBudgetError):
        check_fits(patcher, fits + 1, 7, grad=True, max_memory=budget)


def test_a_batch_that_cannot_fit_is_refused_naming_the_batch_that_does():
    patcher, task = _patcher(), tiny_task(n=6, p=7)
    work = Workload(task.n_prompts, task.clean.shape[1])
    budget = memory_model(patcher).peak_bytes(work, 2, grad=True)
    problem = make_problem(patcher, task, max_memory=budget)
    with pytest.raises(MemoryBudgetError, match="use at most 2 per forward"):
        eap_ig_scores(problem, steps=5, batch=5)
    assert eap_ig_scores(problem, steps=5, batch=2).shape == (problem.graph.n_edges,)


def test_bridge_weights_are_the_models_own_plus_the_engines_layer_copies():
    from conftest import make_tiny

    from acdc_compare.backends import make_patcher

    bridge = make_tiny("llama", dtype=torch.float32)
    patcher = make_patcher(bridge, check=False)
    storages: dict[int, int] = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
                                for t in bridge.parameters()}
    for value in [*vars(patcher.w).values(), patcher._w_qkv, patcher._b_qkv]:
        if isinstance(value, torch.Tensor):
            storages.setdefault(value.untyped_storage().data_ptr(), value.untyped_storage().nbytes())
    model = memory_model(patcher)
    tied = patcher.w.W_U.untyped_storage().data_ptr() == patcher.w.W_E.untyped_storage().data_ptr()
    model = MemoryModel(model.cfg, model.dtype, tied_embeddings=tied)
    assert model.bridge_weight_bytes() == pytest.approx(sum(storages.values()), rel=0.02)


def test_an_acdc_batch_that_cannot_fit_is_refused_before_any_test():
    from acdc_compare.algorithms.acdc import acdc

    patcher, task = _patcher(), tiny_task(n=6, p=7)
    work = Workload(task.n_prompts, task.clean.shape[1])
    problem = make_problem(patcher, task, max_memory=memory_model(patcher).peak_bytes(work, 3))
    with pytest.raises(MemoryBudgetError, match="use at most 3 per forward"):
        acdc(problem, 0.01, max_batch=8)
    assert torch.equal(acdc(problem, 0.01, max_batch=3).kept, acdc(problem, 0.01, max_batch=1).kept)


def test_a_budget_too_small_for_one_prompt_says_so_instead_of_at_most_0():
    patcher = _patcher()
    with pytest.raises(MemoryBudgetError) as caught:
        check_fits(patcher, 4, 7, max_memory=1000)
    message = str(caught.value)
    assert "even 1 prompt does not fit" in message and "a larger --max-memory" in message
    assert "at most 0" not in message and "--n-prompts" not in message


def test_span_graphs_need_more_memory_the_more_spans_they_have():
    weights = random_weights(ModelConfig(n_layers=2, n_heads=4, d_model=32, d_head=8, d_mlp=64, d_vocab=64), seed=0)
    plain = Patcher.from_weights(weights)
    work = Workload(8, 12, 1)
    peaks = [memory_model(plain.with_graph(plain.graph.with_spans(tuple(f"s{i}" for i in range(j))))).peak_bytes(
        work, 1, grad=True) for j in (2, 5)]
    assert memory_model(plain).peak_bytes(work, 1, grad=True) < peaks[0] < peaks[1]
