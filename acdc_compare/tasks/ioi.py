"""Indirect object identification (Wang et al. 2022), and ACDC's single-template variant.

"When Mary and John went to the store, John gave a drink to" -> " Mary": the model must name the person
mentioned once (the indirect object, IO) rather than the one mentioned twice (the subject, S).
"""

from __future__ import annotations

import random
from typing import Any

from acdc_compare.tasks.base import Corruption, Task, TaskError, check_wording, parse_corruption
from acdc_compare.tasks.build import encode, pad_id, require_pool, task_from_prompts
from acdc_compare.tasks.span_marks import locate

# First names: Wang et al.'s list plus more common English names; filtered to single tokens at build time.
NAMES: tuple[str, ...] = (
    "Michael", "Christopher", "Jessica", "Matthew", "Ashley", "Jennifer", "Joshua", "Amanda", "Daniel", "David",
    "James", "Robert", "John", "Joseph", "Andrew", "Ryan", "Brandon", "Jason", "Justin", "Sarah", "William",
    "Jonathan", "Stephanie", "Brian", "Nicole", "Nicholas", "Anthony", "Heather", "Eric", "Elizabeth", "Adam",
    "Megan", "Melissa", "Kevin", "Steven", "Thomas", "Timothy", "Christina", "Kyle", "Rachel", "Laura",
    "Lauren", "Amber", "Brittany", "Danielle", "Richard", "Kimberly", "Jeffrey", "Amy", "Crystal", "Michelle",
    "Tiffany", "Jeremy", "Benjamin", "Mark", "Emily", "Aaron", "Charles", "Rebecca", "Jacob", "Stephen",
    "Patrick", "Sean", "Erin", "Jamie", "Kelly", "Samantha", "Nathan", "Sara", "Dustin", "Paul", "Angela",
    "Tyler", "Scott", "Katherine", "Andrea", "Gregory", "Erica", "Mary", "Travis", "Lisa", "Kenneth", "Bryan",
    "Lindsey", "Kristen", "Jose", "Alexander", "Jesse", "Katie", "Lindsay", "Shannon", "Vanessa", "Courtney",
    "Christine", "Alicia", "Cody", "Allison", "Bradley", "Samuel", "Emma", "Olivia", "Sophia", "Anna", "Grace",
    "Alice", "Helen", "Julia", "Kate", "Jane", "Lucy", "Ellen", "Susan", "Karen", "Nancy", "Linda", "Carol",
    "Ruth", "Diana", "Peter", "George", "Frank", "Henry", "Jack", "Harry", "Tom", "Sam", "Alex", "Ben", "Dan",
    "Luke", "Simon", "Martin", "Louis", "Victor", "Oliver", "Hugo", "Ethan", "Noah", "Mason", "Logan", "Lucas",
    "Owen", "Carl", "Fred", "Bill", "Joe", "Jim", "Tim", "Ted", "Eva", "Maria", "Rose", "Lily", "Claire",
    "Sophie", "Amelia", "Isabella", "Mia", "Ella", "Hannah", "Abigail",
)
PLACES: tuple[str, ...] = (
    "store", "garden", "restaurant", "school", "hospital", "office", "house", "station", "park", "beach",
    "church", "library", "market", "bank", "hotel", "museum", "airport",
)
OBJECTS: tuple[str, ...] = (
    "ring", "kiss", "bone", "basketball", "computer", "necklace", "drink", "snack", "book", "ball", "gift",
    "letter", "flower", "cake", "phone", "watch", "card", "hat", "key", "pen",
)

# Wang et al.'s 15 templates in BABA order ([B] = subject S, [A] = indirect object IO, the answer).
BABA_TEMPLATES: tuple[str, ...] = (
    "Then, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to",
    "Then, [B] and [A] had a lot of fun at the [PLACE]. [B] gave a [OBJECT] to",
    "Then, [B] and [A] were working at the [PLACE]. [B] decided to give a [OBJECT] to",
    "Then, [B] and [A] were thinking about going to the [PLACE]. [B] wanted to give a [OBJECT] to",
    "Then, [B] and [A] had a long argument, and afterwards [B] said to",
    "After [B] and [A] went to the [PLACE], [B] gave a [OBJECT] to",
    "When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give it to",
    "When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give the [OBJECT] to",
    "While [B] and [A] were working at the [PLACE], [B] gave a [OBJECT] to",
    "While [B] and [A] were commuting to the [PLACE], [B] gave a [OBJECT] to",
    "After the lunch, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to",
    "Afterwards, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to",
    "Then, [B] and [A] had a long argument. Afterwards [B] said to",
    "The [PLACE] [B] and [A] went to had a [OBJECT]. [B] gave it to",
    "Friends [B] and [A] found a [OBJECT] at the [PLACE]. [B] gave it to",
)
# ABBA: the same templates with the first two names swapped ("Then, [A] and [B] ... [B] gave ... to").
def swap_first_names(template: str) -> str:
    """Swap the first [A] and the first [B] of a template (BABA <-> ABBA)."""
    return template.replace("[B]", "[X]", 1).replace("[A]", "[B]", 1).replace("[X]", "[A]", 1)


ABBA_TEMPLATES: tuple[str, ...] = tuple(swap_first_names(t) for t in BABA_TEMPLATES)
# ACDC's setup: one template, 15 tokens without BOS.
ACDC_TEMPLATE = "Then, [A] and [B] went to the [PLACE]. [B] gave a [OBJECT] to"
# Named spans of an IOI prompt (PEAP's): the indirect object, the subject's two mentions, the last token
# (END), and `rest`.
SPANS: tuple[str, ...] = ("IO", "S1", "S2", "END", "rest")


def name_spans(template: str, text: str, io: str, s: str) -> list[tuple[str, int, int]]:
    """The IO, S1 and S2 names' character ranges in a prompt filled from `template` (in template order)."""
    first_is_io = template.index("[A]") < template.index("[B]")
    return locate(text, [("IO", io), ("S1", s), ("S2", s)] if first_is_io else [("S1", s), ("IO", io), ("S2", s)])

# Wordings (BABA form): 0 = Wang et al.'s templates (discovery); 1 and 2 = held-out templates of ours, none
# among Wang et al.'s, with the same three name slots (S, IO, S) and the same question (who receives).
WORDINGS: tuple[tuple[str, ...], ...] = (
    BABA_TEMPLATES,
    (
        "After [B] and [A] arrived at the [PLACE], [B] handed a [OBJECT] to",
        "Yesterday [B] and [A] visited the [PLACE], and [B] passed a [OBJECT] to",
        "At the [PLACE], [B] and [A] found a [OBJECT]. [B] handed it to",
        "Later, [B] and [A] stopped by the [PLACE]. There [B] passed a [OBJECT] to",
    ),
    (
        "Once [B] and [A] reached the [PLACE], [B] threw a [OBJECT] to",
        "Earlier today [B] and [A] walked into the [PLACE], where [B] sent a [OBJECT] to",
        "On a trip to the [PLACE], [B] and [A] bought a [OBJECT], and [B] lent it to",
        "In the [PLACE], [B] and [A] talked for a while. Then [B] brought a [OBJECT] to",
    ),
)
# ACDC's single template and its held-out counterparts (ABBA form, as ACDC runs it).
ACDC_WORDINGS: tuple[str, ...] = (
    ACDC_TEMPLATE,
    "Then, [A] and [B] arrived at the [PLACE]. [B] handed a [OBJECT] to",
    "Later, [A] and [B] walked to the [PLACE]. [B] passed a [OBJECT] to",
)


def fill(template: str, io: str, s1: str, s2: str, place: str, obj: str) -> str:
    """Fill a template: [A] = io, first [B] = s1, second [B] = s2 (names given with their leading space).

    Clean prompts use s1 = s2 = S; the ABC corruption uses three different names.
    """
    text = template.replace(" [A]", io).replace(" [B]", s1, 1).replace(" [B]", s2, 1)
    return text.replace(" [PLACE]", place).replace(" [OBJECT]", obj)


def make_ioi(tokenizer: Any, n: int = 100, seed: int = 0,
             templates: tuple[str, ...] | None = None, orders: tuple[str, ...] = ("ABBA", "BABA"),
             name: str = "ioi", description: str | None = None,
             corruption: Corruption | str = Corruption.ANSWERS, wording: int = 0) -> Task:
    """IOI after Wang et al.: their 15 templates, half in ABBA and half in BABA order, with ABC corruption.

    Probes name moving: the answer is the name mentioned once (IO, correct) against the repeated subject
    (S, wrong). Corrupted prompts replace the three name mentions by three other, mutually different names
    (Wang et al.'s ABC dataset: same template, place and object), which removes which-name-is-repeated, the
    information the answer depends on. The templates differ in length, so prompts are right-padded and each
    is scored at its own last token (`info["lengths"]`); names, places and objects are single tokens, so a
    prompt and its corrupted twin always have the same length.
    `wording` picks the template set (`WORDINGS`: 0 = Wang et al.'s, 1 and 2 = held-out templates of ours);
    `templates` overrides it (BABA form; ABBA is derived by swapping the first two names; `wording` then only
    labels the task); prompt i uses order `orders[i % len(orders)]`. ABC is the only corruption offered
    ("answers").
    Spans (`Task.spans`): IO, S1, S2 (the names), END (the last token) and rest.
    """
    chosen = parse_corruption(corruption, (Corruption.ANSWERS,), name)
    check_wording(wording, len(WORDINGS), name)
    if n < 1:
        raise TaskError(f"task {name!r}: n must be >= 1, got {n}")
    if not orders or any(o not in ("ABBA", "BABA") for o in orders):
        raise TaskError(f"task {name!r}: orders must be a non-empty tuple of 'ABBA' / 'BABA', got {orders!r}")
    baba = tuple(templates) if templates is not None else WORDINGS[wording]
    abba = tuple(swap_first_names(t) for t in baba)
    names = require_pool(tokenizer, NAMES, 5, "IOI names")
    places = require_pool(tokenizer, PLACES, 1, "IOI places")
    objects = require_pool(tokenizer, OBJECTS, 1, "IOI objects")
    rng = random.Random(seed)
    prompts, corrupted, correct, wrong = [], [], [], []
    order_used, template_ids, marks = [], [], []
    for i in range(n):
        order = orders[i % len(orders)]
        k = rng.randrange(len(baba))
        template = (abba if order == "ABBA" else baba)[k]
        io, s, x, y, z = rng.sample(names, 5)
        place, obj = rng.choice(places), rng.choice(objects)
        prompts.append(fill(template, io, s, s, place, obj))
        marks.append(name_spans(template, prompts[-1], io, s))
        # ABC: the name in IO's slot, S's first slot and S's second slot become three unrelated names.
        corrupted.append(fill(template, x, y, z, place, obj))
        correct.append(io)
        wrong.append(s)
        order_used.append(order)
        template_ids.append(k)
    lengths = {len(encode(tokenizer, p)) for p in prompts}
    source = "Wang et al., 15 templates" if wording == 0 else f"{len(baba)} held-out templates"
    text = description or (f"indirect object identification ({source}, ABBA+BABA); "
                           "correct = IO, wrong = S; corrupted = ABC (three other names)")
    return task_from_prompts(
        tokenizer, name, prompts, corrupted, correct, wrong, text,
        pad_token_id=pad_id(tokenizer) if len(lengths) > 1 else None,
        info={"orders": order_used, "templates": template_ids, "io": correct, "s": wrong},
        corruption=chosen, wording=wording, span_names=SPANS, span_ranges=marks,
    )


def make_ioi_acdc(tokenizer: Any, n: int = 100, seed: int = 0,
                  corruption: Corruption | str = Corruption.ANSWERS, wording: int = 0) -> Task:
    """ACDC's IOI variant: one template, "Then, [A] and [B] went to the [PLACE]. [B] gave a [OBJECT] to",
    ABBA order only (as ACDC's `IOIDataset(prompt_type="ABBA", nb_templates=1)`), 15 tokens for GPT-2 and
    the default model; ABC corruption as in `make_ioi`. Use it to compare with the ACDC paper's numbers
    (GPT-2 small: logit difference ~4.11). Wordings 1 and 2 are one held-out template each
    (`ACDC_WORDINGS`)."""
    name = "ioi-acdc"
    template = ACDC_WORDINGS[check_wording(wording, len(ACDC_WORDINGS), name)]
    shown = template.replace("[", "").replace("]", "")
    return make_ioi(tokenizer, n=n, seed=seed, templates=(swap_first_names(template),), orders=("ABBA",),
                    name=name, corruption=corruption, wording=wording,
                    description=f"IOI, {'ACDC' if wording == 0 else 'a held-out'} single template {shown!r} "
                                "(ABBA); corrupted = ABC (three other names)")
