"""Induction on repeated random tokens: [r1 .. rL r1 .. rL], predict each next token of the repeat.

Induction heads (Olsson et al. 2022; ACDC's induction task) find the earlier occurrence of the current
token and copy the token that followed it. There is no wrong answer: score with KL, or top-1 accuracy.
"""

from __future__ import annotations

import random
from typing import Any

import torch

from acdc_compare.spans import PromptSpans
from acdc_compare.tasks.base import Corruption, Task, TaskError, check_wording, describe_wording, parse_corruption

MIN_POOL = 200
WORDINGS = 1  # random tokens have no surface wording to vary: wording 0 only, nothing held out


def word_token_ids(tokenizer: Any) -> list[int]:
    """Ordinary word tokens of the vocabulary (decoded as a space and 3+ ASCII letters), so the random
    sequences are made of plain words, never special or byte tokens."""
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    ids = sorted(i for i in tokenizer.get_vocab().values() if i not in special)
    texts = tokenizer.batch_decode([[i] for i in ids])
    out = []
    for i, text in zip(ids, texts):
        word = text[1:]
        if text.startswith(" ") and len(word) >= 3 and word.isascii() and word.isalpha():
            out.append(i)
    return out


SPANS: tuple[str, ...] = ("first-copy", "repeat", "END")  # named spans of the prompts (`Task.spans`)


def make_induction(tokenizer: Any, n: int = 50, seed: int = 0, length: int = 20,
                   corruption: Corruption | str = Corruption.MEANING, wording: int = 0) -> Task:
    """Induction: a random sequence of `length` distinct word tokens, repeated once (no BOS).

    Scored at every position of the repeat except its last: positions L .. 2L-2 (Q = L-1 per prompt),
    correct = the token that follows (the one that followed the same token in the first copy), wrong = -1.
    Corruption: the first copy is replaced by other random tokens (disjoint from the repeat), so the repeat
    and the tokens at the scored positions are unchanged but nothing earlier predicts them (the only
    corruption offered, "meaning"). Spans: the first copy, the repeat, END (its last token).
    corruption offered, "meaning"). Single-wording: `wording` must be 0 (random tokens have no template).
    """
    name = "induction"
    chosen = parse_corruption(corruption, (Corruption.MEANING,), name)
    check_wording(wording, WORDINGS, name)
    if n < 1 or length < 2:
        raise TaskError(f"task {name!r}: need n >= 1 and length >= 2, got n={n}, length={length}")
    pool = word_token_ids(tokenizer)
    if len(pool) < max(MIN_POOL, 2 * length):
        raise TaskError(f"only {len(pool)} plain word tokens in this tokenizer's vocabulary; induction needs "
                        f"at least {max(MIN_POOL, 2 * length)}")
    rng = random.Random(seed)
    clean, corrupted = [], []
    for _ in range(n):
        ids = rng.sample(pool, 2 * length)
        seq, other = ids[:length], ids[length:]
        clean.append(seq + seq)
        corrupted.append(other + seq)
    clean_t, corrupted_t = torch.tensor(clean), torch.tensor(corrupted)
    positions = torch.arange(length, 2 * length - 1).repeat(n, 1)
    correct = clean_t[:, length + 1:]
    return Task(
        name=name, clean=clean_t, corrupted=corrupted_t, positions=positions, correct=correct,
        wrong=torch.full_like(correct, -1),
        description=f"random word tokens repeated ({length} + {length}); next-token at {length - 1} positions of "
                    "the repeat; corrupted = first copy replaced by other tokens; KL / top-1; "
                    f"{describe_wording(wording)}",
        prompts=tuple(tokenizer.decode(c) for c in clean),
        corrupted_prompts=tuple(tokenizer.decode(c) for c in corrupted),
        info={"length": length, "wording": wording}, corruption=chosen,
        spans=PromptSpans(SPANS, torch.tensor([0] * length + [1] * (length - 1) + [2]).repeat(n, 1)),
    )
