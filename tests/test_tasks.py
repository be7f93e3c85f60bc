"""Tasks: builders, generators, registry, evaluation.

Fast tests use the default model's tokenizer alone (converted from the GGUF once, cached); the slow ones
load SmolLM2-135M and check it does IOI and prefers the pet listed last over the pet listed first.
"""

from __future__ import annotations


import pytest
import torch

from acdc_compare.tasks import (
    ORDER_MEANING_PAIRS,
    TASKS,
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
from acdc_compare.tasks.comparison import ANIMAL_SIZES, ATTRIBUTE_PAIRS, NEUTRAL_PREDICATES, SPECIES
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
                 "size", "opposites", "analogy", "greater-than", "induction"):
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


def _ev(name: str, acc: float, ld: float) -> TaskEvaluation:
    return TaskEvaluation(name=name, n=30, accuracy=acc, logit_diff=ld, prob_diff=0.1, p_correct=0.2, kl=0.5,
                          corrupted_logit_diff=0.0)


def test_table_shows_order_meaning_pairs_side_by_side():
    evals = [_ev("pet-last", 0.97, 2.7), _ev("pet-first", 0.43, -0.2), _ev("poorer", 0.9, 1.0),
             _ev("richer", 0.88, 0.9), _ev("ioi", 1.0, 5.0)]
    text = format_tasks_table(evals)
    assert all(e.name in text for e in evals)
    pet = next(line for line in text.splitlines() if line.startswith("pet position "))
    assert "pet-last" in pet and "pet-first" in pet and "97%" in pet and "43%" in pet
    assert pet.endswith("answers by position")
    comp = next(line for line in text.splitlines() if line.startswith("comparative"))
    assert comp.endswith("answers by meaning")
    assert "pet position (middle)" not in text  # pet-middle was not evaluated
    assert "Order vs meaning" not in format_tasks_table(evals, pairs=False)


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
def test_default_model_prefers_the_pet_listed_last(smollm):
    from acdc_compare.tasks import tasks_table

    last, first = tasks_table(smollm, names=["pet-last", "pet-first"], n=30, seed=0)
    assert last.name == "pet-last" and first.name == "pet-first"
    assert last.accuracy > first.accuracy
