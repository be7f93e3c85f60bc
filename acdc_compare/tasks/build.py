"""Building a `Task` from strings with a model's tokenizer, with checks that name the offending prompt.

Prompts are tokenized without special tokens (no BOS): the default model's tokenizer adds none, GPT-2's
neither, and the patching engine never adds one. Answers are given with their leading space (" Mary") and
must be exactly one token.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
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
    check_spaces: bool = True,
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
    """
    _check_columns(name, prompts, corrupted_prompts, correct_answers, wrong_answers)
    clean_ids, corrupted_ids = _tokenize_twins(tokenizer, name, prompts, corrupted_prompts)
    lengths = [len(c) for c in clean_ids]
    if pad_token_id is None:
        _check_equal_lengths(name, prompts, lengths)
    pad = 0 if pad_token_id is None else int(pad_token_id)
    correct = _answer_ids(tokenizer, name, prompts, correct_answers, "correct")
    wrong = _answer_ids(tokenizer, name, prompts, wrong_answers, "wrong")
    if check_spaces:
        for i, prompt in enumerate(prompts):
            for kind, answer in (("correct", correct_answers[i]), ("wrong", wrong_answers[i])):
                _check_leading_space(tokenizer, name, i, prompt, kind, answer)
    extra = dict(info or {})
    extra.setdefault("lengths", lengths)
    extra.setdefault("correct_answers", list(correct_answers))
    extra.setdefault("wrong_answers", list(wrong_answers))
    return Task(
        name=name, clean=_padded(clean_ids, pad), corrupted=_padded(corrupted_ids, pad),
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


def _tokenize_twins(tokenizer: Any, name: str, prompts: Sequence[str],
                    corrupted_prompts: Sequence[str]) -> tuple[list[list[int]], list[list[int]]]:
    """Token ids of each clean prompt and its corrupted twin; none empty, each pair of one length."""
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
    return clean_ids, corrupted_ids


def _check_equal_lengths(name: str, prompts: Sequence[str], lengths: Sequence[int]) -> None:
    """Without padding, every prompt must tokenize to prompt 0's length."""
    for i, length in enumerate(lengths):
        if length != lengths[0]:
            raise TaskError(
                f"task {name!r}: prompt {i} {prompts[i]!r} tokenizes to {length} tokens, but prompt 0 "
                f"{prompts[0]!r} to {lengths[0]}; all prompts of a task must have the same token length "
                "(or build it with pad_token_id to score each prompt at its own last token)"
            )


def _padded(ids: Sequence[Sequence[int]], pad: int) -> torch.Tensor:
    """The rows of `ids` as one long tensor [n, longest], right-padded with `pad`."""
    out = torch.full((len(ids), max(len(row) for row in ids)), pad, dtype=torch.long)
    for i, row in enumerate(ids):
        out[i, : len(row)] = torch.tensor(row)
    return out


def _answer_ids(tokenizer: Any, name: str, prompts: Sequence[str], answers: Sequence[str | None],
                kind: str) -> torch.Tensor:
    """Each answer's one token id ([n]); a missing (None) wrong answer is -1."""
    return torch.tensor([-1 if a is None and kind == "wrong" else
                         single_token_id(tokenizer, a, f"task {name!r}, prompt {i} {prompts[i]!r}: {kind} ")
                         for i, a in enumerate(answers)])


def _check_leading_space(tokenizer: Any, name: str, i: int, prompt: str, kind: str, answer: str | None) -> None:
    """A word answer after a prompt that does not end in a space must start with one (see task_from_prompts)."""
    if answer is None or not answer[:1].isalpha() or prompt[-1:].isspace():
        return
    if len(encode(tokenizer, " " + answer)) == 1:
        raise TaskError(
            f"task {name!r}, prompt {i} {prompt!r}: {kind} answer {answer!r} has no leading space, so it is the "
            f"token {answer!r} glued to the previous word, not the next word {' ' + answer!r}. Write "
            f"{' ' + answer!r} (in a CSV file: keep the space after the comma, or quote it), or pass "
            "check_spaces=False if the glued token is meant"
        )


PROMPT_COLUMNS = ("prompt", "corrupted", "answer", "wrong answer")
_COLUMN_ALIASES = {"prompt": "prompt", "clean": "prompt", "clean prompt": "prompt",
                   "corrupted": "corrupted", "corrupted prompt": "corrupted",
                   "answer": "answer", "correct": "answer", "correct answer": "answer",
                   "wrong answer": "wrong answer", "wrong": "wrong answer"}
PROMPT_FILE_SUFFIXES = (".jsonl", ".csv")


@dataclass(frozen=True)
class PromptsFile:
    """The rows of a prompts file, checked for shape (not yet tokenized): what `task_from_file` builds on."""

    path: Path
    prompts: tuple[str, ...]
    corrupted: tuple[str, ...]
    answers: tuple[str, ...]
    wrong_answers: tuple[str | None, ...]

    @property
    def name(self) -> str:
        return self.path.stem


def is_prompts_file(task: str) -> bool:
    """Whether a --task value names a prompts file (by its .jsonl/.csv suffix) rather than a registered task."""
    return Path(task).suffix.lower() in PROMPT_FILE_SUFFIXES


def read_prompts_file(path: str | Path) -> PromptsFile:
    """Read a JSONL file (one object per line) or a CSV file (a header row) with the columns prompt,
    corrupted, answer and wrong answer ("wrong_answer" and "correct" are accepted too; an empty wrong
    answer means none, KL metric only). A TaskError names the file, the line and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise TaskError(f"prompts file {str(path)!r} not found (a task is a registered name or a .jsonl/.csv "
                        f"file with the columns {', '.join(PROMPT_COLUMNS)})")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise TaskError(f"cannot read prompts file {path}: {err}") from None
    rows = _jsonl_rows(path, text) if path.suffix.lower() == ".jsonl" else _csv_rows(path, text)
    if not rows:
        raise TaskError(f"prompts file {path} holds no rows")
    out: dict[str, list[Any]] = {c: [] for c in PROMPT_COLUMNS}
    for line, row in rows:
        named = {_COLUMN_ALIASES.get(str(k).strip().lower().replace("_", " ").replace("-", " ")): v
                 for k, v in row.items()}
        missing = [c for c in PROMPT_COLUMNS if c not in named and c != "wrong answer"]
        if missing:
            raise TaskError(f"{path}, line {line}: no column {', '.join(map(repr, missing))}; the columns are "
                            f"{', '.join(PROMPT_COLUMNS)} (got {', '.join(map(str, row))})")
        for c in PROMPT_COLUMNS:
            value = named.get(c)
            if c == "wrong answer" and value in (None, ""):
                value = None
            elif not isinstance(value, str) or not value:
                raise TaskError(f"{path}, line {line}: column {c!r} must be a non-empty string, got {value!r}")
            out[c].append(value)
    return PromptsFile(path, *(tuple(out[c]) for c in PROMPT_COLUMNS))


def _jsonl_rows(path: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for line, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as err:
            raise TaskError(f"{path}, line {line}: not valid JSON ({err.msg}); each line holds one object like "
                            '{"prompt": ..., "corrupted": ..., "answer": " Mary", "wrong answer": " John"}') from None
        if not isinstance(row, dict):
            raise TaskError(f"{path}, line {line}: a JSON object is expected, got {type(row).__name__}")
        rows.append((line, row))
    return rows


def _csv_rows(path: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
    """The CSV's rows after the header, each with the line it starts on; quoted fields keep their newlines."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise TaskError(f"{path} is empty; the first row names the columns {', '.join(PROMPT_COLUMNS)}")
    rows = []
    while True:
        line = reader.line_num + 1
        values = next(reader, None)
        if values is None:
            return rows
        if values:
            rows.append((line, {k: values[i] if i < len(values) else None for i, k in enumerate(header)}))


def task_from_file(tokenizer: Any, path: str | Path | PromptsFile) -> Task:
    """A Task from a prompts file (see `read_prompts_file`), named after the file; prompts of different
    token lengths are right-padded and each is scored at its own last token."""
    rows = path if isinstance(path, PromptsFile) else read_prompts_file(path)
    return task_from_prompts(tokenizer, rows.name, rows.prompts, rows.corrupted, rows.answers, rows.wrong_answers,
                             f"prompts from {rows.path}", pad_token_id=pad_id(tokenizer),
                             info={"source": str(rows.path)})


def pad_id(tokenizer: Any) -> int:
    """The id used to right-pad prompts of unequal length (pad, else end-of-sequence, else 0)."""
    for attr in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, attr, None)
        if isinstance(value, int) and value >= 0:
            return value
    return 0
