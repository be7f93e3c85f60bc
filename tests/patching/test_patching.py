import pytest
import torch

from acdc_compare.backends import make_patcher
from acdc_compare.circuit import Circuit
from acdc_compare.graph import Graph
from acdc_compare.backends import run_logits
from acdc_compare.patching import Patcher, PatchingError
from conftest import make_tiny, random_tokens
from acdc_compare.backends.hook_oracle import ablated_cache, hook_patched_logits

N, P = 4, 8


@pytest.fixture(scope="module")
def batch():
    return random_tokens(N, P, seed=1), random_tokens(N, P, seed=2)


def test_all_kept_is_clean_and_none_kept_is_corrupted(tiny, batch):
    clean, corrupted = batch
    patcher = make_patcher(tiny)
    ctx = patcher.prepare(clean, "corrupted", corrupted, positions=torch.arange(P).expand(N, P))
    out = patcher.logits(ctx, [Circuit.full(patcher.graph), Circuit.empty(patcher.graph)])
    assert (out[0] - run_logits(tiny, clean)).abs().max() <= 1e-4
    assert (out[1] - run_logits(tiny, corrupted)).abs().max() <= 1e-4


def test_float32_matches_the_bridge():
    model = make_tiny("gpt2", dtype=torch.float32)
    clean, corrupted = random_tokens(N, P, seed=1), random_tokens(N, P, seed=2)
    patcher = make_patcher(model)
    ctx = patcher.prepare(clean, "corrupted", corrupted)
    out = patcher.logits(ctx, Circuit.full(patcher.graph))
    assert (out[0, :, 0] - run_logits(model, clean)[:, -1]).abs().max() <= 1e-4


def _every_position(kind: str, batch):
    """A tiny model, its patcher and a corrupted-ablation context scoring every position."""
    model = make_tiny(kind)
    clean, corrupted = batch
    patcher = make_patcher(model)
    return model, patcher, patcher.prepare(clean, "corrupted", corrupted, positions=torch.arange(P).expand(N, P))


def _one_edge_of_each_kind(graph: Graph) -> list[str]:
    last = graph.n_layers - 1
    kv = "kv" if graph.grouped else "h"
    names = [f"a0.h1->a{last}.{kv}1<k>", f"a{last - 1}.h0->a{last}.h0<q>", f"a0.h0->a{last}.{kv}0<v>",
             "a0.h2->m0", f"m{last}->logits", f"input->a1.h0<q>", f"a{last}.h1<q>", f"a1.{kv}0<v>",
             f"a{last}.h0->logits", "input->m1"]
    missing = [n for n in names if n not in graph.edge_names]
    assert not missing, f"edges not in {graph!r}: {missing}"
    return names


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_single_removed_edges_match_the_hook_oracle(kind, batch):
    model, patcher, ctx = _every_position(kind, batch)
    g, (clean, corrupted) = patcher.graph, batch
    names = _one_edge_of_each_kind(g)
    assert len(names) >= 9
    circuits = [Circuit.from_edge_names(g, [n for n in g.edge_names if n != name]) for name in names]
    ours = patcher.logits(ctx, circuits)
    for name, c, got in zip(names, circuits, ours):
        want = hook_patched_logits(model, g, clean, c.kept, corrupted=corrupted)
        assert (got - want).abs().max() <= 1e-4, name
        assert (got - run_logits(model, clean)).abs().max() > 1e-6, f"removing {name} changed nothing"


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_random_circuits_match_the_hook_oracle(kind, batch):
    model, patcher, ctx = _every_position(kind, batch)
    g, (clean, corrupted) = patcher.graph, batch
    gen = torch.Generator().manual_seed(3)
    for frac in (0.2, 0.7):
        kept = torch.rand(g.n_edges, generator=gen) < frac
        got = patcher.logits(ctx, Circuit(g, kept))[0]
        want = hook_patched_logits(model, g, clean, kept, corrupted=corrupted)
        assert (got - want).abs().max() <= 1e-4


def test_zero_ablation_matches_the_hook_oracle(tiny_gpt2, batch):
    clean, _ = batch
    patcher = make_patcher(tiny_gpt2)
    g = patcher.graph
    ctx = patcher.prepare(clean, "zero", positions=torch.arange(P).expand(N, P))
    zero = ablated_cache(tiny_gpt2, g, None)
    kept = torch.rand(g.n_edges, generator=torch.Generator().manual_seed(5)) < 0.5
    got = patcher.logits(ctx, Circuit(g, kept))[0]
    assert (got - hook_patched_logits(tiny_gpt2, g, clean, kept, zero_cache=zero)).abs().max() <= 1e-4
    empty = patcher.logits(ctx, Circuit.empty(g))[0]
    assert (empty - hook_patched_logits(tiny_gpt2, g, clean, torch.zeros_like(kept), zero_cache=zero)).abs().max() <= 1e-4


def test_mean_ablation_over_one_repeated_prompt_is_corrupted_ablation(tiny_llama, batch):
    clean, corrupted = batch
    patcher = make_patcher(tiny_llama)
    g = patcher.graph
    one = corrupted[:1].expand(N, P)
    kept = torch.rand(g.n_edges, generator=torch.Generator().manual_seed(6)) < 0.5
    mean_ctx = patcher.prepare(clean, "mean", reference=one)
    corr_ctx = patcher.prepare(clean, "corrupted", corrupted=one)
    a = patcher.logits(mean_ctx, Circuit(g, kept))
    b = patcher.logits(corr_ctx, Circuit(g, kept))
    assert (a - b).abs().max() <= 1e-9


def test_batched_circuits_equal_separate_runs(tiny, batch):
    clean, corrupted = batch
    patcher = make_patcher(tiny)
    g = patcher.graph
    ctx = patcher.prepare(clean, "corrupted", corrupted)
    gen = torch.Generator().manual_seed(7)
    circuits = [Circuit(g, torch.rand(g.n_edges, generator=gen) < f) for f in (0.1, 0.5, 0.9)]
    together = patcher.logits(ctx, circuits)
    for i, c in enumerate(circuits):
        assert (together[i] - patcher.logits(ctx, c)[0]).abs().max() <= 1e-9


def test_restart_at_any_stage_equals_the_full_forward(tiny, batch):
    clean, corrupted = batch
    patcher = make_patcher(tiny)
    g = patcher.graph
    ctx = patcher.prepare(clean, "corrupted", corrupted)
    base_kept = torch.rand(g.n_edges, generator=torch.Generator().manual_seed(8)) < 0.6
    _, base = patcher.run(ctx, base_kept[None], keep_state=True)
    for stage in range(patcher.n_stages):
        kept = base_kept.clone()
        # change edges only at receivers of this stage or later
        later = torch.tensor([patcher.receiver_stage(g.edge_receiver(e)) >= stage for e in range(g.n_edges)])
        flip = later & (torch.rand(g.n_edges, generator=torch.Generator().manual_seed(stage)) < 0.3)
        kept[flip] = ~kept[flip]
        batch_kept = torch.stack([kept, base_kept])
        restarted, _ = patcher.run(ctx, batch_kept, start_stage=stage, base=base)
        full, _ = patcher.run(ctx, batch_kept)
        assert (restarted - full).abs().max() <= 1e-9, stage


def test_clear_errors(tiny_gpt2, tiny_llama, batch):
    clean, corrupted = batch
    patcher = make_patcher(tiny_gpt2)
    with pytest.raises(PatchingError, match="differ in shape"):
        patcher.prepare(clean, "corrupted", corrupted[:, :-1])
    with pytest.raises(PatchingError, match="needs the corrupted prompts"):
        patcher.prepare(clean, "corrupted")
    with pytest.raises(PatchingError, match="outside the model's vocabulary"):
        patcher.prepare(clean + 1000, "zero")
    with pytest.raises(PatchingError, match="unknown ablation"):
        patcher.prepare(clean, "resample")
    ctx = patcher.prepare(clean, "corrupted", corrupted)
    other = make_patcher(tiny_llama).graph
    with pytest.raises(ValueError, match="circuit is on graph"):
        patcher.logits(ctx, Circuit.full(other))


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_sparse_circuits_read_only_their_kept_senders_and_agree(kind, batch, monkeypatch):
    """Row selection (`Deltas.gather` with `select_rows`) and skipping the stages no circuit reads give the
    dense run's logits, restarted runs and batches mixing the empty circuit included, and both are really taken
    for sparse circuits."""
    from acdc_compare.patching.deltas import Deltas

    model, patcher, ctx = _every_position(kind, batch)
    g, (clean, corrupted) = patcher.graph, batch
    gen = torch.Generator().manual_seed(11)
    kept = torch.stack([torch.rand(g.n_edges, generator=gen) < 0.04, torch.zeros(g.n_edges, dtype=torch.bool)])
    kept[0, g.edge_index(f"m{g.n_layers - 1}->logits")] = True
    calls = []
    original = Deltas._gather_rows
    monkeypatch.setattr(Deltas, "_gather_rows", lambda self, *a: calls.append(1) or original(self, *a))
    patcher.select_rows = True
    rows, base = patcher.run(ctx, kept[:1], keep_state=True)
    restarted, _ = patcher.run(ctx, kept, start_stage=3, base=base)
    assert calls, "no stage selected rows"
    skipping, _ = patcher.run(ctx, kept[:1])
    assert patcher._unread_stages(g.masks(kept[:1].to(patcher.dtype))[0], 0), "no stage was skipped"
    patcher.select_rows = False
    dense, _ = patcher.run(ctx, kept[:1])
    dense_restarted, _ = patcher.run(ctx, kept, start_stage=3, base=base)
    assert (rows - dense).abs().max() <= 1e-9
    assert (skipping - dense).abs().max() <= 1e-9
    assert (restarted - dense_restarted).abs().max() <= 1e-9
    want = hook_patched_logits(model, g, clean, kept[0], corrupted=corrupted)
    assert (rows[0] - want).abs().max() <= 1e-4


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_full_circuits_read_one_running_sum_and_agree(kind, batch, monkeypatch):
    """A mask keeping every sender reads one running sum of the deltas (`Deltas._gather_all`): the same logits
    and states as the dense product, restarted runs included."""
    from acdc_compare.patching.deltas import Deltas

    model, patcher, ctx = _every_position(kind, batch)
    g, (clean, corrupted) = patcher.graph, batch
    full = torch.ones(2, g.n_edges, dtype=torch.bool)
    calls = []
    original = Deltas._gather_all
    monkeypatch.setattr(Deltas, "_gather_all", lambda self, *a: calls.append(1) or original(self, *a))
    runs = {}
    for select in (True, False):
        patcher.select_rows = select
        logits, state = patcher.run(ctx, full[:1], keep_state=True)
        restarted, _ = patcher.run(ctx, full, start_stage=3, base=state)
        runs[select] = (logits, state.deltas, restarted)
    assert len(calls) == 2 * patcher.n_stages - 2 - 3, "not every stage read the running sum"
    for fast, dense in zip(runs[True], runs[False]):
        assert (fast - dense).abs().max() <= 1e-9
    assert (runs[True][0][0] - run_logits(model, clean)).abs().max() <= 1e-4
