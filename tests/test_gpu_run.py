"""benchmarks/gpu_run.py, the one-shot GPU run, through its CPU path on tiny random models: every row with
its baseline and the device named, ACDC's decisions identical to the hook oracle's on the tested prefix, a
cut run resumed from its journals, the budget skipping rows with a reason, --resume keeping finished rows."""

import json
from pathlib import Path

import pytest
from conftest import load_benchmark

ROWS = ["patching", "eap_ig", "acdc_gpt2", "acdc_ioi", "acdc_pet-last", "acdc_pet-first"]


def _load():
    return load_benchmark("gpu_run")


@pytest.fixture(scope="module")
def gpu_run():
    return _load()


def _args(tmp: Path, out: str, journals: str = "journals", *extra: str) -> list[str]:
    return ["--tiny", "--device", "cpu", "--out", str(tmp / out), "--journal-dir", str(tmp / journals),
            "--circuits-dir", str(tmp / f"circuits_{out}"), *extra]


def _rows(record: dict) -> dict:
    return {r["row"]: r for r in record["rows"]}


def _kept_edges(path: str) -> set:
    return set(json.loads(Path(path).read_text())["kept"])


def test_gpu_run_tiny_cut_then_resumed(gpu_run, tmp_path):
    # a run cut short: each ACDC row stops after its first chunk of 5 tested edges
    cut = gpu_run.main(_args(tmp_path, "cut.json", "journals", "--acdc-max-s", "1e-9", "--chunk", "5"))
    assert json.loads((tmp_path / "cut.json").read_text())["rows"]  # written to disk, strict JSON
    assert cut["device"] and cut["versions"]["torch"] and "transformer-lens" in cut["versions"]
    rows = _rows(cut)
    assert list(rows) == ROWS
    for name, row in rows.items():
        assert row["status"] == "done", (name, row.get("reason"), row.get("traceback"))
        assert row["baseline"], name
    assert rows["patching"]["baseline"]["plain_forward_s"] > 0 and rows["patching"]["ratio_patched_to_plain"] > 0
    assert rows["eap_ig"]["eap_ig_s"] > 0 and rows["eap_ig"]["baseline"]["plain_forward_s"] > 0
    for name in ROWS[2:]:
        assert rows[name]["complete"] is False and rows[name]["n_tested"] == 5 and "circuit_json" not in rows[name]
    assert rows["acdc_gpt2"]["decisions_identical"] and rows["acdc_gpt2"]["prefix_edges"] == 5

    # the rerun with the same journals finishes every ACDC row from where it stopped
    again = _rows(gpu_run.main(_args(tmp_path, "resumed.json", "journals", "--skip", "patching", "eap_ig")))
    assert again["patching"]["status"] == again["eap_ig"]["status"] == "skipped"
    for name in ROWS[2:]:
        row = again[name]
        assert row["status"] == "done" and row["complete"], name
        assert row["resumed_decisions"] > 0 and row["resumed_tested"] == 5, name
        assert row["n_kept"] is not None and row["faithfulness"] is not None
    gpt2 = again["acdc_gpt2"]
    assert gpt2["decisions_identical"] and gpt2["prefix_edges"] == 10, gpt2["mismatched_edges"]
    assert gpt2["baseline"]["oracle_edges_per_s"] > 0 and gpt2["speedup_tested_edges_per_s"] >= 0
    for task in ("ioi", "pet-last", "pet-first"):
        assert Path(again[f"acdc_{task}"]["circuit_json"]).is_file()

    # the resumed circuit is the one a fresh, uncut run finds
    fresh = _rows(gpu_run.main(_args(tmp_path, "fresh.json", "fresh_journals", "--skip", "patching", "eap_ig",
                                     "acdc_gpt2", "--tasks", "ioi")))
    assert fresh["acdc_ioi"]["resumed_decisions"] == 0
    assert _kept_edges(fresh["acdc_ioi"]["circuit_json"]) == _kept_edges(again["acdc_ioi"]["circuit_json"])
    assert fresh["acdc_ioi"]["n_kept"] == again["acdc_ioi"]["n_kept"]


def test_gpu_run_budget_and_resume_flag(gpu_run, tmp_path):
    spent = _rows(gpu_run.main(_args(tmp_path, "spent.json", "j", "--budget-s", "0")))
    assert list(spent) == ROWS
    assert all(r["status"] == "skipped" and r["reason"].startswith("budget") for r in spent.values())
    # --resume keeps the finished rows of the file and reruns only the rest
    (tmp_path / "spent.json").write_text(json.dumps({"rows": [{"row": "patching", "status": "done", "x": 1}]}))
    kept = _rows(gpu_run.main(_args(tmp_path, "spent.json", "j", "--budget-s", "0", "--resume")))
    assert kept["patching"]["from_previous_run"] and kept["patching"]["x"] == 1
    assert kept["eap_ig"]["status"] == "skipped"
