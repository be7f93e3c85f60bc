"""Copy formats (acdc_compare/tasks/formats.py) on the default model's tokenizer alone, no model: every
format tried builds well-formed twins; the registered ones carry their order-vs-meaning pairs."""

from __future__ import annotations

import pytest
import torch

from acdc_compare.tasks import ORDER_MEANING_PAIRS, TASKS, Corruption, TaskError, make_task
from acdc_compare.tasks.build import encode
from acdc_compare.tasks.formats import FORMATS, POOLS, REGISTERED_FORMATS, format_named, make_copy

N = 12


@pytest.fixture(scope="module")
def tok():
    """The default model's tokenizer, without loading the model."""
    import transformers

    from acdc_compare.backends.gguf import convert_gguf

    return transformers.AutoTokenizer.from_pretrained(str(convert_gguf()))


def _diff(task, i: int) -> list[int]:
    return torch.nonzero(task.clean[i] != task.corrupted[i]).flatten().tolist()


@pytest.mark.parametrize("fmt", [f.name for f in FORMATS])
def test_every_format_builds_well_formed_twins(tok, fmt):
    last, first = (make_copy(tok, n=N, seed=0, fmt=fmt, ask=ask) for ask in ("last", "first"))
    answers = make_copy(tok, n=N, seed=0, fmt=fmt, ask="last", corruption="answers")
    assert last.name == f"{fmt}-last" and first.name == f"{fmt}-first"
    assert answers.prompts == last.prompts  # the clean prompts do not depend on the corruption
    for task in (last, first, answers):
        lengths = [len(encode(tok, p)) for p in task.prompts]
        assert lengths == [len(encode(tok, p)) for p in task.corrupted_prompts] and len(set(lengths)) == 1
        assert (task.correct != task.wrong).all()
        for i, prompt in enumerate(task.prompts):
            tokens = task.clean[i].tolist()
            correct, wrong = int(task.correct[i, 0]), int(task.wrong[i, 0])
            assert correct in tokens and wrong in tokens, prompt  # both values are copied from the prompt
            assert task.info["correct_answers"][i].startswith(" ") and encode(tok, task.info["correct_answers"][i]) == [correct]
    spec = format_named(fmt)
    mentions = (spec.story + spec.query).count("{q}")
    for i in range(N):
        # twins: the same content, only the queried entity differs; the answer of one is the other's wrong one
        assert len(torch.nonzero(last.clean[i] != first.clean[i])) == mentions
        assert int(last.correct[i, 0]) == int(first.wrong[i, 0]) and int(last.wrong[i, 0]) == int(first.correct[i, 0])
        # recency: "last" asks for the value stated later in the story, "first" for the earlier one
        tokens = last.clean[i].tolist()
        story = tokens[: len(tokens) - 1]
        last_pos = max(p for p, t in enumerate(story) if t == int(last.correct[i, 0]))
        other_pos = max(p for p, t in enumerate(story) if t == int(last.wrong[i, 0]))
        assert last_pos > other_pos
        # meaning: exactly the queried entity becomes one the prompt does not mention
        pos, *more = _diff(last, i)
        assert len(more) == mentions - 1 and all(last.corrupted[i, p] == last.corrupted[i, pos] for p in more)
        stranger = int(last.corrupted[i, pos])
        assert stranger not in (int(last.clean[i, pos]), int(first.clean[i, pos]))  # neither e2 nor e1
        if not spec.shots:
            assert stranger not in tokens
        # answers: exactly the two values of the story become fresh ones
        changed = _diff(answers, i)
        assert len(changed) == 2
        assert {int(answers.clean[i, p]) for p in changed} == {int(last.correct[i, 0]), int(last.wrong[i, 0])}
        fresh = {int(answers.corrupted[i, p]) for p in changed}
        assert len(fresh) == 2 and not fresh & {int(last.correct[i, 0]), int(last.wrong[i, 0])}
        if not spec.shots:  # (solved examples may hold any value)
            assert not fresh & set(tokens)


@pytest.mark.parametrize("fmt", REGISTERED_FORMATS)
def test_registered_formats_are_tasks_with_an_order_meaning_pair(tok, fmt):
    spec = format_named(fmt)
    pairs = {(p.agree_task, p.disagree_task) for p in ORDER_MEANING_PAIRS}
    assert (f"{fmt}-last", f"{fmt}-first") in pairs
    for ask in ("last", "first"):
        name = f"{fmt}-{ask}"
        assert TASKS[name].answer_kind == spec.answer_kind
        assert TASKS[name].corruptions == (Corruption.MEANING, Corruption.ANSWERS)
        task = make_task(name, tok, n=N, seed=0, corruption="answers")
        assert task.name == name and task.corruption is Corruption.ANSWERS
        values = {encode(tok, " " + w)[0] for w in POOLS[spec.values]}
        assert set(task.correct[:, 0].tolist()) <= values and set(task.wrong[:, 0].tolist()) <= values
        for i in range(N):  # no value of the clean prompt survives the answers corruption
            assert not {int(task.correct[i, 0]), int(task.wrong[i, 0])} & set(task.corrupted[i].tolist())
    assert {TASKS[f"{f}-last"].answer_kind for f in REGISTERED_FORMATS} >= {"adjective"}


@pytest.mark.parametrize("fmt", ["colour-of", "material", "colour-and-2shot"])
def test_formats_are_deterministic_under_a_seed(tok, fmt):
    a, b = (make_copy(tok, n=N, seed=0, fmt=fmt, ask="first") for _ in range(2))
    c = make_copy(tok, n=N, seed=1, fmt=fmt, ask="first")
    assert a.prompts == b.prompts and a.corrupted_prompts == b.corrupted_prompts
    assert torch.equal(a.correct, b.correct) and torch.equal(a.wrong, b.wrong)
    assert a.prompts != c.prompts


def test_few_shot_examples_are_solved_and_shared_by_the_twins(tok):
    last, first = (make_copy(tok, n=N, seed=0, fmt="colour-and-2shot", ask=ask) for ask in ("last", "first"))
    for p_last, p_first in zip(last.prompts, first.prompts):
        shots_last, shots_first = p_last.rsplit(". The", 2)[0], p_first.rsplit(". The", 2)[0]
        assert shots_last == shots_first and p_last.count("The colour of the") == 3


def test_bad_format_options_are_refused(tok):
    with pytest.raises(TaskError, match="unknown copy format 'bogus'"):
        make_copy(tok, n=2, fmt="bogus")
    with pytest.raises(TaskError, match="ask must be 'last' or 'first'"):
        make_copy(tok, n=2, fmt="colour-of", ask="middle")
    with pytest.raises(TaskError, match="no corruption"):
        make_copy(tok, n=2, fmt="colour-of", corruption="bogus")
    with pytest.raises(TaskError, match="n must be >= 1"):
        make_copy(tok, n=0, fmt="colour-of")
