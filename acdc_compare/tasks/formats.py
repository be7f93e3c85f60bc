"""Copy formats: prompts whose answer is a word copied from the prompt, an adjective (a colour, a mood) or a
noun (an animal, a material), each with its order-vs-meaning twin.

Every format states two facts, each binding a value (the word that can be the answer) to an entity (a
person, an object, a place), then asks for the value of one entity:

    "Anna's car is red. Tom's car is blue. Anna's car is" -> " red"   (wrong: " blue")

The twin of ask "last" asks about the entity stated last, whose value is the more recent candidate, so
word order (recency) and meaning agree; ask "first" asks about the entity stated first, so they disagree.
The two twins of one seed hold the same content (same entities, values and solved examples); only the
queried entity differs. Wrong = the other value of the story: what copying by word order gives on the
disagreeing twin.

A format may open with solved examples of the same frame (few-shot: "The cup is green and the hat is
black. The colour of the hat is black."); each example asks about its first or its second entity at random
(drawn independently of the twin), so the examples teach no position.

Corruptions (both keep the token length):
- "meaning": the queried entity becomes a fresh one that the story does not mention ("... Lisa's car is"),
  so nothing picks either value while both stay in place; a model answering by position keeps its answer.
- "answers": the story's two values become two fresh values of the same pool ("Anna's car is green. Tom's
  car is pink."), so neither the correct nor the wrong answer is in the prompt (solved examples kept).

`FORMATS` lists every format tried (`benchmarks/bench_formats.py` measures them all); the registry holds the
ones the default model answers.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any, Literal

from acdc_compare.tasks.base import Corruption, Task, TaskError, check_wording, parse_corruption
from acdc_compare.tasks.build import encode, single_token_words, task_from_prompts
from acdc_compare.tasks.comparison_words import fresh_words, human_names
from acdc_compare.tasks.span_marks import CharRange, locate

FormatAsk = Literal["last", "first"]
# Named spans of a copy-format prompt (`Task.spans`): the solved examples, the two facts' entities and values,
# the queried entity, END (the last token) and rest.
SPANS: tuple[str, ...] = ("examples", "entity-1", "value-1", "entity-2", "value-2", "queried", "END", "rest")
CORRUPTIONS: tuple[Corruption, ...] = (Corruption.MEANING, Corruption.ANSWERS)

# ----- word pools (filtered to single tokens of the tokenizer when a task is built) ------------------------
COLOURS: tuple[str, ...] = ("red", "blue", "green", "black", "white", "yellow", "pink", "brown", "purple",
                            "orange", "grey", "gold", "silver")
OBJECTS: tuple[str, ...] = ("car", "bike", "hat", "cup", "box", "ball", "door", "shirt", "bag", "chair", "table",
                            "house", "pen", "book", "coat", "shoe", "phone", "lamp", "kite", "boat", "bowl",
                            "sock", "vase", "tent", "dress", "jacket", "wall", "fence", "roof", "bottle")
MATERIALS: tuple[str, ...] = ("wood", "glass", "stone", "gold", "silver", "steel", "paper", "plastic", "iron",
                              "wool", "cotton", "leather", "clay", "brick", "silk", "rubber")
MOODS: tuple[str, ...] = ("happy", "sad", "angry", "tired", "hungry", "sick", "busy", "bored", "calm", "scared",
                          "nervous", "sleepy", "excited", "lonely")
# Animals whose name starts with a consonant ("a cat", never "a elephant").
ANIMALS: tuple[str, ...] = ("cat", "dog", "cow", "pig", "horse", "duck", "goat", "sheep", "fox", "bear", "lion",
                            "tiger", "mouse", "rabbit", "frog", "bird", "fish", "snake", "wolf", "monkey", "rat",
                            "deer", "hen", "bee")
PLACES: tuple[str, ...] = ("box", "bag", "cage", "barn", "tent", "car", "room", "house", "basket", "garden",
                           "yard", "boat")
POOLS: dict[str, tuple[str, ...]] = {"colour": COLOURS, "object": OBJECTS, "material": MATERIALS, "mood": MOODS,
                                     "animal": ANIMALS, "place": PLACES}
FormatKind = Literal["adjective", "animal", "noun"]


@dataclass(frozen=True)
class CopyFormat:
    """One prompt format. `story` holds {e1} {v1} {e2} {v2} (entity and value of the two facts), `query`
    holds {q} (the queried entity) and follows the story; a solved example is story + query + " " + value +
    `answer_end`. `entities`: "name" (human first names) or a key of POOLS; `values`: a key of POOLS.
    `shots` solved examples open the prompt, each followed by `joiner`; `prefix` comes first of all.
    `rewordings`: held-out (story, query) pairs with the same slots, wordings 1, 2, ... (see `worded`)."""

    name: str
    answer_kind: FormatKind
    entities: str
    values: str
    story: str
    query: str
    shots: int = 0
    joiner: str = " "
    prefix: str = ""
    answer_end: str = "."
    rewordings: tuple[tuple[str, str], ...] = ()

    @property
    def wordings(self) -> int:
        """How many wordings the format offers: its own frame (wording 0) and its rewordings."""
        return 1 + len(self.rewordings)

    def worded(self, wording: int) -> "CopyFormat":
        """The format in `wording` (0: itself; k: story and query of its k-th rewording, solved examples
        included), under the same name so a seed draws the same content in every wording."""
        check_wording(wording, self.wordings, self.name)
        if wording == 0:
            return self
        story, query = self.rewordings[wording - 1]
        return dataclasses.replace(self, story=story, query=query)

    def example(self, ask: FormatAsk = "first") -> str:
        """The format written out with placeholder words (no shots) asking about the entity stated `ask`,
        for tables."""
        e1, e2 = ("Anna", "Tom") if self.entities == "name" else POOLS[self.entities][:2]
        v1, v2 = POOLS[self.values][:2]
        shots = f"[{self.shots} solved example{'s' if self.shots > 1 else ''}]{self.joiner}" if self.shots else ""
        q, answer = (e2, v2) if ask == "last" else (e1, v1)
        return self.prefix + shots + _render(self, e1, v1, e2, v2, q) + f" -> {answer}"


def _fmt(name: str, kind: FormatKind, entities: str, values: str, story: str, query: str, **kw: Any) -> CopyFormat:
    return CopyFormat(name, kind, entities, values, story, query, **kw)


_COLOUR_AND = ("The {e1} is {v1} and the {e2} is {v2}.", " The colour of the {q} is")
_POSSESSIVE = ("{e1}'s car is {v1}. {e2}'s car is {v2}.", " {q}'s car is")
_PET = ("{e1} has a {v1}. {e2} has a {v2}.", " {q} has a")
_BOX = ("The {v1} is in the {e1} and the {v2} is in the {e2}.", " The animal in the {q} is the")
_MOOD = ("{e1} is {v1}. {e2} is {v2}.", " {q} is")

# Every format tried (benchmarks/bench_formats.py measures them all; README table in formats_table.md).
FORMATS: tuple[CopyFormat, ...] = (
    # colours of objects and of people's things
    _fmt("colour-possessive", "adjective", "name", "colour", *_POSSESSIVE),
    _fmt("colour-possessive-2shot", "adjective", "name", "colour", *_POSSESSIVE, shots=2),
    _fmt("colour-and", "adjective", "object", "colour", *_COLOUR_AND),
    _fmt("colour-and-1shot", "adjective", "object", "colour", *_COLOUR_AND, shots=1),
    _fmt("colour-and-2shot", "adjective", "object", "colour", *_COLOUR_AND, shots=2),
    _fmt("colour-and-3shot", "adjective", "object", "colour", *_COLOUR_AND, shots=3),
    _fmt("colour-and-3shot-lines", "adjective", "object", "colour", *_COLOUR_AND, shots=3, joiner="\n"),
    _fmt("colour-qa", "adjective", "object", "colour", "Q: The {e1} is {v1} and the {e2} is {v2}.",
         " What colour is the {q}?\nA:", answer_end="", joiner="\n"),
    _fmt("colour-qa-2shot", "adjective", "object", "colour", "Q: The {e1} is {v1} and the {e2} is {v2}.",
         " What colour is the {q}?\nA:", answer_end="", joiner="\n", shots=2),
    _fmt("colour-list", "adjective", "object", "colour", "{e1}: {v1}\n{e2}: {v2}\n", "{q}:", answer_end="",
         joiner="\n"),
    _fmt("colour-list-2shot", "adjective", "object", "colour", "{e1}: {v1}\n{e2}: {v2}\n", "{q}:", answer_end="",
         joiner="\n\n", shots=2),
    _fmt("colour-attributive", "adjective", "name", "colour", "{e1} has a {v1} car and {e2} has a {v2} car.",
         " The car of {q} is", ),
    _fmt("colour-painted", "adjective", "object", "colour", "We painted the {e1} {v1} and the {e2} {v2}.",
         " Now the {q} is"),
    # the query repeats the words just before the answer in its fact (an induction-friendly frame)
    _fmt("colour-repeat", "adjective", "object", "colour", "The {e1} is {v1} and the {e2} is {v2}.",
         " The {q} is"),
    _fmt("colour-repeat-2shot", "adjective", "object", "colour", "The {e1} is {v1} and the {e2} is {v2}.",
         " The {q} is", shots=2),
    _fmt("colour-has", "adjective", "name", "colour", "{e1} has a {v1} car and {e2} has a {v2} car.",
         " {q} has a"),
    _fmt("colour-has-2shot", "adjective", "name", "colour", "{e1} has a {v1} car and {e2} has a {v2} car.",
         " {q} has a", shots=2),
    _fmt("colour-bought", "adjective", "name", "colour", "{e1} bought a {v1} hat. {e2} bought a {v2} hat.",
         " Then {q} bought a"),
    _fmt("colour-wore", "adjective", "name", "colour", "{e1} wore a {v1} shirt and {e2} wore a {v2} shirt.",
         " The shirt {q} wore was"),
    # the material frame's two-word verb phrase ("made of") with colours, moods and animals
    _fmt("colour-painted-is", "adjective", "object", "colour",
         "The {e1} is painted {v1} and the {e2} is painted {v2}.", " The {q} is painted"),
    _fmt("colour-coloured", "adjective", "object", "colour",
         "The {e1} is coloured {v1} and the {e2} is coloured {v2}.", " The {q} is coloured",
         rewordings=(("The {e1} was coloured {v1} and the {e2} was coloured {v2}.", " The {q} was coloured"),
                     ("The {e1} is coloured {v1}, whereas the {e2} is coloured {v2}.",
                      " Therefore the {q} is coloured"))),
    _fmt("colour-possessive-painted", "adjective", "name", "colour",
         "{e1}'s house is painted {v1} and {e2}'s house is painted {v2}.", " {q}'s house is painted"),
    _fmt("colour-sentences", "adjective", "object", "colour", "The {e1} is painted {v1}. The {e2} is painted {v2}.",
         " The {q} is painted"),
    _fmt("mood-feeling", "adjective", "name", "mood", "{e1} is feeling {v1} and {e2} is feeling {v2}.",
         " {q} is feeling"),
    _fmt("mood-looks", "adjective", "name", "mood", "{e1} looks very {v1} and {e2} looks very {v2}.",
         " {q} looks very"),
    _fmt("animal-home", "animal", "place", "animal", "The {e1} is home to a {v1} and the {e2} is home to a {v2}.",
         " The {q} is home to a"),
    _fmt("animal-lives", "animal", "place", "animal", "In the {e1} lives a {v1} and in the {e2} lives a {v2}.",
         " In the {q} lives a"),
    _fmt("animal-owns", "animal", "name", "animal", "{e1} owns a pet {v1} and {e2} owns a pet {v2}.",
         " {q} owns a pet"),
    _fmt("material-possessive", "noun", "name", "material",
         "{e1}'s house is made of {v1} and {e2}'s house is made of {v2}.", " {q}'s house is made of"),
    _fmt("material-sentences", "noun", "object", "material",
         "The {e1} is made of {v1}. The {e2} is made of {v2}.", " The {q} is made of"),
    # the repeated frame with the same casing in both facts and the query, and longer repeats
    _fmt("colour-coloured-sentences", "adjective", "object", "colour",
         "The {e1} is coloured {v1}. The {e2} is coloured {v2}.", " The {q} is coloured"),
    _fmt("colour-coloured-2shot", "adjective", "object", "colour",
         "The {e1} is coloured {v1} and the {e2} is coloured {v2}.", " The {q} is coloured", shots=2),
    _fmt("colour-coloured-so", "adjective", "object", "colour",
         "The {e1} is coloured {v1} and the {e2} is coloured {v2}, so the {q} is coloured", ""),
    _fmt("colour-of", "adjective", "object", "colour",
         "The colour of the {e1} is {v1} and the colour of the {e2} is {v2}.", " The colour of the {q} is",
         rewordings=(("The {e1} has the colour {v1} and the {e2} has the colour {v2}.", " The {q} has the colour"),
                     ("The {e1}'s colour is {v1} and the {e2}'s colour is {v2}.", " The {q}'s colour is"))),
    _fmt("colour-of-so", "adjective", "object", "colour",
         "The colour of the {e1} is {v1} and the colour of the {e2} is {v2}, so the colour of the {q} is", ""),
    _fmt("mood-coloured-frame", "adjective", "name", "mood", "{e1} is feeling very {v1} and {e2} is feeling very {v2}.",
         " {q} is feeling very"),
    _fmt("material-so", "noun", "object", "material",
         "The {e1} is made of {v1} and the {e2} is made of {v2}, so the {q} is made of", ""),
    _fmt("animal-pet-of", "animal", "name", "animal", "The pet of {e1} is a {v1} and the pet of {e2} is a {v2}.",
         " The pet of {q} is a"),
    _fmt("animal-inside", "animal", "place", "animal", "Inside the {e1} is a {v1} and inside the {e2} is a {v2}.",
         " Inside the {q} is a"),
    _fmt("animal-home-so", "animal", "place", "animal",
         "The {e1} is home to a {v1} and the {e2} is home to a {v2}, so the {q} is home to a", ""),
    # "The colour/pet/material of X is": the attribute named in every fact
    _fmt("colour-of-possessive", "adjective", "name", "colour",
         "The colour of {e1}'s car is {v1} and the colour of {e2}'s car is {v2}.", " The colour of {q}'s car is"),
    _fmt("colour-of-sentences", "adjective", "object", "colour",
         "The colour of the {e1} is {v1}. The colour of the {e2} is {v2}.", " The colour of the {q} is"),
    _fmt("mood-of", "adjective", "name", "mood", "The mood of {e1} is {v1} and the mood of {e2} is {v2}.",
         " The mood of {q} is"),
    _fmt("material-of", "noun", "object", "material",
         "The material of the {e1} is {v1} and the material of the {e2} is {v2}.", " The material of the {q} is",
         rewordings=(("The {e1}'s material is {v1} and the {e2}'s material is {v2}.", " The {q}'s material is"),
                     ("The material for the {e1} is {v1} and the material for the {e2} is {v2}.",
                      " The material for the {q} is"))),
    _fmt("animal-pet-in", "animal", "place", "animal",
         "The pet in the {e1} is a {v1} and the pet in the {e2} is a {v2}.", " The pet in the {q} is a"),
    # people's moods (the adjective task's frame, with other adjectives and solved examples)
    _fmt("mood", "adjective", "name", "mood", *_MOOD),
    _fmt("mood-2shot", "adjective", "name", "mood", *_MOOD, shots=2),
    _fmt("mood-feels-2shot", "adjective", "name", "mood", "{e1} feels {v1} and {e2} feels {v2}.",
         " How does {q} feel? {q} feels", shots=2),
    # materials (nouns)
    _fmt("material", "noun", "object", "material", "The {e1} is made of {v1} and the {e2} is made of {v2}.",
         " The {q} is made of"),
    _fmt("material-2shot", "noun", "object", "material",
         "The {e1} is made of {v1} and the {e2} is made of {v2}.", " The {q} is made of", shots=2),
    # animals (nouns)
    _fmt("pet-owner", "animal", "name", "animal", *_PET),
    _fmt("pet-owner-2shot", "animal", "name", "animal", *_PET, shots=2),
    _fmt("pet-possessive", "animal", "name", "animal", "{e1}'s pet is a {v1} and {e2}'s pet is a {v2}.",
         " {q}'s pet is a"),
    _fmt("animal-place", "animal", "place", "animal", *_BOX),
    _fmt("animal-place-2shot", "animal", "place", "animal", *_BOX, shots=2),
    _fmt("animal-qa", "animal", "name", "animal", "Q: {e1} has a {v1} and {e2} has a {v2}.",
         " Which animal does {q} have?\nA: a", answer_end="", joiner="\n"),
)
FORMATS_BY_NAME: dict[str, CopyFormat] = {f.name: f for f in FORMATS}
# The formats the default model answers (>= 80% on seed 0's 100 prompts of at least one twin, the other near
# it; see formats_table.md), registered as tasks f"{name}-last" (order agrees) and f"{name}-first" (disagrees).
REGISTERED_FORMATS: tuple[str, ...] = ("colour-of", "colour-coloured", "material-of")


def format_named(name: str) -> CopyFormat:
    fmt = FORMATS_BY_NAME.get(name)
    if fmt is None:
        raise TaskError(f"unknown copy format {name!r}; known: {', '.join(FORMATS_BY_NAME)}")
    return fmt


def _pool(tokenizer: Any, key: str, need: int, what: str, entity: bool = False) -> list[str]:
    """The pool's words that are one token with a leading space, and (entities: they may open a line) without
    one; returned without the space."""
    if key == "name":
        return [w.strip() for w in human_names(tokenizer, need, what)]
    words = [w.strip() for w in single_token_words(tokenizer, POOLS[key])]
    if entity:
        words = [w for w in words if len(encode(tokenizer, w)) == 1]
    if len(words) < need:
        raise TaskError(f"only {len(words)} {key} words are single tokens for this tokenizer; {what} needs {need}")
    return words


MAX_TRIES = 100


def make_copy(tokenizer: Any, n: int = 100, seed: int = 0, fmt: CopyFormat | str = "colour-and-2shot",
              ask: FormatAsk = "last", corruption: Corruption | str = Corruption.MEANING, wording: int = 0) -> Task:
    """Prompts of one copy format (see the module docstring); task name f"{format}-{ask}". `wording` k > 0
    uses the format's k-th rewording (`CopyFormat.worded`): the same draws, another frame."""
    fmt = format_named(fmt) if isinstance(fmt, str) else fmt
    if ask not in ("last", "first"):
        raise TaskError(f"copy-format ask must be 'last' or 'first', got {ask!r}")
    name = f"{fmt.name}-{ask}"
    chosen = parse_corruption(corruption, CORRUPTIONS, name)
    check_wording(wording, fmt.wordings, name)
    fmt = fmt.worded(wording)
    if n < 1:
        raise TaskError(f"task {name!r}: n must be >= 1, got {n}")
    entities = _pool(tokenizer, fmt.entities, 3, name, entity=True)
    values = _pool(tokenizer, fmt.values, 4, name)
    rng, fresh_rng = random.Random(f"{fmt.name}-{seed}"), random.Random(f"{fmt.name}-fresh-{seed}")
    length: int | None = None
    prompts, corrupted, correct, wrong, marks = [], [], [], [], []
    for i in range(n):
        for _ in range(MAX_TRIES):
            # the same draws for both twins: only `asked` below depends on ask
            shots = []
            for _ in range(fmt.shots):
                se1, se2 = rng.sample(entities, 2)
                sv1, sv2 = rng.sample(values, 2)
                first = rng.random() < 0.5
                shots.append(_render(fmt, se1, sv1, se2, sv2, se1 if first else se2)
                             + f" {sv1 if first else sv2}{fmt.answer_end}{fmt.joiner}")
            e1, e2 = rng.sample(entities, 2)
            v1, v2 = rng.sample(values, 2)
            (stranger,) = fresh_words(fresh_rng, entities, (e1, e2), 1, f"{fmt.entities} words")
            x1, x2 = fresh_words(fresh_rng, values, (v1, v2), 2, f"{fmt.values} words")
            head = fmt.prefix + "".join(shots)
            # every variant (both twins, both corruptions) is checked, so which draw is kept depends on
            # neither the twin nor the corruption
            variants = {(q, c): head + (_render(fmt, e1, v1, e2, v2, stranger) if c is Corruption.MEANING
                                        else _render(fmt, e1, x1, e2, x2, q) if c is Corruption.ANSWERS
                                        else _render(fmt, e1, v1, e2, v2, q))
                        for q in (e1, e2) for c in (None, *CORRUPTIONS)}
            sizes = {len(encode(tokenizer, text)) for text in variants.values()}
            size = sizes.pop()
            if not sizes and (length is None or size == length):
                break
        else:
            raise TaskError(f"task {name!r}: prompt {i} found no draw of the common token length {length} in "
                            f"{MAX_TRIES} tries")
        length = size
        asked = e2 if ask == "last" else e1
        prompts.append(variants[asked, None])
        marks.append(_marks(fmt, prompts[-1], len(head), (e1, v1, e2, v2), asked))
        corrupted.append(variants[asked, chosen])
        correct.append(" " + (v2 if ask == "last" else v1))
        wrong.append(" " + (v1 if ask == "last" else v2))
    who = "entity stated last (order agrees)" if ask == "last" else "entity stated first (order disagrees)"
    how = ("queried entity -> a fresh one" if chosen is Corruption.MEANING
           else f"both {fmt.values} words -> fresh ones")
    return task_from_prompts(
        tokenizer, name, prompts, corrupted, correct, wrong,
        f"{fmt.example(ask)}; asks about the {who}; wrong = the other {fmt.values}; corrupted = {how}",
        info={"format": fmt.name, "ask": ask}, corruption=chosen, wording=wording, span_ranges=marks,
        span_names=SPANS if fmt.shots or fmt.prefix else SPANS[1:],
    )


def _marks(fmt: CopyFormat, text: str, head: int, words: tuple[str, str, str, str], asked: str) -> list[CharRange]:
    """The spans of a prompt whose story starts at character `head`: the story's entities and values and the
    queried entity in the order the format states them, and the examples before the story (if any)."""
    e1, v1, e2, v2 = words
    slots = {"e1": ("entity-1", e1), "v1": ("value-1", v1), "e2": ("entity-2", e2), "v2": ("value-2", v2),
             "q": ("queried", asked)}
    template = fmt.story + fmt.query
    stated = sorted((k for k in slots if "{" + k + "}" in template), key=lambda k: template.index("{" + k + "}"))
    return [*locate(text, [slots[k] for k in stated], head), *([("examples", 0, head)] if head else [])]


def _render(fmt: CopyFormat, e1: str, v1: str, e2: str, v2: str, q: str) -> str:
    return (fmt.story + fmt.query).format(e1=e1, v1=v1, e2=e2, v2=v2, q=q)
