"""Held-out wordings (issue #33 item 7): every registered task offers templates no discovery sees, with the
same content, answers and corruptions as wording 0; wording 0 is today's prompts. The default model's
tokenizer alone, no model."""

from __future__ import annotations

import re

import pytest
import torch

from acdc_compare.tasks import TASKS, Corruption, TaskError, make_task
from acdc_compare.tasks.build import encode
from acdc_compare.tasks.comparison_words import (
    ANIMAL_SIZES,
    ATTRIBUTE_PAIRS,
    COMPARATIVE_PAIRS,
    NEUTRAL_PREDICATES,
    NEUTRAL_RELATIONS,
    OPPOSITES,
    PET_NAMES,
    SPECIES,
    VERBS,
)
from acdc_compare.tasks.formats import POOLS, format_named, make_copy
from acdc_compare.tasks.greater_than import NOUNS
from acdc_compare.tasks.ioi import NAMES, OBJECTS, PLACES
from acdc_compare.tasks.registry import held_out_wordings

N = 12
WORDED = [name for name, spec in TASKS.items() if spec.wordings]
IOI_TASKS = ("ioi", "ioi-acdc")  # their template is drawn per prompt, so their content differs by wording


@pytest.fixture(scope="module")
def tok():
    """The default model's tokenizer, without loading the model."""
    import transformers

    from acdc_compare.backends.gguf import convert_gguf

    return transformers.AutoTokenizer.from_pretrained(str(convert_gguf()))


@pytest.fixture(scope="module")
def worded(tok):
    """Every registered task in every wording and corruption, N prompts of seed 0."""
    return {(name, w, c): make_task(name, tok, n=N, seed=0, corruption=c, wording=w)
            for name, spec in TASKS.items() for w in range(spec.wordings + 1) for c in spec.corruptions}


# Every word a generator fills into a template: what is left of a prompt without them is its template.
FILLERS = {w.lower() for w in (*NAMES, *PET_NAMES, *SPECIES, *VERBS, *ANIMAL_SIZES, *NEUTRAL_PREDICATES, *NOUNS,
                               *PLACES, *OBJECTS, *(w for pool in POOLS.values() for w in pool),
                               *(w for pairs in (ATTRIBUTE_PAIRS, COMPARATIVE_PAIRS, OPPOSITES) for p in pairs
                                 for w in p), *(w for r in NEUTRAL_RELATIONS for w in r.split()))}


def template_of(prompt: str) -> str:
    """The prompt with every filled-in word replaced by "_" and every number by "#"."""
    words = re.findall(r"[A-Za-z]+|\d+|\S", prompt)
    return " ".join("#" if w.isdigit() else "_" if w.lower() in FILLERS else w for w in words)


def _diff(task, i: int) -> list[tuple[int, int]]:
    """(clean token, corrupted token) at each position where prompt i's corrupted twin differs."""
    at = torch.nonzero(task.clean[i] != task.corrupted[i]).flatten().tolist()
    return [(int(task.clean[i, p]), int(task.corrupted[i, p])) for p in at]


def _changed_words(tok, task, i: int) -> list[tuple[str, str]]:
    """`_diff` as words without their leading space (a name opening one wording is spaced in another)."""
    return [(tok.decode([a]).strip(), tok.decode([b]).strip()) for a, b in _diff(task, i)]


def test_every_task_but_induction_has_held_out_wordings():
    assert held_out_wordings("induction") == () and "single-wording" in TASKS["induction"].description
    for name in WORDED:
        assert held_out_wordings(name) == tuple(range(1, TASKS[name].wordings + 1))
    assert set(WORDED) == set(TASKS) - {"induction"}
    assert all(TASKS[name].wordings >= 2 for name in WORDED)


@pytest.mark.parametrize("name", list(TASKS))
def test_wording_zero_is_the_default_task(tok, worded, name):
    spec = TASKS[name]
    plain = make_task(name, tok, n=N, seed=0)
    zero = worded[name, 0, spec.default_corruption]
    for attr in ("clean", "corrupted", "positions", "correct", "wrong"):
        assert torch.equal(getattr(plain, attr), getattr(zero, attr)), attr
    assert plain.prompts == zero.prompts and plain.info["wording"] == 0
    assert plain.description.endswith("wording 0 (discovery)")


@pytest.mark.parametrize("name", WORDED)
def test_held_out_wordings_use_other_templates_with_the_same_content(worded, name):
    spec = TASKS[name]
    zero = worded[name, 0, spec.default_corruption]
    templates = {0: {template_of(p) for p in zero.prompts}}
    for w in spec.held_out_wordings:
        task = worded[name, w, spec.default_corruption]
        assert task.info["wording"] == w and task.description.endswith(f"wording {w} (held out)")
        assert all(a != b for a, b in zip(task.prompts, zero.prompts))
        templates[w] = {template_of(p) for p in task.prompts}
        if name not in IOI_TASKS:  # the same draws in another frame: the same answers
            assert torch.equal(task.correct, zero.correct) and torch.equal(task.wrong, zero.wrong)
            assert task.correct_sets == zero.correct_sets and task.wrong_sets == zero.wrong_sets
    for w, seen in templates.items():  # no wording shares a template with another
        assert all(not seen & other for k, other in templates.items() if k != w), (w, seen)


@pytest.mark.parametrize("name", WORDED)
def test_held_out_corruptions_keep_length_and_change_what_wording_zero_changes(tok, worded, name):
    spec = TASKS[name]
    assert spec.corruptions == TASKS[name].corruptions and len(spec.corruptions) >= 1
    for c in spec.corruptions:
        zero = worded[name, 0, c]
        for w in spec.held_out_wordings:
            task = worded[name, w, c]
            assert task.corruption is c
            assert [len(encode(tok, p)) for p in task.prompts] == [len(encode(tok, p)) for p in task.corrupted_prompts]
            for i in range(N):
                if name in IOI_TASKS:  # ABC: exactly the three name mentions, by three other names
                    io, s = int(task.correct[i, 0]), int(task.wrong[i, 0])
                    changed = _diff(task, i)
                    assert sorted(t for t, _ in changed) == sorted([io, s, s])
                    assert len({t for _, t in changed}) == 3 and not {io, s} & {t for _, t in changed}
                else:
                    assert _changed_words(tok, task, i) == _changed_words(tok, zero, i), (name, w, c, i)


def test_both_corruptions_are_offered_in_held_out_wordings(worded):
    for name in WORDED:
        for c in TASKS[name].corruptions:
            assert (name, TASKS[name].wordings, c) in worded
    assert {c for (n, w, c) in worded if n == "pet-first" and w == 2} == {Corruption.MEANING, Corruption.ANSWERS}


def test_ioi_held_out_answers_are_the_name_said_once(tok, worded):
    for name in IOI_TASKS:
        for w in TASKS[name].held_out_wordings:
            task = worded[name, w, Corruption.ANSWERS]
            for i, prompt in enumerate(task.prompts):
                io, s = task.info["io"][i], task.info["s"][i]
                assert prompt.count(io + " ") + prompt.count(io + ",") == 1 and prompt.count(s) == 2, prompt
                assert prompt.index(s) < prompt.rindex(s) == max(prompt.rindex(s), prompt.index(io))
            if name == "ioi":
                assert {"ABBA", "BABA"} == set(task.info["orders"])


@pytest.mark.parametrize("name", ["pet-last", "pet-first"])
def test_pet_held_out_answers_are_the_second_familys_pet(tok, worded, name):
    for w in TASKS[name].held_out_wordings:
        task = worded[name, w, Corruption.MEANING]
        for i, prompt in enumerate(task.prompts):
            pet, human = task.info["correct_answers"][i], task.info["wrong_answers"][i]
            second = prompt[prompt.rindex(pet) - 40:]
            assert f"{pet} is a human" not in prompt and f"{human} is a human" in second
            assert task.corrupted_prompts[i].count(" human") == prompt.count(" human") + 1  # the species -> human
            order = second.index(pet) < second.index(human)
            assert order == (name == "pet-first")


@pytest.mark.parametrize("name", ["poorer", "richer"])
def test_comparative_held_out_answers_keep_who_is_named_first(worded, name):
    for w in TASKS[name].held_out_wordings:
        task = worded[name, w, Corruption.MEANING]
        for prompt, answer, wrong in zip(task.prompts, task.info["correct_answers"], task.info["wrong_answers"]):
            first_named = prompt.index(answer.strip()) < prompt.index(wrong.strip())
            assert first_named == (name == "richer"), prompt
            assert " than " in prompt


@pytest.mark.parametrize("name", ["poorer", "richer"])
def test_comparative_answers_corruption_keeps_the_first_token_and_replaces_the_second_name(worded, name):
    """Position 0 is the attention sink every head reads: a corruption changing it moves every head."""
    for w in range(TASKS[name].wordings + 1):
        task = worded[name, w, Corruption.ANSWERS]
        assert torch.equal(task.clean[:, 0], task.corrupted[:, 0])
        for prompt, corrupted, answer, wrong in zip(task.prompts, task.corrupted_prompts,
                                                    task.info["correct_answers"], task.info["wrong_answers"]):
            second = (answer if name == "poorer" else wrong).strip()
            first = (wrong if name == "poorer" else answer).strip()
            assert corrupted.startswith(first) and second in prompt and second not in corrupted, (prompt, corrupted)


def test_opposite_and_analogy_held_out_answers_are_the_cues_opposite(worded):
    opposite = {(" " + a, " " + b) for a, b in OPPOSITES}
    for name in ("opposites", "analogy"):
        for w in TASKS[name].held_out_wordings:
            task = worded[name, w, Corruption.MEANING]
            for prompt, answer, cue in zip(task.prompts, task.info["correct_answers"], task.info["wrong_answers"]):
                assert (cue, answer) in opposite and cue in prompt and answer not in prompt.split(cue)[-1]


@pytest.mark.parametrize("name", ["adjective-first", "verb-last-2shot"])
def test_recall_held_out_wordings_link_the_queried_person_to_their_word(worded, name):
    for w in TASKS[name].held_out_wordings:
        task = worded[name, w, Corruption.MEANING]
        for prompt, answer in zip(task.prompts, task.info["correct_answers"]):
            story = prompt.split("\n")[-1]
            first, second, query = [s.strip() for s in story.split(".")]
            asked = second if name.endswith(("last", "last-2shot")) else first
            assert asked.startswith(query) and asked == query + answer  # "Mary seems" + " tall"
            for example in prompt.split("\n")[:-1]:  # the solved examples use the same link
                assert query.split()[1] in example.split()


def test_greater_than_held_out_wordings_keep_the_years(worded):
    zero = worded["greater-than", 0, Corruption.MEANING]
    for w in TASKS["greater-than"].held_out_wordings:
        task = worded["greater-than", w, Corruption.MEANING]
        assert task.info["yy"] == zero.info["yy"]
        for prompt, corrupted, yy in zip(task.prompts, task.corrupted_prompts, task.info["yy"]):
            assert f" 17{yy:02d} " in prompt and " 1701 " in corrupted and prompt.endswith(" 17")


def test_copy_format_wordings_share_their_draws_and_unregistered_formats_have_none(tok):
    worded = make_copy(tok, n=4, seed=0, fmt="colour-of", ask="first", wording=2)
    assert worded.info["wording"] == 2 and "'s colour is" in worded.prompts[0]
    assert format_named("colour-of").worded(1).name == "colour-of"
    with pytest.raises(TaskError, match="has no wording 1; it offers wording 0 .* held-out wordings: none"):
        make_copy(tok, n=4, fmt="colour-and", wording=1)


def test_unknown_wordings_are_refused_listing_what_exists(tok):
    with pytest.raises(TaskError, match=r"task 'ioi' has no wording 3; it offers wording 0 \(discovery\) and the "
                                        r"held-out wordings: 1, 2"):
        make_task("ioi", tok, n=2, wording=3)
    with pytest.raises(TaskError, match="held-out wordings: none"):
        make_task("induction", tok, n=2, wording=1)
    for bad in (-1, True, "1"):
        with pytest.raises(TaskError, match="has no wording"):
            make_task("pet-last", tok, n=2, wording=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list(TASKS))
def test_each_generator_offers_exactly_the_wordings_its_spec_names(tok, name):
    spec = TASKS[name]
    assert spec.make(tok, n=2, seed=0, wording=spec.wordings).info["wording"] == spec.wordings
    with pytest.raises(TaskError, match=f"has no wording {spec.wordings + 1}"):
        spec.make(tok, n=2, seed=0, wording=spec.wordings + 1)


def test_tasks_table_in_a_held_out_wording(tiny_dir, tmp_path):
    from acdc_compare.api import get_model
    from acdc_compare.tasks.registry import tasks_table

    model = get_model(str(tiny_dir))
    evals = tasks_table(model, n=1, corruptions="default", wording=1)
    assert [e.name for e in evals] == WORDED and all(e.description.endswith("wording 1 (held out)") for e in evals)
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"prompt": "The cat is", "corrupted": "The dog is", "answer": " big", "wrong answer": " small"}\n')
    with pytest.raises(TaskError, match="a prompts file has one wording"):
        tasks_table(model, names=["ioi", str(rows)], n=1, wording=1)


def test_clean_accuracy_is_evaluate_tasks_accuracy(tok, tiny_dir):
    """The clean-only evaluation (half the forwards: the benchmark's accuracy, the study's table) is
    `evaluate_task`'s without KL, for name answers, set answers (Greater-Than) and top-1 (induction)."""
    from acdc_compare.api import get_model
    from acdc_compare.tasks import evaluate_task
    from acdc_compare.tasks.evaluate import clean_accuracy

    model = get_model(str(tiny_dir))
    for name in ("ioi", "greater-than", "induction"):
        task = make_task(name, tok, n=6, seed=0, wording=TASKS[name].wordings)
        full, clean = evaluate_task(model, task), evaluate_task(model, task, batch_size=4, corrupted=False)
        assert clean_accuracy(model, task, batch_size=4) == pytest.approx(full.accuracy)
        for key in ("accuracy", "logit_diff", "prob_diff", "p_correct"):
            assert getattr(clean, key) == pytest.approx(getattr(full, key)), (name, key)
        assert clean.kl is None and clean.corrupted_logit_diff is None and full.kl is not None
