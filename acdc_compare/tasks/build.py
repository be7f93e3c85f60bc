"""Building a `Task` from strings with a model's tokenizer, with checks that name the offending prompt.

Prompts are tokenized without special tokens (no BOS): the default model's tokenizer adds none, GPT-2's
neither, and the patching engine never adds one. Answers are given with their leading space (" Mary") and
must be exactly one token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from acdc_compare.tasks.base import Corruption, Task, TaskError, describe_wording
from acdc_compare.tasks.span_marks import CharRange, prompt_spans


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


MAX_LISTED = 10  # an error lists at most this many problems, then how many more there are
GLUED_HINT = "pass check_spaces=False if a glued token is meant"


@dataclass(frozen=True)
class RowNames:
    """How errors name a task's prompts: `source` (a file) and one label per prompt (its "line 5"), plus a
    hint on keeping an answer's leading space in that source. Default (None): "task 'NAME'", "prompt i",
    GLUED_HINT."""

    source: str
    labels: Sequence[str]
    space_hint: str = ""


class RowProblems:
    """Every problem found in a task's rows, raised together as one TaskError (at most MAX_LISTED listed,
    then how many more), followed once by each distinct hint."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[tuple[str, str]] = []
        self.hints: dict[str, None] = {}

    def __len__(self) -> int:
        return len(self.items)

    def add(self, row: str, what: str, hint: str = "") -> None:
        self.items.append((row, what))
        if hint:
            self.hints[hint] = None

    def raise_any(self) -> None:
        if not self.items:
            return
        hints = "".join(f"; {h}" for h in self.hints)
        if len(self.items) == 1:
            row, what = self.items[0]
            raise TaskError(f"{self.source}, {row}: {what}{hints}")
        listed = [f"  {row}: {what}" for row, what in self.items[:MAX_LISTED]]
        if len(self.items) > MAX_LISTED:
            listed.append(f"  ... and {len(self.items) - MAX_LISTED} more")
        raise TaskError(f"{self.source}: {len(self.items)} problems\n" + "\n".join(listed) +
                        (f"\n{hints[2:]}" if hints else ""))


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
    check_spaces: bool = True,
    where: RowNames | None = None,
    span_names: Sequence[str] | None = None,
    span_ranges: Sequence[Sequence[CharRange]] | None = None,
    wording: int | None = None,
) -> Task:
    """A next-token Task scored at each prompt's last token.

    Every corrupted prompt must tokenize to the same length as its clean prompt (the engine patches
    position by position). All prompts must share one length, unless `pad_token_id` is given: then shorter
    prompts (and their twins) are right-padded with it and scored at their own last real token; in a causal
    model padding after the scored position changes nothing. Each answer must be one token; a wrong answer
    of None means "none" (id -1, KL metric only).

    An answer written without its leading space ("Mary" after "... gave a drink to") is the token glued to
    the previous word, not the next word " Mary": it is refused with that hint when the spaced form is one
    token too (`check_spaces=False` accepts it as written, for answers that really continue a word).

    Every offending prompt is named in one TaskError ("prompt i", 0-based; `where` names them otherwise,
    e.g. by a file's lines).

    `span_names` and `span_ranges` (per prompt, (span, first character, one past the last) of its clean text)
    give the task its named spans (`Task.spans`, `span_marks.prompt_spans`): the last real token is `END`,
    what no range claims (padding included) `rest`.

    A generated task passes its `wording` (see `check_wording`): recorded as
    `info["wording"]` and named at the end of the description.
    """
    _check_columns(name, prompts, corrupted_prompts, correct_answers, wrong_answers)
    where = where or RowNames(f"task {name!r}", [f"prompt {i} {p!r}" for i, p in enumerate(prompts)], GLUED_HINT)
    problems = RowProblems(where.source)
    clean_ids = [encode(tokenizer, p) for p in prompts]
    corrupted_ids = [encode(tokenizer, p) for p in corrupted_prompts]
    lengths = [len(c) for c in clean_ids]
    ids: dict[str, list[int]] = {"correct": [], "wrong": []}
    for i, prompt in enumerate(prompts):  # every row checked, its problems in row order
        _check_lengths(i, prompt, corrupted_prompts[i], lengths, len(corrupted_ids[i]), pad_token_id is None,
                       where, problems)
        for kind, answer in (("correct", correct_answers[i]), ("wrong", wrong_answers[i])):
            ids[kind].append(_answer_id(tokenizer, prompt, kind, answer, check_spaces, where, i, problems))
    pad = 0 if pad_token_id is None else int(pad_token_id)
    correct, wrong = torch.tensor(ids["correct"]), torch.tensor(ids["wrong"])
    problems.raise_any()
    extra = dict(info or {})
    extra.setdefault("lengths", lengths)
    extra.setdefault("correct_answers", list(correct_answers))
    extra.setdefault("wrong_answers", list(wrong_answers))
    clean = _padded(clean_ids, pad)
    spans = None
    if span_names is not None:
        spans = prompt_spans(tokenizer, span_names, prompts, clean_ids, span_ranges or [[] for _ in prompts],
                             int(clean.shape[1]))
    if wording is not None:
        extra["wording"] = wording
        description = f"{description}; {describe_wording(wording)}" if description else describe_wording(wording)
    return Task(
        name=name, clean=clean, corrupted=_padded(corrupted_ids, pad), spans=spans,
        positions=(torch.tensor(lengths) - 1)[:, None], correct=correct[:, None],
        wrong=wrong[:, None], description=description, prompts=tuple(prompts),
        corrupted_prompts=tuple(corrupted_prompts),
        correct_sets=None if correct_sets is None else tuple(tuple(int(t) for t in s) for s in correct_sets),
        wrong_sets=None if wrong_sets is None else tuple(tuple(int(t) for t in s) for s in wrong_sets),
        info=extra, corruption=None if corruption is None else Corruption(corruption),
    )


def _check_columns(name: str, prompts: Sequence[str], corrupted_prompts: Sequence[str],
                   correct_answers: Sequence[str], wrong_answers: Sequence[str | None]) -> None:
    """Each column a list (not one string), with one entry per prompt, and at least one prompt."""
    columns = (("prompts", prompts), ("corrupted prompts", corrupted_prompts), ("correct answers", correct_answers),
               ("wrong answers", wrong_answers))
    for what, seq in columns:
        if isinstance(seq, str):
            raise TaskError(f"task {name!r}: {what} must be a list of strings, one per prompt, got the single "
                            f"string {seq[:60]!r}; wrap it in a list: [{seq[:30]!r}]")
    n = len(prompts)
    if n == 0:
        raise TaskError(f"task {name!r}: no prompts")
    for what, seq in columns[1:]:
        if len(seq) != n:
            raise TaskError(f"task {name!r}: {len(seq)} {what} for {n} prompts")


def _check_lengths(i: int, prompt: str, corrupted: str, lengths: Sequence[int], corrupted_length: int,
                   equal: bool, where: RowNames, problems: RowProblems) -> None:
    """Prompt i is not empty, its corrupted twin has its token length, and (`equal`: unpadded) it has the first
    prompt's length; each failure noted."""
    length = lengths[i]
    if not length:
        problems.add(where.labels[i], f"prompt {prompt!r} is empty")
    elif length != corrupted_length:
        problems.add(where.labels[i], f"corrupted prompt {corrupted!r} tokenizes to {corrupted_length} tokens, "
                     f"but its clean prompt {prompt!r} to {length}",
                     "a corrupted prompt must have the same token length as its clean twin (the engine patches "
                     "position by position)")
    if equal and length != lengths[0]:
        problems.add(where.labels[i], f"tokenizes to {length} tokens, but {where.labels[0]} to {lengths[0]}",
                     "all prompts of a task must have the same token length (or build it with pad_token_id to "
                     "score each prompt at its own last token)")


def _padded(ids: Sequence[Sequence[int]], pad: int) -> torch.Tensor:
    """The rows of `ids` as one long tensor [n, longest], right-padded with `pad`."""
    out = torch.full((len(ids), max(len(row) for row in ids)), pad, dtype=torch.long)
    for i, row in enumerate(ids):
        out[i, : len(row)] = torch.tensor(row)
    return out


def _answer_id(tokenizer: Any, prompt: str, kind: str, answer: str | None, check_spaces: bool, where: RowNames,
               i: int, problems: RowProblems) -> int:
    """The answer's one token id (a missing wrong answer: -1); an answer lacking its leading space, or of
    several tokens, noted (-1)."""
    if answer is None and kind == "wrong":
        return -1
    if check_spaces and _glued(tokenizer, prompt, answer):
        problems.add(where.labels[i], f"{kind} answer {answer!r} has no leading space, so it is the token "
                     f"{answer!r} glued to the previous word, not the next word {' ' + answer!r}. Write "
                     f"{' ' + answer!r}", where.space_hint)
        return -1
    try:
        return single_token_id(tokenizer, answer, f"{kind} ")
    except TaskError as err:
        problems.add(where.labels[i], str(err))
        return -1


def _glued(tokenizer: Any, prompt: str, answer: str) -> bool:
    """A word answer, after a prompt not ending in a space, that lacks the leading space its one-token spaced
    form has (see task_from_prompts)."""
    if not isinstance(answer, str) or not answer[:1].isalpha() or prompt[-1:].isspace():
        return False
    return len(encode(tokenizer, " " + answer)) == 1


def pad_id(tokenizer: Any) -> int:
    """The id used to right-pad prompts of unequal length (pad, else end-of-sequence, else 0)."""
    for attr in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, attr, None)
        if isinstance(value, int) and value >= 0:
            return value
    return 0
