"""Comparison prompts set against IOI: do they move names/words like IOI's name movers, and does the
model answer them by meaning or by word order?

Each generator draws prompts from word pools (filtered to single tokens of the tokenizer) under a seed,
and builds a corrupted twin of equal token length that removes the information the answer depends on, so
KL(clean || corrupted) and the corrupted logit difference show how much the model used that information.
For the order-vs-meaning tasks the corruption deliberately keeps word order: a model answering by position
gives the same answer on the corrupted prompt, and the clean-vs-corrupted gap shrinks to nothing.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Literal

from acdc_compare.tasks.base import Task, TaskError
from acdc_compare.tasks.build import encode, require_pool, single_token_words, task_from_prompts
from acdc_compare.tasks.ioi import NAMES

PetPosition = Literal["last", "middle", "first"]
Ask = Literal["opposite", "same"]

# ----- pools -----------------------------------------------------------------------------------------------
PET_NAMES: tuple[str, ...] = (
    "Max", "Rex", "Bella", "Luna", "Rocky", "Daisy", "Spot", "Buddy", "Coco", "Milo", "Toby", "Rusty",
    "Fluffy", "Shadow", "Ginger", "Lucky", "Pepper", "Buster", "Duke", "Tiger", "Smokey", "Oreo", "Simba",
    "Bruno", "Rover", "Zeus", "Thor", "Ace", "Chester", "Felix", "Scout", "Ranger", "Honey", "Sugar", "Patch",
    "Bear", "Storm", "Rocket", "Chip", "Champ", "Kiki", "Murphy", "Fido", "Pebbles", "Whiskers", "Bandit",
    "Biscuit", "Peanut", "Muffin", "Cookie", "Sparky", "Teddy",
)
SPECIES: tuple[str, ...] = (
    "dog", "cat", "rabbit", "horse", "parrot", "turtle", "pony", "puppy", "kitten", "lizard", "snake", "pig",
    "goat", "mouse", "bird", "fish", "duck", "chicken", "hamster", "ferret", "canary", "goldfish",
)
# (comparative, its opposite)
COMPARATIVE_PAIRS: tuple[tuple[str, str], ...] = (
    ("richer", "poorer"), ("taller", "shorter"), ("older", "younger"), ("stronger", "weaker"),
    ("faster", "slower"), ("heavier", "lighter"), ("smarter", "dumber"), ("happier", "sadder"),
    ("louder", "quieter"), ("bigger", "smaller"), ("kinder", "meaner"), ("braver", "shyer"),
    ("busier", "lazier"), ("calmer", "angrier"),
)
# Two-token relations that say nothing about who is richer, taller...: the comparative corruption.
NEUTRAL_RELATIONS: tuple[str, ...] = (
    "next to", "friends with", "related to", "married to", "close to", "talking to", "sitting with",
    "working with",
)
# (adjective, its opposite) for attribute lookup
ATTRIBUTE_PAIRS: tuple[tuple[str, str], ...] = (
    ("tall", "short"), ("rich", "poor"), ("old", "young"), ("happy", "sad"), ("strong", "weak"),
    ("fast", "slow"), ("big", "small"), ("loud", "quiet"), ("kind", "cruel"), ("smart", "dumb"),
    ("heavy", "light"), ("clean", "dirty"), ("wet", "dry"), ("early", "late"), ("brave", "scared"),
    ("hot", "cold"),
)
# One-token predicates that carry no attribute: the attribute-lookup corruption.
NEUTRAL_PREDICATES: tuple[str, ...] = ("here", "home", "ready", "awake", "outside", "inside", "asleep", "present")
# Animals by rough size class (0 = tiny ... 4 = huge); size pairs are at least two classes apart.
ANIMAL_SIZES: dict[str, int] = {
    "ant": 0, "bee": 0, "fly": 0, "spider": 0, "flea": 0, "mosquito": 0, "beetle": 0, "snail": 0, "worm": 0,
    "mouse": 1, "rat": 1, "frog": 1, "hamster": 1, "squirrel": 1, "sparrow": 1, "lizard": 1,
    "cat": 2, "rabbit": 2, "fox": 2, "dog": 2, "goose": 2, "duck": 2, "chicken": 2, "monkey": 2, "owl": 2,
    "horse": 3, "cow": 3, "bear": 3, "lion": 3, "tiger": 3, "deer": 3, "camel": 3, "gorilla": 3, "zebra": 3,
    "moose": 3, "buffalo": 3, "bison": 3, "crocodile": 3, "shark": 3,
    "elephant": 4, "whale": 4, "giraffe": 4, "hippo": 4, "rhino": 4, "dinosaur": 4,
}
# Directed (word, its opposite) pairs whose opposite is unambiguous ("short" -> "tall"/"long" is left out).
OPPOSITES: tuple[tuple[str, str], ...] = (
    ("hot", "cold"), ("cold", "hot"), ("tall", "short"), ("fast", "slow"), ("slow", "fast"), ("up", "down"),
    ("down", "up"), ("good", "bad"), ("bad", "good"), ("happy", "sad"), ("sad", "happy"), ("rich", "poor"),
    ("poor", "rich"), ("young", "old"), ("alive", "dead"), ("dead", "alive"), ("wet", "dry"), ("dry", "wet"),
    ("black", "white"), ("white", "black"), ("day", "night"), ("night", "day"), ("true", "false"),
    ("false", "true"), ("win", "lose"), ("love", "hate"), ("hate", "love"), ("top", "bottom"),
    ("bottom", "top"), ("north", "south"), ("south", "north"), ("east", "west"), ("west", "east"),
    ("push", "pull"), ("pull", "push"), ("early", "late"), ("late", "early"), ("strong", "weak"),
    ("weak", "strong"), ("loud", "quiet"), ("quiet", "loud"), ("male", "female"), ("female", "male"),
    ("boy", "girl"), ("girl", "boy"), ("man", "woman"), ("woman", "man"), ("wide", "narrow"),
    ("narrow", "wide"), ("deep", "shallow"), ("shallow", "deep"), ("clean", "dirty"), ("dirty", "clean"),
    ("full", "empty"), ("empty", "full"), ("first", "last"), ("inside", "outside"), ("outside", "inside"),
    ("above", "below"), ("below", "above"), ("before", "after"), ("after", "before"), ("yes", "no"),
    ("no", "yes"), ("on", "off"), ("off", "on"), ("high", "low"), ("low", "high"), ("soft", "hard"),
    ("smooth", "rough"), ("buy", "sell"), ("sell", "buy"), ("question", "answer"), ("friend", "enemy"),
    ("enemy", "friend"), ("light", "dark"), ("dark", "light"), ("open", "closed"), ("big", "small"),
    ("long", "short"), ("new", "old"),
)


# ----- helpers -----------------------------------------------------------------------------------------------
def _check_n(name: str, n: int) -> None:
    if n < 1:
        raise TaskError(f"task {name!r}: n must be >= 1, got {n}")


def _human_names(tokenizer: Any, need: int, what: str) -> list[str]:
    """Human first names (not pet names) that are one token both with and without a leading space: some
    prompts start with a name, and the answer is the spaced form."""
    pets = set(PET_NAMES)
    spaced = single_token_words(tokenizer, [w for w in NAMES if w not in pets])
    both = [w for w in spaced if len(encode(tokenizer, w.strip())) == 1]
    if len(both) < need:
        raise TaskError(f"only {len(both)} names are single tokens with and without a leading space for this "
                        f"tokenizer; {what} needs at least {need}")
    return both


def _pairs(tokenizer: Any, pairs: Sequence[tuple[str, str]], need: int, what: str) -> list[tuple[str, str]]:
    """Pairs whose two words are both single tokens (returned with leading spaces)."""
    kept = [(" " + a, " " + b) for a, b in pairs
            if len(encode(tokenizer, " " + a)) == 1 and len(encode(tokenizer, " " + b)) == 1]
    if len(kept) < need:
        raise TaskError(f"only {len(kept)} of the {len(pairs)} {what} are single tokens for this tokenizer; "
                        f"the task needs at least {need}")
    return kept


def _relations(tokenizer: Any) -> list[str]:
    """Neutral relations of exactly two tokens (the length of ' richer than')."""
    kept = [" " + r for r in NEUTRAL_RELATIONS if len(encode(tokenizer, " " + r)) == 2]
    if not kept:
        raise TaskError("none of the neutral relations tokenizes to two tokens for this tokenizer")
    return kept


# ----- pet family -------------------------------------------------------------------------------------------
def make_pet_family(tokenizer: Any, n: int = 100, seed: int = 0, position: PetPosition = "last") -> Task:
    """Pet-family analogy: which member of the second family is the pet?

    "In a family: John is a human. Mary is a human. Max is a dog. The pet of this family is Max. In another
    family, Adam is a human. Lisa is a human. Bella is a cat. The pet of this family is" -> " Bella".
    The example family always lists its pet last; `position` puts the second family's pet last, in the middle
    or first. Correct = the pet; wrong = the last-listed human of the second family — for "middle" and
    "first" that is the name in the slot the example's pet occupied, i.e. the answer copying by word order
    would give. So "last" is the task where order and meaning agree, "first" the one where they disagree.
    Corruption: the second pet's species becomes " human" ("Bella is a human."), so nobody in the second
    family is a pet; lengths and word order are unchanged, only the species token differs. A model reading
    meaning loses its answer; one copying by position does not.
    """
    if position not in ("last", "middle", "first"):
        raise TaskError(f"pet position must be 'last', 'middle' or 'first', got {position!r}")
    name = f"pet-{position}"
    _check_n(name, n)
    humans = _human_names(tokenizer, 4, name)
    pets = require_pool(tokenizer, PET_NAMES, 2, "pet names")
    species = require_pool(tokenizer, SPECIES, 2, "pet species")
    human_word = " human"
    if len(encode(tokenizer, human_word)) != 1:
        raise TaskError("' human' is not a single token for this tokenizer")
    rng = random.Random(seed)
    prompts, corrupted, correct, wrong = [], [], [], []
    for _ in range(n):
        h1, h2, h3, h4 = rng.sample(humans, 4)
        p1, p2 = rng.sample(pets, 2)
        s1, s2 = rng.sample(species, 2)

        def family(pet_species: str) -> str:
            lines = {"human3": f"{h3} is a{human_word}.", "human4": f"{h4} is a{human_word}.",
                     "pet": f"{p2} is a{pet_species}."}
            order = {"last": ("human3", "human4", "pet"), "middle": ("human3", "pet", "human4"),
                     "first": ("pet", "human3", "human4")}[position]
            return "".join(lines[k] for k in order)

        head = (f"In a family:{h1} is a{human_word}.{h2} is a{human_word}.{p1} is a{s1}. "
                f"The pet of this family is{p1}. In another family,")
        tail = " The pet of this family is"
        prompts.append(head + family(s2) + tail)
        corrupted.append(head + family(human_word) + tail)
        correct.append(p2)
        wrong.append(h4)
    return task_from_prompts(
        tokenizer, name, prompts, corrupted, correct, wrong,
        f"pet family, second family's pet {position}; correct = pet, wrong = last-listed human; "
        "corrupted = pet's species -> human",
        info={"position": position},
    )


# ----- comparatives --------------------------------------------------------------------------------------
def make_comparative(tokenizer: Any, n: int = 100, seed: int = 0, ask: Ask = "opposite") -> Task:
    """Comparatives: "Emma is richer than Sarah. The poorer person is" -> " Sarah" (ask="opposite", task
    "poorer") and "... The richer person is" -> " Emma" (ask="same", task "richer").

    Over all single-token adjective pairs, each stated in either direction ("Emma is poorer than Sarah. The
    richer person is" -> " Sarah" is an "opposite" prompt too). Wrong = the other person. With "opposite" the
    answer is the second-named person, so word order (recency) and meaning agree; with "same" it is the
    first-named, so they disagree. Corruption: the comparative and "than" become a neutral two-token relation
    ("Emma is next to Sarah. The poorer person is"), which says nothing about who is richer and keeps both
    names in place: a model answering by position gives the same answer on it.
    """
    if ask not in ("opposite", "same"):
        raise TaskError(f"ask must be 'opposite' or 'same', got {ask!r}")
    name = "poorer" if ask == "opposite" else "richer"
    _check_n(name, n)
    names = _human_names(tokenizer, 2, name)
    pairs = _pairs(tokenizer, COMPARATIVE_PAIRS, 2, "comparative pairs")
    relations = _relations(tokenizer)
    rng = random.Random(seed)
    prompts, corrupted, correct, wrong = [], [], [], []
    for _ in range(n):
        a, b = rng.sample(names, 2)
        pair = rng.choice(pairs)
        k = rng.randrange(2)
        stated, other = pair[k], pair[1 - k]
        asked = other if ask == "opposite" else stated
        question = f" The{asked} person is"
        prompts.append(f"{a.strip()} is{stated} than{b}.{question}")
        corrupted.append(f"{a.strip()} is{rng.choice(relations)}{b}.{question}")
        correct.append(b if ask == "opposite" else a)
        wrong.append(a if ask == "opposite" else b)
    what = "second-named (order agrees)" if ask == "opposite" else "first-named (order disagrees)"
    return task_from_prompts(
        tokenizer, name, prompts, corrupted, correct, wrong,
        f"'A is richer than B. The {name} person is' over adjective pairs; answer = {what}; "
        "corrupted = neutral relation ('A is next to B')",
        info={"ask": ask},
    )


# ----- attribute lookup ------------------------------------------------------------------------------------
def make_attribute(tokenizer: Any, n: int = 100, seed: int = 0) -> Task:
    """Attribute lookup: "John is tall. Mary is short. The tall one is" -> " John".

    Probes binding an adjective to the name it was said of and moving that name to the answer (an
    "adjective mover" analogue of IOI's name movers). Adjective pairs in either direction; the question asks
    for the first- or second-named person at random (`info["asks_first"]`). Wrong = the other person.
    Corruption: both adjectives become the same neutral predicate ("John is here. Mary is here. The tall one
    is"), which removes the binding while keeping names, positions and the question.
    """
    name = "attribute"
    _check_n(name, n)
    names = _human_names(tokenizer, 2, name)
    pairs = _pairs(tokenizer, ATTRIBUTE_PAIRS, 2, "adjective pairs")
    neutral = require_pool(tokenizer, NEUTRAL_PREDICATES, 1, "neutral predicates")
    rng = random.Random(seed)
    prompts, corrupted, correct, wrong, asks_first = [], [], [], [], []
    for _ in range(n):
        a, b = rng.sample(names, 2)
        pair = rng.choice(pairs)
        k = rng.randrange(2)
        x, y = pair[k], pair[1 - k]
        first = rng.random() < 0.5
        question = f" The{x if first else y} one is"
        z = rng.choice(neutral)
        prompts.append(f"{a.strip()} is{x}.{b} is{y}.{question}")
        corrupted.append(f"{a.strip()} is{z}.{b} is{z}.{question}")
        correct.append(a if first else b)
        wrong.append(b if first else a)
        asks_first.append(first)
    return task_from_prompts(
        tokenizer, name, prompts, corrupted, correct, wrong,
        "'John is tall. Mary is short. The tall one is' -> John; corrupted = both adjectives -> a neutral word",
        info={"asks_first": asks_first},
    )


# ----- size comparison -------------------------------------------------------------------------------------
def make_size(tokenizer: Any, n: int = 100, seed: int = 0) -> Task:
    """Size comparison: "The elephant is bigger than the mouse. The smaller animal is the" -> " mouse".

    Statements are true to world knowledge (animals at least two size classes apart), stated with "bigger"
    or "smaller", asked with "bigger" or "smaller" at random; wrong = the other animal. Corruption: the
    comparative and "than" become a neutral relation ("The elephant is next to the mouse."). This removes the
    stated relation but not world knowledge: the corrupted run still knows elephants are bigger, so the
    clean-vs-corrupted gap measures how much the model reads the statement rather than what it knows.
    """
    name = "size"
    _check_n(name, n)
    animals = single_token_words(tokenizer, list(ANIMAL_SIZES))
    size_of = {w: ANIMAL_SIZES[w.strip()] for w in animals}
    pairs = [(big, small) for big in animals for small in animals if size_of[big] - size_of[small] >= 2]
    if len(pairs) < 4:
        raise TaskError(f"only {len(pairs)} animal pairs of clearly different size are single tokens for this "
                        "tokenizer; the size task needs at least 4")
    words = _pairs(tokenizer, (("bigger", "smaller"),), 1, "size comparatives")[0]
    relations = _relations(tokenizer)
    rng = random.Random(seed)
    prompts, corrupted, correct, wrong = [], [], [], []
    for _ in range(n):
        big, small = rng.choice(pairs)
        if rng.random() < 0.5:
            first, comparative, second = big, words[0], small
        else:
            first, comparative, second = small, words[1], big
        ask_big = rng.random() < 0.5
        question = f" The{words[0] if ask_big else words[1]} animal is the"
        prompts.append(f"The{first} is{comparative} than the{second}.{question}")
        corrupted.append(f"The{first} is{rng.choice(relations)} the{second}.{question}")
        correct.append(big if ask_big else small)
        wrong.append(small if ask_big else big)
    return task_from_prompts(
        tokenizer, name, prompts, corrupted, correct, wrong,
        "'The elephant is bigger than the mouse. The smaller animal is the' -> mouse; corrupted = neutral "
        "relation (world knowledge survives it)",
    )


# ----- opposites and analogies -----------------------------------------------------------------------------
def _opposites(tokenizer: Any, need: int, unspaced_first: bool = False) -> list[tuple[str, str]]:
    pairs = _pairs(tokenizer, OPPOSITES, need, "opposite pairs")
    if unspaced_first:
        pairs = [(a, b) for a, b in pairs if len(encode(tokenizer, a.strip())) == 1]
        if len(pairs) < need:
            raise TaskError(f"only {len(pairs)} opposite pairs can start a prompt as one token; need {need}")
    return pairs


def make_opposites(tokenizer: Any, n: int = 100, seed: int = 0) -> Task:
    """Opposites: "The opposite of hot is" -> " cold".

    Probes retrieving a word's antonym (a "meaning" lookup with no names to move). Directed pairs whose
    opposite is unambiguous. Wrong = the cue word itself (the answer of a model that merely repeats it).
    Corruption: the cue becomes the cue of another pair ("The opposite of up is"), whose cue and opposite are
    both different from this prompt's, so nothing in the corrupted prompt points to " cold" or " hot".
    """
    name = "opposites"
    _check_n(name, n)
    pairs = _opposites(tokenizer, 3)
    rng = random.Random(seed)
    prompts, corrupted, correct, wrong = [], [], [], []
    for _ in range(n):
        cue, answer = rng.choice(pairs)
        others = [p for p in pairs if not {p[0], p[1]} & {cue, answer}]
        other_cue = rng.choice(others)[0]
        prompts.append(f"The opposite of{cue} is")
        corrupted.append(f"The opposite of{other_cue} is")
        correct.append(answer)
        wrong.append(cue)
    return task_from_prompts(
        tokenizer, name, prompts, corrupted, correct, wrong,
        "'The opposite of hot is' -> cold; wrong = the cue word; corrupted = another pair's cue",
    )


def make_analogy(tokenizer: Any, n: int = 100, seed: int = 0) -> Task:
    """Analogy form of opposites: "hot is to cold as tall is to" -> " short".

    Probes applying a relation shown by one example pair to a new word. The two pairs share no word. Wrong =
    the new cue word (as in `make_opposites`). Corruption: the new cue becomes the cue of a third pair sharing
    no word with the first two ("hot is to cold as up is to"), removing what the answer depends on while
    keeping the example relation.
    """
    name = "analogy"
    _check_n(name, n)
    pairs = _opposites(tokenizer, 4)
    firsts = [p for p in pairs if len(encode(tokenizer, p[0].strip())) == 1]
    if not firsts:
        raise TaskError("no opposite pair can start the analogy prompt as one token for this tokenizer")
    rng = random.Random(seed)
    prompts, corrupted, correct, wrong = [], [], [], []
    for _ in range(n):
        a, b = rng.choice(firsts)
        seconds = [p for p in pairs if not {p[0], p[1]} & {a, b}]
        c, d = rng.choice(seconds)
        thirds = [p for p in seconds if not {p[0], p[1]} & {c, d}]
        if not thirds:
            raise TaskError("too few opposite pairs to build an analogy corruption for this tokenizer")
        c2 = rng.choice(thirds)[0]
        prompts.append(f"{a.strip()} is to{b} as{c} is to")
        corrupted.append(f"{a.strip()} is to{b} as{c2} is to")
        correct.append(d)
        wrong.append(c)
    return task_from_prompts(
        tokenizer, name, prompts, corrupted, correct, wrong,
        "'hot is to cold as tall is to' -> short; wrong = the cue word; corrupted = another pair's cue",
    )
