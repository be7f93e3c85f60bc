"""Named spans of generated prompts: character ranges found in each prompt, turned into token spans with the
tokenizer's offsets (`acdc_compare.spans.PromptSpans`).

A task marks the parts of its prompts that mean the same in every prompt (IOI: the IO name, the first and
second subject); the last real token is always `END` and whatever no part claims, padding included, `rest`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from acdc_compare.spans import END, REST, PromptSpans, from_char_ranges
from acdc_compare.tasks.base import TaskError

CharRange = tuple[str, int, int]  # (span name, first character, one past the last)


def locate(text: str, parts: Sequence[tuple[str, str]], start: int = 0) -> list[CharRange]:
    """The character range of each (span name, word) of `parts`, found in this order from `start`, each after
    the previous one, as a whole word (no letter or digit right before or after it). A leading space of the
    word is not part of its range."""
    out: list[CharRange] = []
    at = start
    for name, word in parts:
        core = word.strip()
        match = re.compile(rf"(?<![A-Za-z0-9]){re.escape(core)}(?![A-Za-z0-9])").search(text, at)
        if match is None:
            raise TaskError(f"span {name!r}: {core!r} does not occur in {text!r} after character {at}")
        out.append((name, match.start(), match.end()))
        at = match.end()
    return out


def token_ends(tokenizer: Any, text: str, ids: Sequence[int]) -> list[int]:
    """Where each token `ids` of `text` ends, in characters: the tokenizer's offsets (a fast Hugging Face
    tokenizer), else the length of each decoded prefix."""
    try:
        offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    except (TypeError, ValueError, KeyError, NotImplementedError, AttributeError):
        offsets = None
    if offsets is not None and len(offsets) == len(ids):
        return [int(hi) for _, hi in offsets]
    if tokenizer.decode(list(ids)) != text:
        raise TaskError(f"cannot tell which characters each token of {text!r} covers: the tokenizer gives no "
                        "offsets and its decoding differs from the text; use a fast Hugging Face tokenizer for spans")
    return [len(tokenizer.decode(list(ids[: t + 1]))) for t in range(len(ids))]


def prompt_spans(tokenizer: Any, names: Sequence[str], prompts: Sequence[str], ids: Sequence[Sequence[int]],
                 ranges: Sequence[Sequence[CharRange]], width: int) -> PromptSpans:
    """The prompts' token spans (`ids`: each prompt's tokens): a token belongs to the range holding its last
    character, the last real token to `END`, the rest (and padding up to `width`) to `rest`; `names` lists
    the spans in order (`END` and `rest` are added when missing)."""
    if len(ranges) != len(prompts):
        raise TaskError(f"{len(ranges)} span markings for {len(prompts)} prompts; give one list per prompt")
    order = tuple(names) + tuple(n for n in (END, REST) if n not in names)
    ends = [token_ends(tokenizer, p, row) for p, row in zip(prompts, ids)]
    return from_char_ranges(order, ends, ranges, [len(row) for row in ids], width, end=END)
