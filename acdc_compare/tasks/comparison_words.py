"""Word pools of the comparison tasks, filtered to what the tokenizer keeps as single tokens, and the draws
of fresh words for their "answers" corruption (words sharing nothing with the clean prompt)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

from acdc_compare.tasks.base import TaskError
from acdc_compare.tasks.build import encode, single_token_words
from acdc_compare.tasks.ioi import NAMES

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


# Third-person verbs for the verb-recall tasks ("Mary runs. John swims. Mary" -> " runs").
VERBS: tuple[str, ...] = (
    "runs", "swims", "sings", "dances", "reads", "writes", "cooks", "sleeps", "jumps", "walks", "laughs",
    "cries", "smiles", "talks", "plays", "works", "eats", "drinks", "paints", "drives", "climbs", "waits",
    "listens", "studies", "travels", "teaches", "skates", "rides", "dives", "sits", "stands", "flies",
)


def fresh_words(rng: random.Random, pool: Sequence[str], taken: Iterable[str], k: int, what: str) -> list[str]:
    """k distinct words of `pool` that are not in `taken` (the words of the clean prompt)."""
    blocked = set(taken)
    free = [w for w in pool if w not in blocked]
    if len(free) < k:
        raise TaskError(f"too few single-token {what} for this tokenizer to replace the answers with fresh ones "
                        f"(need {k} beyond the {len(blocked)} in the prompt, have {len(free)})")
    return rng.sample(free, k)


def fresh_pair(rng: random.Random, pairs: Sequence[tuple[str, str]], taken: Iterable[str],
               what: str) -> tuple[str, str]:
    """A pair sharing no word with `taken`."""
    blocked = set(taken)
    free = [p for p in pairs if not blocked & set(p)]
    if not free:
        raise TaskError(f"too few {what} for this tokenizer to replace the answers with a fresh pair")
    return rng.choice(free)


def human_names(tokenizer: Any, need: int, what: str) -> list[str]:
    """Human first names (not pet names) that are one token both with and without a leading space: some
    prompts start with a name, and the answer is the spaced form."""
    pets = set(PET_NAMES)
    spaced = single_token_words(tokenizer, [w for w in NAMES if w not in pets])
    both = [w for w in spaced if len(encode(tokenizer, w.strip())) == 1]
    if len(both) < need:
        raise TaskError(f"only {len(both)} names are single tokens with and without a leading space for this "
                        f"tokenizer; {what} needs at least {need}")
    return both


def single_token_pairs(tokenizer: Any, pairs: Sequence[tuple[str, str]], need: int,
                       what: str) -> list[tuple[str, str]]:
    """Pairs whose two words are both single tokens (returned with leading spaces)."""
    kept = [(" " + a, " " + b) for a, b in pairs
            if len(encode(tokenizer, " " + a)) == 1 and len(encode(tokenizer, " " + b)) == 1]
    if len(kept) < need:
        raise TaskError(f"only {len(kept)} of the {len(pairs)} {what} are single tokens for this tokenizer; "
                        f"the task needs at least {need}")
    return kept


def two_token_relations(tokenizer: Any) -> list[str]:
    """Neutral relations of exactly two tokens (the length of ' richer than')."""
    kept = [" " + r for r in NEUTRAL_RELATIONS if len(encode(tokenizer, " " + r)) == 2]
    if not kept:
        raise TaskError("none of the neutral relations tokenizes to two tokens for this tokenizer")
    return kept


def opposite_pairs(tokenizer: Any, need: int, unspaced_first: bool = False) -> list[tuple[str, str]]:
    """Opposite pairs of single tokens (with leading spaces); with `unspaced_first`, only those whose first
    word is one token without its space too (it starts the prompt)."""
    pairs = single_token_pairs(tokenizer, OPPOSITES, need, "opposite pairs")
    if unspaced_first:
        pairs = [(a, b) for a, b in pairs if len(encode(tokenizer, a.strip())) == 1]
        if len(pairs) < need:
            raise TaskError(f"only {len(pairs)} opposite pairs can start a prompt as one token; need {need}")
    return pairs
