"""Building a `Task` from strings with a model's tokenizer, with checks that name the offending prompt.

Prompts are tokenized without special tokens (no BOS): the default model's tokenizer adds none, GPT-2's
neither, and the patching engine never adds one. Answers are given with their leading space (" Mary") and
must be exactly one token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from acdc_compare.tasks.base import Corruption, Task, TaskError


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of `text` without special tokens (works for Hugging Face tokenizers, fast or slow)."""
    try:
        ids = tokenizer.encode(text, add_special_tokens=False)
    except TypeError:  # a tokenizer whose encode takes no keyword (e.g. a bare `tokenizers.Tokenizer`)
        ids = tokenizer.encode(text)
    ids = getattr(ids, "ids", ids)
    return [int(i) for i in ids]


def token_strings(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """Each id decoded on its own, for error messages."""
    return [tokenizer.decode([int(i)]) for i in ids]


def single_token_id(tokenizer: Any, answer: str, where: str = "") -> int:
    """The one token id of `answer`; a TaskError naming the answer and how it tokenizes otherwise."""
    ids = encode(tokenizer, answer)
    if len(ids) != 1:
        pieces = token_strings(tokenizer, ids)
        raise TaskError(
            f"{where}answer {answer!r} is not a single token: it tokenizes to {len(ids)} tokens {pieces}. "
            "Answers must be one token (usually with a leading space, e.g. ' Mary')"
        )
    return ids[0]


def single_token_words(tokenizer: Any, words: Sequence[str]) -> list[str]:
    """The words (returned with a leading space, order kept, duplicates dropped) that are one token."""
    out: list[str] = []
    seen: set[str] = set()
    for word in words:
        spaced = " " + word.strip()
        if spaced in seen:
            continue
        seen.add(spaced)
        if len(encode(tokenizer, spaced)) == 1:
            out.append(spaced)
    return out


def require_pool(tokenizer: Any, words: Sequence[str], need: int, what: str) -> list[str]:
    """`single_token_words`, with a clear error when fewer than `need` words survive the filter."""
    kept = single_token_words(tokenizer, words)
    if len(kept) < need:
        raise TaskError(
            f"only {len(kept)} of the {len(words)} {what} are single tokens for this tokenizer "
            f"({', '.join(w.strip() for w in kept) or 'none'}); the task needs at least {need}"
        )
    return kept


def task_from_prompts(
    tokenizer: Any,
    name: str,
    prompts: Sequence[str],
    corrupted_prompts: Sequence[str],
    correct_answers: Sequence[str],
    wrong_answers: Sequence[str | None],
    description: str = "",
    *,
    pad_token_id: int | None = None,
    correct_sets: Sequence[Sequence[int]] | None = None,
    wrong_sets: Sequence[Sequence[int]] | None = None,
    info: dict[str, Any] | None = None,
    corruption: Corruption | str | None = None,
) -> Task:
    """A next-token Task scored at each prompt's last token.

    Every corrupted prompt must tokenize to the same length as its clean prompt (the engine patches
    position by position). All prompts must share one length, unless `pad_token_id` is given: then shorter
    prompts (and their twins) are right-padded with it and scored at their own last real token; in a causal
    model padding after the scored position changes nothing. Each answer must be one token; a wrong answer
    of None means "none" (id -1, KL metric only).
    """
    n = len(prompts)
    if n == 0:
        raise TaskError(f"task {name!r}: no prompts")
    for what, seq in (("corrupted prompts", corrupted_prompts), ("correct answers", correct_answers),
                      ("wrong answers", wrong_answers)):
        if len(seq) != n:
            raise TaskError(f"task {name!r}: {len(seq)} {what} for {n} prompts")
    clean_ids = [encode(tokenizer, p) for p in prompts]
    corrupted_ids = [encode(tokenizer, p) for p in corrupted_prompts]
    for i, (c, k) in enumerate(zip(clean_ids, corrupted_ids)):
        if not c:
            raise TaskError(f"task {name!r}: prompt {i} {prompts[i]!r} is empty")
        if len(c) != len(k):
            raise TaskError(
                f"task {name!r}: corrupted prompt {i} {corrupted_prompts[i]!r} tokenizes to {len(k)} tokens, "
                f"but its clean prompt {prompts[i]!r} to {len(c)}; a corrupted prompt must have the same "
                "token length as its clean twin"
            )
    lengths = [len(c) for c in clean_ids]
    if pad_token_id is None:
        for i, length in enumerate(lengths):
            if length != lengths[0]:
                raise TaskError(
                    f"task {name!r}: prompt {i} {prompts[i]!r} tokenizes to {length} tokens, but prompt 0 "
                    f"{prompts[0]!r} to {lengths[0]}; all prompts of a task must have the same token length "
                    "(or build it with pad_token_id to score each prompt at its own last token)"
                )
    width = max(lengths)
    pad = 0 if pad_token_id is None else int(pad_token_id)
    clean = torch.full((n, width), pad, dtype=torch.long)
    corrupted = torch.full((n, width), pad, dtype=torch.long)
    for i, (c, k) in enumerate(zip(clean_ids, corrupted_ids)):
        clean[i, : len(c)] = torch.tensor(c)
        corrupted[i, : len(k)] = torch.tensor(k)
    correct = torch.tensor([single_token_id(tokenizer, a, f"task {name!r}, prompt {i} {prompts[i]!r}: correct ")
                            for i, a in enumerate(correct_answers)])
    wrong = torch.tensor([-1 if a is None else
                          single_token_id(tokenizer, a, f"task {name!r}, prompt {i} {prompts[i]!r}: wrong ")
                          for i, a in enumerate(wrong_answers)])
    positions = torch.tensor(lengths) - 1
    extra = dict(info or {})
    extra.setdefault("lengths", lengths)
    extra.setdefault("correct_answers", list(correct_answers))
    extra.setdefault("wrong_answers", list(wrong_answers))
    return Task(
        name=name, clean=clean, corrupted=corrupted, positions=positions[:, None], correct=correct[:, None],
        wrong=wrong[:, None], description=description, prompts=tuple(prompts),
        corrupted_prompts=tuple(corrupted_prompts),
        correct_sets=None if correct_sets is None else tuple(tuple(int(t) for t in s) for s in correct_sets),
        wrong_sets=None if wrong_sets is None else tuple(tuple(int(t) for t in s) for s in wrong_sets),
        info=extra, corruption=None if corruption is None else Corruption(corruption),
    )


def pad_id(tokenizer: Any) -> int:
    """The id used to right-pad prompts of unequal length (pad, else end-of-sequence, else 0)."""
    for attr in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, attr, None)
        if isinstance(value, int) and value >= 0:
            return value
    return 0
