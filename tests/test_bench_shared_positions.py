"""benchmarks/bench_shared_positions.py on a tiny random Llama (with the default tokenizer, so the registered
tasks build): each task's row times both paths, names the shared tokens it skipped, and both paths give the
circuit the same metric."""

import json

from conftest import load_benchmark


def test_each_task_is_timed_with_and_without_the_shared_positions(tiny_dir, tmp_path):
    bench = load_benchmark("bench_shared_positions")
    out = tmp_path / "shared.json"
    assert bench.main(["--model", str(tiny_dir), "--tasks", "ioi", "verb-last-2shot", "--n", "8", "--share", "0.2",
                       "--repeats", "1", "--out", str(out)]) == out
    record = json.loads(out.read_text())
    assert record["benchmark"] == "shared_positions" and record["device"]
    rows = record["tasks"]
    assert set(rows) == {"ioi", "verb-last-2shot"}
    assert rows["verb-last-2shot"]["shared_tokens"] >= 20 and rows["ioi"]["shared_tokens"] <= 2
    for row in rows.values():
        assert set(row["every_position"]) == set(row["shared_skipped"]) == set(row["speedup"])
        assert all(t > 0 for t in row["shared_skipped"].values())
        assert row["max_abs_metric_difference"] <= 1e-4
