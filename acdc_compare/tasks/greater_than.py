"""Greater-Than (Hanna et al. 2023): "The war lasted from the year 1745 to 17" -> a year above 45.

Hanna et al. score P(YY' > YY) - P(YY' <= YY) over GPT-2's two-digit year tokens. Tokenizers that split
digits one by one (the default model's: " 1745" is " ", "1", "7", "4", "5") have no two-digit tokens, so
here the answer is the next single token, the FIRST digit of the end year's two last digits, and the sets
are defined soundly for that digit:
- correct set: digits e such that every year 17e0..17e9 is > 17YY  (10 e > YY);
- wrong set:   digits e such that every year 17e0..17e9 is <= 17YY (10 e + 9 <= YY);
- the digit that starts years on both sides (e = first digit of YY, unless YY ends in 9) is in neither.
YY runs over 10..89, so both sets are non-empty. For a tokenizer with two-digit tokens 00..99 (GPT-2), the
generator uses Hanna et al.'s definition over those tokens instead. Accuracy = P(correct set) > P(wrong set).
"""

from __future__ import annotations

import random
from typing import Any

from acdc_compare.tasks.base import Corruption, Task, TaskError, check_wording, parse_corruption
from acdc_compare.tasks.build import encode, require_pool, task_from_prompts
from acdc_compare.tasks.span_marks import locate

# Hanna et al.'s nouns (filtered to single tokens at build time).
NOUNS: tuple[str, ...] = (
    "abduction", "accord", "affair", "agreement", "appraisal", "assaults", "assessment", "attack", "attempts",
    "campaign", "captivity", "case", "challenge", "chaos", "clash", "collaboration", "coma", "competition",
    "confrontation", "consequence", "conspiracy", "construction", "consultation", "contact", "contract",
    "convention", "cooperation", "custody", "deal", "decline", "decrease", "demonstrations", "development",
    "disagreement", "disorder", "dispute", "domination", "dynasty", "effect", "effort", "employment",
    "endeavor", "engagement", "epidemic", "evaluation", "exchange", "existence", "expansion", "expedition",
    "experiments", "fall", "fame", "flights", "friendship", "growth", "hardship", "hostility", "illness",
    "impact", "imprisonment", "improvement", "incarceration", "increase", "insurgency", "invasion",
    "investigation", "journey", "kingdom", "marriage", "modernization", "negotiation", "notoriety",
    "obstruction", "operation", "order", "outbreak", "outcome", "overhaul", "patrols", "pilgrimage", "plague",
    "plan", "practice", "process", "program", "progress", "project", "pursuit", "quest", "raids", "reforms",
    "reign", "relationship", "retaliation", "riot", "rise", "rivalry", "romance", "rule", "sanctions", "shift",
    "siege", "slump", "stature", "stint", "strikes", "study", "test", "testing", "tests", "therapy", "tour",
    "tradition", "treaty", "trial", "trip", "unemployment", "voyage", "warfare", "work",
)
CENTURY = "17"
CORRUPT_YY = "01"
YY_RANGE = range(10, 90)
SPANS: tuple[str, ...] = ("noun", "YY", "END", "rest")  # named spans of the prompts (`Task.spans`)
# Wordings: 0 = Hanna et al.'s main template (discovery); 1 and 2 = their phrasing variants (held out).
# {noun} comes with its leading space; the prompt ends in the century of the end year.
WORDINGS: tuple[str, ...] = (
    "The{noun} lasted from the year {start} to {century}",
    "The{noun} started in the year {start} and ended in the year {century}",
    "The{noun} began in the year {start} and continued until the year {century}",
)


def make_greater_than(tokenizer: Any, n: int = 100, seed: int = 0,
                      corruption: Corruption | str = Corruption.MEANING, wording: int = 0) -> Task:
    """Greater-Than: "The {noun} lasted from the year 17YY to 17", corrupted YY -> "01" (Hanna et al.);
    `wording` 1 and 2 are held-out phrasings (`WORDINGS`: "The {noun} started in the year 17YY and ended in
    the year 17", ...) with the same years, sets and corruption.

    Probes comparing numbers (a circuit is published for GPT-2 small). The answer is a set: the tokens that
    start a year after 17YY against those that start one at or before it (see the module docstring for how
    digit-by-digit tokenizers are scored). `correct`/`wrong` hold the nearest token of each set (for the
    logit-difference metric); the task's own metric is P(correct set) - P(wrong set). The corruption
    "1701" removes the start year the answer depends on, leaving every other token in place (the only
    corruption offered, "meaning"). Spans: the noun, YY (the start year's last two digits), END, rest.
    """
    name = "greater-than"
    chosen = parse_corruption(corruption, (Corruption.MEANING,), name)
    template = WORDINGS[check_wording(wording, len(WORDINGS), name)]
    if n < 1:
        raise TaskError(f"task {name!r}: n must be >= 1, got {n}")
    nouns = require_pool(tokenizer, NOUNS, 5, "Greater-Than nouns")
    two_digit = _two_digit_tokens(tokenizer)
    digits = None if two_digit else _digit_tokens(tokenizer)
    yys = [v for v in YY_RANGE if two_digit is None or v in two_digit]
    rng = random.Random(seed)
    prompts, corrupted, correct, wrong, csets, wsets, years, marks = [], [], [], [], [], [], [], []
    for _ in range(n):
        noun, yy = rng.choice(nouns), rng.choice(yys)
        prompts.append(template.format(noun=noun, start=f"{CENTURY}{yy:02d}", century=CENTURY))
        before_yy = prompts[-1][:prompts[-1].index(f"{CENTURY}{yy:02d}") + len(CENTURY)]
        marks.append([*locate(before_yy, [("noun", noun)]), ("YY", len(before_yy), len(before_yy) + 2)])
        corrupted.append(template.format(noun=noun, start=f"{CENTURY}{CORRUPT_YY}", century=CENTURY))
        if two_digit:
            above = [t for v, t in sorted(two_digit.items()) if v > yy]
            not_above = [t for v, t in sorted(two_digit.items()) if v <= yy]
        else:
            assert digits is not None
            above = [digits[e] for e in range(10) if 10 * e > yy]
            not_above = [digits[e] for e in range(10) if 10 * e + 9 <= yy]
        csets.append(above)
        wsets.append(not_above)
        correct.append(tokenizer.decode([above[0]]))
        wrong.append(tokenizer.decode([not_above[-1]]))
        years.append(yy)
    scoring = "two-digit year tokens" if two_digit else "first digit of the end year (digit-by-digit tokenizer)"
    example = template.format(noun=" war", start=f"{CENTURY}YY", century=CENTURY)
    return task_from_prompts(
        tokenizer, name, prompts, corrupted, correct, wrong,
        f"{example!r} -> > YY; P(later) - P(not later) over {scoring}; corrupted YY -> 01",
        correct_sets=csets, wrong_sets=wsets,
        info={"yy": years, "scoring": "two-digit" if two_digit else "first-digit"},
        corruption=chosen, wording=wording, span_names=SPANS, span_ranges=marks,
    )


def _two_digit_tokens(tokenizer: Any) -> dict[int, int] | None:
    """Token ids of the two-digit strings "00".."99" for which " 17YY" splits as " 17" + "YY" (Hanna et al.
    keep only such years), when the tokenizer has most of them and the corruption "01"; else None."""
    century = encode(tokenizer, f" {CENTURY}")
    out: dict[int, int] = {}
    for v in range(100):
        ids = encode(tokenizer, f"{v:02d}")
        if len(ids) == 1 and encode(tokenizer, f" {CENTURY}{v:02d}") == century + ids:
            out[v] = ids[0]
    if len(out) < 80 or int(CORRUPT_YY) not in out:
        return None
    return out


def _digit_tokens(tokenizer: Any) -> dict[int, int]:
    """Token ids of the digits 0..9 as they appear after " 17" in a prompt."""
    out: dict[int, int] = {}
    for e in range(10):
        ids = encode(tokenizer, f" {CENTURY}{e}")
        single = encode(tokenizer, str(e))
        if len(single) != 1 or ids[-1:] != single:
            raise TaskError(
                f"the tokenizer splits ' {CENTURY}{e}' as {ids}, neither into two-digit year tokens nor into "
                "single digits; Greater-Than cannot be scored on it"
            )
        out[e] = single[0]
    return out
