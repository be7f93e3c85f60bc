"""Tasks: builders, generators, registry, evaluation.

Fast tests use the default model's tokenizer alone (converted from the GGUF once, cached); the slow ones
load SmolLM2-135M and check it does IOI and prefers the pet listed last over the pet listed first.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from acdc_compare.api import resolve_task
from acdc_compare.stats import Proportion, wilson_interval
from acdc_compare.tasks import (
    ORDER_MEANING_PAIRS,
    TASKS,
    Corruption,
    Task,
    TaskError,
    TaskEvaluation,
    evaluate_task,
    format_tasks_table,
    make_task,
    single_token_words,
    task_from_prompts,
)
from acdc_compare.tasks.build import encode, pad_id
from acdc_compare.tasks.recall import make_recall
from acdc_compare.tasks.registry import verdict
from acdc_compare.tasks.comparison_words import (
    ANIMAL_SIZES,
    ATTRIBUTE_PAIRS,
    NEUTRAL_PREDICATES,
    PET_NAMES,
    SPECIES,
    VERBS,
)
from acdc_compare.tasks.ioi import NAMES
from conftest import make_tiny, random_tokens

N = 40


@pytest.fixture(scope="session")
def tok():
    """The default model's tokenizer, without loading the model."""
    import transformers

    from acdc_compare.backends.gguf import convert_gguf

    return transformers.AutoTokenizer.from_pretrained(str(convert_gguf()))


@pytest.fixture(scope="session")
def built(tok):
    """Every registered task, built once with N prompts (seed 0)."""
    return {name: make_task(name, tok, n=N, seed=0) for name in TASKS}


@pytest.fixture(scope="session")
def built_answers(tok):
    """Every task offering the answers corruption, built with it (N prompts, seed 0)."""
    return {name: make_task(name, tok, n=N, seed=0, corruption="answers") for name, spec in TASKS.items()
            if Corruption.ANSWERS in spec.corruptions}


class WordTokenizer:
    """A tiny hand-made tokenizer: a fixed vocabulary of words (with or without a leading space) and
    punctuation; any other word splits into one token per character, so it is never a single token."""

    def __init__(self, words: list[str]) -> None:
        pieces = [".", ",", ":", " is", "\n"] + [w for word in words for w in (word, " " + word)]
        self.vocab = {p: i for i, p in enumerate(dict.fromkeys(pieces))}
        self.chars = {c: len(self.vocab) + i for i, c in enumerate(map(chr, range(32, 127)))}
        self.inverse = {**{i: p for p, i in self.vocab.items()}, **{i: c for c, i in self.chars.items()}}

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        out: list[int] = []
        for piece in re.findall(r" ?[A-Za-z]+|[^A-Za-z]", text):
            out += [self.vocab[piece]] if piece in self.vocab else [self.chars[c] for c in piece]
        return out

    def decode(self, ids: list[int]) -> str:
        return "".join(self.inverse[i] for i in ids)


TINY_NAMES, TINY_PAIRS, TINY_VERBS = NAMES[:8], ATTRIBUTE_PAIRS[:4], VERBS[:6]


@pytest.fixture(scope="session")
def word_tok() -> WordTokenizer:
    return WordTokenizer([*TINY_NAMES, *(w for pair in TINY_PAIRS for w in pair), *TINY_VERBS])


def one(tok, text: str) -> int:
    ids = encode(tok, text)
    assert len(ids) == 1, (text, ids)
    return ids[0]


# ----- builders --------------------------------------------------------------------------------------------
def test_task_from_prompts_scores_the_last_token(tok):
    task = task_from_prompts(tok, "t", ["When Mary and John left, John thanked"] * 2,
                             ["When Anna and Paul left, Mark thanked"] * 2, [" Mary", " Mary"], [" John", None])
    assert task.seq_len == len(encode(tok, "When Mary and John left, John thanked"))
    assert task.positions.tolist() == [[task.seq_len - 1]] * 2
    assert task.correct[:, 0].tolist() == [one(tok, " Mary")] * 2
    assert task.wrong[:, 0].tolist() == [one(tok, " John"), -1]
    assert not (task.clean == task.corrupted).all()


def test_unequal_prompt_lengths_name_the_prompt(tok):
    short, long = "The cat sat", "The cat sat on the mat"
    with pytest.raises(TaskError) as err:
        task_from_prompts(tok, "t", [short, long], [short, long], [" a", " a"], [" b", " b"])
    msg = str(err.value)
    assert repr(long) in msg and str(len(encode(tok, long))) in msg and str(len(encode(tok, short))) in msg


def test_corrupted_twin_of_other_length_names_the_prompt(tok):
    with pytest.raises(TaskError) as err:
        task_from_prompts(tok, "t", ["The cat sat"], ["The big cat sat down"], [" a"], [" b"])
    assert "'The big cat sat down'" in str(err.value) and "twin" in str(err.value)


def test_multi_token_answer_names_the_answer_and_its_pieces(tok):
    assert len(encode(tok, " Pebbles")) > 1
    with pytest.raises(TaskError) as err:
        task_from_prompts(tok, "t", ["The dog is"], ["The cat is"], [" Pebbles"], [" Max"])
    msg = str(err.value)
    assert "' Pebbles'" in msg and "'The dog is'" in msg
    assert all(repr(piece) in msg for piece in [tok.decode([i]) for i in encode(tok, " Pebbles")])


def test_padding_scores_each_prompt_at_its_own_last_token(tok):
    prompts = ["The cat sat", "The cat sat on the mat"]
    task = task_from_prompts(tok, "t", prompts, prompts, [" a", " a"], [" b", " b"], pad_token_id=pad_id(tok))
    lengths = [len(encode(tok, p)) for p in prompts]
    assert task.positions[:, 0].tolist() == [n - 1 for n in lengths]
    assert (task.clean[0, lengths[0]:] == pad_id(tok)).all()


def test_single_token_words_filters_and_adds_the_space(tok):
    words = single_token_words(tok, ["Max", " Max", "Pebbles", "Bella"])
    assert words == [" Max", " Bella"]


# ----- registry tasks ----------------------------------------------------------------------------------------
def test_registry_names_and_unknown_name(tok):
    for name in ("ioi", "ioi-acdc", "pet-last", "pet-middle", "pet-first", "poorer", "richer", "attribute",
                 "size", "opposites", "analogy", "adjective-last", "adjective-first", "verb-last", "verb-first",
                 "greater-than", "induction"):
        assert name in TASKS and TASKS[name].description
    with pytest.raises(TaskError, match="known tasks: ioi, ioi-acdc"):
        make_task("no-such-task", tok)
    for pair in ORDER_MEANING_PAIRS:
        assert pair.agree_task in TASKS and pair.disagree_task in TASKS


@pytest.mark.parametrize("name", list(TASKS))
def test_generators_are_deterministic_under_a_seed(tok, built, name):
    again, other = make_task(name, tok, n=N, seed=0), make_task(name, tok, n=N, seed=1)
    first = built[name]
    for attr in ("clean", "corrupted", "positions", "correct", "wrong"):
        assert torch.equal(getattr(first, attr), getattr(again, attr)), attr
    assert first.prompts == again.prompts and first.correct_sets == again.correct_sets
    assert not torch.equal(first.clean, other.clean)


@pytest.mark.parametrize("name", list(TASKS))
def test_equal_lengths_and_single_token_answers(tok, built, name):
    task = built[name]
    assert task.n_prompts == N
    if name == "induction":
        length = task.info["length"]
        assert task.seq_len == 2 * length and task.positions.shape == (N, length - 1)
        assert torch.equal(task.correct, task.clean.gather(1, task.positions + 1))
        assert (task.wrong == -1).all()
        return
    lengths = [len(encode(tok, p)) for p in task.prompts]
    assert lengths == [len(encode(tok, p)) for p in task.corrupted_prompts]
    assert task.positions[:, 0].tolist() == [n - 1 for n in lengths]
    if name == "ioi":  # Wang et al.'s templates differ in length: right-padded, scored at explicit positions
        assert len(set(lengths)) > 1
    else:
        assert set(lengths) == {task.seq_len}, f"{name}: prompts of one task must share one length"
    for i, prompt in enumerate(task.prompts):
        assert task.clean[i, : lengths[i]].tolist() == encode(tok, prompt)
    for answers, ids in ((task.info["correct_answers"], task.correct), (task.info["wrong_answers"], task.wrong)):
        for answer, token in zip(answers, ids[:, 0].tolist()):
            assert encode(tok, answer) == [token]
    assert (task.correct != task.wrong).all()


def _differing(task: Task, i: int) -> list[int]:
    return torch.nonzero(task.clean[i] != task.corrupted[i]).flatten().tolist()


# ----- corruptions ---------------------------------------------------------------------------------------
def test_corruption_is_a_validated_choice_recorded_on_the_task(tok, built, built_answers):
    assert {n for n, s in TASKS.items() if Corruption.ANSWERS in s.corruptions} >= {
        "pet-last", "pet-middle", "pet-first", "poorer", "richer", "attribute", "size", "opposites", "analogy",
        "adjective-last", "adjective-first", "verb-last", "verb-first", "ioi"}
    for name, spec in TASKS.items():
        assert built[name].corruption is spec.default_corruption
        assert len(set(spec.corruptions)) == len(spec.corruptions) >= 1
    assert built["pet-last"].corruption is Corruption.MEANING and built["ioi"].corruption is Corruption.ANSWERS
    assert built_answers["pet-last"].corruption is Corruption.ANSWERS
    assert built_answers["pet-last"].subset(3).corruption is Corruption.ANSWERS
    with pytest.raises(TaskError, match="task 'pet-last' has no corruption 'bogus'; it offers: meaning, answers"):
        make_task("pet-last", tok, n=2, corruption="bogus")
    with pytest.raises(TaskError, match="it offers: answers$"):
        make_task("ioi", tok, n=2, corruption="meaning")
    with pytest.raises(TaskError, match="offers: meaning$"):
        make_task("greater-than", tok, n=2, corruption=Corruption.ANSWERS)


def test_a_task_value_keeps_its_own_corruption(built):
    task = built["pet-last"]
    assert resolve_task(task, model=None, corruption="meaning") is task
    with pytest.raises(TaskError, match="built with corruption 'meaning'"):
        resolve_task(task, model=None, corruption="answers")


ANSWER_SLOTS = {"pet-last": 3, "pet-middle": 3, "pet-first": 3, "poorer": 1, "richer": 1, "attribute": 2,
                "size": 2, "opposites": 1, "analogy": 3, "adjective-last": 2, "adjective-first": 2,
                "verb-last": 2, "verb-first": 2, "ioi": 3, "ioi-acdc": 3}
KEEPS_FIRST = {"poorer", "richer"}  # their first name opens the prompt: the attention sink stays as it was


@pytest.mark.parametrize("name", list(ANSWER_SLOTS))
def test_answers_corruption_replaces_the_candidate_answers_only(built, built_answers, name):
    clean, task = built[name], built_answers[name]
    assert torch.equal(task.clean, clean.clean) and task.prompts == clean.prompts  # same clean prompts
    assert not torch.equal(task.corrupted, clean.corrupted) or clean.corruption is Corruption.ANSWERS
    for i in range(task.n_prompts):
        diff = _differing(task, i)
        length = task.positions[i, 0] + 1
        prompt, corrupted = task.clean[i, :length].tolist(), task.corrupted[i, :length].tolist()
        answers = {int(task.correct[i, 0]), int(task.wrong[i, 0])}
        if name in KEEPS_FIRST:
            assert prompt[0] == corrupted[0]
            answers.discard(int((task.wrong if name == "poorer" else task.correct)[i, 0]))  # the first-named
        assert len(diff) == ANSWER_SLOTS[name], (name, i, diff)
        assert not answers & set(corrupted), f"{name} prompt {i}: a clean answer survives the corruption"
        assert {p for p, t in enumerate(prompt) if t in answers} <= set(diff)  # every answer mention replaced
        fresh = {corrupted[p] for p in diff}
        assert not fresh & set(prompt) and len(fresh) == len(diff), f"{name} {i}: replacements must be fresh"


def test_answers_corruption_keeps_the_kind_of_each_word(tok, built_answers):
    pets = {one(tok, w) for w in single_token_words(tok, PET_NAMES)}
    sizes = {one(tok, w): ANIMAL_SIZES[w.strip()] for w in single_token_words(tok, list(ANIMAL_SIZES))}
    for name in ("pet-last", "pet-first"):
        task = built_answers[name]
        for i in range(task.n_prompts):
            was = [int(task.clean[i, p]) in pets for p in _differing(task, i)]
            now = [int(task.corrupted[i, p]) in pets for p in _differing(task, i)]
            assert was == now and sum(now) == 1  # the pet becomes a pet name, the humans human names
    task = built_answers["size"]
    for i in range(task.n_prompts):
        a, b = _differing(task, i)
        clean_order = sizes[int(task.clean[i, a])] > sizes[int(task.clean[i, b])]
        assert clean_order == (sizes[int(task.corrupted[i, a])] > sizes[int(task.corrupted[i, b])])


def test_recall_meaning_corruption_replaces_only_the_queried_name(tok, built):
    names = {one(tok, w) for w in single_token_words(tok, NAMES)}
    for name in ("adjective-last", "adjective-first", "verb-last", "verb-first"):
        task = built[name]
        for i in range(task.n_prompts):
            (pos,) = _differing(task, i)
            assert pos == task.seq_len - (2 if name.startswith("adjective") else 1)
            new = int(task.corrupted[i, pos])
            assert new in names and new not in task.clean[i].tolist()


# ----- adjective and verb recall on a hand-made tokenizer ------------------------------------------------
@pytest.mark.parametrize("kind", ["adjective", "verb"])
@pytest.mark.parametrize("ask", ["last", "first"])
def test_recall_prompts_tokenize_as_designed(word_tok, kind, ask):
    task = make_recall(word_tok, n=12, seed=3, kind=kind, ask=ask)
    answers = make_recall(word_tok, n=12, seed=3, kind=kind, ask=ask, corruption="answers")
    v = word_tok.vocab
    is_, dot = [v[" is"]] if kind == "adjective" else [], v["."]
    words = ({v[" " + w] for pair in TINY_PAIRS for w in pair} if kind == "adjective"
             else {v[" " + w] for w in TINY_VERBS})
    first_names, names = {v[w] for w in TINY_NAMES}, {v[" " + w] for w in TINY_NAMES}
    w = len(is_)
    assert task.seq_len == 7 + 3 * w and task.name == f"{kind}-{ask}"
    for i in range(task.n_prompts):
        ids = task.clean[i].tolist()
        a, b, q = ids[0], ids[3 + w], ids[6 + 2 * w]
        x, y = ids[1 + w], ids[4 + 2 * w]
        assert ids == [a, *is_, x, dot, b, *is_, y, dot, q, *is_]
        assert a in first_names and {b, q} <= names and x in words and y in words and x != y
        assert word_tok.decode([q]).strip() == word_tok.decode([a if ask == "first" else b]).strip()
        assert (int(task.correct[i, 0]), int(task.wrong[i, 0])) == ((x, y) if ask == "first" else (y, x))
        fresh = answers.corrupted[i].tolist()
        assert fresh[: 1 + w] + fresh[2 + w: 4 + 2 * w] + fresh[5 + 2 * w:] == \
            ids[: 1 + w] + ids[2 + w: 4 + 2 * w] + ids[5 + 2 * w:]
        assert {fresh[1 + w], fresh[4 + 2 * w]} <= words and not {fresh[1 + w], fresh[4 + 2 * w]} & {x, y}
    again = make_recall(word_tok, n=12, seed=3, kind=kind, ask=ask)
    assert torch.equal(again.clean, task.clean) and torch.equal(again.corrupted, task.corrupted)
    assert not torch.equal(make_recall(word_tok, n=12, seed=4, kind=kind, ask=ask).clean, task.clean)


@pytest.mark.parametrize("kind", ["adjective", "verb"])
@pytest.mark.parametrize("ask", ["last", "first"])
def test_recall_with_solved_examples_puts_them_first_and_keeps_the_question(word_tok, kind, ask):
    """Two solved examples (other names and words, the same question) precede the 0-shot prompt, and both
    corruptions leave them as they are."""
    plain = make_recall(word_tok, n=8, seed=3, kind=kind, ask=ask, corruption="answers")
    shot = make_recall(word_tok, n=8, seed=3, kind=kind, ask=ask, corruption="answers", shots=2)
    meaning = make_recall(word_tok, n=8, seed=3, kind=kind, ask=ask, shots=2)
    assert shot.name == f"{kind}-{ask}-2shot"
    for i in range(8):
        lines = shot.prompts[i].split("\n")
        assert len(lines) == 3 and lines[2] == plain.prompts[i]
        assert shot.corrupted_prompts[i].split("\n")[:2] == lines[:2] == meaning.corrupted_prompts[i].split("\n")[:2]
        assert shot.corrupted_prompts[i].split("\n")[2] == plain.corrupted_prompts[i]
        for line in lines[:2]:
            sentences = [x.strip() for x in line.split(".") if x.strip()]
            first, second, answer = sentences
            assert answer == (second if ask == "last" else first)  # solved: the queried person's own word
            people = {first.split()[0], second.split()[0]}
            assert not people & {w for w in lines[2].replace(".", " ").split()}  # other names than the prompt's
        assert torch.equal(shot.correct[i], plain.correct[i]) and torch.equal(shot.wrong[i], plain.wrong[i])
    with pytest.raises(TaskError, match="shots"):
        make_recall(word_tok, kind=kind, shots=5)


def test_recall_refuses_bad_options_and_small_pools(word_tok):
    with pytest.raises(TaskError, match="'adjective' or 'verb'"):
        make_recall(word_tok, kind="noun")  # type: ignore[arg-type]
    with pytest.raises(TaskError, match="'last' or 'first'"):
        make_recall(word_tok, ask="middle")  # type: ignore[arg-type]
    tiny = WordTokenizer([*TINY_NAMES, *TINY_VERBS[:3]])
    with pytest.raises(TaskError, match="only 3 of the .* verbs are single tokens"):
        make_recall(tiny, kind="verb")


def test_ioi_corruption_replaces_exactly_the_names(tok, built):
    for name in ("ioi", "ioi-acdc"):
        task = built[name]
        for i in range(task.n_prompts):
            io, s = one(tok, task.info["io"][i]), one(tok, task.info["s"][i])
            names_at = torch.nonzero((task.clean[i] == io) | (task.clean[i] == s)).flatten().tolist()
            assert len(names_at) == 3 and _differing(task, i) == names_at
            replaced = task.corrupted[i, names_at].tolist()
            assert len(set(replaced)) == 3 and not {io, s} & set(replaced)
    orders = built["ioi"].info["orders"]
    assert orders.count("ABBA") == orders.count("BABA") == N // 2
    assert set(built["ioi-acdc"].info["orders"]) == {"ABBA"} and built["ioi-acdc"].seq_len == 15


def test_pet_corruption_changes_only_the_species(tok, built):
    species = {one(tok, w) for w in single_token_words(tok, SPECIES)}
    human = one(tok, " human")
    for name in ("pet-last", "pet-middle", "pet-first"):
        task = built[name]
        for i in range(task.n_prompts):
            (pos,) = _differing(task, i)
            assert int(task.clean[i, pos]) in species and int(task.corrupted[i, pos]) == human
    # same content, different order: the pet's line moves, the answers stay
    a, b = built["pet-last"], built["pet-first"]
    assert torch.equal(a.correct, b.correct) and torch.equal(a.wrong, b.wrong)
    assert sorted(a.clean[0].tolist()) == sorted(b.clean[0].tolist())


def test_relation_corruptions_change_exactly_the_relation(tok, built):
    than = one(tok, " than")
    for name in ("poorer", "richer", "size"):
        task = built[name]
        for i in range(task.n_prompts):
            diff = _differing(task, i)
            assert len(diff) == 2 and diff[1] == diff[0] + 1 and int(task.clean[i, diff[1]]) == than
    poorer, richer = built["poorer"], built["richer"]
    # "opposite" asks for the second-named person, "same" for the first-named
    for task, named_index in ((poorer, 1), (richer, 0)):
        for prompt, answer in zip(task.prompts, task.info["correct_answers"]):
            names = [prompt.split(" is ")[0], prompt.split(" than ")[1].split(".")[0]]
            assert answer.strip() == names[named_index]


def test_attribute_corruption_replaces_both_adjectives_by_one_neutral_word(tok, built):
    adjectives = {one(tok, w) for pair in ATTRIBUTE_PAIRS for w in single_token_words(tok, pair)}
    neutral = {one(tok, w) for w in single_token_words(tok, NEUTRAL_PREDICATES)}
    task = built["attribute"]
    for i in range(task.n_prompts):
        diff = _differing(task, i)
        assert len(diff) == 2 and {int(t) for t in task.clean[i, diff]} <= adjectives
        z = task.corrupted[i, diff].tolist()
        assert z[0] == z[1] and z[0] in neutral
    assert 0 < sum(task.info["asks_first"]) < N


def test_size_statements_are_true_and_asked_both_ways(built):
    task = built["size"]
    for prompt, answer, wrong in zip(task.prompts, task.info["correct_answers"], task.info["wrong_answers"]):
        bigger = "bigger animal" in prompt
        big, small = (answer, wrong) if bigger else (wrong, answer)
        assert ANIMAL_SIZES[big.strip()] - ANIMAL_SIZES[small.strip()] >= 2
    assert 0 < sum("bigger animal" in p for p in task.prompts) < N


def test_cue_corruptions_change_one_word(tok, built):
    for name, cue_pos in (("opposites", 3), ("analogy", None)):
        task = built[name]
        for i in range(task.n_prompts):
            (pos,) = _differing(task, i)
            if cue_pos is not None:
                assert pos == cue_pos
            new = int(task.corrupted[i, pos])
            assert new not in (int(task.correct[i, 0]), int(task.wrong[i, 0]))
            assert int(task.clean[i, pos]) == int(task.wrong[i, 0])  # the cue is the wrong answer


def test_greater_than_sets_and_corruption(tok, built):
    task = built["greater-than"]
    assert task.correct_sets is not None and task.wrong_sets is not None
    zero, one_ = one(tok, "0"), one(tok, "1")
    for i, yy in enumerate(task.info["yy"]):
        assert 10 <= yy <= 89
        above = [int(tok.decode([t])) for t in task.correct_sets[i]]
        not_above = [int(tok.decode([t])) for t in task.wrong_sets[i]]
        assert above and not_above and not set(above) & set(not_above)
        assert all(10 * e > yy for e in above) and all(10 * e + 9 <= yy for e in not_above)
        assert len(above) + len(not_above) >= 9  # at most the straddling digit is left out
        assert int(task.correct[i, 0]) in task.correct_sets[i] and int(task.wrong[i, 0]) in task.wrong_sets[i]
        diff = _differing(task, i)
        yy_at = [task.seq_len - 6, task.seq_len - 5]  # "... 1 7 Y Y _to _ 1 7": the YY digits
        assert diff and set(diff) <= set(yy_at)
        assert task.corrupted[i, yy_at].tolist() == [zero, one_]


def test_induction_corrupts_only_the_first_copy(built):
    task = built["induction"]
    length = task.info["length"]
    assert torch.equal(task.clean[:, :length], task.clean[:, length:])
    assert torch.equal(task.clean[:, length:], task.corrupted[:, length:])
    for i in range(task.n_prompts):
        assert not set(task.corrupted[i, :length].tolist()) & set(task.clean[i].tolist())
        assert len(set(task.clean[i, :length].tolist())) == length


# ----- evaluation and the table --------------------------------------------------------------------------------
def test_evaluate_task_matches_a_direct_computation():
    model = make_tiny("gpt2", dtype=torch.float64)
    clean = random_tokens(6, 7, seed=3)
    corrupted = clean.clone()
    corrupted[:, 1:4] = random_tokens(6, 3, seed=4)
    task = Task("tiny", clean, corrupted, positions=torch.full((6,), 6), correct=clean[:, 2], wrong=clean[:, 0])
    ev = evaluate_task(model, task)
    with torch.no_grad():
        lc = model(clean, return_type="logits")[:, -1]
        lk = model(corrupted, return_type="logits")[:, -1]
    idx = torch.arange(6)
    diff = lc[idx, clean[:, 2]] - lc[idx, clean[:, 0]]
    assert ev.n == 6 and ev.accuracy == pytest.approx(float((diff > 0).double().mean()))
    assert ev.logit_diff == pytest.approx(float(diff.mean()), abs=1e-9)
    kl = (lc.softmax(-1) * (lc.log_softmax(-1) - lk.log_softmax(-1))).sum(-1).mean()
    assert ev.kl == pytest.approx(float(kl), abs=1e-9)
    # no wrong answers: top-1 accuracy, no logit difference
    induction = Task("tiny-ind", clean, corrupted, positions=torch.tensor([[4, 5]] * 6), correct=clean[:, 5:7],
                     wrong=torch.full((6, 2), -1))
    ev2 = evaluate_task(model, induction, batch_size=4)
    with torch.no_grad():
        top = model(clean, return_type="logits")[:, 4:6].argmax(-1)
    assert ev2.logit_diff is None and ev2.accuracy == pytest.approx(float((top == clean[:, 5:7]).double().mean()))


def _ev(name: str, acc: float, ld: float, corruption: str = "meaning", kl: float = 0.5) -> TaskEvaluation:
    return TaskEvaluation(name=name, n=30, accuracy=acc, logit_diff=ld, prob_diff=0.1, p_correct=0.2, kl=kl,
                          corrupted_logit_diff=0.0, corruption=corruption)


def test_table_has_a_row_per_corruption():
    evals = [_ev("pet-last", 0.97, 2.7, "meaning", 0.034), _ev("pet-last", 0.97, 2.7, "answers", 5.07),
             _ev("pet-first", 0.43, -0.2)]
    lines = format_tasks_table(evals).splitlines()
    meaning = next(line for line in lines if line.startswith("pet-last"))
    answers = lines[lines.index(meaning) + 1]
    assert "meaning" in meaning and "0.034" in meaning and "97%" in meaning
    assert answers.split() == ["answers", "5.070", "0.00"]  # clean columns only on the task's first row
    pair = next(line for line in lines if line.startswith("pet position "))
    assert "97% [84-100%]" in pair and pair.endswith("partly by position")  # 43% of 30: 27-60%, holds chance


def test_table_shows_order_meaning_pairs_side_by_side():
    evals = [_ev("pet-last", 0.97, 2.7), _ev("pet-first", 0.43, -0.2), _ev("poorer", 0.9, 1.0),
             _ev("richer", 0.88, 0.9), _ev("ioi", 1.0, 5.0)]
    text = format_tasks_table(evals)
    assert all(e.name in text for e in evals)
    pet = next(line for line in text.splitlines() if line.startswith("pet position "))
    assert "pet-last" in pet and "pet-first" in pet and "97%" in pet and "43%" in pet
    assert pet.endswith("partly by position")
    comp = next(line for line in text.splitlines() if line.startswith("comparative"))
    assert comp.endswith("answers by meaning")
    assert "pet position (middle)" not in text  # pet-middle was not evaluated
    assert "Order vs meaning" not in format_tasks_table(evals, pairs=False)


def test_wilson_interval_known_values_and_edges():
    assert wilson_interval(0.65, 20) == pytest.approx((0.4329, 0.8188), abs=1e-4)  # by hand: 0.6258 -+ 0.1930
    assert wilson_interval(0.0, 20)[0] == 0.0 and wilson_interval(1.0, 20)[1] == 1.0
    assert wilson_interval(0.5, 0) == (0.0, 1.0)
    p = Proportion(0.65, 20)
    assert p.short() == "65% [43-82%]" and p.describe() == "65% (95% CI 43-82%, n=20)"
    assert p.overlaps(Proportion(0.8, 20)) and not p.overlaps(Proportion(0.05, 20))
    narrow = Proportion(0.65, 2000)  # the same accuracy on many prompts: a narrow interval, clearly above chance
    assert narrow.above(0.5) and not p.above(0.5)
    with pytest.raises(ValueError, match="proportion"):
        wilson_interval(1.2, 10)


def test_order_meaning_verdicts_carry_their_uncertainty():
    """Issue 22 row 6: 65% vs 65% on 20 prompts was 'answers by meaning'; its intervals (43-82%) hold chance."""
    def pair(agree: float, disagree: float, n: int) -> str:
        evals = [_ev("adjective-last", agree, 0.2), _ev("adjective-first", disagree, 0.3)]
        evals = [dataclasses.replace(e, n=n) for e in evals]
        line = next(x for x in format_tasks_table(evals).splitlines() if x.startswith("adjective recall"))
        assert f" {n} " in line and verdict(*evals) in line
        return verdict(*evals)

    assert pair(0.65, 0.65, 20).startswith("no clear preference")
    assert pair(0.65, 0.65, 2000) == "answers by meaning"
    assert pair(0.9, 0.85, 40) == "answers by meaning"
    assert pair(0.8, 0.15, 20) == "answers by position"
    assert pair(0.97, 0.43, 30) == "partly by position"
    assert pair(0.98, 0.75, 200) == "mostly by meaning, partly by position"
    assert pair(0.8, 0.45, 20).startswith("no clear preference")  # intervals overlap, disagree's holds chance


# ----- on the default model (slow) ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smollm():
    from acdc_compare.backends import load_model

    return load_model()


@pytest.mark.slow
def test_default_model_does_ioi(smollm):
    from acdc_compare.backends import tokenizer

    ev = evaluate_task(smollm, make_task("ioi", tokenizer(smollm), n=30, seed=0))
    assert ev.accuracy > 0.9 and ev.logit_diff is not None and ev.logit_diff > 3
    assert ev.kl > 0.5  # ABC removes the information the answer depends on


@pytest.mark.slow
def test_default_model_pet_answers_corruption_moves_the_output_more(smollm):
    from acdc_compare.tasks import tasks_table

    meaning, answers = tasks_table(smollm, names=["pet-last"], n=20, seed=0)
    assert (meaning.corruption, answers.corruption) == ("meaning", "answers")
    assert answers.kl > meaning.kl  # the pet's species barely matters to the model; its name does


@pytest.mark.slow
def test_default_model_tokenizer_builds_the_recall_tasks(smollm):
    from acdc_compare.backends import tokenizer

    tok = tokenizer(smollm)
    for name in ("adjective-last", "adjective-first", "verb-last", "verb-first", "verb-last-2shot",
                 "adjective-first-2shot"):
        for corruption in TASKS[name].corruptions:
            task = make_task(name, tok, n=20, seed=0, corruption=corruption)
            for i, prompt in enumerate(task.prompts):
                ids = encode(tok, prompt)
                assert task.clean[i].tolist() == ids
                per_line = 10 if name.startswith("adjective") else 7  # one token per word and dot
                assert len(ids) == (2 * (per_line + 3) + per_line if "shot" in name else per_line)  # + word . \n
                assert encode(tok, task.corrupted_prompts[i]) == task.corrupted[i].tolist()
                for answer in (task.info["correct_answers"][i], task.info["wrong_answers"][i]):
                    assert len(encode(tok, answer)) == 1 and encode(tok, answer)[0] in ids


@pytest.mark.slow
def test_default_model_prefers_the_pet_listed_last(smollm):
    from acdc_compare.tasks import tasks_table

    last, first = tasks_table(smollm, names=["pet-last", "pet-first"], n=30, seed=0, corruptions="default")
    assert last.name == "pet-last" and first.name == "pet-first"
    assert last.accuracy > first.accuracy


def test_tasks_table_takes_the_corruption_a_mapping_gives_each_task(tiny_dir):
    from acdc_compare.api import get_model
    from acdc_compare.tasks.registry import tasks_table

    model = get_model(str(tiny_dir))
    evals = tasks_table(model, names=["ioi", "pet-last", "pet-first"], n=4,
                        corruptions={"pet-last": Corruption.ANSWERS})
    assert [(e.name, e.corruption) for e in evals] == [("ioi", "answers"), ("pet-last", "answers"),
                                                      ("pet-first", "meaning")]
    with pytest.raises(ValueError, match="corruptions must be"):
        tasks_table(model, names=["ioi"], n=4, corruptions="some")  # type: ignore[arg-type]
