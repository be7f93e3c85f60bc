"""Head roles on any model: the IOI head classes (Wang et al. 2022) measured, not looked up.

`score_heads(model, task)` gives every head five scores on the task's prompts (`HeadScores`), and
`assign_roles` turns them into IOI role names with relative thresholds (`RoleThresholds`), so the IOI
comparison also works where GPT-2 small (whose roles are in `reference_circuits`) cannot be loaded.

Scores (each a [n_layers, n_heads] tensor):
- previous_token: mean attention from position i to i-1, over the task's prompts and every i >= 1 up to the
  prompt's last scored position (right padding after it is ignored everywhere).
- duplicate_token: mean attention from a position holding a repeated token to the earlier occurrence(s) of
  the same token; induction: to the token(s) right after the earlier occurrence(s) (only occurrences j with
  j + 1 < i count). Both are measured on the task's prompts when they hold at least one repeat per prompt
  on average (IOI: the second subject S2 -> S1 and S1+1); otherwise on sequences of random tokens (drawn
  from the task's own tokens, no repeat within a half) repeated twice. `HeadScores.repeat_source` says which
  (`score_heads(repeats="random")` forces the random sequences: induction heads score higher there than on
  IOI's single S2 -> S1+1 position).
- mover: mean over (prompt, scored position) of [attention from the scored position to the position(s)
  holding the answer token] x [the head's direct logit contribution to (correct - wrong)]. The direct
  contribution is the head's output (TransformerLens `hook_result`, no b_O) at the scored position through
  the final norm with its scale frozen from the clean run (the standard linearisation: centred for
  LayerNorm, then divided by the clean run's scale, times the norm weight) and dotted with
  W_U[:, correct] - W_U[:, wrong] (W_U[:, correct] alone for tasks without wrong answers). The answer's
  positions are those holding its token, or, where that token does not occur (' Emma' answering a prompt
  that starts with 'Emma'), a token with the same text up to whitespace (needs the model's tokenizer).
  Prompts where the answer does not occur before the scored position are left out (`n_mover_prompts`
  counts the rest; 0 for tasks whose answer is not in the prompt, e.g. opposites).
  Name movers: positive; negative name movers: negative.
- s_inhibition: for each head in a layer before the movers (the heads `assign_roles` would call name
  movers, at most `n_movers`), ablate it (its z replaced by its value on the corrupted prompt, or by its
  mean over the prompts) and measure the change in the movers' attention from the scored position to the
  subject (the position(s) holding the wrong-answer token), averaged over the movers in later layers than the
  head and over the first `s_inhibition_prompts` prompts. Positive: the head normally keeps the movers off
  the subject (S-inhibition). Default path "query": the ablation reaches the movers only through their query
  input (Wang et al.'s path patching, head -> mover queries). The movers' attention rows are then computed
  from the weights and one cached clean residual (`query_patched_attention`): two short forwards in all
  (SmolLM2-135M, 24 prompts: about 2 s on 2 CPU cores). Path "total" ablates the whole head, so upstream
  heads (previous-token, induction, duplicate-token) also score through the S-inhibition heads they feed;
  it costs one forward up to the last mover's layer per candidate per prompt (SmolLM2-135M: 207 candidates
  x 8 prompts took ~220 s on a busy 2-core CPU). Heads at or after the last mover's layer are NaN (not
  measured).

Roles (`assign_roles`): one per head, in the order name mover, negative name mover, induction, duplicate
token, previous token, S-inhibition; S-inhibition is ranked among the heads left without another role, as
attention-pattern roles are the more specific evidence.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import torch

from acdc_compare import forward
from acdc_compare.backends.hooks import (
    attention_patterns,
    attention_under_head_ablations,
    attention_z,
    patterns_and_head_results,
    residual_pre,
)
from acdc_compare.backends.transformer_lens import extract_weights
from acdc_compare.graph import head_name, parse_head
from acdc_compare.progress import Bar, ProgressLike, as_progress
from acdc_compare.tasks.base import Task
from acdc_compare.types import Role
from acdc_compare.weights import ModelWeights

AblationKind = Literal["corrupted", "mean"]
SCORE_NAMES: tuple[str, ...] = ("previous_token", "duplicate_token", "induction", "mover", "s_inhibition")


@dataclass(frozen=True, eq=False)
class HeadScores:
    """Per-head role scores of one model on one task; every tensor is [n_layers, n_heads] (float64, CPU).

    answer_attention and direct_logit are the two factors of `mover` (each averaged over the same prompts).
    s_inhibition is NaN for heads that were not measured (at or after the last mover's layer, or all heads
    when s_inhibition scoring was switched off)."""

    task_name: str
    previous_token: torch.Tensor
    duplicate_token: torch.Tensor
    induction: torch.Tensor
    mover: torch.Tensor
    s_inhibition: torch.Tensor
    answer_attention: torch.Tensor
    direct_logit: torch.Tensor
    repeat_source: str = "task"  # "task" or "random repeated tokens"
    n_mover_prompts: int = 0
    s_inhibition_movers: tuple[str, ...] = ()
    ablation: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        return int(self.mover.shape[0])

    @property
    def n_heads(self) -> int:
        return int(self.mover.shape[1])

    def score(self, name: str) -> torch.Tensor:
        if name not in SCORE_NAMES:
            raise ValueError(f"unknown score {name!r}; choose one of {SCORE_NAMES}")
        return getattr(self, name)

    def top(self, name: str, k: int, largest: bool = True) -> list[tuple[str, float]]:
        """The k heads with the largest (or smallest) finite score: [(head, score)]."""
        flat = self.score(name).reshape(-1)
        finite = torch.isfinite(flat)
        idx = [int(i) for i in torch.argsort(flat, descending=largest) if finite[int(i)]][:k]
        return [(head_name(*divmod(i, self.n_heads)), float(flat[i])) for i in idx]

    def head_scores(self, head: str) -> dict[str, float]:
        layer, h = parse_head(head)
        out = {name: float(self.score(name)[layer, h]) for name in SCORE_NAMES}
        out["answer_attention"] = float(self.answer_attention[layer, h])
        out["direct_logit"] = float(self.direct_logit[layer, h])
        return out


@dataclass(frozen=True)
class RoleThresholds:
    """When a score makes a role. Relative, so the same defaults serve GPT-2 small and SmolLM2.

    A head gets a role when its score is among the `top_k_*` best of all heads AND at least `*_fraction` of
    the best head's score (of the largest |mover| for movers) AND above the absolute floor. The floors are
    in attention-probability units, which mean the same on every model: `min_attention` = 0.3 is two to
    three times what uniform attention gives on 15-token prompts (0.1-0.16); `min_s_inhibition` = 0.02 is a
    two-point rise in the movers' attention to the subject. Movers have no absolute floor (logit units differ between
    models) beyond `min_mover` = 0.001 logits, which only drops numerically-zero heads; otherwise only the sign
    and the fraction of the largest |mover| count.
    """

    top_k_attention: int = 5
    attention_fraction: float = 0.5
    min_attention: float = 0.3
    top_k_movers: int = 5
    mover_fraction: float = 0.3
    min_mover: float = 1e-3
    top_k_negative: int = 3
    top_k_s_inhibition: int = 5
    s_inhibition_fraction: float = 0.3
    min_s_inhibition: float = 0.02

    def describe(self) -> dict[str, Role]:
        """Role -> the rule in words (for tables and reports)."""
        att = (f"top {self.top_k_attention}, >= {self.attention_fraction:g} x the best head's score and "
               f">= {self.min_attention:g}")
        return {
            Role.NAME_MOVER: (f"mover score > {self.min_mover:g}, top {self.top_k_movers}, >= {self.mover_fraction:g} "
                           "x max |mover|"),
            Role.NEGATIVE_NAME_MOVER: (f"mover score < -{self.min_mover:g}, top {self.top_k_negative} most negative, "
                                    f"|mover| >= {self.mover_fraction:g} x max |mover|"),
            Role.S_INHIBITION: (f"s_inhibition top {self.top_k_s_inhibition}, >= {self.s_inhibition_fraction:g} x the "
                             f"best and >= {self.min_s_inhibition:g}"),
            Role.INDUCTION: f"induction score {att}",
            Role.DUPLICATE_TOKEN: f"duplicate-token score {att}",
            Role.PREVIOUS_TOKEN: f"previous-token score {att}",
        }


# A head qualifying for several roles takes the first; S-inhibition is ranked among the heads left over.
ROLE_PRIORITY: tuple[Role, ...] = (Role.NAME_MOVER, Role.NEGATIVE_NAME_MOVER, Role.INDUCTION, Role.DUPLICATE_TOKEN,
                                   Role.PREVIOUS_TOKEN, Role.S_INHIBITION)
_ROLE_SCORE = {Role.NAME_MOVER: "mover", Role.NEGATIVE_NAME_MOVER: "mover", Role.S_INHIBITION: "s_inhibition",
               Role.INDUCTION: "induction", Role.DUPLICATE_TOKEN: "duplicate_token",
               Role.PREVIOUS_TOKEN: "previous_token"}
_NON_IOI_NAMES = {Role.NAME_MOVER: Role.MOVER, Role.NEGATIVE_NAME_MOVER: Role.NEGATIVE_MOVER}


# ----- scoring ------------------------------------------------------------------------------------------
@torch.no_grad()
def score_heads(model: Any, task: Task, *, s_inhibition: bool = True, s_inhibition_prompts: int = 16,
                n_movers: int = 3, ablation: AblationKind | None = None,
                s_inhibition_path: Literal["query", "total"] = "query",
                thresholds: RoleThresholds | None = None, repeats: Literal["auto", "task", "random"] = "auto",
                n_random: int = 16, random_len: int = 16,
                seed: int = 0, chunk: int = 16, batch_size: int = 256, progress: ProgressLike = None) -> HeadScores:
    """Score every head of `model` on `task` (see the module docstring for the definitions).

    `ablation` for S-inhibition: "corrupted" (default when the task's corrupted prompts differ from the
    clean ones) or "mean" (over the clean prompts, per position). `s_inhibition_path`: "query" patches the
    ablation only along each head's direct path into the movers' queries (Wang et al.'s path patching;
    computed from one cached forward, cheap), "total" ablates the whole head (a forward up to the movers per
    candidate, `batch_size` sequences per forward; upstream heads such as previous-token and induction heads
    score too). `thresholds` picks the movers whose attention S-inhibition is measured on. `repeats`: where
    duplicate-token and induction scores are measured: "auto" (the task's prompts if they hold at least one
    repeated token per prompt, else `n_random` repeated random sequences of 2 x `random_len` tokens), "task"
    or "random". `chunk` prompts per forward for patterns and head outputs. `progress`: one bar, a unit per
    chunk of prompts, one for the repeat scores and one for S-inhibition."""
    thresholds = thresholds or RoleThresholds()
    if repeats not in ("auto", "task", "random"):
        raise ValueError(f"unknown repeats {repeats!r}; choose 'auto', 'task' or 'random'")
    bar = as_progress(progress)(f"head roles ({task.name})", -(-task.n_prompts // chunk) + 2, unit="step")
    try:
        return _score_heads(model, task, s_inhibition, s_inhibition_prompts, n_movers, ablation, s_inhibition_path,
                            thresholds, repeats, n_random, random_len, seed, chunk, batch_size, bar)
    finally:
        bar.close()


def _score_heads(model: Any, task: Task, s_inhibition: bool, s_inhibition_prompts: int, n_movers: int,
                 ablation: AblationKind | None, s_inhibition_path: Literal["query", "total"],
                 thresholds: RoleThresholds, repeats: Literal["auto", "task", "random"], n_random: int,
                 random_len: int, seed: int, chunk: int, batch_size: int, bar: Bar) -> HeadScores:
    weights = extract_weights(model)
    clean = task.clean
    n = clean.shape[0]
    patterns, dla = _patterns_and_dla(model, weights, task, chunk, bar)  # [L, N, H, P, P], [N, Q, L, H]
    valid = _valid_positions(clean, task.positions)
    prev = _previous_token_score(patterns, valid)
    dup, ind, n_repeats = _repeat_scores(patterns, clean, valid)
    repeat_source = "task"
    if repeats == "random" or (repeats == "auto" and n_repeats < n):
        rand = _repeated_random_tokens(clean, valid, n_random, random_len, seed, _context_length(model))
        dup, ind, _ = _repeat_scores(_patterns(model, rand, chunk), rand, _valid_positions(rand, None))
        repeat_source = "random repeated tokens"
    bar.update(1)
    decode = token_decoder(model)
    mover, att, mean_dla, n_mover = _mover_scores(task, patterns, dla, decode)

    L, H = mover.shape
    s_inh = torch.full((L, H), math.nan, dtype=torch.float64)
    mover_heads: tuple[str, ...] = ()
    used_ablation = ""
    if s_inhibition and task.has_wrong_answers and n_mover > 0:
        movers = _mover_heads(mover, thresholds)[:n_movers]
        if movers and max(parse_head(h)[0] for h in movers) > 0:
            used_ablation = ablation or ("corrupted" if not torch.equal(task.corrupted, task.clean) else "mean")
            s_inh = _s_inhibition(model, weights, task, [parse_head(h) for h in movers], patterns, used_ablation,
                                  s_inhibition_path, s_inhibition_prompts, batch_size, decode)
            mover_heads = tuple(movers)
    bar.update(1)
    return HeadScores(
        task_name=task.name, previous_token=prev, duplicate_token=dup, induction=ind, mover=mover,
        s_inhibition=s_inh, answer_attention=att, direct_logit=mean_dla, repeat_source=repeat_source,
        n_mover_prompts=n_mover, s_inhibition_movers=mover_heads, ablation=used_ablation,
        info={"n_prompts": n, "repeat_positions": n_repeats,
              "s_inhibition_path": s_inhibition_path if mover_heads else ""},
    )


def _patterns(model: Any, tokens: torch.Tensor, chunk: int) -> torch.Tensor:
    parts = [attention_patterns(model, tokens[i:i + chunk]).double().cpu() for i in range(0, len(tokens), chunk)]
    return torch.cat(parts, dim=1)


def _context_length(model: Any) -> int:
    return int(getattr(model.cfg, "n_ctx", 0) or 1024)


def _valid_positions(tokens: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
    """[N, P] bool: the real tokens of each prompt, up to its last scored position (right padding after it)."""
    n, p = tokens.shape
    if positions is None:
        return torch.ones(n, p, dtype=torch.bool)
    last = positions.cpu().max(dim=1).values
    return torch.arange(p)[None, :] <= last[:, None]


def _previous_token_score(patterns: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of A[i, i-1] over prompts and their real positions i >= 1: [L, H]."""
    p = patterns.shape[-1]
    i = torch.arange(1, p)
    rows = valid[:, 1:].double()  # [N, P-1]
    return (patterns[..., i, i - 1] * rows[None, :, None]).sum(dim=(1, 3)) / rows.sum().clamp(min=1)


def _repeat_scores(patterns: torch.Tensor, tokens: torch.Tensor,
                   valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Duplicate-token and induction scores [L, H] over the real positions whose token occurred before, and
    the number of such (prompt, position) pairs."""
    tokens = tokens.cpu()
    n, p = tokens.shape
    same = tokens[:, :, None] == tokens[:, None, :]  # [N, i, j]
    earlier = torch.tril(torch.ones(p, p, dtype=torch.bool), diagonal=-1)
    dup_mask = same & earlier & valid[:, :, None]  # j < i holds the same token, i a real position
    ind_mask = torch.zeros_like(dup_mask)
    ind_mask[:, :, 1:] = dup_mask[:, :, :-1]  # j + 1 where j is an earlier occurrence ...
    ind_mask &= earlier  # ... and j + 1 < i
    dup_rows = dup_mask.any(-1)  # [N, i]
    ind_rows = ind_mask.any(-1)
    n_rows = int(dup_rows.sum())
    L, _, H = patterns.shape[:3]
    if n_rows == 0:
        return torch.zeros(L, H, dtype=torch.float64), torch.zeros(L, H, dtype=torch.float64), 0
    dup_att = (patterns * dup_mask[None, :, None].double()).sum(-1)  # [L, N, H, i]
    ind_att = (patterns * ind_mask[None, :, None].double()).sum(-1)
    dup = (dup_att * dup_rows[None, :, None].double()).sum(dim=(1, 3)) / n_rows
    n_ind = int(ind_rows.sum())
    ind = (ind_att * ind_rows[None, :, None].double()).sum(dim=(1, 3)) / max(n_ind, 1)
    return dup, ind, n_rows


def _repeated_random_tokens(tokens: torch.Tensor, valid: torch.Tensor, n_seqs: int, length: int, seed: int,
                            n_ctx: int) -> torch.Tensor:
    """[n_seqs, 2T]: T distinct tokens (drawn from the task's own real tokens) followed by the same T again."""
    vocab = torch.unique(tokens.cpu()[valid])
    length = max(2, min(length, len(vocab), n_ctx // 2))
    gen = torch.Generator().manual_seed(seed)
    halves = torch.stack([vocab[torch.randperm(len(vocab), generator=gen)[:length]] for _ in range(n_seqs)])
    return torch.cat([halves, halves], dim=1)


# ----- direct logit contributions -------------------------------------------------------------------------
def _answer_direction(weights: ModelWeights, task: Task) -> tuple[torch.Tensor, torch.Tensor]:
    """W_U[:, correct] - W_U[:, wrong] per scored position [N, Q, d] (W_U[:, correct] where there is no wrong
    answer), and the matching unembedding-bias difference [N, Q]; float64 on the CPU."""
    W_U, b_U = weights.W_U.double().cpu(), weights.b_U.double().cpu()
    correct, wrong = task.correct.cpu(), task.wrong.cpu()
    has_wrong = (wrong >= 0).double()
    w_idx = wrong.clamp(min=0)
    direction = W_U[:, correct].permute(1, 2, 0) - W_U[:, w_idx].permute(1, 2, 0) * has_wrong[..., None]
    return direction, b_U[correct] - b_U[w_idx] * has_wrong


def _direct_contributions(weights: ModelWeights, task: Task, heads: torch.Tensor, resid: torch.Tensor,
                          rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
    """Heads' direct logit-difference contributions [m, Q, L, H] and the rest [m, Q] for the prompts `rows`,
    from the head outputs [m, Q, L, H, d] and final residual [m, Q, d] at the scored positions."""
    cfg = weights.config
    raw, bias_diff = _answer_direction(weights, task)
    raw, bias_diff = raw[rows], bias_diff[rows]
    lnf_w = weights.lnf_w.double().cpu()
    heads, resid = heads.double().cpu(), resid.double().cpu()
    if cfg.normalization == "RMS":
        scale = torch.sqrt(resid.pow(2).mean(-1, keepdim=True) + cfg.eps)  # [m, Q, 1]
        centred_heads, centred_resid = heads, resid
    else:
        centred_resid = resid - resid.mean(-1, keepdim=True)
        scale = torch.sqrt(centred_resid.pow(2).mean(-1, keepdim=True) + cfg.eps)
        centred_heads = heads - heads.mean(-1, keepdim=True)
    direction = raw * lnf_w / scale  # [m, Q, d]
    head_dla = torch.einsum("mqlhd,mqd->mqlh", centred_heads, direction)
    total = (centred_resid * direction).sum(-1) + bias_diff
    if weights.lnf_b is not None:
        total = total + (raw * weights.lnf_b.double().cpu()).sum(-1)
    return head_dla, total - head_dla.sum(dim=(-1, -2))


def _patterns_and_dla(model: Any, weights: ModelWeights, task: Task, chunk: int,
                      bar: Bar) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention patterns [L, N, H, P, P] and heads' direct contributions [N, Q, L, H] (one forward per chunk,
    one `bar` unit each)."""
    patterns, dla = [], []
    for start in range(0, task.n_prompts, chunk):
        rows = slice(start, start + chunk)
        pat, heads, resid = patterns_and_head_results(model, task.clean[rows], task.positions[rows])
        patterns.append(pat.double().cpu())
        dla.append(_direct_contributions(weights, task, heads, resid, rows)[0])
        bar.update(1)
    return torch.cat(patterns, dim=1), torch.cat(dla)


@torch.no_grad()
def direct_head_contributions(model: Any, task: Task, chunk: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Each head's direct contribution to the (correct - wrong) logit at each scored position, the final
    norm's scale frozen from the clean run: [N, Q, L, H], and the rest (embedding, MLPs, biases) [N, Q].

    The two parts sum to the model's logit difference (the final norm is linear once its scale is frozen,
    and LayerNorm's centring is linear too); the rest includes the norm and unembedding biases."""
    weights = extract_weights(model)
    heads_out, rest_out = [], []
    for start in range(0, task.n_prompts, chunk):
        rows = slice(start, start + chunk)
        _, heads, resid = patterns_and_head_results(model, task.clean[rows], task.positions[rows])
        h, r = _direct_contributions(weights, task, heads, resid, rows)
        heads_out.append(h)
        rest_out.append(r)
    return torch.cat(heads_out), torch.cat(rest_out)


# ----- movers -------------------------------------------------------------------------------------------
def answer_mask(tokens: torch.Tensor, positions: torch.Tensor, answers: torch.Tensor,
                 decode: Callable[[int], str] | None = None) -> torch.Tensor:
    """[N, Q, P]: key positions j <= scored position holding the answer token. Where the answer's exact token
    does not occur and `decode` is given, tokens with the same text up to surrounding whitespace count
    (' Emma' as the answer, 'Emma' at the start of the prompt)."""
    tokens, positions, answers = tokens.cpu(), positions.cpu(), answers.cpu()
    p = tokens.shape[1]
    before = torch.arange(p)[None, None, :] <= positions[:, :, None]
    mask = (tokens[:, None, :] == answers[:, :, None]) & before & (answers[:, :, None] >= 0)
    if decode is None:
        return mask
    for n, q in (~mask.any(-1) & (answers >= 0)).nonzero().tolist():
        text = decode(int(answers[n, q])).strip()
        if not text:
            continue
        for j in range(int(positions[n, q]) + 1):
            if decode(int(tokens[n, j])).strip() == text:
                mask[n, q, j] = True
    return mask


def token_decoder(model: Any) -> Callable[[int], str] | None:
    """Token id -> text with the model's tokenizer (memoised), or None without one."""
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        return None
    return lru_cache(maxsize=None)(lambda i: str(tok.decode([i])))


def _attention_from(patterns: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """patterns [L, N, H, P, P] -> attention rows at the scored positions [L, N, H, Q, P]."""
    L, n, H, p, _ = patterns.shape
    pos = positions.cpu()
    idx = pos[None, :, None, :, None].expand(L, n, H, pos.shape[1], p)
    return patterns.gather(3, idx)


def _mover_scores(task: Task, patterns: torch.Tensor, dla: torch.Tensor,
                  decode: Callable[[int], str] | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    rows = _attention_from(patterns, task.positions)  # [L, N, H, Q, P]
    mask = answer_mask(task.clean, task.positions, task.correct, decode)  # [N, Q, P]
    att = (rows * mask[None, :, None].double()).sum(-1).permute(1, 3, 0, 2)  # [N, Q, L, H]
    valid = mask.any(-1)  # [N, Q]
    count = int(valid.sum())
    L, H = patterns.shape[0], patterns.shape[2]
    if count == 0:
        zero = torch.zeros(L, H, dtype=torch.float64)
        return zero, zero.clone(), dla.mean(dim=(0, 1)), 0
    v = valid[..., None, None].double()
    mover = (att * dla * v).sum(dim=(0, 1)) / count
    return mover, (att * v).sum(dim=(0, 1)) / count, (dla * v).sum(dim=(0, 1)) / count, count


# ----- S-inhibition -------------------------------------------------------------------------------------
def query_patched_attention(weights: ModelWeights, resid: torch.Tensor, layer: int, heads: list[int],
                            deltas: torch.Tensor, query_positions: torch.Tensor) -> torch.Tensor:
    """Attention rows of heads `heads` of block `layer` from query_positions[n] when deltas[a] [n, d] is
    added to those heads' query input only (keys, values and every other head unchanged).

    resid [n, P, d]: the clean residual entering the block. Computed from the weights (norm, W_Q/W_K, q/k
    norms, rotary, window, soft-cap): no forward. Returns [A, n, len(heads), P] (zero beyond the query position)."""
    cfg = weights.config
    dev = weights.device
    resid = resid.to(dev, torch.float64)
    n, p, d = resid.shape
    qpos = query_positions.to(dev).long().reshape(n)
    at = torch.arange(n, device=dev)

    def norm(x: torch.Tensor) -> torch.Tensor:
        if weights.ln1_w is None:
            return x
        ln_b = None if weights.ln1_b is None else weights.ln1_b[layer].double()
        return forward.norm(x, weights.ln1_w[layer].double(), ln_b, cfg.normalization, cfg.eps)

    def qk_norm(x: torch.Tensor, weight: torch.Tensor | None, head_dim: int) -> torch.Tensor:
        return x if weight is None else forward.qk_norm(x, weight[layer].double(), cfg.eps, head_dim)

    group = cfg.n_heads // cfg.kv_heads
    # every head is projected: a q/k norm over all heads (OLMo-2) needs them all
    keys = torch.einsum("npd,gde->gnpe", norm(resid), weights.W_K[layer].double()) \
        + weights.b_K[layer].double()[:, None, None]  # [G, n, P, dh]
    keys = qk_norm(keys, weights.k_norm_w, 0)
    x_q = resid[at, qpos][None] + deltas.to(dev, torch.float64)  # [A, n, d]
    queries = torch.einsum("and,hde->ahne", norm(resid[at, qpos][None]), weights.W_Q[layer].double())
    queries = queries.expand(len(deltas), -1, -1, -1).clone()  # [A, H, n, dh]: the other heads unpatched
    queries[:, heads] = torch.einsum("and,hde->ahne", norm(x_q), weights.W_Q[layer, heads].double())
    queries = queries + weights.b_Q[layer].double()[None, :, None]
    queries = qk_norm(queries, weights.q_norm_w, 1)[:, heads]
    if cfg.positional == "rotary":
        base, scaling = cfg.rotary_of(layer)
        cos, sin = forward.rotary_tables(cfg.rotary_dim or cfg.d_head, base, p, dev, torch.float64, scaling)
        keys = forward.apply_rotary(keys, cos, sin)
        queries = forward.apply_rotary(queries, cos[qpos], sin[qpos])
    k_of = torch.stack([keys[h // group] for h in heads])  # [h, n, P, dh]
    rows = forward.causal_attention_rows(queries, k_of[None], qpos, cfg.d_head, scale=cfg.attention_scale(layer),
                                         sliding_window=cfg.window(layer), cap=cfg.attn_softcap)  # [A, h, n, P]
    return rows.transpose(1, 2)  # [A, n, h, P]


def _s_inhibition(model: Any, weights: ModelWeights, task: Task, movers: list[tuple[int, int]],
                  patterns: torch.Tensor, ablation: str, path: str, n_prompts: int, batch_size: int,
                  decode: Callable[[int], str] | None) -> torch.Tensor:
    """Change of the movers' attention to the subject when each earlier head is ablated: [L, H] (NaN where
    not measured). path 'query': only the head's direct path into the movers' queries; 'total': the whole
    head."""
    L, _, H = patterns.shape[:3]
    n = min(n_prompts, task.n_prompts)
    clean = task.clean[:n]
    qpos = task.positions[:n, 0]
    subject = answer_mask(clean, task.positions[:n, :1], task.wrong[:n, :1], decode)[:, 0].double()  # [n, P]
    last = max(layer for layer, _ in movers)
    candidates = [(layer, h) for layer in range(last) for h in range(H)]
    cand_layers = sorted({layer for layer, _ in candidates})
    if ablation == "corrupted":
        z_abl = attention_z(model, task.corrupted[:n], cand_layers)  # [Lc, n, P, H, dh]
    elif ablation == "mean":
        z_abl = None
    else:
        raise ValueError(f"unknown ablation {ablation!r}; choose 'corrupted' or 'mean'")
    mover_layers = sorted({layer for layer, _ in movers})
    base_rows = _attention_from(patterns[:, :n], task.positions[:n, :1])[..., 0, :]  # [L, n, H, P]
    base = (base_rows * subject[None, :, None]).sum(-1)  # [L, n, H]
    ablated: dict[tuple[int, int, int], torch.Tensor] = {}  # (candidate index, mover layer, mover head) -> [n]
    if path == "total":
        if z_abl is None:
            z_abl = attention_z(model, clean, cand_layers).mean(dim=1, keepdim=True)
        replacement = {layer: z_abl[i] for i, layer in enumerate(cand_layers)}
        rows = attention_under_head_ablations(model, clean, candidates, replacement, mover_layers, qpos,
                                              batch_size=batch_size).double().cpu()  # [C, Lm, n, H, P]
        for c in range(len(candidates)):
            for ml, mh in movers:
                ablated[c, ml, mh] = (rows[c, mover_layers.index(ml), :, mh] * subject).sum(-1)
    elif path == "query":
        z_clean = attention_z(model, clean, cand_layers)
        z_abl = z_clean.mean(dim=1, keepdim=True) if z_abl is None else z_abl
        at = torch.arange(n, device=z_clean.device)
        qp = qpos.to(z_clean.device)
        dz = (z_abl.expand_as(z_clean) - z_clean)[:, at, qp]  # [Lc, n, H, dh] at the scored positions
        W_O = weights.W_O[cand_layers].to(dz.device)  # [Lc, H, dh, d]
        deltas = torch.einsum("lnhe,lhed->lhnd", dz.double(), W_O.double()).reshape(len(cand_layers) * H, n, -1)
        resid = residual_pre(model, clean, mover_layers)
        for i, ml in enumerate(mover_layers):
            heads_here = [mh for layer, mh in movers if layer == ml]
            cidx = [c for c, (layer, _) in enumerate(candidates) if layer < ml]
            rows = query_patched_attention(weights, resid[i], ml, heads_here, deltas[cidx], qpos).cpu()
            for j, c in enumerate(cidx):
                for k, mh in enumerate(heads_here):
                    ablated[c, ml, mh] = (rows[j, :, k] * subject).sum(-1)
    else:
        raise ValueError(f"unknown S-inhibition path {path!r}; choose 'query' or 'total'")
    out = torch.full((L, H), math.nan, dtype=torch.float64)
    for c, (layer, h) in enumerate(candidates):
        diffs = [ablated[c, ml, mh] - base[ml, :, mh] for ml, mh in movers if ml > layer]
        if diffs:
            out[layer, h] = torch.stack(diffs).mean()
    return out


# ----- roles --------------------------------------------------------------------------------------------
def _passing(values: torch.Tensor, top_k: int, fraction: float, floor: float, scale: float | None = None) -> list[int]:
    """Flat indices of heads in the top k, >= fraction x scale (default: the best value) and > floor."""
    flat = torch.nan_to_num(values.reshape(-1), nan=-math.inf)
    best = float(flat.max()) if scale is None else scale
    if not math.isfinite(best) or best <= 0:
        return []
    order = torch.argsort(flat, descending=True)[:top_k]
    return [int(i) for i in order if float(flat[i]) >= fraction * best and float(flat[i]) > floor]


def _mover_heads(mover: torch.Tensor, t: RoleThresholds, negative: bool = False) -> list[str]:
    scale = float(mover.abs().max())
    values = -mover if negative else mover
    k = t.top_k_negative if negative else t.top_k_movers
    H = mover.shape[1]
    return [head_name(*divmod(i, H)) for i in _passing(values, k, t.mover_fraction, t.min_mover, scale)]


def assign_roles(scores: HeadScores, thresholds: RoleThresholds = RoleThresholds(),
                 ioi: bool | None = None) -> dict[str, Role]:
    """Head name -> role, for the heads passing a threshold (one role per head, `ROLE_PRIORITY` order;
    S-inhibition is ranked among the heads without another role).

    Role names are those of `reference_circuits.IOI_ROLES` (backup name movers are not detected: telling
    them apart needs the main movers ablated). With `ioi=False` (default: the task name does not contain
    'ioi') movers are called 'mover' / 'negative mover'."""
    t = thresholds
    if ioi is None:
        ioi = "ioi" in scores.task_name.lower()
    H = scores.n_heads
    candidates: dict[Role, list[str]] = {
        Role.NAME_MOVER: _mover_heads(scores.mover, t),
        Role.NEGATIVE_NAME_MOVER: _mover_heads(scores.mover, t, negative=True),
    }
    for role, attr in ((Role.INDUCTION, "induction"), (Role.DUPLICATE_TOKEN, "duplicate_token"),
                       (Role.PREVIOUS_TOKEN, "previous_token")):
        candidates[role] = [head_name(*divmod(i, H)) for i in _passing(
            getattr(scores, attr), t.top_k_attention, t.attention_fraction, t.min_attention)]
    roles: dict[str, Role] = {}
    for role in ROLE_PRIORITY[:-1]:
        for head in candidates[role]:
            roles.setdefault(head, role if ioi else _NON_IOI_NAMES.get(role, role))
    s_inh = scores.s_inhibition.clone()
    for head in roles:
        s_inh[parse_head(head)] = math.nan
    for i in _passing(s_inh, t.top_k_s_inhibition, t.s_inhibition_fraction, t.min_s_inhibition):
        roles[head_name(*divmod(i, H))] = Role.S_INHIBITION
    return roles


def role_table(scores: HeadScores, roles: dict[str, str],
               thresholds: RoleThresholds = RoleThresholds()) -> list[dict[str, Any]]:
    """One row per labelled head (in role order, then by the role's score): head, role, the deciding score,
    its rank among all heads, the rule, and all five scores."""
    rules = thresholds.describe()
    back = {v: k for k, v in _NON_IOI_NAMES.items()}
    rows: list[dict[str, Any]] = []
    for head, role in roles.items():
        ioi_role = back.get(role, role)
        attr = _ROLE_SCORE[ioi_role]
        values = scores.score(attr)
        layer, h = parse_head(head)
        value = float(values[layer, h])
        flat = torch.nan_to_num(values.reshape(-1), nan=-math.inf)
        signed = -flat if ioi_role == Role.NEGATIVE_NAME_MOVER else flat
        rank = 1 + int((signed > (-value if ioi_role == Role.NEGATIVE_NAME_MOVER else value)).sum())
        rows.append({"head": head, "role": role, "score_name": attr, "score": value, "rank": rank,
                     "rule": rules[ioi_role], **scores.head_scores(head)})
    order = {r: i for i, r in enumerate(ROLE_PRIORITY)}
    rows.sort(key=lambda r: (order[back.get(r["role"], r["role"])], r["rank"]))
    return rows


def format_role_table(scores: HeadScores, rows: list[dict[str, Any]],
                      thresholds: RoleThresholds = RoleThresholds()) -> str:
    """Plain-text role table: one line per labelled head, then the rule of every role and the sources."""
    head = f"{'head':<8} {'role':<20} {'score':>8} {'rank':>4}  {'attn->ans':>9} {'DLA':>7}"
    lines = [f"Head roles on {scores.task_name}", head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['head']:<8} {r['role']:<20} {r['score']:>8.3f} {r['rank']:>4}  "
                     f"{r['answer_attention']:>9.2f} {r['direct_logit']:>7.2f}")
    if not rows:
        lines.append("(no head passes a threshold)")
    lines.append("Rules (score = the role's own score; attn->ans and DLA are the two factors of the mover score):")
    lines += [f"  {role}: {rule}" for role, rule in thresholds.describe().items()]
    s_inh = (f"S-inhibition measured against movers {', '.join(scores.s_inhibition_movers)} "
             f"({scores.ablation} ablation, {scores.info.get('s_inhibition_path', '')} path)"
             if scores.s_inhibition_movers else "S-inhibition not measured")
    lines.append(f"Duplicate-token/induction scores on {scores.repeat_source}; mover scores over "
                 f"{scores.n_mover_prompts} scored positions; {s_inh}.")
    return "\n".join(lines)


# ----- comparing movers across tasks ----------------------------------------------------------------------
@dataclass(frozen=True)
class MoverComparison:
    """Are another task's mover heads the model's IOI name movers?"""

    ioi_task: str
    other_task: str
    top_k: int
    ioi_top: tuple[tuple[str, float], ...]
    other_top: tuple[tuple[str, float], ...]
    overlap: tuple[str, ...]
    chance_overlap: float  # expected overlap of two random top-k sets
    jaccard: float
    spearman: float  # rank correlation of mover scores over all heads
    ioi_name_movers: tuple[str, ...]  # heads assign_roles calls IOI name movers
    other_in_ioi_name_movers: tuple[str, ...]
    verdict: str


def compare_movers(ioi_scores: HeadScores, other_scores: HeadScores, top_k: int = 5,
                   thresholds: RoleThresholds = RoleThresholds()) -> MoverComparison:
    """Top-k (positive) mover heads of both tasks, their overlap, and the rank correlation of all heads'
    mover scores, with a one-sentence verdict: 'yes' when at least half of the comparison task's top-k
    movers are IOI top-k movers, 'partly' for a smaller non-empty overlap, 'no' otherwise."""
    if ioi_scores.mover.shape != other_scores.mover.shape:
        raise ValueError("the two HeadScores come from models of different shapes")
    ioi_top = tuple((h, s) for h, s in ioi_scores.top("mover", top_k) if s > 0)
    other_top = tuple((h, s) for h, s in other_scores.top("mover", top_k) if s > 0)
    a, b = {h for h, _ in ioi_top}, {h for h, _ in other_top}
    overlap = tuple(h for h, _ in other_top if h in a)
    n_heads = ioi_scores.mover.numel()
    chance = top_k * top_k / n_heads
    jaccard = len(a & b) / len(a | b) if a | b else 0.0
    rho = spearman(ioi_scores.mover.reshape(-1), other_scores.mover.reshape(-1))
    nm = tuple(h for h, r in assign_roles(ioi_scores, thresholds, ioi=True).items() if r == Role.NAME_MOVER)
    in_nm = tuple(h for h, _ in other_top if h in nm)
    name = other_scores.task_name
    listing = ", ".join(overlap) if overlap else "none"
    detail = (f"{len(overlap)} of {name}'s top-{top_k} mover heads are IOI top-{top_k} movers ({listing}; "
              f"chance {chance:.2f}), {len(in_nm)} of them IOI name movers, and mover scores over all heads "
              f"have rank correlation {rho:.2f}")
    if other_scores.n_mover_prompts == 0:
        verdict = (f"No mover heads can be measured on {name}: its answer never occurs in the prompt, so no head "
                   "can move it.")
    elif not other_top:
        verdict = f"No: {name} has no head with a positive mover score."
    elif len(overlap) >= max(1, math.ceil(len(other_top) / 2)):
        verdict = f"Yes, largely: {detail}."
    elif overlap:
        verdict = f"Partly: {detail}."
    else:
        verdict = f"No: {detail}."
    return MoverComparison(ioi_task=ioi_scores.task_name, other_task=name, top_k=top_k, ioi_top=ioi_top,
                           other_top=other_top, overlap=overlap, chance_overlap=chance, jaccard=jaccard,
                           spearman=rho, ioi_name_movers=nm, other_in_ioi_name_movers=in_nm, verdict=verdict)


def spearman(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spearman rank correlation (average ranks for ties); NaN entries are dropped pairwise."""
    x, y = x.double().reshape(-1).cpu(), y.double().reshape(-1).cpu()
    keep = torch.isfinite(x) & torch.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 2:
        return math.nan
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = float(rx.norm() * ry.norm())
    return float((rx * ry).sum()) / denom if denom > 0 else math.nan


def _ranks(x: torch.Tensor) -> torch.Tensor:
    order = torch.argsort(x)
    ranks = torch.empty_like(x)
    ranks[order] = torch.arange(len(x), dtype=x.dtype)
    for value in torch.unique(x):
        tied = x == value
        if int(tied.sum()) > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks

