"""Prompts files: a JSONL file (one object per line) or a CSV file (a header row) with the columns prompt,
corrupted, answer and wrong answer, read into a `PromptsFile` and built into a `Task`.

An optional `spans` column names parts of each clean prompt for position-aware circuits: space-separated
`NAME:START-END` character ranges of the prompt (0-based, END exclusive), e.g. `IO:10-15 S1:20-24 S2:40-44`
for "Then, ... ". A token belongs to the range holding its last character; the last token is always `END`,
any other token `rest`. Give it on every row or on none; without it, prompts of one token length get
end-aligned spans (`Task.span_schema`) and prompts of different lengths cannot be run position-aware.

Every offending row is reported at once, each by its line in the file (1-based, the same way for JSONL and
CSV, and the same lines when the rows are tokenized), in one TaskError (`build.RowProblems`)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acdc_compare.spans import SpanError, check_span_names
from acdc_compare.tasks.base import Task, TaskError
from acdc_compare.tasks.build import RowNames, RowProblems, pad_id, task_from_prompts
from acdc_compare.tasks.span_marks import CharRange

PROMPT_COLUMNS = ("prompt", "corrupted", "answer", "wrong answer")
_COLUMN_ALIASES = {"prompt": "prompt", "clean": "prompt", "clean prompt": "prompt",
                   "corrupted": "corrupted", "corrupted prompt": "corrupted",
                   "answer": "answer", "correct": "answer", "correct answer": "answer",
                   "wrong answer": "wrong answer", "wrong": "wrong answer", "spans": "spans"}
PROMPT_FILE_SUFFIXES = (".jsonl", ".csv")
KNOWN_COLUMNS = (f"the columns are {', '.join(PROMPT_COLUMNS)} (also accepted: "
                 f"{', '.join(a for a in _COLUMN_ALIASES if a not in PROMPT_COLUMNS)}; '_' or '-' for a space; "
                 "wrong answer may be left empty; optional: spans, e.g. 'IO:10-15 S1:20-24')")
# how each format keeps an answer's leading space
SPACE_HINTS = {".csv": "in a CSV file keep the space after the comma (`..., Paris`) or quote the field (`\" Paris\"`)",
               ".jsonl": "in a JSONL file put the space inside the quotes: `\"answer\": \" Paris\"`"}


@dataclass(frozen=True)
class PromptsFile:
    """The rows of a prompts file, checked for shape (not yet tokenized): what `task_from_file` builds on.
    `lines`: each row's line in the file (1-based; a CSV row spanning lines: its first)."""

    path: Path
    prompts: tuple[str, ...]
    corrupted: tuple[str, ...]
    answers: tuple[str, ...]
    wrong_answers: tuple[str | None, ...]
    lines: tuple[int, ...] = ()
    spans: tuple[str | None, ...] = ()  # each row's `spans` column (None: not given), or () when no row has one

    @property
    def name(self) -> str:
        return self.path.stem

    def lines_without_wrong_answer(self) -> tuple[int, ...]:
        """The lines of the rows that give no wrong answer when other rows give one; () when every row gives
        one, or none does."""
        missing = tuple(line for line, wrong in zip(self.lines, self.wrong_answers) if wrong is None)
        return missing if len(missing) < len(self.wrong_answers) else ()


def partial_wrong_answers_note(rows: PromptsFile) -> str:
    """What is wrong when only some rows of a prompts file give a wrong answer (naming those that do not), or ""."""
    missing = rows.lines_without_wrong_answer()
    if not missing:
        return ""
    shown = ", ".join(map(str, missing[:10])) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
    return (f"{rows.path}: {len(missing)} of {len(rows.wrong_answers)} rows give no wrong answer (line"
            f"{'s' if len(missing) > 1 else ''} {shown}), so the task has no logit difference or accuracy and "
            "only --metric kl works; give those rows a wrong answer, or leave it empty on every row")


def is_prompts_file(task: str) -> bool:
    """Whether a --task value names a prompts file (by its .jsonl/.csv suffix) rather than a registered task."""
    return Path(task).suffix.lower() in PROMPT_FILE_SUFFIXES


def read_prompts_file(path: str | Path) -> PromptsFile:
    """Read a JSONL file (one object per line) or a CSV file (a header row) with the columns prompt,
    corrupted, answer and wrong answer ("wrong_answer" and "correct" are accepted too; an empty wrong
    answer means none, KL metric only). One TaskError names the file and every offending line: bad JSON,
    unknown or missing columns, empty values."""
    path = Path(path)
    if not path.is_file():
        raise TaskError(f"prompts file {str(path)!r} not found (a task is a registered name or a .jsonl/.csv "
                        f"file with the columns {', '.join(PROMPT_COLUMNS)})")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise TaskError(f"cannot read prompts file {path}: {err}") from None
    problems = RowProblems(str(path))
    reader = _jsonl_rows if path.suffix.lower() == ".jsonl" else _csv_rows
    rows = reader(path, text, problems)
    if not rows and not problems:
        raise TaskError(f"prompts file {path} holds no rows")
    out: dict[str, list[Any]] = {c: [] for c in (*PROMPT_COLUMNS, "spans")}
    lines = []
    for line, row in rows:
        named = _named(line, row, problems, check_unknown=reader is _jsonl_rows)
        if named is None:
            continue
        for c in (*PROMPT_COLUMNS, "spans"):
            out[c].append(named.get(c))
        lines.append(line)
    given = [line for line, marks in zip(lines, out["spans"]) if marks is not None]
    if given and len(given) < len(lines):
        missing = [str(line) for line, marks in zip(lines, out["spans"]) if marks is None]
        problems.add(f"line{'s' if len(missing) > 1 else ''} {', '.join(missing[:10])}", "no spans",
                     "give the spans column on every row or on none")
    problems.raise_any()
    return PromptsFile(path, *(tuple(out[c]) for c in PROMPT_COLUMNS), lines=tuple(lines),
                       spans=tuple(out["spans"]) if given else ())


def _column(key: Any) -> str | None:
    """The column a file's key names (aliases, case, '_' / '-' for spaces), or None for an unknown key."""
    return _COLUMN_ALIASES.get(str(key).strip().lower().replace("_", " ").replace("-", " "))


def _named(line: int, row: dict[str, Any], problems: RowProblems, check_unknown: bool) -> dict[str, Any] | None:
    """One row's values by column (an empty wrong answer: None), or None after noting its problems."""
    found = len(problems)
    named: dict[str, Any] = {}
    for key, value in row.items():
        column = _column(key)
        if column is None:
            if check_unknown:
                problems.add(f"line {line}", f"unknown column {key!r}", KNOWN_COLUMNS)
        elif column in named:
            problems.add(f"line {line}", f"two columns give {column!r} (one is {key!r})", KNOWN_COLUMNS)
        else:
            named[column] = value
    missing = [c for c in PROMPT_COLUMNS if c not in named and c != "wrong answer"]
    if missing:
        problems.add(f"line {line}", f"no column {', '.join(map(repr, missing))} (got {', '.join(map(str, row))})",
                     KNOWN_COLUMNS)
    marks = named.get("spans")
    if marks in (None, ""):
        named["spans"] = None
    elif not isinstance(marks, str):
        problems.add(f"line {line}", f"column 'spans' must be a string like 'IO:10-15 S1:20-24', got {marks!r}")
    elif isinstance(named.get("prompt"), str):
        try:
            parse_span_marks(marks, named["prompt"])
        except ValueError as err:
            problems.add(f"line {line}", str(err))
    for c in PROMPT_COLUMNS:
        value = named.get(c)
        if c == "wrong answer" and value in (None, ""):
            named[c] = None
        elif c not in missing and (not isinstance(value, str) or not value):
            problems.add(f"line {line}", f"column {c!r} must be a non-empty string, got {value!r}")
        elif c not in missing and not _is_unicode(value):
            problems.add(f"line {line}", f"column {c!r} holds a lone surrogate ({value!r}), which is no text",
                         "write the character itself, or a JSON escape of a whole pair (\\ud83d\\ude00)")
    return named if len(problems) == found else None


def parse_span_marks(text: str, prompt: str) -> list[CharRange]:
    """A `spans` value ('IO:10-15 S1:20-24': NAME:START-END character ranges of `prompt`, END exclusive) as
    (name, start, end) ranges; a ValueError saying what is wrong otherwise."""
    out: list[CharRange] = []
    for item in text.split():
        match = re.fullmatch(r"([^:\s]+):(\d+)-(\d+)", item)
        if match is None:
            raise ValueError(f"spans item {item!r} is not NAME:START-END (e.g. 'IO:10-15')")
        name, lo, hi = match.group(1), int(match.group(2)), int(match.group(3))
        if not 0 <= lo < hi <= len(prompt):
            raise ValueError(f"spans item {item!r}: the range must satisfy 0 <= START < END <= {len(prompt)} "
                             f"(the prompt's length in characters)")
        try:
            check_span_names([name])
        except SpanError as err:
            raise ValueError(f"spans item {item!r}: {err}") from None
        out.append((name, lo, hi))
    if not out:
        raise ValueError("spans is empty; give NAME:START-END ranges or leave the column out")
    return out


def _is_unicode(value: str) -> bool:
    """Whether a str is text (a JSON escape like "\\ud800" gives a lone surrogate, which no tokenizer takes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _jsonl_rows(path: Path, text: str, problems: RowProblems) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    # lines end at \n, \r\n or \r only (JSON strings hold none raw); not str.splitlines, which also splits at
    # U+2028, U+0085, \x1c ... that a JSON string may hold
    for line, raw in enumerate(re.split(r"\r\n|\r|\n", text), 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except (ValueError, RecursionError) as err:  # also numbers of over 4300 digits, nesting too deep
            msg = err.msg if isinstance(err, json.JSONDecodeError) else f"{err}"[:200] or type(err).__name__
            problems.add(f"line {line}", f"not valid JSON ({msg})", 'each line holds one object like {"prompt": '
                         '..., "corrupted": ..., "answer": " Mary", "wrong answer": " John"}')
            continue
        if not isinstance(row, dict):
            problems.add(f"line {line}", f"a JSON object is expected, got {type(row).__name__}")
            continue
        rows.append((line, row))
    return rows


def _csv_rows(path: Path, text: str, problems: RowProblems) -> list[tuple[int, dict[str, Any]]]:
    """The CSV's rows after the header, each with the line it starts on; quoted fields keep their newlines.
    Unknown header names are noted once, at line 1."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as err:
        raise TaskError(f"{path}, line 1: unreadable CSV header ({err})") from None
    if header is None:
        raise TaskError(f"{path} is empty; the first row names the columns {', '.join(PROMPT_COLUMNS)}")
    unknown = [name for name in header if _column(name) is None]
    if unknown:
        problems.add("line 1", f"unknown column{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}",
                     KNOWN_COLUMNS)
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        problems.add("line 1", f"the header names {', '.join(map(repr, twice))} more than once", KNOWN_COLUMNS)
        return []
    rows = []
    while True:
        line = reader.line_num + 1
        try:
            values = next(reader, None)
        except csv.Error as err:  # e.g. a field over the csv module's size limit
            problems.add(f"line {line}", f"unreadable CSV ({err})",
                         "check the quotes: a quoted field runs to its closing quote, across lines")
            return rows
        if values is None:
            return rows
        if len(values) > len(header):
            problems.add(f"line {line}", f"{len(values)} values but the header names {len(header)} columns",
                         "quote a value that holds a comma (\"Paris, France\"), or add the column to the header")
        elif values:
            row = {k: values[i] if i < len(values) else None for i, k in enumerate(header) if _column(k)}
            rows.append((line, row))


MIN_HELD_OUT_ROWS = 8  # fewer held-out rows than this give a faithfulness too noisy to trust


@dataclass(frozen=True)
class HeldOutSplit:
    """A prompts file's rows split in two: `fit` to discover on, `held` (never discovered on) to evaluate on.
    The held-out rows are the last round(fraction x rows) after a shuffle seeded by `seed` (`split_rows`)."""

    fit: PromptsFile
    held: PromptsFile
    fraction: float
    seed: int

    def describe(self) -> str:
        """Which rows are held out, e.g. "held out 8 of 40 rows of x.csv (... file lines 3, 7, ...)"."""
        n = len(self.fit.prompts) + len(self.held.prompts)
        return (f"held out {len(self.held.prompts)} of {n} rows of {self.fit.path} (the last "
                f"{len(self.held.prompts)} after a shuffle with seed {self.seed}: file line"
                f"{'s' if len(self.held.lines) > 1 else ''} {', '.join(map(str, self.held.lines))}); "
                f"discovering on the other {len(self.fit.prompts)}")

    def warning(self) -> str:
        """Why the split is too small for a meaningful held-out faithfulness, or ""."""
        n_held = len(self.held.prompts)
        if n_held >= MIN_HELD_OUT_ROWS:
            return ""
        return (f"only {n_held} held-out row{'s' if n_held > 1 else ''} of {self.fit.path}: a faithfulness on "
                f"fewer than {MIN_HELD_OUT_ROWS} prompts is too noisy to trust; add rows to the file or hold out a "
                f"larger fraction (at least {MIN_HELD_OUT_ROWS} rows)")


def split_rows(rows: str | Path | PromptsFile, fraction: float, seed: int = 0,
               flag: str = "held_out") -> HeldOutSplit:
    """Hold out `fraction` of a prompts file's rows: after a shuffle of the rows seeded by `seed`, the last
    round(fraction x rows) (at least 1) are held out; both parts keep file order. A fraction outside (0, 1), or
    one that leaves no row to discover on, is refused (a TaskError naming `flag`)."""
    if isinstance(rows, (str, Path)) and not is_prompts_file(str(rows)):
        raise TaskError(f"{flag} holds out rows of a prompts file (.jsonl/.csv), but the task is {str(rows)!r}; "
                        "a registered task is checked on new prompts by building it with another seed")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise TaskError(f"{flag} must be a fraction of the rows strictly between 0 and 1 (e.g. 0.25), "
                        f"got {fraction!r}")
    read = rows if isinstance(rows, PromptsFile) else read_prompts_file(rows)
    n = len(read.prompts)
    n_held = max(1, math.floor(fraction * n + 0.5))
    if n_held >= n:
        raise TaskError(f"{flag} {fraction:g} of the {n} row{'s' if n > 1 else ''} of {read.path} holds out "
                        f"{n_held}, leaving no row to discover on; use a smaller fraction or a file with more rows")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    held = set(order[n - n_held:])
    return HeldOutSplit(_rows_at(read, [i for i in range(n) if i not in held]), _rows_at(read, sorted(held)),
                        float(fraction), seed)


def _rows_at(rows: PromptsFile, indices: list[int]) -> PromptsFile:
    def pick(items: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(items[i] for i in indices)

    return dataclasses.replace(rows, prompts=pick(rows.prompts), corrupted=pick(rows.corrupted),
                               answers=pick(rows.answers), wrong_answers=pick(rows.wrong_answers),
                               lines=pick(rows.lines) if rows.lines else (),
                               spans=pick(rows.spans) if rows.spans else ())


def task_from_file(tokenizer: Any, path: str | Path | PromptsFile) -> Task:
    """A Task from a prompts file (see `read_prompts_file`), named after the file; prompts of different
    token lengths are right-padded and each is scored at its own last token. A corrupted prompt must
    tokenize to its clean prompt's length; every row where it does not (or an answer is not one token, or
    lacks its leading space) is named by its line."""
    rows = path if isinstance(path, PromptsFile) else read_prompts_file(path)
    where = RowNames(str(rows.path), tuple(f"line {n}" for n in rows.lines),
                     SPACE_HINTS.get(rows.path.suffix.lower(), ""))
    marks = [parse_span_marks(m or "", p) for m, p in zip(rows.spans, rows.prompts)] if rows.spans else None
    names = None if marks is None else tuple(dict.fromkeys(name for row in marks for name, _, _ in row))
    return task_from_prompts(tokenizer, rows.name, rows.prompts, rows.corrupted, rows.answers, rows.wrong_answers,
                             f"prompts from {rows.path}", pad_token_id=pad_id(tokenizer),
                             info={"source": str(rows.path)}, where=where, span_names=names, span_ranges=marks)
