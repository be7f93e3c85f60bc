"""Sweeps on the local executor: the spec, resumable jobs, a killed driver, the aggregate and the CLI, on a
tiny random Llama saved as a Hugging Face directory (so every process can load it by path)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import make_tiny_hf_dir

from acdc_compare.cli import EXIT_OK, EXIT_USAGE, main
from acdc_compare.export import load_circuit
from acdc_compare.sweeps import JobPaths, SpecError, SweepSpec, load_spec, run_sweep, spec_from_mapping

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return make_tiny_hf_dir(tmp_path_factory.mktemp("tiny-sweep"))


def grid(tiny_dir, **changes):
    spec = dict(models=[str(tiny_dir)], tasks=["ioi", "pet-last"], methods=["acdc", "eap-ig"],
                thresholds=[0.002, 0.02], seeds=[0, 1], n_prompts=4, options={"eap-ig": {"steps": 2}})
    return {**spec, **changes}


def same_circuit(a, b) -> bool:
    return (torch.equal(a.kept, b.kept) and torch.equal(a.scores.nan_to_num(-7.0), b.scores.nan_to_num(-7.0))
            and dict(a.metrics) == dict(b.metrics))


@pytest.fixture(scope="module")
def swept(tiny_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("swept")
    return run_sweep(grid(tiny_dir), folder, threads=1)


# ----- the spec -----------------------------------------------------------------------------------------
def test_spec_from_toml_expands_the_grid(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('tasks = ["ioi", "pet-last"]\ncorruptions = ["default", "meaning"]\nmethods = ["eap-ig"]\n'
                    'thresholds = [0.01, 0.02]\nthreshold_scale = "relative"\nseeds = [0, 1, 2]\n'
                    'n_prompts = 8\n[options.eap-ig]\nsteps = 3\n')
    spec = load_spec(path)
    jobs = spec.jobs()
    # ioi offers only "answers": its default; pet-last's default is "meaning", listed twice -> once
    assert spec.task_corruptions() == [("ioi", "answers"), ("pet-last", "meaning")]
    assert spec.skipped() == [("ioi", "meaning")]
    assert len(jobs) == 2 * 2 * 3 and len({j.job_id for j in jobs}) == len(jobs)
    assert all(dict(j.options) == {"steps": 3} and j.threshold_scale == "relative" for j in jobs)
    assert [j.job_id for j in load_spec(path).jobs()] == [j.job_id for j in jobs]  # stable across reads
    seedless = {j.group_id for j in jobs}
    assert len(seedless) == 2 * 2  # tasks x thresholds: the seeds of one grid point share a group


def test_a_changed_setting_changes_the_job_id(tiny_dir):
    base = spec_from_mapping(grid(tiny_dir)).jobs()[0]
    other = spec_from_mapping(grid(tiny_dir, n_prompts=5)).jobs()[0]
    assert base.job_id != other.job_id and base.task == other.task and base.seed == other.seed


@pytest.mark.parametrize("changes, words", [
    ({"tasks": ["no-such-task"]}, "unknown task"),
    ({"methods": ["nope"], "options": {}}, "unknown method"),
    ({"corruptions": ["bogus"]}, "unknown corruption"),
    ({"tasks": ["greater-than"], "corruptions": ["answers"]}, "offers corruption"),
    ({"options": {"eap-ig": {"threshold": 1.0}}}, "set by the sweep"),
    ({"options": {"eap-ig": {"stepz": 1}}}, "takes no option"),
    ({"methods": ["eap-ig"], "options": {"acdc": {"abs_value": True}}}, "does not run"),
    ({"thresholds": [-1.0]}, "thresholds"),
    ({"seeds": [0.5]}, "seeds"),
    ({"threshold_scale": "log"}, "threshold_scale"),
    ({"colour": "red"}, "unknown sweep setting"),
])
def test_bad_specs_are_refused_by_name(tiny_dir, changes, words):
    with pytest.raises(SpecError, match=words):
        spec_from_mapping(grid(tiny_dir, **changes))


# ----- jobs and resuming -------------------------------------------------------------------------------
def test_every_job_writes_its_circuit_and_settings(swept, tiny_dir):
    spec = spec_from_mapping(grid(tiny_dir))
    assert [o.status for o in swept.outcomes] == ["done"] * len(spec.jobs())
    assert max(o.models_loaded for o in swept.outcomes) == 1  # one model, loaded once for all its jobs
    for job in spec.jobs():
        paths = JobPaths.of(swept.folder, job.job_id)
        c = load_circuit(paths.circuit)
        assert c.settings["sweep_job"] == job.job_id and c.settings["method"] == job.method
        assert json.loads(paths.settings.read_text()) == job.settings()
        assert not paths.running.exists()
        assert paths.journal.exists() == (job.method == "acdc")


def test_rerun_skips_finished_jobs_and_resumes_a_cut_one(swept, tiny_dir, tmp_path):
    spec = spec_from_mapping(grid(tiny_dir, methods=["acdc"], tasks=["ioi"], seeds=[0], options={}))
    folder = tmp_path / "cut"
    run_sweep(spec, folder, threads=1)
    cut = spec.jobs()[0]
    paths = JobPaths.of(folder, cut.job_id)
    original = load_circuit(paths.circuit)
    lines = paths.journal.read_text().split("\n")
    keep = len(lines) // 2
    paths.journal.write_text("\n".join(lines[:keep]) + "\n" + lines[keep][:5])  # cut mid-line, as a kill does
    paths.circuit.unlink()
    untouched = JobPaths.of(folder, spec.jobs()[1].job_id).circuit
    stamp = untouched.stat().st_mtime_ns
    again = run_sweep(spec, folder, threads=1)
    assert [o.status for o in again.outcomes] == ["done", "skipped"]
    assert untouched.stat().st_mtime_ns == stamp
    resumed = load_circuit(paths.circuit)
    assert resumed.settings["resumed_decisions"] == keep - 1  # every whole decision line was replayed
    assert same_circuit(resumed, original)
    assert same_circuit(original, load_circuit(JobPaths.of(swept.folder, cut.job_id).circuit))


def test_a_killed_driver_loses_no_finished_job(tiny_dir, swept, tmp_path):
    spec_path = tmp_path / "sweep.toml"
    spec_path.write_text(f'models = ["{tiny_dir}"]\ntasks = ["ioi"]\nmethods = ["acdc"]\n'
                         'thresholds = [0.002, 0.02]\nseeds = [0, 1]\nn_prompts = 4\n')
    folder = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    driver = subprocess.Popen([sys.executable, "-m", "acdc_compare.cli", "sweep", str(spec_path), "--out",
                               str(folder), "--threads", "1", "--quiet"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    jobs = load_spec(spec_path).jobs()
    first, second = (JobPaths.of(folder, j.job_id) for j in jobs[:2])
    deadline = time.time() + 120
    while not (first.circuit.exists() and second.journal.exists() and second.journal.read_text().count("\n") > 3):
        assert driver.poll() is None and time.time() < deadline, "the driver ended before it could be killed"
        time.sleep(0.02)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert not second.circuit.exists()  # killed mid-job
    finished = first.circuit.read_bytes()
    result = run_sweep(spec_path, folder, threads=1)
    assert result.outcomes[0].status == "skipped" and result.outcomes[1].status == "done"
    assert first.circuit.read_bytes() == finished
    assert load_circuit(second.circuit).settings["resumed_decisions"] > 0
    for job in jobs:  # the same circuits as the uninterrupted sweep
        assert same_circuit(load_circuit(JobPaths.of(folder, job.job_id).circuit),
                            load_circuit(JobPaths.of(swept.folder, job.job_id).circuit))


def test_a_failed_job_is_recorded_and_the_others_run(tiny_dir, tmp_path):
    spec = spec_from_mapping(grid(tiny_dir, tasks=["ioi"], methods=["eap-ig"], seeds=[0], thresholds=[0.01],
                                  metric="logit_diff", options={"eap-ig": {"steps": 2}}))
    bad = SweepSpec(**{**spec.__dict__, "tasks": ("induction",)})  # induction has no wrong answers
    result = run_sweep(bad, tmp_path / "f", threads=1)
    assert [o.status for o in result.outcomes] == ["failed"]
    failed = JobPaths.of(tmp_path / "f", bad.jobs()[0].job_id).failed
    assert "wrong" in json.loads(failed.read_text())["error"]
    assert result.summary["missing"] == [bad.jobs()[0].job_id]


def test_ctrl_c_after_a_finished_job_says_what_is_kept_and_the_rerun_reuses_it(tiny_dir, tmp_path, monkeypatch,
                                                                             capsys):
    from acdc_compare.sweeps.worker import Worker

    spec_path = tmp_path / "s.toml"
    spec_path.write_text(f'models = ["{tiny_dir}"]\ntasks = ["ioi"]\nmethods = ["eap-ig"]\n'
                         'thresholds = [0.01, 0.02]\nseeds = [0]\nn_prompts = 4\n[options.eap-ig]\nsteps = 2\n')
    real_run_job = Worker.run_job

    def one_then_ctrl_c(self, job, folder):
        if any(p.is_file() for p in Path(folder).glob("jobs/*/circuit.json")):
            raise KeyboardInterrupt
        return real_run_job(self, job, folder)

    monkeypatch.setattr(Worker, "run_job", one_then_ctrl_c)
    argv = ["sweep", str(spec_path), "--out", str(tmp_path / "out"), "--quiet"]
    assert main(argv) == 130
    err = capsys.readouterr().err
    first = load_spec(spec_path).jobs()[0].job_id
    assert "nothing of this run was saved" not in err
    assert f"1 of 2 job(s) had finished ({first})" in err and "Run the same command again to resume" in err
    monkeypatch.setattr(Worker, "run_job", real_run_job)
    assert main(argv) == EXIT_OK
    assert (tmp_path / "out" / "sweep.json").is_file()


# ----- the aggregate ------------------------------------------------------------------------------------
def test_aggregate_seed_stability_against_set_arithmetic(swept, tiny_dir):
    spec = spec_from_mapping(grid(tiny_dir))
    summary = json.loads(swept.summary_path.read_text())
    assert summary["n_finished"] == summary["n_jobs"] == len(spec.jobs()) and not summary["missing"]
    assert len(summary["groups"]) == 2 * 2 * 2  # tasks x methods x thresholds
    for g in summary["groups"]:
        a, b = (load_circuit(JobPaths.of(swept.folder, j).circuit) for j in g["jobs"])
        ea, eb = set(a.kept_edge_names()), set(b.kept_edge_names())
        assert g["edges"] == [len(ea), len(eb)]
        assert g["seed_pairs"][0]["edge_jaccard"] == pytest.approx(len(ea & eb) / len(ea | eb) if ea | eb else 1.0)
        ha, hb = a.heads(), b.heads()
        assert g["head_jaccard_mean"] == pytest.approx(len(ha & hb) / len(ha | hb) if ha | hb else 1.0)
        expected = {e: (int(e in ea) + int(e in eb)) / 2 for e in ea | eb}
        assert g["edge_fraction"] == pytest.approx(expected)
        stable = load_circuit(swept.folder / g["stable_file"])
        assert set(stable.kept_edge_names()) == ea & eb  # >= 80% of 2 seeds: both
        assert g["stable_edges"] == len(ea & eb)
        if g["task"] == "ioi":
            assert "vs_ioi" not in g
        else:
            ioi = next(r for r in summary["groups"] if r["task"] == "ioi" and r["method"] == g["method"]
                       and r["threshold"] == g["threshold"])
            ioi_edges = set(load_circuit(swept.folder / ioi["stable_file"]).kept_edge_names())
            mine = ea & eb
            union = mine | ioi_edges
            assert g["vs_ioi"]["edges"]["jaccard"] == pytest.approx(len(mine & ioi_edges) / len(union) if union else 1)


def test_the_stable_circuit_keeps_edges_of_at_least_80_percent_of_seeds(tiny_dir, tmp_path):
    spec = spec_from_mapping(grid(tiny_dir, tasks=["ioi"], methods=["eap-ig"], thresholds=[0.01],
                                  seeds=[0, 1, 2, 3, 4]))
    result = run_sweep(spec, tmp_path / "five", threads=1)
    (g,) = result.summary["groups"]
    kept = torch.stack([load_circuit(JobPaths.of(result.folder, j).circuit).kept for j in g["jobs"]])
    stable = load_circuit(result.folder / g["stable_file"])
    assert torch.equal(stable.kept, kept.sum(0) >= 4)  # 4 of 5 seeds is 80%
    assert len(g["seed_pairs"]) == 10


def test_report_page_holds_plots_viewer_and_tables(swept):
    html = swept.report_path.read_text()
    assert "Size and faithfulness vs threshold" in html and html.count('class="plot"') == 2
    assert "Stable circuits" in html and "acdc-viewer-data" in html
    assert "Edge stability" in html and "stable vs IOI" in html


# ----- the command line ----------------------------------------------------------------------------------
def test_cli_sweep_spec_and_flags(tiny_dir, tmp_path, capsys):
    spec_path = tmp_path / "s.toml"
    spec_path.write_text(f'models = ["{tiny_dir}"]\ntasks = ["ioi"]\nmethods = ["eap-ig"]\nthresholds = [0.01]\n'
                         'seeds = [0, 1]\nn_prompts = 4\n[options.eap-ig]\nsteps = 2\n')
    assert main(["sweep", str(spec_path), "--executor", "local", "--out", str(tmp_path / "a"), "--quiet"]) == EXIT_OK
    printed = capsys.readouterr().out
    assert "2 seed(s)" in printed and "sweep.json" in printed and (tmp_path / "a" / "report.html").is_file()
    # the same grid from flags: the same jobs, found finished
    assert main(["sweep", "--model", str(tiny_dir), "--task", "ioi", "--method", "eap-ig", "--steps", "2",
                 "--thresholds", "0.01", "--seeds", "0", "1", "--n-prompts", "4", "--executor", "local",
                 "--out", str(tmp_path / "a")]) == EXIT_OK
    assert "finished before, skipped" in capsys.readouterr().out
    assert main(["sweep", str(spec_path), "--thresholds", "0.1", "--out", str(tmp_path / "b")]) == EXIT_USAGE
    bad = tmp_path / "bad.toml"
    bad.write_text('thresholds = [0.1]\ntasks = ["nope"]\n')
    assert main(["sweep", str(bad), "--out", str(tmp_path / "c")]) == EXIT_USAGE
    assert "unknown task" in capsys.readouterr().err
    assert main(["sweep", "--task", "ioi", "--out", str(tmp_path / "d")]) == EXIT_USAGE


def test_the_python_api_takes_a_spec_and_the_old_form_still_works(swept, tiny_dir, tmp_path):
    from acdc_compare import sweep

    spec = grid(tiny_dir, tasks=["ioi"], methods=["eap-ig"], seeds=[0], thresholds=[0.02])
    result = sweep(spec, executor="local", out=tmp_path / "api", threads=1)
    (job,) = spec_from_mapping(spec).jobs()
    assert result.outcomes[0].status == "done"
    assert torch.equal(load_circuit(JobPaths.of(result.folder, job.job_id).circuit).kept,
                       load_circuit(JobPaths.of(swept.folder, job.job_id).circuit).kept)
    with pytest.raises(ValueError, match="holds its own thresholds"):
        sweep(spec, [0.1])
    with pytest.raises(ValueError, match="executor= runs a sweep spec"):
        sweep("ioi", [0.1], executor="ray")


def test_without_ray_the_core_imports_and_the_ray_executor_says_what_to_install(tiny_dir, tmp_path):
    code = ("import sys; sys.modules['ray'] = None\n"
            "import acdc_compare, acdc_compare.cli, acdc_compare.sweeps\n"
            "from acdc_compare.sweeps.executors import run_ray\n"
            "try:\n    run_ray([], '.')\nexcept ValueError as err:\n    print(err)\n")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "pip install 'acdc_compare[ray]'" in out
