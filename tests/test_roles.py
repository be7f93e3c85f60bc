"""Head-role scores: hand-set tiny models with known heads, the sign logic of movers, compare_movers on
synthetic scores, GPT-2 small's IOI name movers (when GPT-2 can be loaded), and the default model (slow)."""

from __future__ import annotations


import pytest
import torch

from acdc_compare.backends import ModelLoadError, load_model, run_logits, tiny_model
from acdc_compare.role_tables import role_table
from acdc_compare.roles import (
    HeadScores,
    RoleThresholds,
    assign_roles,
    both_movers,
    compare_movers,
    direct_head_contributions,
    score_heads,
    spearman,
)
from acdc_compare.tasks.base import Task

# Residual-stream layout of the hand-set model (d_model 128, 2 heads of 64 dims per layer).
V, D, DH = 24, 128, 64
TOK, PREV, POS = 0, 24, 48  # token one-hots, previous-token one-hots (written by a0.h0), position one-hots


def hand_set_model(mover_gain: float = 0.0, negative_gain: float = 0.0):
    """A 2-layer GPT-2 with hand-set weights: a0.h0 is a previous-token head (position i's query matches
    position i-1's key through the positional embeddings) that copies the previous token into its own
    subspace; a1.h1 is an induction head (K-composition: its query reads the current token, its key the
    previous token written by a0.h0). Every other head has zero Q/K (uniform attention) and zero output;
    MLPs and biases are zero, norms have weight 1.

    `mover_gain` > 0 makes a1.h1 also copy the token it attends to into the logits (a positive mover);
    `negative_gain` > 0 gives a1.h0 the induction pattern too, with an output that pushes that token
    down (a negative mover)."""
    model = tiny_model("gpt2", n_layers=2, n_heads=2, d_model=D, vocab_size=V, n_ctx=64, seed=0,
                       dtype=torch.float64)
    hf = model.original_model
    with torch.no_grad():
        for p in hf.parameters():
            p.zero_()
        tr = hf.transformer
        for t in range(V):
            tr.wte._original_component.weight[t, TOK + t] = 1.0
        for p in range(64):
            tr.wpe._original_component.weight[p, POS + p] = 1.0
        tr.wte._original_component.weight.sub_(tr.wte._original_component.weight.mean(-1, keepdim=True))
        tr.wpe._original_component.weight.sub_(tr.wpe._original_component.weight.mean(-1, keepdim=True))
        for block in tr.h:
            blk = block._original_component
            blk.ln_1._original_component.weight.fill_(1.0)
            blk.ln_2._original_component.weight.fill_(1.0)
        tr.ln_f._original_component.weight.fill_(1.0)

        def qkv(layer: int):  # Conv1D weight [d_in, 3 d]: columns Q | K | V, head h at h*DH
            return tr.h[layer]._original_component.attn.qkv._original_component.weight

        def w_o(layer: int):  # Conv1D weight [d (heads concatenated), d]
            return tr.h[layer]._original_component.attn.o._original_component.weight

        # a0.h0: previous-token head. q(pos i) = g u_i, k(pos j) = g u_{j+1}; value = token, written to PREV.
        g0 = 1.2
        for p in range(63):
            qkv(0)[POS + p + 1, 0 * DH + p + 1] = g0
            qkv(0)[POS + p, D + 0 * DH + p + 1] = g0
        for t in range(V):
            qkv(0)[TOK + t, 2 * D + 0 * DH + t] = 1.0
            w_o(0)[0 * DH + t, PREV + t] = 1.0 / 8  # LayerNorm scales the one-hots by about 8

        def induction(head: int, gain: float) -> None:
            for t in range(V):
                qkv(1)[TOK + t, head * DH + t] = gain
                qkv(1)[PREV + t, D + head * DH + t] = gain
                qkv(1)[TOK + t, 2 * D + head * DH + t] = 1.0

        induction(1, 1.5)
        for t in range(V):
            w_o(1)[1 * DH + t, TOK + t] = mover_gain
        if negative_gain:
            induction(0, 1.5)
            for t in range(V):
                w_o(1)[0 * DH + t, TOK + t] = -negative_gain
    return model


def repeated_task(n: int = 8, half: int = 10, seed: int = 0, name: str = "toy-induction") -> Task:
    """Random sequences of `half` distinct tokens, repeated; the answer at the last position is the induction
    continuation (the token after the earlier occurrence of the last token), the wrong answer another token
    of the prompt."""
    gen = torch.Generator().manual_seed(seed)
    halves = torch.stack([torch.randperm(V, generator=gen)[:half] for _ in range(n)])
    clean = torch.cat([halves, halves], dim=1)
    corrupted = torch.stack([torch.randperm(V, generator=gen)[: 2 * half] for _ in range(n)])
    return Task(name=name, clean=clean, corrupted=corrupted, positions=torch.full((n, 1), 2 * half - 1),
                correct=halves[:, 0], wrong=halves[:, half // 2])


def no_repeat_task(n: int = 8, length: int = 16, seed: int = 1) -> Task:
    gen = torch.Generator().manual_seed(seed)
    clean = torch.stack([torch.randperm(V, generator=gen)[:length] for _ in range(n)])
    corrupted = torch.stack([torch.randperm(V, generator=gen)[:length] for _ in range(n)])
    return Task(name="toy-no-repeats", clean=clean, corrupted=corrupted, positions=torch.full((n, 1), length - 1),
                correct=clean[:, 3], wrong=clean[:, 5])


def _argmax_head(t: torch.Tensor) -> str:
    i = int(torch.argmax(t.reshape(-1)))
    return f"a{i // t.shape[1]}.h{i % t.shape[1]}"


@pytest.fixture(scope="module")
def attention_model():
    return hand_set_model()


@pytest.mark.parametrize("make_task, repeats, source", [
    (repeated_task, "auto", "task"),
    (no_repeat_task, "auto", "random repeated tokens"),
    (repeated_task, "random", "random repeated tokens"),
])
def test_hand_set_previous_token_and_induction_heads(attention_model, make_task, repeats, source):
    task = make_task()
    scores = score_heads(attention_model, task, repeats=repeats)
    assert scores.repeat_source == source
    assert _argmax_head(scores.previous_token) == "a0.h0"
    assert _argmax_head(scores.induction) == "a1.h1"
    t = RoleThresholds()
    assert scores.previous_token[0, 0] > 0.9 and scores.induction[1, 1] > 0.9
    assert scores.previous_token[0, 0] >= t.min_attention and scores.induction[1, 1] >= t.min_attention
    others = scores.previous_token.clone()
    others[0, 0] = 0
    assert others.max() < t.min_attention
    roles = assign_roles(scores)
    assert roles.get("a0.h0") == "previous token"
    assert roles.get("a1.h1") == "induction"
    assert set(roles) == {"a0.h0", "a1.h1"}  # zero-output heads are not movers, uniform heads nothing
    rows = role_table(scores, roles)
    assert [r["head"] for r in rows] == ["a1.h1", "a0.h0"]  # role order: induction before previous token
    assert rows[0]["rank"] == 1 and "top 5" in rows[0]["rule"]


def test_mover_sign_name_mover_and_negative_name_mover():
    model = hand_set_model(mover_gain=2.0, negative_gain=1.0)
    task = repeated_task(name="toy-ioi")
    scores = score_heads(model, task)
    assert scores.n_mover_prompts == task.n_prompts
    assert scores.answer_attention[1, 1] > 0.9 and scores.answer_attention[1, 0] > 0.9
    assert scores.direct_logit[1, 1] > 0 > scores.direct_logit[1, 0]
    assert scores.mover[1, 1] > 0 > scores.mover[1, 0]
    assert _argmax_head(scores.mover) == "a1.h1" and _argmax_head(-scores.mover) == "a1.h0"
    roles = assign_roles(scores, ioi=True)
    assert roles["a1.h1"] == "name mover" and roles["a1.h0"] == "negative name mover"
    assert roles["a0.h0"] == "previous token"
    generic = assign_roles(scores, ioi=False)
    assert generic["a1.h1"] == "mover" and generic["a1.h0"] == "negative mover"
    # S-inhibition is measured for the heads before the movers' layer only.
    assert scores.s_inhibition_movers == ("a1.h1",)
    assert torch.isfinite(scores.s_inhibition[0]).all() and torch.isnan(scores.s_inhibition[1]).all()
    # a0.h0 feeds the mover's keys (K-composition), not its query: on the query path it barely counts (only
    # through the norm's scale); ablating the whole head breaks the induction pattern, and the mover's
    # attention drifts onto the subject. a0.h1 writes nothing: zero either way.
    assert abs(scores.s_inhibition[0, 0]) < 1e-4 and abs(scores.s_inhibition[0, 1]) < 1e-12
    total = score_heads(model, task, s_inhibition_path="total", ablation="mean")
    assert total.s_inhibition[0, 0] > 0.05 and total.s_inhibition[0, 1] == 0
    assert assign_roles(total)["a0.h0"] == "previous token"  # pattern roles come before S-inhibition


def test_mover_intervals_and_movers_toward_the_given_answer():
    """Issue 33 item 4 on a hand-set model: a1.h1 copies the induction continuation into the logits. Scored on
    the task's own answers it is a mover whose whole interval passes the rule, and the model answers as the
    task says; with correct and wrong swapped the model gives the 'wrong' answer on every prompt: toward the
    correct answer a1.h1 moves nothing, toward the given one it is the mover."""
    model = hand_set_model(mover_gain=2.0)
    task = repeated_task(name="toy-ioi")
    scores = score_heads(model, task, s_inhibition=False)
    low, high = scores.mover_interval()
    assert low[1, 1] <= scores.mover[1, 1] <= high[1, 1] and low[1, 1] > 0.3 * scores.mover.max()
    to_correct, to_given = both_movers(scores)
    assert to_correct.heads == to_given.heads == ("a1.h1",) and scores.n_wrong_given == 0
    assert to_correct.intervals["a1.h1"] == pytest.approx((float(low[1, 1]), float(high[1, 1])))
    swapped = Task(name="toy-swapped", clean=task.clean, corrupted=task.corrupted, positions=task.positions,
                   correct=task.wrong, wrong=task.correct)
    wrong = score_heads(model, swapped, s_inhibition=False)
    assert wrong.n_wrong_given == task.n_prompts
    to_correct, to_given = both_movers(wrong)
    assert "a1.h1" not in to_correct.heads and to_given.heads == ("a1.h1",)
    given_mover, _ = wrong.mover_toward("given")
    assert given_mover[1, 1] == pytest.approx(float(scores.mover[1, 1]))


@pytest.mark.parametrize("kind", ["gpt2", "llama", "neox", "qwen3", "gemma2", "gemma3", "olmo2"])
def test_query_patched_attention_matches_a_full_forward(kind):
    """query_patched_attention (computed from the weights and the cached residual) equals the model's own
    attention pattern, with and without a delta added to two heads' query input by a TransformerLens hook."""
    from conftest import make_tiny

    from acdc_compare.backends import extract_weights
    from acdc_compare.backends.hooks import residual_pre
    from acdc_compare.roles import query_patched_attention

    model = make_tiny(kind, seed=5)
    layer = model.cfg.n_layers - 1
    d = model.cfg.d_model
    tokens = torch.randint(0, 64, (3, 8), generator=torch.Generator().manual_seed(2))
    qpos = torch.tensor([7, 5, 6])
    deltas = torch.randn(2, 3, d, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    deltas[0] = 0
    resid = residual_pre(model, tokens, [layer])[0]
    heads = [1, 3]
    rows = query_patched_attention(extract_weights(model), resid, layer, heads, deltas, qpos)
    for a in range(2):
        seen = {}

        def add(q_in, hook, a=a):
            q_in = q_in.clone()
            for h in heads:
                q_in[torch.arange(3), qpos, h] += deltas[a].to(q_in.dtype)
            return q_in

        def grab(pattern, hook):
            seen["p"] = pattern[torch.arange(3), :, qpos]

        model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.hook_q_input", add),
                                                (f"blocks.{layer}.attn.hook_pattern", grab)])
        torch.testing.assert_close(rows[a], seen["p"][:, heads].double(), atol=1e-6, rtol=1e-5)
    assert not torch.allclose(rows[0], rows[1])


def _logit_diff_check(model, task: Task, tol: float) -> None:
    heads, rest = direct_head_contributions(model, task)
    assert heads.shape == (task.n_prompts, 1, model.cfg.n_layers, model.cfg.n_heads)
    logits = run_logits(model, task.clean)[:, -1].double()
    diff = logits.gather(1, task.correct) - logits.gather(1, task.wrong)
    torch.testing.assert_close(heads.sum(dim=(-1, -2)) + rest, diff, atol=tol, rtol=tol)
    assert heads.abs().sum() > 0


def test_direct_contributions_sum_to_logit_difference_layernorm():
    model = tiny_model("gpt2", n_layers=3, n_heads=4, d_model=32, dtype=torch.float64, seed=3)
    clean = torch.randint(0, 64, (6, 9), generator=torch.Generator().manual_seed(0))
    _logit_diff_check(model, Task(name="rand", clean=clean, corrupted=clean.flip(1), positions=torch.full((6, 1), 8),
                                  correct=clean[:, 2], wrong=clean[:, 4]), tol=1e-9)


def test_direct_contributions_sum_to_logit_difference_rmsnorm():
    model = tiny_model("llama", n_layers=2, n_heads=4, n_kv_heads=2, d_model=32, dtype=torch.float64, seed=2)
    clean = torch.randint(0, 64, (4, 7), generator=torch.Generator().manual_seed(1))
    _logit_diff_check(model, Task(name="rand", clean=clean, corrupted=clean, positions=torch.full((4, 1), 6),
                                  correct=clean[:, 1], wrong=clean[:, 3]),
                      tol=1e-5)  # transformers' RMSNorm computes in float32 even in a float64 model


def _synthetic(name: str, mover: torch.Tensor, n_mover_prompts: int = 10) -> HeadScores:
    z = torch.zeros_like(mover)
    return HeadScores(task_name=name, previous_token=z, duplicate_token=z, induction=z, mover=mover,
                      s_inhibition=torch.full_like(mover, float("nan")), answer_attention=z + 0.5, direct_logit=z,
                      n_mover_prompts=n_mover_prompts)


def test_compare_movers_known_overlap():
    L, H = 4, 5
    ioi = torch.zeros(L, H, dtype=torch.float64)
    other = torch.zeros(L, H, dtype=torch.float64)
    # IOI top-3: a3.h0, a3.h1, a2.h4; the other task's top-3: a3.h1, a2.h4, a1.h2 -> overlap 2.
    ioi[3, 0], ioi[3, 1], ioi[2, 4] = 3.0, 2.0, 1.5
    other[3, 1], other[2, 4], other[1, 2] = 2.5, 2.0, 1.8
    cmp = compare_movers(_synthetic("ioi", ioi), _synthetic("pets", other), top_k=3)
    assert set(cmp.overlap) == {"a3.h1", "a2.h4"}
    assert cmp.jaccard == pytest.approx(2 / 4)
    assert cmp.chance_overlap == pytest.approx(9 / 20)
    assert set(cmp.ioi_name_movers.heads) == {"a3.h0", "a3.h1", "a2.h4"}
    assert set(cmp.other_movers.heads) == {"a3.h1", "a2.h4", "a1.h2"}
    assert cmp.verdict.startswith("Yes")
    disjoint = torch.zeros(L, H, dtype=torch.float64)
    disjoint[0, 0], disjoint[0, 1], disjoint[0, 2] = 1.0, 0.9, 0.8
    cmp2 = compare_movers(_synthetic("ioi", ioi), _synthetic("sizes", disjoint), top_k=3)
    assert cmp2.overlap == () and cmp2.verdict.startswith("No")
    same = compare_movers(_synthetic("ioi", ioi), _synthetic("ioi2", ioi.clone()), top_k=3)
    assert same.spearman == pytest.approx(1.0) and len(same.overlap) == 3
    one = torch.zeros(L, H, dtype=torch.float64)
    one[3, 0], one[0, 0], one[0, 1] = 1.0, 0.9, 0.8
    assert compare_movers(_synthetic("ioi", ioi), _synthetic("x", one), top_k=3).verdict.startswith("Partly")
    absent = compare_movers(_synthetic("ioi", ioi), _synthetic("opposites", torch.zeros(L, H), 0), top_k=3)
    assert absent.other_top == () and "never occurs in the prompt" in absent.verdict


def test_spearman_ties_and_sign():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert spearman(x, -x) == pytest.approx(-1.0)
    assert spearman(torch.tensor([1.0, 1.0, 2.0]), torch.tensor([0.0, 0.0, 5.0])) == pytest.approx(1.0)


def test_thresholds_are_relative():
    """Scaling every mover score by a constant (another model's logit scale) keeps the same roles."""
    mover = torch.tensor([[0.0, 0.1, -0.05], [2.0, 1.0, -1.2]], dtype=torch.float64)
    a = assign_roles(_synthetic("ioi", mover))
    b = assign_roles(_synthetic("ioi", 10 * mover))
    assert a == b == {"a1.h0": "name mover", "a1.h1": "name mover", "a1.h2": "negative name mover"}


# ----- real models ------------------------------------------------------------------------------------
def _ioi_task(model, n: int):
    from acdc_compare.backends import tokenizer
    from acdc_compare.tasks import make_task

    task = make_task("ioi", tokenizer(model))
    return task.subset(min(n, task.n_prompts))


@pytest.fixture(scope="module")
def gpt2_small():
    try:
        return load_model("gpt2", device="cpu")
    except ModelLoadError as err:
        pytest.skip(f"GPT-2 small cannot be loaded here: {err}")


def test_gpt2_small_ioi_name_movers(gpt2_small):
    task = _ioi_task(gpt2_small, 40)
    scores = score_heads(gpt2_small, task, s_inhibition=False)
    roles = assign_roles(scores, ioi=True)
    for head in ("a9.h9", "a9.h6", "a10.h0"):
        assert roles.get(head) == "name mover", (head, scores.top("mover", 8))


@pytest.mark.slow
def test_default_model_ioi_movers():
    model = load_model(device="cpu")
    task = _ioi_task(model, 24)
    assert task.n_prompts == 24
    scores = score_heads(model, task, s_inhibition=False)
    top = scores.top("mover", 3)
    assert all(s > 0 for _, s in top), top
    roles = assign_roles(scores, ioi=True)
    assert any(r == "name mover" for r in roles.values()), roles


def test_answer_positions_fall_back_to_text_match():
    """' Emma' answers a prompt that starts with 'Emma' (a different token): matched by text."""
    from acdc_compare.roles import answer_mask

    vocab = {5: "Emma", 6: " is", 7: " Sarah", 8: " The", 11: " Emma"}
    tokens = torch.tensor([[5, 6, 7, 8], [11, 6, 7, 8]])
    positions = torch.tensor([[3], [3]])
    answers = torch.tensor([[11], [11]])
    exact = answer_mask(tokens, positions, answers)
    assert exact[0, 0].tolist() == [False] * 4 and exact[1, 0].tolist() == [True, False, False, False]
    text = answer_mask(tokens, positions, answers, decode=vocab.__getitem__)
    assert text[0, 0].tolist() == [True, False, False, False] and torch.equal(text[1], exact[1])


def test_format_role_table_states_the_rules(attention_model):
    from acdc_compare.role_tables import format_role_table

    scores = score_heads(attention_model, repeated_task())
    text = format_role_table(scores, role_table(scores, assign_roles(scores)))
    assert "a0.h0" in text and "previous token" in text and ">= 0.3" in text and "top 5" in text
