"""Named token spans of a batch of prompts (position-aware circuits, after PEAP, Haklay et al. 2025).

A span schema names parts of a prompt that mean the same in every prompt of a task (IOI: IO, S1, S2, END) and
gives each token position of each prompt the index of the one span it belongs to; positions of no named part
(and right-padding) fall in a catch-all span. A span graph (`Graph.with_spans`) has one edge per base edge and
span; the patching engine reads `PromptSpans.index` to apply each span edge at its span's positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

REST = "rest"  # the catch-all span of positions no named span claims (and of padding)
END = "END"  # the last real token of a prompt (where next-token tasks are scored)
FORBIDDEN = ("@", ",", " ", "<", ">", ":")


class SpanError(ValueError):
    """Malformed span names or span indices; the message says what is wrong."""


def check_span_names(names: Sequence[str]) -> tuple[str, ...]:
    """`names` as a tuple, refused unless distinct, non-empty and free of '@ , < > :' and spaces (they are
    written into edge names 'a3.h5->m7@IO' and files)."""
    names = tuple(names)
    if len(set(names)) != len(names):
        raise SpanError(f"span names must be distinct, got {list(names)}")
    bad = [n for n in names if not isinstance(n, str) or not n or any(c in n for c in FORBIDDEN)]
    if bad:
        raise SpanError(f"span names must be non-empty strings without {' '.join(FORBIDDEN)} or spaces, got {bad}")
    return names


@dataclass(frozen=True, eq=False)
class PromptSpans:
    """Span names and, per prompt and token position, the index of the span it belongs to.

    names: the spans in a fixed order (a span graph's edge order); index: LongTensor[N, P] in 0..len(names)-1.
    """

    names: tuple[str, ...]
    index: torch.Tensor

    def __post_init__(self) -> None:
        names = check_span_names(self.names)
        index = torch.as_tensor(self.index)
        if index.dim() != 2 or index.dtype not in (torch.long, torch.int, torch.int32, torch.int64):
            raise SpanError(f"span index must be an integer LongTensor[N, P], got {index.dtype} {tuple(index.shape)}")
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= len(names)):
            raise SpanError(f"span index holds values outside 0..{len(names) - 1} (spans: {', '.join(names)})")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "index", index.long().detach().cpu().clone())

    @property
    def n_spans(self) -> int:
        return len(self.names)

    def select(self, rows: Sequence[int] | torch.Tensor) -> "PromptSpans":
        """The spans of the prompts at `rows`, in that order."""
        return PromptSpans(self.names, self.index[torch.as_tensor(rows, dtype=torch.long)])

    def mask(self, name: str) -> torch.Tensor:
        """BoolTensor[N, P]: the positions of span `name`."""
        if name not in self.names:
            raise SpanError(f"no span named {name!r}; spans: {', '.join(self.names)}")
        return self.index == self.names.index(name)

    def counts(self) -> dict[str, int]:
        """How many token positions (over all prompts) each span holds."""
        got = torch.bincount(self.index.flatten(), minlength=self.n_spans).tolist()
        return dict(zip(self.names, got))


def end_aligned(n: int, p: int, n_end: int = 3) -> PromptSpans:
    """Spans of prompts that share one length p but no named parts: the last `n_end` positions are spans
    `end-0` (the last), `end-1`, ...; every earlier position is `rest`."""
    k = max(0, min(n_end, p))
    names = tuple(f"end-{i}" for i in range(k)) + ((REST,) if p > k else ())
    index = torch.full((p,), k, dtype=torch.long)
    index[p - k:] = torch.arange(k - 1, -1, -1)
    return PromptSpans(names, index.expand(n, p).clone())


def from_char_ranges(names: Sequence[str], token_ends: Sequence[Sequence[int]],
                     ranges: Sequence[Sequence[tuple[str, int, int]]], lengths: Sequence[int], width: int,
                     end: str | None = END) -> PromptSpans:
    """Spans from character ranges. Per prompt i: `token_ends[i]` the character offset where each token ends
    (ascending), `ranges[i]` (span name, start, end) character ranges, `lengths[i]` its real tokens. A token
    belongs to the span whose range holds its last character; unclaimed tokens and padding (up to `width`) to
    `rest`; with `end` the prompt's last real token is that span. `names` must hold every span used and
    `rest` (when some position is unclaimed)."""
    names = check_span_names(names)
    slot = {n: i for i, n in enumerate(names)}
    index = torch.full((len(token_ends), width), -1, dtype=torch.long)
    for i, (ends, spans) in enumerate(zip(token_ends, ranges)):
        for name, lo, hi in spans:
            if name not in slot:
                raise SpanError(f"prompt {i}: span {name!r} is not one of {', '.join(names)}")
            for t, stop in enumerate(ends):
                if lo < stop <= hi:
                    index[i, t] = slot[name]
        if end is not None and lengths[i]:
            index[i, lengths[i] - 1] = slot[end]
    if bool((index < 0).any()):
        if REST not in slot:
            raise SpanError(f"some positions belong to no span and there is no {REST!r} span among "
                            f"{', '.join(names)}")
        index[index < 0] = slot[REST]
    return PromptSpans(names, index)

