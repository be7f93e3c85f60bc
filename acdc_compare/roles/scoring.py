"""`score_heads(model, task)`: every head's five role scores on a task's prompts (`HeadScores`).

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
  Name movers: positive; negative name movers: negative. The per-prompt scores are kept
  (`HeadScores.prompt_movers`): `HeadScores.mover_interval` bootstraps them over prompts into each head's 95%
  interval, and the mover rule counts a head only when the interval's lower bound passes it.
- mover toward the given answer (`HeadScores.given_movers`): the same score toward the answer the model
  gives at each scored position, of (correct, wrong) the one with the higher logit: attention to the given
  answer's positions x the head's direct contribution to (given - other). Equal to the mover score where the
  model answers correctly; where it answers wrongly, heads moving the wrong answer score positive here.
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
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch

from acdc_compare.backends.transformer_lens import extract_weights
from acdc_compare.graph import parse_head
from acdc_compare.progress import Bar, ProgressLike, as_progress
from acdc_compare.roles.assign import RoleThresholds, find_movers
from acdc_compare.roles.head_scores import HeadScores
from acdc_compare.roles.logit_attribution import patterns_and_dla
from acdc_compare.roles.mover_score import given_answers, mover_scores, prompt_movers, token_decoder
from acdc_compare.roles.patterns import (
    all_patterns,
    context_length,
    previous_token_score,
    repeat_scores,
    repeated_random_tokens,
    valid_positions,
)
from acdc_compare.roles.s_inhibition import AblationKind, s_inhibition_scores
from acdc_compare.stats import bootstrap_interval
from acdc_compare.tasks.base import Task


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
    patterns, dla, logit_diff = patterns_and_dla(model, weights, task, chunk, bar)  # [L, N, H, P, P], [N, Q, L, H]
    valid = valid_positions(clean, task.positions)
    prev = previous_token_score(patterns, valid)
    dup, ind, n_repeats = repeat_scores(patterns, clean, valid)
    repeat_source = "task"
    if repeats == "random" or (repeats == "auto" and n_repeats < n):
        rand = repeated_random_tokens(clean, valid, n_random, random_len, seed, context_length(model))
        dup, ind, _ = repeat_scores(all_patterns(model, rand, chunk), rand, valid_positions(rand, None))
        repeat_source = "random repeated tokens"
    bar.update(1)
    decode = token_decoder(model)
    mover, att, mean_dla, n_mover = mover_scores(task, patterns, dla, decode)
    per_prompt = prompt_movers(task, patterns, dla, decode)
    given, sign = given_answers(task, logit_diff)
    given_per_prompt = prompt_movers(task, patterns, dla, decode, given, sign)
    n_wrong_given = int((sign < 0).sum())

    L, H = mover.shape
    s_inh = torch.full((L, H), math.nan, dtype=torch.float64)
    measured: tuple[str, ...] = ()
    used_ablation = ""
    if s_inhibition and task.has_wrong_answers and n_mover > 0:
        low, high = bootstrap_interval(per_prompt.mover, per_prompt.weights)
        movers = list(find_movers(mover, att, thresholds, low=low, high=high).heads)[:n_movers]
        if movers and max(parse_head(h)[0] for h in movers) > 0:
            used_ablation = ablation or ("corrupted" if not torch.equal(task.corrupted, task.clean) else "mean")
            s_inh = s_inhibition_scores(model, weights, task, [parse_head(h) for h in movers], patterns, used_ablation,
                                  s_inhibition_path, s_inhibition_prompts, batch_size, decode)
            measured = tuple(movers)
    bar.update(1)
    return HeadScores(
        task_name=task.name, previous_token=prev, duplicate_token=dup, induction=ind, mover=mover,
        s_inhibition=s_inh, answer_attention=att, direct_logit=mean_dla, repeat_source=repeat_source,
        n_mover_prompts=n_mover, s_inhibition_movers=measured, ablation=used_ablation,
        info={"n_prompts": n, "repeat_positions": n_repeats,
              "s_inhibition_path": s_inhibition_path if measured else ""},
        prompt_movers=per_prompt, given_movers=given_per_prompt, n_wrong_given=n_wrong_given,
    )
