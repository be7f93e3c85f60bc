"""benchmarks/bench_first_token.py on a tiny random Llama (with the default tokenizer, so the comparatives
build): the moved-name prompts open with the prefix, the corruption that replaces the first name too changes
token 0 and nothing else of the study's, and the JSON holds both measurements for both tasks."""

import json

import pytest
import torch
from conftest import load_benchmark

from acdc_compare.api import get_model
from acdc_compare.tasks.base import Corruption
from acdc_compare.tasks.registry import make_task


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_first_token")


def test_the_variants_move_or_replace_only_the_first_name(bench, tiny_dir):
    model = get_model(str(tiny_dir))
    task = make_task("poorer", model.tokenizer, n=6, seed=0, corruption=Corruption.ANSWERS)
    moved = bench.names_off_position_0(model, task)
    assert all(p == bench.PREFIX + q for p, q in zip(moved.prompts, task.prompts))
    assert torch.equal(moved.correct, task.correct) and torch.equal(moved.wrong, task.wrong)
    both = bench.first_name_replaced_too(model, task, seed=0)
    assert torch.equal(both.clean, task.clean)
    assert not (both.corrupted[:, 0] == task.corrupted[:, 0]).any()  # the sink token changes ...
    assert torch.equal(both.corrupted[:, 1:], task.corrupted[:, 1:])  # ... and nothing else does
    assert not (both.corrupted[:, 0] == task.clean[:, 0]).any()


def test_the_json_holds_accuracy_and_faithfulness_of_both_tasks(bench, tiny_dir, tmp_path):
    out = tmp_path / "first_token.json"
    assert bench.main(["--model", str(tiny_dir), "--n-eval", "6", "--n", "4", "--rank-prompts", "2",
                       "--n-held-out", "3", "--steps", "2", "--shares", "0.02", "0.2", "--out", str(out)]) == out
    record = json.loads(out.read_text())
    assert record["benchmark"] == "first_token" and record["device"] and record["prefix"] == bench.PREFIX
    assert set(record["tasks"]) == {"poorer", "richer"}
    for entry in record["tasks"].values():
        assert {r["n"] for r in entry["accuracy"].values()} == {6}
        assert all(0 <= r["accuracy"] <= 1 for r in entry["accuracy"].values())
        for setting in entry["eap_ig_top_k"].values():
            rows = setting["rows"]
            assert setting["seconds"] > 0
            assert [r["edge_share"] for r in rows] == [0.02, 0.2] and rows[0]["k"] < rows[1]["k"]
            assert all({"faithfulness", "held_out_faithfulness"} <= set(r) for r in rows)
