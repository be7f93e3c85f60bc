"""Every task's named spans: computed from the pieces of its prompts, robust to right-padding, kept by
`Task.select`; prompts files' `spans` column; end-aligned spans for prompts of one length."""

import dataclasses
import json

import pytest
import torch

from acdc_compare.spans import END, REST, PromptSpans, end_aligned
from acdc_compare.tasks.base import TaskError
from acdc_compare.tasks.prompts_file import task_from_file
from acdc_compare.tasks.registry import held_out_wordings, make_task, task_names
from conftest import tiny_task


@pytest.fixture(scope="module")
def tok():
    import transformers

    from acdc_compare.backends.gguf import convert_gguf

    return transformers.AutoTokenizer.from_pretrained(str(convert_gguf()))


def words(tok, task, i: int, span: str) -> list[str]:
    ids = task.clean[i][task.spans.mask(span)[i]].tolist()
    return [tok.decode([t]).strip() for t in ids]


@pytest.mark.parametrize("name,wording", [(n, w) for n in task_names() for w in (0, *held_out_wordings(n))])
def test_every_task_names_its_spans_and_end_is_the_scored_token(tok, name, wording):
    task = make_task(name, tok, n=6, wording=wording)
    spans = task.spans
    assert spans is not None and spans.index.shape == task.clean.shape
    assert END in spans.names
    ends = spans.mask(END)
    assert torch.equal(ends.sum(1), torch.ones(task.n_prompts, dtype=torch.long))
    lengths = task.info.get("lengths", [task.seq_len] * task.n_prompts)
    for i, n in enumerate(lengths):
        assert bool(ends[i, n - 1]), f"prompt {i}: END is not its last real token"
        if n < task.seq_len:
            assert bool(spans.mask(REST)[i, n:].all()), "padding must be rest"
    named = [s for s in spans.names if s not in (END, REST)]
    counts = spans.counts()
    assert all(counts[s] > 0 for s in named if not (name.startswith("verb") and s == "queried")), counts


@pytest.mark.parametrize("wording", (0, *held_out_wordings("ioi")))
def test_ioi_spans_hold_the_names(tok, wording):
    task = make_task("ioi", tok, n=8, wording=wording)
    for i in range(task.n_prompts):
        io, s = task.info["io"][i].strip(), task.info["s"][i].strip()
        assert words(tok, task, i, "IO") == [io]
        assert words(tok, task, i, "S1") == [s] and words(tok, task, i, "S2") == [s]
        first_io = task.prompts[i].index(" " + io) < task.prompts[i].index(" " + s)
        assert (task.info["orders"][i] == "ABBA") == first_io
    assert task.spans.names == ("IO", "S1", "S2", "END", "rest")


def test_pet_and_greater_than_spans_by_role(tok):
    pet = make_task("pet-first", tok, n=4)
    for i in range(4):
        assert words(tok, pet, i, "pet") == [pet.info["correct_answers"][i].strip()]
        assert words(tok, pet, i, "human-b") == [pet.info["wrong_answers"][i].strip()]
        assert words(tok, pet, i, "question") == ["The", "pet", "of", "this", "family"]
    for wording in (0, *held_out_wordings("greater-than")):
        gt = make_task("greater-than", tok, n=4, wording=wording)
        for i in range(4):
            assert "".join(words(tok, gt, i, "YY")) == f"{gt.info['yy'][i]:02d}"


def test_select_keeps_the_spans(tok):
    task = make_task("ioi", tok, n=6)
    part = task.select([4, 1])
    assert torch.equal(part.spans.index, task.spans.index[[4, 1]]) and part.spans.names == task.spans.names


def test_spans_without_names_are_aligned_from_the_end_or_refused():
    task = tiny_task(n=3, p=6)
    spans = task.span_schema()
    assert spans.names == ("end-0", "end-1", "end-2", "rest")
    assert spans.index[0].tolist() == [3, 3, 3, 2, 1, 0]
    assert torch.equal(spans.index, end_aligned(3, 6).index)
    padded = dataclasses.replace(task, info={"lengths": [6, 5, 6]})
    with pytest.raises(TaskError, match="differ in length"):
        padded.span_schema()


def test_a_span_index_of_the_wrong_shape_is_refused():
    task = tiny_task(n=3, p=6)
    with pytest.raises(TaskError, match="span index"):
        dataclasses.replace(task, spans=PromptSpans(("a",), torch.zeros(3, 5, dtype=torch.long)))


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_prompts_file_gives_spans_as_character_ranges(tok, tmp_path, suffix):
    rows = [("When Mary and John went out, John gave a book to", "When Anna and Paul went out, Tom gave a book to",
             " Mary", " John", "IO:5-9 S1:14-18 S2:29-33"),
            ("When Lisa and Tom went to the park, Tom gave a pen to",
             "When Jane and Bob went to the park, Sam gave a pen to", " Lisa", " Tom", "IO:5-9 S1:14-17 S2:36-39")]
    path = tmp_path / f"p{suffix}"
    keys = ("prompt", "corrupted", "answer", "wrong answer", "spans")
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(dict(zip(keys, r))) + "\n" for r in rows))
    else:
        import csv
        with path.open("w", newline="") as f:
            csv.writer(f).writerows([keys, *rows])
    task = task_from_file(tok, path)
    assert task.spans.names == ("IO", "S1", "S2", END, REST)
    for i, (io, s) in enumerate((("Mary", "John"), ("Lisa", "Tom"))):
        assert words(tok, task, i, "IO") == [io] and words(tok, task, i, "S2") == [s]
    assert bool(task.spans.mask(REST)[0, task.info["lengths"][0]:].all())


@pytest.mark.parametrize("marks,message", [("IO:5-99", "START < END <= 48"), ("IO5-9", "NAME:START-END"),
                                           ("I@O:5-9", "span names")])
def test_bad_spans_in_a_prompts_file_name_the_line(tmp_path, marks, message):
    path = tmp_path / "p.jsonl"
    row = {"prompt": "When Mary and John went out, John gave a book to", "corrupted": "x", "answer": " Mary",
           "spans": marks}
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(TaskError, match=message) as err:
        task_from_file(None, path)
    assert "line 1" in str(err.value)


def test_spans_on_some_rows_only_are_refused(tmp_path):
    path = tmp_path / "p.jsonl"
    rows = [{"prompt": "A b c", "corrupted": "D b c", "answer": " x", "spans": "A:0-1"},
            {"prompt": "E b c", "corrupted": "F b c", "answer": " x"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(TaskError, match="every row or on none"):
        task_from_file(None, path)
