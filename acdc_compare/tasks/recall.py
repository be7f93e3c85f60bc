"""Recall tasks set against IOI: recall the adjective or verb stated of a person ("Mary is tall. John is
short. Mary is" -> " tall"), asked so that word order and meaning agree or disagree; the corruptions and
helpers are `comparison`'s."""

from __future__ import annotations

import random
from typing import Any, Literal

from acdc_compare.tasks.base import Corruption, Task, TaskError, check_wording, parse_corruption
from acdc_compare.tasks.build import require_pool, task_from_prompts
from acdc_compare.tasks.comparison import CORRUPTIONS, answer_rng, check_n, pick
from acdc_compare.tasks.comparison_words import (
    ATTRIBUTE_PAIRS,
    VERBS,
    fresh_pair,
    fresh_words,
    human_names,
    single_token_pairs,
)
from acdc_compare.tasks.span_marks import locate

RecallKind = Literal["adjective", "verb"]
RecallAsk = Literal["last", "first"]

# The word linking a person to what is said of them: "Mary is tall." / "Mary runs." and held-out links.
RECALL_LINKS: dict[str, tuple[str, ...]] = {
    "adjective": (" is", " seems", " looks"),
    "verb": ("", " now", " just"),
}
# Named spans (`Task.spans`): "examples" only with solved examples, "queried" only for adjectives (a verb
# prompt ends on the name)
RECALL_SPANS = ("examples", "name-A", "word-A", "name-B", "word-B", "queried", "END", "rest")


# ----- recalling a stated adjective or verb -------------------------------------------------------------
def make_recall(tokenizer: Any, n: int = 100, seed: int = 0, kind: RecallKind = "adjective",
                ask: RecallAsk = "last", corruption: Corruption | str = Corruption.MEANING, shots: int = 0,
                wording: int = 0) -> Task:
    """Recall what was said of a person: an adjective ("Mary is tall. John is short. Mary is" -> " tall") or
    a verb ("Mary runs. John swims. Mary" -> " runs").

    With `shots` = k, k solved examples of the same question come first, one per line, with other names and
    words ("Emily waits. Jack drinks. Jack drinks." for "last"); both corruptions leave them as they are. On
    SmolLM2-135M two examples lift verb recall from 93% / 27% (last / first, 100 prompts of seed 0) to 99% /
    84%, and P(correct answer) from 0.14 to 0.76 on "last": the model does the task, and by meaning.

    Probes moving a word (not a name) from where it was stated to the answer: "adjective movers" and "verb
    movers" in the sense of IOI's name movers. Adjectives come from opposite pairs (in either order), verbs
    are two different third-person verbs. `ask` = "last" asks about the second-named person, whose word is
    the most recent one, so word order (recency) and meaning agree; "first" asks about the first-named, so
    they disagree. Wrong = the other person's word. Corruptions: "meaning" makes the queried name a fresh
    name ("... Lisa is"), which leaves nothing that picks either word while keeping both words in place;
    "answers" replaces both words by fresh ones (another opposite pair, two other verbs), so neither the
    correct nor the wrong word is in the prompt. `wording` 1 and 2 change the word linking a person to
    what is said of them (`RECALL_LINKS`: "Mary seems tall.", "Mary now runs."), in the solved examples too.
    """
    if kind not in ("adjective", "verb"):
        raise TaskError(f"recall kind must be 'adjective' or 'verb', got {kind!r}")
    if ask not in ("last", "first"):
        raise TaskError(f"recall ask must be 'last' or 'first', got {ask!r}")
    if isinstance(shots, bool) or not isinstance(shots, int) or not 0 <= shots <= 4:
        raise TaskError(f"recall shots must be a whole number of solved examples from 0 to 4, got {shots!r}")
    name = f"{kind}-{ask}" + (f"-{shots}shot" if shots else "")
    chosen = parse_corruption(corruption, CORRUPTIONS, name)
    link = RECALL_LINKS[kind][check_wording(wording, len(RECALL_LINKS[kind]), name)]
    check_n(name, n)
    names = human_names(tokenizer, 3, name)
    if kind == "adjective":
        adjective_pairs = single_token_pairs(tokenizer, ATTRIBUTE_PAIRS, 2, "adjective pairs")
    else:
        verbs = require_pool(tokenizer, VERBS, 4, "verbs")
    rng, fresh_rng, shot_rng = random.Random(seed), answer_rng(seed), random.Random(f"recall-shots-{seed}")
    prompts, corrupted, correct, wrong, marks = [], [], [], [], []
    for _ in range(n):
        a, b = rng.sample(names, 2)
        if kind == "adjective":
            pair = rng.choice(adjective_pairs)
            k = rng.randrange(2)
            x, y = pair[k], pair[1 - k]
            x2, y2 = fresh_pair(fresh_rng, adjective_pairs, (x, y), "adjective pairs")
        else:
            x, y = rng.sample(verbs, 2)
            x2, y2 = fresh_words(fresh_rng, verbs, (x, y), 2, "verbs")
        asked = b if ask == "last" else a
        (stranger,) = fresh_words(fresh_rng, names, (a, b), 1, "names")
        examples = "".join(_recall_example(shot_rng, names, adjective_pairs if kind == "adjective" else verbs,
                                           (a, b, stranger), (x, y), kind, ask, link) for _ in range(shots))

        def prompt(w1: str, w2: str, queried: str) -> str:
            return f"{examples}{a.strip()}{link}{w1}.{b}{link}{w2}.{queried}{link}"

        prompts.append(prompt(x, y, asked))
        said = [("name-A", a), ("word-A", x), ("name-B", b), ("word-B", y)] + ([("queried", asked)] if link else [])
        marks.append(locate(prompts[-1], said, len(examples)) + ([("examples", 0, len(examples))] if shots else []))
        corrupted.append(pick(chosen, prompt(x, y, stranger), prompt(x2, y2, asked)))
        correct.append(y if ask == "last" else x)
        wrong.append(x if ask == "last" else y)
    example = (f"'Mary{link} tall. John{link} short. Mary{link}' -> tall" if kind == "adjective"
               else f"'Mary{link} runs. John{link} swims. Mary{link}' -> runs")
    if shots:
        example = f"{shots} solved example(s), then {example}"
    who = "second-named (order agrees)" if ask == "last" else "first-named (order disagrees)"
    how = "queried name -> a fresh name" if chosen is Corruption.MEANING else f"both {kind}s -> fresh ones"
    return task_from_prompts(
        tokenizer, name, prompts, corrupted, correct, wrong,
        f"{example}; asks about the {who}; wrong = the other {kind}; corrupted = {how}",
        info={"kind": kind, "ask": ask}, corruption=chosen, wording=wording, span_ranges=marks,
        span_names=tuple(s for s in RECALL_SPANS if (s != "examples" or shots) and (s != "queried" or link)),
    )


def _recall_example(rng: random.Random, names: list[str], words: list[Any], people: tuple[str, ...],
                    taken: tuple[str, str], kind: RecallKind, ask: RecallAsk, link: str) -> str:
    """One solved recall example line ("Emily waits. Jack drinks. Jack drinks.\n"), with names and words
    other than the prompt's own."""
    c, d = rng.sample([m for m in names if m not in people], 2)
    if kind == "adjective":
        pair = rng.choice([p for p in words if not set(p) & set(taken)])
        u, v = pair if rng.randrange(2) else pair[::-1]
    else:
        u, v = rng.sample([w for w in words if w not in taken], 2)
    queried, answer = (d, v) if ask == "last" else (c, u)
    return f"{c.strip()}{link}{u}.{d}{link}{v}.{queried}{link}{answer}.\n"
