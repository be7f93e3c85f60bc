"""A prompts file's held-out check (`discover(held_out=...)`, `acdc-compare discover --held-out`): rows never
discovered on, split by a seeded shuffle, and the circuit's normalised faithfulness on them (issue #35)."""

import json
import random

import pytest

from acdc_compare.cli import EXIT_OK, EXIT_USAGE, main
from acdc_compare.tasks.base import TaskError
from acdc_compare.tasks.prompts_file import read_prompts_file, split_rows


NAMES = [" Mary", " John", " Tom", " Sarah", " Lisa", " David", " Anna", " Paul", " Mark", " Kate", " James", " Emma"]


def _ioi_file(path, n):
    rows = []
    for i in range(n):
        a, b = NAMES[i % len(NAMES)], NAMES[(i + 1) % len(NAMES)]
        c, d = NAMES[(i + 5) % len(NAMES)], NAMES[(i + 7) % len(NAMES)]
        rows.append({"prompt": f"When{a} and{b} went to the store,{b} gave a drink to",
                     "corrupted": f"When{c} and{d} went to the store,{d} gave a drink to",
                     "answer": a, "wrong answer": b})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_the_held_out_rows_are_the_last_of_a_seeded_shuffle_and_never_discovered_on(tmp_path):
    path = _ioi_file(tmp_path / "rows.jsonl", 40)
    split = split_rows(path, 0.25, seed=3)
    order = list(range(40))
    random.Random(3).shuffle(order)
    assert split.held.lines == tuple(sorted(i + 1 for i in order[30:]))  # JSONL row i is on line i + 1
    assert set(split.fit.lines) | set(split.held.lines) == set(range(1, 41))
    assert not set(split.fit.lines) & set(split.held.lines) and len(split.fit.prompts) == 30
    rows = read_prompts_file(path)
    assert [rows.prompts[line - 1] for line in split.held.lines] == list(split.held.prompts)
    assert split_rows(path, 0.25, seed=3) == split and split_rows(path, 0.25, seed=4).held != split.held
    assert "held out 10 of 40 rows" in split.describe() and "seed 3" in split.describe()
    assert split.warning() == "" and "only 2 held-out rows" in split_rows(path, 0.05).warning()


@pytest.mark.parametrize("fraction,task,message", [
    (0.0, "rows", "strictly between 0 and 1"), (1.0, "rows", "strictly between 0 and 1"),
    (-0.5, "rows", "strictly between 0 and 1"), (0.9, "rows", "leaving no row to discover on"),
    (0.25, "ioi", "holds out rows of a prompts file"),
])
def test_bad_held_out_fractions_are_refused_before_the_model_loads(no_model, tmp_path, capsys, fraction, task,
                                                                 message):
    from acdc_compare.api import discover

    path = str(_ioi_file(tmp_path / "rows.jsonl", 3)) if task == "rows" else task
    assert main(["discover", "--task", path, "--held-out", str(fraction), "--threshold", "0.01", "--quiet",
                 "--out", str(tmp_path / "out")]) == EXIT_USAGE
    assert message in capsys.readouterr().err
    with pytest.raises(TaskError, match=message):
        discover(path, 0.01, held_out=fraction)


def test_discover_reports_the_circuits_faithfulness_on_the_held_out_rows(tiny_dir, tmp_path, capsys):
    from acdc_compare.api import prepare
    from acdc_compare.export import load_circuit
    from acdc_compare.faithfulness import normalized_faithfulness

    path = _ioi_file(tmp_path / "rows.jsonl", 12)
    out = tmp_path / "out"
    assert main(["discover", "--model", str(tiny_dir), "--task", str(path), "--held-out", "0.25", "--method",
                 "eap-ig", "--top-n", "30", "--quiet", "--out", str(out)]) == EXIT_OK
    captured = capsys.readouterr()
    split = split_rows(path, 0.25, seed=0)
    assert split.describe() in captured.out and "3 held-out rows" in captured.out
    assert "warning: only 3 held-out rows" in captured.err and "too noisy" in captured.err
    circuit = load_circuit(out / "rows_eap-ig.json")
    assert circuit.settings["n_prompts"] == 9 and circuit.settings["held_out_lines"] == list(split.held.lines)
    held = prepare(split.held, model=str(tiny_dir), check=False)
    expected = normalized_faithfulness(float(held.evaluate(circuit)[0]), *held.metric_ends)
    assert circuit.metrics["held_out_faithfulness"] == pytest.approx(expected)
    assert f"({circuit.metrics['held_out_faithfulness']:.3f} on the 3 held-out rows)" in captured.out


def test_the_api_warns_when_too_few_rows_are_held_out(tiny_dir, tmp_path):
    from acdc_compare.api import discover

    path = _ioi_file(tmp_path / "rows.jsonl", 12)
    with pytest.warns(UserWarning, match="only 3 held-out rows"):
        circuit = discover(str(path), model=str(tiny_dir), held_out=0.25, method="eap-ig", top_n=30)
    assert len(circuit.settings["held_out_lines"]) == 3 and "held_out_faithfulness" in circuit.metrics
