"""Comparison prompts set against IOI: do they move names/words like IOI's name movers, and does the
model answer them by meaning or by word order?

Each generator draws prompts from word pools (`comparison_words`, filtered to single tokens of the
tokenizer) under a seed, and builds a corrupted twin of equal token length that removes the information the
answer depends on, so KL(clean || corrupted) and the corrupted logit difference show how much the model used
that information.
For the order-vs-meaning tasks the corruption deliberately keeps word order: a model answering by position
gives the same answer on the corrupted prompt, and the clean-vs-corrupted gap shrinks to nothing.
Every generator also offers the "answers" corruption (`Corruption`), IOI's ABC style: the words that can be
the answer are replaced by fresh ones, order kept, so the clean answer is gone from the prompt. The fresh
words come from a generator of their own, so the clean prompts are the same under either corruption.
The recall tasks (a stated adjective or verb) live in `recall`, built on this module's helpers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

from acdc_compare.tasks.base import Corruption, Task, TaskError, check_wording, parse_corruption
from acdc_compare.tasks.build import encode, require_pool, single_token_words, task_from_prompts
from acdc_compare.tasks.span_marks import locate
from acdc_compare.tasks.comparison_words import (
    ANIMAL_SIZES,
    ATTRIBUTE_PAIRS,
    COMPARATIVE_PAIRS,
    NEUTRAL_PREDICATES,
    PET_NAMES,
    SPECIES,
    fresh_pair,
    fresh_words,
    human_names,
    opposite_pairs,
    single_token_pairs,
    two_token_relations,
)

PetPosition = Literal["last", "middle", "first"]
Ask = Literal["opposite", "same"]

# Every comparison task offers both corruptions; the first is the default.
CORRUPTIONS: tuple[Corruption, ...] = (Corruption.MEANING, Corruption.ANSWERS)


# ----- wordings: index 0 is the one discovery runs on, the others are held out ---------------------------
@dataclass(frozen=True)
class PetWording:
    """The pet-family frame: `opening` + the example family's members + `question` + its pet + "." +
    `second` + the second family's members + `question`; each member is `member` with {name} and
    {species} (both with their leading space)."""

    opening: str
    member: str
    question: str
    second: str


PET_WORDINGS: tuple[PetWording, ...] = (
    PetWording("In a family:", "{name} is a{species}.", " The pet of this family is", " In another family,"),
    PetWording("Meet one household.", "{name} is a{species}.", " The household's pet is",
               " Meet a second household."),
    PetWording("One family has three members.", "{name} is a{species}.", " The pet in the family is",
               " Another family also has three members."),
)
# {A}: the first name without its space (it opens the prompt), {a}/{b}: names, {cmp}: " richer than" or a
# neutral two-token relation, {asked}: the comparative asked about.
COMPARATIVE_WORDINGS: tuple[str, ...] = (
    "{A} is{cmp}{b}. The{asked} person is",
    "{A} is{cmp}{b}. The{asked} of the two is",
    "{A} is{cmp}{b}. Who is{asked}? The answer is",
)
# {x}/{y}: the adjectives said of {a}/{b}, {q}: the adjective asked about.
ATTRIBUTE_WORDINGS: tuple[str, ...] = (
    "{A} is{x}.{b} is{y}. The{q} one is",
    "{A} is{x} and{b} is{y}. The{q} person is",
    "We met{a}, who is{x}, and{b}, who is{y}. The{q} one is",
)
# {first}/{second}: the animals, {cmp}: " bigger than" or a neutral relation, {asked}: " bigger"/" smaller".
SIZE_WORDINGS: tuple[str, ...] = (
    "The{first} is{cmp} the{second}. The{asked} animal is the",
    "At the zoo, the{first} is{cmp} the{second}. The{asked} one of the two is the",
    "It is well known that the{first} is{cmp} the{second}. So the{asked} animal is the",
)
OPPOSITE_WORDINGS: tuple[str, ...] = (
    "The opposite of{cue} is",
    "The antonym of{cue} is",
    "The word{cue} means the opposite of",
)
# {A}: the example's cue without its space (it opens the prompt), {b}: its opposite, {c}: the new cue.
ANALOGY_WORDINGS: tuple[str, ...] = (
    "{A} is to{b} as{c} is to",
    "{A} :{b} ::{c} :",
    "{A} relates to{b} as{c} relates to",
)


# ----- helpers -----------------------------------------------------------------------------------------------
def check_n(name: str, n: int) -> None:
    """Refuse a task of fewer than one prompt."""
    if n < 1:
        raise TaskError(f"task {name!r}: n must be >= 1, got {n}")


def answer_rng(seed: int) -> random.Random:
    """The generator of the fresh words of the answers corruption: separate from the prompts' generator, so
    a task's clean prompts are the same whichever corruption is chosen."""
    return random.Random(f"answers-corruption-{seed}")


def pick(corruption: Corruption, meaning: str, answers: str) -> str:
    """The corrupted prompt of the chosen corruption: `meaning` or `answers`."""
    return meaning if corruption is Corruption.MEANING else answers


# Named spans of each task's prompts (`Task.spans`; the last token is END, anything unnamed `rest`)
PET_SPANS = ("example", "human-a", "human-b", "pet", "species", "question", "END", "rest")
COMPARATIVE_SPANS = ("A", "comparative", "B", "question-word", "END", "rest")
ATTRIBUTE_SPANS = ("A", "adjective-A", "B", "adjective-B", "question-word", "END", "rest")
SIZE_SPANS = ("first", "comparative", "second", "question-word", "END", "rest")
OPPOSITE_SPANS = ("cue", "END", "rest")
ANALOGY_SPANS = ("example-cue", "example-answer", "cue", "END", "rest")


# ----- pet family -------------------------------------------------------------------------------------------
def make_pet_family(tokenizer: Any, n: int = 100, seed: int = 0, position: PetPosition = "last",
                    corruption: Corruption | str = Corruption.MEANING, wording: int = 0) -> Task:
    """Pet-family analogy: which member of the second family is the pet?

    "In a family: John is a human. Mary is a human. Max is a dog. The pet of this family is Max. In another
    family, Adam is a human. Lisa is a human. Bella is a cat. The pet of this family is" -> " Bella".
    The example family always lists its pet last; `position` puts the second family's pet last, in the middle
    or first. Correct = the pet; wrong = the last-listed human of the second family — for "middle" and
    "first" that is the name in the slot the example's pet occupied, i.e. the answer copying by word order
    would give. So "last" is the task where order and meaning agree, "first" the one where they disagree.
    Corruptions: "meaning" makes the second pet's species " human" ("Bella is a human."), so nobody in the
    second family is a pet; only the species token differs, and a model copying by position keeps its
    answer. "answers" replaces the second family's three names by fresh ones (humans by humans, the pet by
    a pet name), so neither the pet nor the human answer is in the prompt.
    Spans: the example family, the second family's humans (human-a listed before human-b), its pet's name and
    species, the question, END (the last token) and rest.
    `wording` 1 and 2 rephrase the frame (`PET_WORDINGS`: "Meet one household. ... The household's pet is"),
    the families' order and content unchanged.
    """
    if position not in ("last", "middle", "first"):
        raise TaskError(f"pet position must be 'last', 'middle' or 'first', got {position!r}")
    name = f"pet-{position}"
    chosen = parse_corruption(corruption, CORRUPTIONS, name)
    frame = PET_WORDINGS[check_wording(wording, len(PET_WORDINGS), name)]
    check_n(name, n)
    humans = human_names(tokenizer, 4, name)
    pets = require_pool(tokenizer, PET_NAMES, 2, "pet names")
    species = require_pool(tokenizer, SPECIES, 2, "pet species")
    human_word = " human"
    if len(encode(tokenizer, human_word)) != 1:
        raise TaskError("' human' is not a single token for this tokenizer")
    rng, fresh_rng = random.Random(seed), answer_rng(seed)
    order = {"last": ("human3", "human4", "pet"), "middle": ("human3", "pet", "human4"),
             "first": ("pet", "human3", "human4")}[position]

    def family_parts(h3: str, h4: str, pet: str, pet_species: str) -> list[tuple[str, str]]:
        """The second family's words in prompt order, by role."""
        parts = {"human3": [("human-a", h3)], "human4": [("human-b", h4)],
                 "pet": [("pet", pet), ("species", pet_species)]}
        return [part for k in order for part in parts[k]]

    def family(h3: str, h4: str, pet: str, pet_species: str) -> str:
        lines = {"human3": (h3, human_word), "human4": (h4, human_word), "pet": (pet, pet_species)}
        return "".join(frame.member.format(name=lines[k][0], species=lines[k][1]) for k in order)

    prompts, corrupted, correct, wrong, marks = [], [], [], [], []
    for _ in range(n):
        h1, h2, h3, h4 = rng.sample(humans, 4)
        p1, p2 = rng.sample(pets, 2)
        s1, s2 = rng.sample(species, 2)
        example = "".join(frame.member.format(name=m, species=k) for m, k in ((h1, human_word), (h2, human_word),
                                                                              (p1, s1)))
        head = f"{frame.opening}{example}{frame.question}{p1}.{frame.second}"
        tail = frame.question
        x3, x4 = fresh_words(fresh_rng, humans, (h1, h2, h3, h4), 2, "human names")
        (y2,) = fresh_words(fresh_rng, pets, (p1, p2), 1, "pet names")
        prompts.append(head + family(h3, h4, p2, s2) + tail)
        question = len(prompts[-1]) - len(tail)
        marks.append([("example", 0, len(head)), *locate(prompts[-1], family_parts(h3, h4, p2, s2), len(head)),
                      ("question", question, len(prompts[-1]))])
        corrupted.append(head + pick(chosen, family(h3, h4, p2, human_word), family(x3, x4, y2, s2)) + tail)
        correct.append(p2)
        wrong.append(h4)
    what = ("pet's species -> human" if chosen is Corruption.MEANING
            else "the second family's names -> fresh names")
    return task_from_prompts(
        tokenizer, name, prompts, corrupted, correct, wrong,
        f"pet family, second family's pet {position}; correct = pet, wrong = last-listed human; corrupted = {what}",
        info={"position": position}, corruption=chosen, wording=wording, span_names=PET_SPANS, span_ranges=marks,
    )


# ----- comparatives --------------------------------------------------------------------------------------
def make_comparative(tokenizer: Any, n: int = 100, seed: int = 0, ask: Ask = "opposite",
                     corruption: Corruption | str = Corruption.MEANING, wording: int = 0) -> Task:
    """Comparatives: "Emma is richer than Sarah. The poorer person is" -> " Sarah" (ask="opposite", task
    "poorer") and "... The richer person is" -> " Emma" (ask="same", task "richer").

    Over all single-token adjective pairs, each stated in either direction ("Emma is poorer than Sarah. The
    richer person is" -> " Sarah" is an "opposite" prompt too). Wrong = the other person. With "opposite" the
    answer is the second-named person, so word order (recency) and meaning agree; with "same" it is the
    first-named, so they disagree. Corruptions: "meaning" makes the comparative and "than" a neutral
    two-token relation ("Emma is next to Sarah. The poorer person is"), which says nothing about who is
    richer and keeps both names in place; "answers" replaces the second name, the one the model gives in
    both tasks, by a fresh one ("Emma is richer than Grace. The poorer person is"). The first name is kept: it
    is the prompt's first token, the attention sink every head reads, and replacing it moved every head's
    output (EAP-IG's top 2% of the edges keep 0.41 of poorer's behaviour with it replaced, 0.74 with it kept:
    benchmarks/results/first_token_cpu.json). `wording` 1 and 2 rephrase statement and question
    (`COMPARATIVE_WORDINGS`: "... The poorer of the two is"), names in the same order.
    """
    if ask not in ("opposite", "same"):
        raise TaskError(f"ask must be 'opposite' or 'same', got {ask!r}")
    name = "poorer" if ask == "opposite" else "richer"
    chosen = parse_corruption(corruption, CORRUPTIONS, name)
    template = COMPARATIVE_WORDINGS[check_wording(wording, len(COMPARATIVE_WORDINGS), name)]
    check_n(name, n)
    names = human_names(tokenizer, 2, name)
    pairs = single_token_pairs(tokenizer, COMPARATIVE_PAIRS, 2, "comparative pairs")
    relations = two_token_relations(tokenizer)
    rng, fresh_rng = random.Random(seed), answer_rng(seed)
    prompts, corrupted, correct, wrong, marks = [], [], [], [], []
    for _ in range(n):
        a, b = rng.sample(names, 2)
        pair = rng.choice(pairs)
        k = rng.randrange(2)
        stated, other = pair[k], pair[1 - k]
        asked = other if ask == "opposite" else stated

        def prompt(x: str, y: str, cmp: str) -> str:
            return template.format(A=x.strip(), a=x, b=y, cmp=cmp, asked=asked)

        prompts.append(prompt(a, b, f"{stated} than"))
        marks.append(locate(prompts[-1], [("A", a), ("comparative", stated), ("B", b), ("question-word", asked)]))
        neutral = prompt(a, b, rng.choice(relations))
        (d,) = fresh_words(fresh_rng, names, (a, b), 1, "names")
        corrupted.append(pick(chosen, neutral, prompt(a, d, f"{stated} than")))
        correct.append(b if ask == "opposite" else a)
        wrong.append(a if ask == "opposite" else b)
    what = "second-named (order agrees)" if ask == "opposite" else "first-named (order disagrees)"
    how = "neutral relation ('A is next to B')" if chosen is Corruption.MEANING else "second name -> a fresh name"
    return task_from_prompts(
        tokenizer, name, prompts, corrupted, correct, wrong,
        f"'A is richer than B. The {name} person is' over adjective pairs; answer = {what}; corrupted = {how}",
        info={"ask": ask}, corruption=chosen, wording=wording, span_names=COMPARATIVE_SPANS, span_ranges=marks,
    )


# ----- attribute lookup ------------------------------------------------------------------------------------
def make_attribute(tokenizer: Any, n: int = 100, seed: int = 0,
                   corruption: Corruption | str = Corruption.MEANING, wording: int = 0) -> Task:
    """Attribute lookup: "John is tall. Mary is short. The tall one is" -> " John".

    Probes binding an adjective to the name it was said of and moving that name to the answer (an
    "adjective mover" analogue of IOI's name movers). Adjective pairs in either direction; the question asks
    for the first- or second-named person at random (`info["asks_first"]`). Wrong = the other person.
    Corruptions: "meaning" makes both adjectives the same neutral predicate ("John is here. Mary is here.
    The tall one is"), which removes the binding while keeping names, positions and the question; "answers"
    replaces both names by fresh ones. `wording` 1 and 2 rephrase statements and question
    (`ATTRIBUTE_WORDINGS`: "John is tall and Mary is short. The tall person is").
    """
    name = "attribute"
    chosen = parse_corruption(corruption, CORRUPTIONS, name)
    template = ATTRIBUTE_WORDINGS[check_wording(wording, len(ATTRIBUTE_WORDINGS), name)]
    check_n(name, n)
    names = human_names(tokenizer, 2, name)
    pairs = single_token_pairs(tokenizer, ATTRIBUTE_PAIRS, 2, "adjective pairs")
    neutral = require_pool(tokenizer, NEUTRAL_PREDICATES, 1, "neutral predicates")
    rng, fresh_rng = random.Random(seed), answer_rng(seed)
    prompts, corrupted, correct, wrong, asks_first, marks = [], [], [], [], [], []
    for _ in range(n):
        a, b = rng.sample(names, 2)
        pair = rng.choice(pairs)
        k = rng.randrange(2)
        x, y = pair[k], pair[1 - k]
        first = rng.random() < 0.5
        q = x if first else y
        z = rng.choice(neutral)
        c, d = fresh_words(fresh_rng, names, (a, b), 2, "names")

        def prompt(m1: str, m2: str, w1: str, w2: str) -> str:
            return template.format(A=m1.strip(), a=m1, b=m2, x=w1, y=w2, q=q)

        prompts.append(prompt(a, b, x, y))
        marks.append(locate(prompts[-1], [("A", a), ("adjective-A", x), ("B", b), ("adjective-B", y),
                                          ("question-word", x if first else y)]))
        corrupted.append(pick(chosen, prompt(a, b, z, z), prompt(c, d, x, y)))
        correct.append(a if first else b)
        wrong.append(b if first else a)
        asks_first.append(first)
    how = "both adjectives -> a neutral word" if chosen is Corruption.MEANING else "both names -> fresh names"
    return task_from_prompts(
        tokenizer, name, prompts, corrupted, correct, wrong,
        f"'John is tall. Mary is short. The tall one is' -> John; corrupted = {how}",
        info={"asks_first": asks_first}, corruption=chosen, wording=wording, span_names=ATTRIBUTE_SPANS,
        span_ranges=marks,
    )


# ----- size comparison -------------------------------------------------------------------------------------
def make_size(tokenizer: Any, n: int = 100, seed: int = 0,
              corruption: Corruption | str = Corruption.MEANING, wording: int = 0) -> Task:
    """Size comparison: "The elephant is bigger than the mouse. The smaller animal is the" -> " mouse".

    Statements are true to world knowledge (animals at least two size classes apart), stated with "bigger"
    or "smaller", asked with "bigger" or "smaller" at random; wrong = the other animal. Corruptions:
    "meaning" makes the comparative and "than" a neutral relation ("The elephant is next to the mouse.").
    This removes the stated relation but not world knowledge: the corrupted run still knows elephants are
    bigger, so the clean-vs-corrupted gap measures how much the model reads the statement rather than what
    it knows. "answers" replaces both animals by another pair of clearly different size, in the same
    order of sizes ("The whale is bigger than the ant."), so the statement stays true. `wording` 1 and 2
    rephrase the frame (`SIZE_WORDINGS`).
    """
    name = "size"
    chosen = parse_corruption(corruption, CORRUPTIONS, name)
    template = SIZE_WORDINGS[check_wording(wording, len(SIZE_WORDINGS), name)]
    check_n(name, n)
    animals = single_token_words(tokenizer, list(ANIMAL_SIZES))
    size_of = {w: ANIMAL_SIZES[w.strip()] for w in animals}
    pairs = [(big, small) for big in animals for small in animals if size_of[big] - size_of[small] >= 2]
    if len(pairs) < 4:
        raise TaskError(f"only {len(pairs)} animal pairs of clearly different size are single tokens for this "
                        "tokenizer; the size task needs at least 4")
    words = single_token_pairs(tokenizer, (("bigger", "smaller"),), 1, "size comparatives")[0]
    relations = two_token_relations(tokenizer)
    rng, fresh_rng = random.Random(seed), answer_rng(seed)
    prompts, corrupted, correct, wrong, marks = [], [], [], [], []
    for _ in range(n):
        big, small = rng.choice(pairs)
        big2, small2 = fresh_pair(fresh_rng, pairs, (big, small), "animal pairs")
        if rng.random() < 0.5:
            first, comparative, second, first2, second2 = big, words[0], small, big2, small2
        else:
            first, comparative, second, first2, second2 = small, words[1], big, small2, big2
        ask_big = rng.random() < 0.5
        asked = words[0] if ask_big else words[1]

        def prompt(x: str, y: str, cmp: str) -> str:
            return template.format(first=x, second=y, cmp=cmp, asked=asked)

        prompts.append(prompt(first, second, f"{comparative} than"))
        marks.append(locate(prompts[-1], [("first", first), ("comparative", comparative), ("second", second),
                                          ("question-word", asked)]))
        neutral = prompt(first, second, rng.choice(relations))
        corrupted.append(pick(chosen, neutral, prompt(first2, second2, f"{comparative} than")))
        correct.append(big if ask_big else small)
        wrong.append(small if ask_big else big)
    how = ("neutral relation (world knowledge survives it)" if chosen is Corruption.MEANING
           else "both animals -> another pair")
    return task_from_prompts(
        tokenizer, name, prompts, corrupted, correct, wrong,
        f"'The elephant is bigger than the mouse. The smaller animal is the' -> mouse; corrupted = {how}",
        corruption=chosen, wording=wording, span_names=SIZE_SPANS, span_ranges=marks,
    )


# ----- opposites and analogies -----------------------------------------------------------------------------
def make_opposites(tokenizer: Any, n: int = 100, seed: int = 0,
                   corruption: Corruption | str = Corruption.MEANING, wording: int = 0) -> Task:
    """Opposites: "The opposite of hot is" -> " cold".

    Probes retrieving a word's antonym (a "meaning" lookup with no names to move). Directed pairs whose
    opposite is unambiguous. Wrong = the cue word itself (the answer of a model that merely repeats it).
    Corruptions: "meaning" makes the cue the cue of another pair ("The opposite of up is"), whose cue and
    opposite are both different from this prompt's. The cue is also the only candidate answer in the
    prompt, so "answers" is built the same way (a fresh cue sharing no word with the pair), drawn
    independently: here the two corruptions coincide in kind. `wording` 1 and 2 rephrase the question
    (`OPPOSITE_WORDINGS`: "The antonym of hot is").
    """
    name = "opposites"
    chosen = parse_corruption(corruption, CORRUPTIONS, name)
    template = OPPOSITE_WORDINGS[check_wording(wording, len(OPPOSITE_WORDINGS), name)]
    check_n(name, n)
    pairs = opposite_pairs(tokenizer, 3)
    rng, fresh_rng = random.Random(seed), answer_rng(seed)
    prompts, corrupted, correct, wrong, marks = [], [], [], [], []
    for _ in range(n):
        cue, answer = rng.choice(pairs)
        others = [p for p in pairs if not {p[0], p[1]} & {cue, answer}]
        other_cue = rng.choice(others)[0]
        fresh_cue = fresh_pair(fresh_rng, pairs, (cue, answer), "opposite pairs")[0]
        prompts.append(template.format(cue=cue))
        marks.append(locate(prompts[-1], [("cue", cue)]))
        corrupted.append(template.format(cue=pick(chosen, other_cue, fresh_cue)))
        correct.append(answer)
        wrong.append(cue)
    return task_from_prompts(
        tokenizer, name, prompts, corrupted, correct, wrong,
        f"{template.format(cue=' hot')!r} -> cold; wrong = the cue word; corrupted = another pair's cue",
        corruption=chosen, wording=wording, span_names=OPPOSITE_SPANS, span_ranges=marks,
    )


def make_analogy(tokenizer: Any, n: int = 100, seed: int = 0,
                 corruption: Corruption | str = Corruption.MEANING, wording: int = 0) -> Task:
    """Analogy form of opposites: "hot is to cold as tall is to" -> " short".

    Probes applying a relation shown by one example pair to a new word. The two pairs share no word. Wrong =
    the new cue word (as in `make_opposites`). Corruptions: "meaning" makes the new cue the cue of a third
    pair sharing no word with the first two ("hot is to cold as up is to"), removing what the answer depends
    on while keeping the example relation; "answers" replaces every word, the example pair and the cue, by
    fresh opposite pairs sharing no word with the clean ones ("up is to down as wet is to"), so no word of
    the clean prompt (nor its answer) is left. `wording` 1 and 2 rephrase the frame (`ANALOGY_WORDINGS`:
    "hot : cold :: tall :").
    """
    name = "analogy"
    chosen = parse_corruption(corruption, CORRUPTIONS, name)
    template = ANALOGY_WORDINGS[check_wording(wording, len(ANALOGY_WORDINGS), name)]
    check_n(name, n)
    pairs = opposite_pairs(tokenizer, 4)
    firsts = [p for p in pairs if len(encode(tokenizer, p[0].strip())) == 1]
    if not firsts:
        raise TaskError("no opposite pair can start the analogy prompt as one token for this tokenizer")
    rng, fresh_rng = random.Random(seed), answer_rng(seed)
    prompts, corrupted, correct, wrong, marks = [], [], [], [], []
    for _ in range(n):
        a, b = rng.choice(firsts)
        seconds = [p for p in pairs if not {p[0], p[1]} & {a, b}]
        c, d = rng.choice(seconds)
        thirds = [p for p in seconds if not {p[0], p[1]} & {c, d}]
        if not thirds:
            raise TaskError("too few opposite pairs to build an analogy corruption for this tokenizer")
        c2 = rng.choice(thirds)[0]
        a3, b3 = fresh_pair(fresh_rng, firsts, (a, b, c, d), "opposite pairs")
        c3 = fresh_pair(fresh_rng, pairs, (a, b, c, d, a3, b3), "opposite pairs")[0]

        def prompt(x: str, y: str, cue: str) -> str:
            return template.format(A=x.strip(), b=y, c=cue)

        prompts.append(prompt(a, b, c))
        marks.append(locate(prompts[-1], [("example-cue", a), ("example-answer", b), ("cue", c)]))
        corrupted.append(pick(chosen, prompt(a, b, c2), prompt(a3, b3, c3)))
        correct.append(d)
        wrong.append(c)
    how = "another pair's cue" if chosen is Corruption.MEANING else "every word -> fresh opposite pairs"
    return task_from_prompts(
        tokenizer, name, prompts, corrupted, correct, wrong,
        f"{prompt(' hot', ' cold', ' tall')!r} -> short; wrong = the cue word; corrupted = {how}",
        corruption=chosen, wording=wording, span_names=ANALOGY_SPANS, span_ranges=marks,
    )
