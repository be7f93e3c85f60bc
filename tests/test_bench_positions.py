"""benchmarks/bench_positions.py on a tiny random Llama (with the default tokenizer, so IOI and pet-last
build): the JSON names the device, model, settings and seeds, and for each task holds span-free and span rows
at the same edge budgets, each with its in-sample and held-out faithfulness and seconds."""

import json
import math
from types import SimpleNamespace

import pytest
from conftest import load_benchmark

from acdc_compare.graph import Graph, GraphConfig

ROW_KEYS = {"k", "edges", "faithfulness", "held_out_faithfulness", "seconds", "rank_seconds", "eval_seconds"}


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_positions")


def test_rows_at_equal_budgets_in_and_out_of_sample(bench, tiny_dir, tmp_path):
    out = tmp_path / "positions.json"
    path = bench.main(["--model", str(tiny_dir), "--n", "4", "--n-held-out", "3", "--rank-prompts", "2",
                       "--steps", "2", "--budgets", "20", "5", "--out", str(out), "--note", "tiny"])
    assert path == out
    record = json.loads(out.read_text())
    assert record["benchmark"] == "positions" and record["device"] and record["model"]
    assert record["settings"] == {"n_prompts": 4, "n_held_out": 3, "rank_prompts": 2, "steps": 2,
                                  "budgets": [5, 20], "note": "tiny"}
    assert record["seeds"]["discovery"] == 0 and record["seeds"]["held_out"] == 7
    assert set(record["tasks"]) == {"ioi", "pet-last"}
    for entry in record["tasks"].values():
        free, spans = entry["no_spans"], entry["spans"]
        assert [r["edges"] for r in free] == [r["edges"] for r in spans] == [5, 20]
        for row in free + spans:
            assert ROW_KEYS <= set(row)
            assert math.isfinite(row["faithfulness"]) and math.isfinite(row["held_out_faithfulness"])
            assert row["seconds"] == pytest.approx(row["rank_seconds"] + row["eval_seconds"])
        for row in spans:
            assert 1 <= row["base_edges"] <= row["edges"]
        info = entry["spans_info"]
        assert info["graph_edges"] == entry["no_spans_info"]["graph_edges"] * len(info["spans"])
        assert entry["no_spans_info"]["spans"] == []
    assert {"IO", "S1", "S2", "END"} <= set(record["tasks"]["ioi"]["spans_info"]["spans"])
    assert record["tasks"]["pet-last"]["corruption"] == "answers"


def test_budget_beyond_the_span_free_graph_is_refused(bench, tiny_dir, tmp_path):
    with pytest.raises(ValueError, match="exceed the span-free graph"):
        bench.main(["--model", str(tiny_dir), "--tasks", "ioi", "--n", "2", "--n-held-out", "2", "--rank-prompts",
                    "1", "--steps", "1", "--budgets", "10000000", "--out", str(tmp_path / "x.json")])
    assert not (tmp_path / "x.json").exists()


def test_held_out_spans_must_match(bench):
    graph = Graph(GraphConfig(n_layers=1, n_heads=2, n_kv_heads=2))
    found = SimpleNamespace(graph=graph.with_spans(("IO", "END", "rest")))
    bench.check_same_graph(SimpleNamespace(graph=graph.with_spans(("IO", "END", "rest"))), found, "t")
    with pytest.raises(ValueError, match="same spans"):
        bench.check_same_graph(SimpleNamespace(graph=graph.with_spans(("S1", "END", "rest"))), found, "t")


@pytest.mark.parametrize("argv, message", [
    (["--seed", "3", "--held-out-seed", "3"], "must differ"),
    (["--n", "4", "--rank-prompts", "8"], "exceeds --n"),
    (["--budgets", "0"], "edge counts"),
])
def test_bad_settings_are_refused(bench, argv, message):
    with pytest.raises(SystemExit, match=message):
        bench.parse_args(argv)
