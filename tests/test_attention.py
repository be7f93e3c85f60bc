"""The analogy measure: role masses, similarities and their shuffled-role baseline, checked by hand and
against attention read directly from hooks on tiny models."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import tiny_task

from acdc_compare.attention import (
    ROLES,
    analogy,
    decode_pattern,
    encode_pattern,
    head_analogies,
    pearson,
    position_roles,
    role_mass,
    shuffle_roles,
    tv_similarity,
    viewer_attention,
)
from acdc_compare.backends import tiny_model
from acdc_compare.tasks.base import Task

R = {name: i for i, name in enumerate(ROLES)}


def test_position_roles_by_priority_and_causality() -> None:
    tokens = torch.tensor([[5, 7, 9, 7, 3, 8, 1], [9, 2, 5, 4, 6, 1, 0]])
    positions = torch.tensor([[5], [5]])
    correct, wrong = torch.tensor([[7], [5]]), torch.tensor([[9], [3]])
    roles = position_roles(tokens, positions, correct, wrong)[:, 0]
    assert roles[0].tolist() == [R["correct kind"], R["correct answer"], R["wrong answer"], R["correct answer"],
                                 R["wrong kind"], R["scored token"], -1]
    assert roles[1].tolist() == [R["wrong kind"], R["other"], R["correct answer"], R["other"], R["other"],
                                 R["scored token"], -1]


def test_role_mass_and_similarities_by_hand() -> None:
    rows = torch.tensor([[0.5, 0.3, 0.2, 0.0], [0.1, 0.1, 0.1, 0.7]])
    roles = torch.tensor([[0, 1, 0, -1], [2, 2, 1, 0]])
    mass = role_mass(rows, roles, n_roles=3)
    assert torch.allclose(mass, torch.tensor([[0.7, 0.3, 0.0], [0.7, 0.1, 0.2]], dtype=torch.float64))
    assert tv_similarity(torch.tensor([0.5, 0.5, 0.0]), torch.tensor([0.0, 0.5, 0.5])) == pytest.approx(0.5)
    assert tv_similarity(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])) == pytest.approx(0.0)
    assert pearson(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 4.0, 6.5])) > 0.99
    assert math.isnan(pearson(torch.ones(3), torch.tensor([1.0, 2.0, 3.0])))


def _random_set(seed: int, n: int = 40, p: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """Peaked attention rows whose peak sits on role 0; roles drawn at random per position."""
    g = torch.Generator().manual_seed(seed)
    roles = torch.randint(1, len(ROLES), (n, p), generator=g)
    roles[torch.arange(n), torch.randint(0, p, (n,), generator=g)] = 0
    logits = torch.randn(n, p, generator=g) + 6.0 * (roles == 0)
    return logits.softmax(-1).double(), roles


def test_self_similarity_is_one_and_shuffled_roles_sit_at_the_baseline() -> None:
    rows, roles = _random_set(0)
    same = analogy("x", rows, roles, rows, roles, n_shuffles=100)
    assert same.tv_similarity == pytest.approx(1.0) and same.pearson == pytest.approx(1.0)
    assert same.baseline_tv < 0.7 and same.baseline_pearson < 0.5
    scrambled = shuffle_roles(roles, torch.Generator().manual_seed(7))
    assert sorted(scrambled[3].tolist()) == sorted(roles[3].tolist())
    vs = analogy("x", rows, roles, rows, scrambled, n_shuffles=100)
    assert abs(vs.tv_similarity - same.baseline_tv) < 3 * same.baseline_tv_std + 0.02
    assert abs(vs.pearson - same.baseline_pearson) < 3 * same.baseline_pearson_std + 0.02
    # A head that looks at role 0 in a second, independently drawn set: far above the baseline.
    rows_b, roles_b = _random_set(1)
    other = analogy("x", rows, roles, rows_b, roles_b, n_shuffles=100)
    assert other.tv_similarity > other.baseline_tv + 0.3


def test_pattern_encoding_round_trips() -> None:
    p = torch.tril(torch.rand(9, 9, dtype=torch.float64))
    p = p / p.sum(-1, keepdim=True)
    back = decode_pattern(encode_pattern(p), 9)
    assert (back - p).abs().max() <= 0.5 / 255 + 1e-12 and bool((torch.triu(back, 1) == 0).all())


def _hook_rows(model, task: Task, layer: int, head: int) -> torch.Tensor:
    """Attention from each prompt's scored position, read from the pattern hook (GPT-2: recomputed from the
    query and key hooks too)."""
    store: dict[str, torch.Tensor] = {}

    def grab(name: str):
        def hook(x, hook):
            store[name] = x.detach().clone()
        return hook

    names = [f"blocks.{layer}.attn.hook_pattern", f"blocks.{layer}.attn.hook_q", f"blocks.{layer}.attn.hook_k"]
    model.run_with_hooks(task.clean, fwd_hooks=[(n, grab(n)) for n in names], return_type=None)
    pattern = store[names[0]][:, head].double()
    if model.cfg.positional_embedding_type != "rotary":
        q, k = store[names[1]][:, :, head].double(), store[names[2]][:, :, head].double()
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        p = scores.shape[-1]
        scores = scores.masked_fill(torch.triu(torch.ones(p, p, dtype=torch.bool), 1), -math.inf)
        assert torch.allclose(scores.softmax(-1), pattern, atol=1e-9)
    pos = task.positions[:, 0]
    return pattern[torch.arange(task.n_prompts), pos]


def _naive_mass(rows: torch.Tensor, task: Task) -> torch.Tensor:
    """Role masses by a plain loop over positions, with the role rules spelled out."""
    correct_pool, wrong_pool = set(task.correct.flatten().tolist()), set(task.wrong.flatten().tolist())
    out = torch.zeros(task.n_prompts, len(ROLES), dtype=torch.float64)
    for n in range(task.n_prompts):
        s = int(task.positions[n, 0])
        for j in range(s + 1):
            t = int(task.clean[n, j])
            if t == int(task.correct[n, 0]):
                role = "correct answer"
            elif t == int(task.wrong[n, 0]):
                role = "wrong answer"
            elif t in wrong_pool:
                role = "wrong kind"
            elif t in correct_pool:
                role = "correct kind"
            elif j == 0:
                role = "first token"
            elif j == s:
                role = "scored token"
            else:
                role = "other"
            out[n, R[role]] += float(rows[n, j])
    return out


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_head_analogies_match_a_direct_hook_computation(kind: str) -> None:
    model = tiny_model(kind, n_layers=2, n_heads=4, n_kv_heads=2 if kind == "llama" else None, d_model=32,
                       dtype=torch.float64, seed=3)
    a, b = tiny_task(seed=0, n=6, p=8), tiny_task(seed=5, n=6, p=8)
    heads = ["a0.h1", "a1.h3", "a1.h0"]
    results = head_analogies(model, a, b, heads, n_shuffles=20)
    for r in results:
        layer, head = int(r.head[1]), int(r.head[-1])
        ma = _naive_mass(_hook_rows(model, a, layer, head), a)
        mb = _naive_mass(_hook_rows(model, b, layer, head), b)
        assert torch.allclose(torch.tensor(r.dist_a, dtype=torch.float64), ma.mean(0), atol=1e-12)
        assert torch.allclose(torch.tensor(r.dist_b, dtype=torch.float64), mb.mean(0), atol=1e-12)
        pa, pb = ma.mean(0) / ma.mean(0).sum(), mb.mean(0) / mb.mean(0).sum()
        expected_tv = 1 - 0.5 * float((pa - pb).abs().sum())
        assert r.tv_similarity == pytest.approx(expected_tv, abs=1e-12)
        assert r.pearson == pytest.approx(float(torch.corrcoef(torch.stack([ma.flatten(), mb.flatten()]))[0, 1]),
                                          abs=1e-9)
    self_sim = head_analogies(model, a, a, heads[:1], n_shuffles=5)[0]
    assert self_sim.tv_similarity == pytest.approx(1.0) and self_sim.pearson == pytest.approx(1.0)


def test_viewer_attention_holds_decodable_patterns(tiny_gpt2) -> None:
    task = tiny_task(seed=2, n=4, p=7)
    data = viewer_attention(tiny_gpt2, [task, task], ["a1.h2"], n_prompts=2)
    assert [t["name"] for t in data["tasks"]] == ["tiny", "tiny"]
    prompt = data["tasks"][0]["prompts"][1]
    assert prompt["scored"] == 6 and len(prompt["tokens"]) == 7 and len(prompt["roles"]) == 7
    assert prompt["roles"][2] == "correct answer"
    store = {}
    tiny_gpt2.run_with_hooks(task.clean[:2], return_type=None, fwd_hooks=[
        ("blocks.1.attn.hook_pattern", lambda x, hook: store.setdefault("p", x.detach().clone()))])
    back = decode_pattern(data["patterns"]["a1.h2"][0][1], 7)
    assert (back - store["p"][1, 2].double()).abs().max() <= 0.5 / 255 + 1e-6


def test_cli_attention_prints_the_table_and_writes_json(tiny_dir, tmp_path, capsys) -> None:
    from acdc_compare.cli import EXIT_OK, EXIT_USAGE, main

    out = tmp_path / "att"
    assert main(["attention", "--model", str(tiny_dir), "--task", "pet-last", "--twin", "pet-first", "--heads",
                 "a1.h0", "a0.h3", "--n-prompts", "4", "--shuffles", "10", "--out", str(out)]) == EXIT_OK
    printed = capsys.readouterr().out
    assert "a1.h0" in printed and "1-TV" in printed and "pearson" in printed
    summary = json.loads((out / "pet-last_vs_pet-first.json").read_text())
    assert [r["head"] for r in summary["heads"]] == ["a1.h0", "a0.h3"] and summary["roles"] == list(ROLES)
    row = summary["heads"][0]
    assert sum(row["dist_a"].values()) == pytest.approx(1.0) and sum(row["dist_b"].values()) == pytest.approx(1.0)
    assert 0.0 <= row["tv_similarity"] <= 1.0 and row["n_rows"] == [4, 4]
    assert row["dist_a"]["correct answer"] > 0 and row["dist_b"]["correct answer"] > 0  # the pet is in the prompt
    assert main(["attention", "--model", str(tiny_dir), "--task", "pet-last", "--twin", "pet-first", "--heads",
                 "9.9", "--n-prompts", "4", "--out", str(out)]) == EXIT_USAGE
    assert "heads look like" in capsys.readouterr().err
    assert main(["attention", "--model", str(tiny_dir), "--task", "pet-last", "--twin", "pet-first", "--top", "3",
                 "--n-prompts", "4", "--shuffles", "5", "--out", str(out)]) == EXIT_OK
    assert len(json.loads((out / "pet-last_vs_pet-first.json").read_text())["heads"]) == 3
