"""Tasks from the user's own prompts: `task_from_prompts` catches the usual mistakes with a hint, and prompts
files (JSONL / CSV) become tasks."""

import json

import pytest

from acdc_compare import TaskError, task_from_prompts
from acdc_compare.tasks.build import encode
from acdc_compare.tasks.prompts_file import read_prompts_file, task_from_file

PROMPT = "When Mary and John went to the store, John gave a drink to"
CORRUPTED = "When Anna and Paul went to the store, Paul gave a drink to"


@pytest.fixture(scope="module")
def tok():
    import transformers

    from acdc_compare.backends.gguf import convert_gguf

    return transformers.AutoTokenizer.from_pretrained(str(convert_gguf()))


def test_an_answer_missing_its_leading_space_is_refused_with_a_hint(tok):
    with pytest.raises(TaskError) as caught:
        task_from_prompts(tok, "t", [PROMPT], [CORRUPTED], ["Mary"], [" John"])
    message = str(caught.value)
    assert "correct answer 'Mary' has no leading space" in message and "Write ' Mary'" in message
    assert "check_spaces=False" in message
    with pytest.raises(TaskError, match="wrong answer 'John' has no leading space"):
        task_from_prompts(tok, "t", [PROMPT], [CORRUPTED], [" Mary"], ["John"])
    glued = task_from_prompts(tok, "t", [PROMPT], [CORRUPTED], ["Mary"], [" John"], check_spaces=False)
    assert glued.correct[0, 0].item() == encode(tok, "Mary")[0] != encode(tok, " Mary")[0]


def test_answers_that_continue_the_prompt_are_accepted(tok):
    years = task_from_prompts(tok, "t", ["The war lasted from the year 1745 to 17"],
                              ["The war lasted from the year 1701 to 17"], ["5"], ["4"])
    assert years.correct[0, 0].item() == encode(tok, "5")[0]
    spaced = task_from_prompts(tok, "t", [PROMPT + " "], [CORRUPTED + " "], ["Mary"], ["John"])
    assert spaced.n_prompts == 1


def test_a_string_where_a_list_is_expected_is_a_clear_error(tok):
    with pytest.raises(TaskError, match="prompts must be a list of strings, one per prompt, got the single string"):
        task_from_prompts(tok, "t", PROMPT, [CORRUPTED], [" Mary"], [" John"])
    with pytest.raises(TaskError, match="correct answers must be a list of strings"):
        task_from_prompts(tok, "t", [PROMPT], [CORRUPTED], " Mary", [" John"])


def test_prompts_files_in_jsonl_and_csv_give_the_same_task(tok, tmp_path):
    rows = [(PROMPT, CORRUPTED, " Mary", " John"),
            ("Then, Tom and Sarah had lunch, and Sarah handed a cup to",
             "Then, Mark and Kate had lunch, and Kate handed a cup to", " Tom", "")]
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text("".join(json.dumps({"prompt": p, "corrupted": c, "answer": a, "wrong_answer": w}) + "\n"
                             for p, c, a, w in rows))
    csv = tmp_path / "mine.csv"
    csv.write_text("prompt,corrupted,answer,wrong answer\n" + "".join(f'"{p}","{c}",{a},{w}\n' for p, c, a, w in rows))
    a, b = task_from_file(tok, jsonl), task_from_file(tok, csv)
    assert a.name == b.name == "mine" and a.prompts == b.prompts
    assert a.correct.tolist() == b.correct.tolist() == [[encode(tok, " Mary")[0]], [encode(tok, " Tom")[0]]]
    assert a.wrong[1, 0].item() == -1  # an empty wrong answer: none (KL metric only)
    lengths = [len(encode(tok, p)) for p, *_ in rows]
    assert a.positions[:, 0].tolist() == [n - 1 for n in lengths]  # each prompt scored at its own last token


@pytest.mark.parametrize("name,text,message", [
    ("a.jsonl", '{"prompt": "x", "corrupted": "y", "answer": " z"}\n{"prompt": \n', "a.jsonl, line 2: not valid JSON"),
    ("b.jsonl", '["x", "y", " z"]\n', "b.jsonl, line 1: a JSON object is expected, got list"),
    ("c.csv", "prompt,answer\nx, z\n", "c.csv, line 2: no column 'corrupted'"),
    ("d.csv", "prompt,corrupted,answer\nx,,z\n", "d.csv, line 2: column 'corrupted' must be a non-empty string"),
    ("e.csv", "", "e.csv is empty"),
])
def test_bad_prompts_files_name_the_line_and_the_problem(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(TaskError, match=message.replace(".", r"\.")):
        read_prompts_file(path)


def test_a_missing_prompts_file_says_what_a_task_is(tmp_path):
    with pytest.raises(TaskError, match="not found .*a registered name or a .jsonl/.csv file with the columns"):
        read_prompts_file(tmp_path / "nope.jsonl")


def _write_csv(path, rows):
    import csv

    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["prompt", "corrupted", "answer", "wrong answer"], *rows])


def test_csv_prompts_keep_newlines_inside_quoted_fields(tmp_path):
    path = tmp_path / "multi.csv"
    _write_csv(path, [["Oslo is in Norway.\nRome is in", "Oslo is in Norway.\nParis is in", " Italy", " France"]])
    rows = read_prompts_file(path)
    assert rows.prompts == ("Oslo is in Norway.\nRome is in",)
    assert rows.corrupted == ("Oslo is in Norway.\nParis is in",)


def test_csv_errors_after_a_multiline_row_name_the_row_s_first_line(tmp_path):
    path = tmp_path / "multi.csv"
    _write_csv(path, [["Oslo is in Norway.\nRome is in", "Oslo is in Norway.\nParis is in", " Italy", " France"],
                      ["Bern is in", "", " Switzerland", ""]])
    with pytest.raises(TaskError, match=r"multi\.csv, line 5: column 'corrupted'"):
        read_prompts_file(path)


# ----- issue 22 row 11: every offending row, numbered by file line, in one message -----------------------------
ROWS = [("The capital of France is", "The capital of Italy is", " Paris", " Rome"),
        ("The capital of Japan is", "The capital of Egypt is", " Tokyo", " Cairo")]


def _write(path, rows, keys=("prompt", "corrupted", "answer", "wrong answer")):
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(dict(zip(keys, r))) + "\n" for r in rows))
    else:
        _write_csv_header(path, keys, rows)
    return path


def _write_csv_header(path, header, rows):
    import csv

    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([list(header), *rows])


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_every_bad_row_is_listed_by_its_file_line(tmp_path, suffix):
    rows = [ROWS[0], ("", "x", " a", ""), ROWS[1], ("p", "c", "", " b"), ("q", "", " c", "")]
    with pytest.raises(TaskError) as caught:
        read_prompts_file(_write(tmp_path / f"rows{suffix}", rows))
    message = str(caught.value)
    first = 1 if suffix == ".jsonl" else 2  # a CSV's line 1 is its header
    assert "3 problems" in message
    assert f"line {first + 1}: column 'prompt' must be a non-empty string" in message
    assert f"line {first + 3}: column 'answer' must be a non-empty string" in message
    assert f"line {first + 4}: column 'corrupted' must be a non-empty string" in message


def test_bad_json_lines_are_all_listed_and_the_list_is_capped(tmp_path):
    path = tmp_path / "many.jsonl"
    path.write_text("".join("{not json\n" for _ in range(14)))
    with pytest.raises(TaskError) as caught:
        read_prompts_file(path)
    message = str(caught.value)
    assert "14 problems" in message and "line 10: not valid JSON" in message and "line 11:" not in message
    assert "... and 4 more" in message and message.count("each line holds one object") == 1


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_an_unknown_column_is_refused_naming_the_known_ones(tmp_path, suffix):
    path = _write(tmp_path / f"typo{suffix}", ROWS, keys=("prompt", "corrupted", "answer", "wrong_anwser"))
    with pytest.raises(TaskError) as caught:
        read_prompts_file(path)
    message = str(caught.value)
    assert "line 1: unknown column 'wrong_anwser'" in message
    assert "the columns are prompt, corrupted, answer, wrong answer (also accepted: clean" in message


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_token_problems_in_a_file_are_all_listed_by_file_line_with_the_format_s_space_hint(tok, tmp_path, suffix):
    rows = [ROWS[0],
            ("The capital of Japan is", "The capital of Kyrgyzstan is", " Tokyo", " Cairo"),  # lengths differ
            ("The capital of Peru is", "The capital of Chad is", "Lima", " Cairo"),  # no leading space
            ("The capital of Peru is", "The capital of Chad is", " Lima Peru", " Cairo")]  # two tokens
    path = _write(tmp_path / f"cap{suffix}", rows)
    with pytest.raises(TaskError) as caught:
        task_from_file(tok, path)
    message = str(caught.value)
    first = 1 if suffix == ".jsonl" else 2
    assert f"{path}: 3 problems" in message
    assert f"line {first + 1}: corrupted prompt 'The capital of Kyrgyzstan is' tokenizes to" in message
    assert "a corrupted prompt must have the same token length as its clean twin" in message
    assert f"line {first + 2}: correct answer 'Lima' has no leading space" in message
    assert f"line {first + 3}: correct answer ' Lima Peru' is not a single token" in message
    hint = "in a JSONL file put the space inside the quotes" if suffix == ".jsonl" else \
        "in a CSV file keep the space after the comma"
    assert hint in message and "check_spaces" not in message  # a file cannot pass check_spaces


def test_python_lists_still_name_prompts_by_index(tok):
    with pytest.raises(TaskError) as caught:
        task_from_prompts(tok, "t", [PROMPT, PROMPT], [CORRUPTED, CORRUPTED], ["Mary", " Mary"], [" John", "John"])
    message = str(caught.value)
    assert "task 't': 2 problems" in message and f"prompt 0 {PROMPT!r}: correct answer 'Mary'" in message
    assert f"prompt 1 {PROMPT!r}: wrong answer 'John'" in message and "check_spaces=False" in message


# ----- issue 35 finding 6 ------------------------------------------------------------------------------------------
def test_a_csv_row_with_more_values_than_the_header_is_refused_naming_its_line(tmp_path):
    path = tmp_path / "extra.csv"
    path.write_text("prompt,corrupted,answer,wrong answer\n"
                    "The capital of France is,The capital of Italy is, Paris, Rome\n"
                    "The capital of Japan is,The capital of Egypt is, Tokyo, Cairo, Kyoto\n")
    with pytest.raises(TaskError, match=r"extra\.csv, line 3: 5 values but the header names 4 columns.*quote"):
        read_prompts_file(path)


def test_rows_lacking_a_wrong_answer_among_rows_that_give_one_are_named(tmp_path):
    rows = [ROWS[0], ("The capital of Peru is", "The capital of Chile is", " Lima", ""), ROWS[1]]
    path = _write(tmp_path / "partial.csv", rows)
    from acdc_compare.tasks.prompts_file import partial_wrong_answers_note

    read = read_prompts_file(path)
    assert read.lines_without_wrong_answer() == (3,)
    assert "1 of 3 rows give no wrong answer (line 3)" in partial_wrong_answers_note(read)
    none = _write(tmp_path / "none.csv", [(p, c, a, "") for p, c, a, _ in ROWS])
    assert partial_wrong_answers_note(read_prompts_file(none)) == ""
