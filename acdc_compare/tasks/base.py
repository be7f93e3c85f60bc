"""The `Task` value: prompts as token ids, their corrupted counterparts, answers and scored positions."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from acdc_compare.metrics import logit_diff_per_prompt, prob_diff_per_prompt
from acdc_compare.spans import PromptSpans, end_aligned


class TaskError(ValueError):
    """A task's prompts or answers are malformed; the message names the offending prompt."""


class Corruption(str, enum.Enum):
    """How a task's corrupted prompts differ from its clean ones (what the ablation takes away).

    MEANING: the information that picks the answer is removed and every candidate answer stays in place
        (the pet's species becomes "human", the comparative a neutral relation, the queried name a fresh
        one), so a model answering by word order answers the corrupted prompt the same way.
    ANSWERS: the words that can be the answer (names, adjectives, verbs, animals, cue words) are replaced by
        fresh ones of the same token length, structure and order kept (IOI's ABC distribution), so neither
        the clean answer nor the wrong one is in the corrupted prompt.
    """

    MEANING = "meaning"
    ANSWERS = "answers"


def parse_corruption(value: "Corruption | str", offered: Sequence["Corruption | str"], task: str) -> Corruption:
    """`value` as a Corruption, with a TaskError listing what `task` offers when it is not one of them."""
    choices = [Corruption(c) for c in offered]
    try:
        chosen = Corruption(value)
    except ValueError:
        chosen = None
    if chosen not in choices:
        raise TaskError(f"task {task!r} has no corruption {value!r}; it offers: "
                        f"{', '.join(c.value for c in choices)}")
    return chosen


def check_wording(wording: int, count: int, task: str) -> int:
    """`wording` when `task` offers it: wording 0 is the one discovery runs on, 1 .. count-1 are held out
    (surface templates no discovery sees); a TaskError listing what exists otherwise."""
    if isinstance(wording, bool) or not isinstance(wording, int) or not 0 <= wording < count:
        held = ", ".join(str(k) for k in range(1, count)) or "none"
        raise TaskError(f"task {task!r} has no wording {wording!r}; it offers wording 0 (discovery) and the "
                        f"held-out wordings: {held}")
    return wording


def describe_wording(wording: int) -> str:
    """How a task's description names its wording."""
    return "wording 0 (discovery)" if wording == 0 else f"wording {wording} (held out)"


@dataclass(frozen=True, eq=False)
class Task:
    """What `discover` runs on.

    clean, corrupted: LongTensor[N, P] (same shape; no BOS is added by the engine)
    positions: LongTensor[N, Q] scored positions (Q = 1 for next-token tasks: usually the last position)
    correct, wrong: LongTensor[N, Q] answer token ids at those positions (-1 where there is no wrong answer)
    correct_sets, wrong_sets: optional per-prompt sets of answer ids (Greater-Than: years above / not above);
        when given, the logit-difference metric becomes P(correct set) - P(wrong set)
    corruption: which kind of corrupted prompts the task holds (None for a hand-made task); part of a run's
        fingerprint, so journals and saved results of two corruptions never mix
    spans: the prompts' named token spans (`PromptSpans`, index [N, P]) for position-aware circuits; None:
        `span_schema` aligns positions from the end when every prompt has the same length
    """

    name: str
    clean: torch.Tensor
    corrupted: torch.Tensor
    positions: torch.Tensor
    correct: torch.Tensor
    wrong: torch.Tensor
    description: str = ""
    prompts: tuple[str, ...] = ()
    corrupted_prompts: tuple[str, ...] = ()
    correct_sets: tuple[tuple[int, ...], ...] | None = None
    wrong_sets: tuple[tuple[int, ...], ...] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    corruption: Corruption | None = None
    spans: PromptSpans | None = None

    def __post_init__(self) -> None:
        clean, corrupted = torch.as_tensor(self.clean), torch.as_tensor(self.corrupted)
        if clean.dim() != 2 or clean.shape[0] == 0:
            raise TaskError(f"task {self.name!r}: clean tokens must be [N, P] with N >= 1, got {tuple(clean.shape)}")
        if corrupted.shape != clean.shape:
            raise TaskError(
                f"task {self.name!r}: clean tokens {tuple(clean.shape)} and corrupted tokens "
                f"{tuple(corrupted.shape)} differ in shape; every corrupted prompt must tokenize to the same "
                "length as its clean prompt"
            )
        n, p = clean.shape
        positions = _as_2d(self.positions, n, "positions", self.name)
        correct = _as_2d(self.correct, n, "correct", self.name)
        wrong = _as_2d(self.wrong, n, "wrong", self.name)
        if not (positions.shape == correct.shape == wrong.shape):
            raise TaskError(f"task {self.name!r}: positions, correct and wrong must have the same shape [N, Q]")
        if positions.min() < 0 or positions.max() >= p:
            raise TaskError(f"task {self.name!r}: scored positions must lie in 0..{p - 1}")
        if self.corruption is not None:
            object.__setattr__(self, "corruption", Corruption(self.corruption))
        for attr, value in (("clean", clean.long()), ("corrupted", corrupted.long()), ("positions", positions),
                            ("correct", correct), ("wrong", wrong)):
            object.__setattr__(self, attr, value)
        if self.spans is not None and tuple(self.spans.index.shape) != (n, p):
            raise TaskError(f"task {self.name!r}: span index {tuple(self.spans.index.shape)} does not match the "
                            f"prompts [{n}, {p}]; give one span index per token position")
        for sets_name in ("correct_sets", "wrong_sets"):
            sets = getattr(self, sets_name)
            if sets is not None and len(sets) != n:
                raise TaskError(f"task {self.name!r}: {sets_name} needs one set per prompt ({n})")

    @property
    def n_prompts(self) -> int:
        return int(self.clean.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.clean.shape[1])

    @property
    def has_wrong_answers(self) -> bool:
        return self.correct_sets is not None or bool((self.wrong >= 0).all())

    def max_token_id(self) -> int:
        ids = [self.clean.max(), self.corrupted.max(), self.correct.max(), self.wrong.max()]
        out = int(max(int(i) for i in ids))
        for sets in (self.correct_sets, self.wrong_sets):
            if sets:
                out = max(out, max((max(s) for s in sets if s), default=0))
        return out

    def check_vocab(self, d_vocab: int) -> None:
        """Raise when a token id lies outside the model's vocabulary."""
        top = self.max_token_id()
        if top >= d_vocab:
            raise TaskError(
                f"task {self.name!r} uses token id {top}, but the model's vocabulary has {d_vocab} tokens: "
                "build the task with this model's tokenizer"
            )

    def score(self, logits: torch.Tensor) -> torch.Tensor:
        """The task's own performance number (higher = better): logit difference, or the probability
        difference for set-valued answers, mean over prompts. logits [K, N, Q, V] -> [K]."""
        return self.score_per_prompt(logits).mean(-1)

    def score_per_prompt(self, logits: torch.Tensor) -> torch.Tensor:
        """`score` of each prompt (for intervals over prompts). logits [K, N, Q, V] -> [K, N] (float64)."""
        if self.correct_sets is not None and self.wrong_sets is not None:
            return prob_diff_per_prompt(logits, self.correct_sets, self.wrong_sets)
        if not self.has_wrong_answers:
            raise ValueError(f"task {self.name!r} has no wrong answers: use metric='kl'")
        return logit_diff_per_prompt(logits, self.correct, self.wrong)

    def subset(self, n: int) -> "Task":
        """The first n prompts (for quick runs)."""
        if not 1 <= n <= self.n_prompts:
            raise TaskError(f"task {self.name!r} has {self.n_prompts} prompts; cannot take {n}")
        return self.select(range(n))

    def select(self, indices: Sequence[int]) -> "Task":
        """The prompts at `indices`, in that order (minibatches of a discovery run). Per-prompt `info` entries
        (lists or tuples with one item per prompt, e.g. `correct_answers`) are selected with them."""
        idx = [int(i) for i in indices]
        if not idx or min(idx) < 0 or max(idx) >= self.n_prompts:
            raise TaskError(f"task {self.name!r} has {self.n_prompts} prompts; cannot take prompts {idx}")
        rows = torch.tensor(idx, dtype=torch.long)

        def pick(items: Sequence[Any]) -> tuple[Any, ...]:
            return tuple(items[i] for i in idx) if items else tuple(items)

        return Task(
            name=self.name, clean=self.clean[rows], corrupted=self.corrupted[rows], positions=self.positions[rows],
            correct=self.correct[rows], wrong=self.wrong[rows], description=self.description,
            prompts=pick(self.prompts), corrupted_prompts=pick(self.corrupted_prompts),
            correct_sets=None if self.correct_sets is None else pick(self.correct_sets),
            wrong_sets=None if self.wrong_sets is None else pick(self.wrong_sets),
            info={key: type(value)(pick(value)) if self._per_prompt(value) else value
                  for key, value in self.info.items()},
            corruption=self.corruption,
            spans=None if self.spans is None else self.spans.select(rows),
        )

    def span_schema(self, n_end: int = 3) -> PromptSpans:
        """The prompts' spans: the task's own, or, when it names none and every prompt has the same length,
        the last `n_end` positions as spans `end-0` (last), `end-1`, ... and the rest as `rest`."""
        if self.spans is not None:
            return self.spans
        lengths = self.info.get("lengths")
        same = (all(int(x) == self.seq_len for x in lengths) if isinstance(lengths, (list, tuple)) and lengths
                else bool((self.positions[:, -1] == self.seq_len - 1).all()))
        if not same:
            raise TaskError(f"task {self.name!r} names no spans and its prompts differ in length, so positions "
                            "cannot be aligned from the end: give the task spans (a prompts file's 'spans' column, "
                            "or Task(spans=PromptSpans(...))), or use prompts of one token length")
        return end_aligned(self.n_prompts, self.seq_len, n_end)

    def _per_prompt(self, value: Any) -> bool:
        return isinstance(value, (list, tuple)) and len(value) == self.n_prompts


def _as_2d(value: Any, n: int, what: str, task: str) -> torch.Tensor:
    t = torch.as_tensor(value).long()
    if t.dim() == 1:
        t = t[:, None]
    if t.dim() != 2 or t.shape[0] != n:
        raise TaskError(f"task {task!r}: {what} must be [N] or [N, Q] with N = {n}, got {tuple(t.shape)}")
    return t
