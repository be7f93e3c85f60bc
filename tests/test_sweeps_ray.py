"""The Ray executor on a 2-CPU local cluster: the same circuits as the local executor, one model load per
worker, and a worker killed mid-job retried to the circuit an uninterrupted run finds. Few tests: starting
Ray costs seconds."""

import os
import signal
import threading
import time

import pytest
import torch
from conftest import make_tiny_hf_dir

from acdc_compare.export import load_circuit
from acdc_compare.sweeps import JobPaths, run_sweep, spec_from_mapping

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    tiny = make_tiny_hf_dir(tmp_path_factory.mktemp("tiny-ray"))
    return spec_from_mapping(dict(models=[str(tiny)], tasks=["ioi", "pet-last"], methods=["acdc", "eap-ig"],
                                  thresholds=[0.002], seeds=[0, 1], n_prompts=4,
                                  options={"eap-ig": {"steps": 2}}))


@pytest.fixture(scope="module")
def local(spec, tmp_path_factory):
    return run_sweep(spec, tmp_path_factory.mktemp("local"), threads=1)


def same_circuit(a, b) -> bool:
    return (torch.equal(a.kept, b.kept) and torch.equal(a.scores.nan_to_num(-7.0), b.scores.nan_to_num(-7.0))
            and dict(a.metrics) == dict(b.metrics))


def test_ray_and_local_executors_give_identical_results(cluster, spec, local, tmp_path):
    result = run_sweep(spec, tmp_path / "ray", executor="ray", workers=2)
    assert [o.status for o in result.outcomes] == ["done"] * len(spec.jobs())
    pids = {o.pid for o in result.outcomes}
    assert os.getpid() not in pids and len(pids) == 2  # both actors worked
    assert max(o.models_loaded for o in result.outcomes) == 1  # each loaded the model once
    for job in spec.jobs():
        assert same_circuit(load_circuit(JobPaths.of(result.folder, job.job_id).circuit),
                            load_circuit(JobPaths.of(local.folder, job.job_id).circuit)), job.job_id
    strip = lambda s: {k: v for k, v in s.items() if k != "stable_file"}  # noqa: E731
    assert [strip(g) for g in result.summary["groups"]] == [strip(g) for g in local.summary["groups"]]


def test_a_worker_killed_mid_job_is_retried_to_the_same_circuit(cluster, spec, local, tmp_path):
    job = next(j for j in spec.jobs() if j.method == "acdc" and j.task == "ioi")
    one = spec_from_mapping({**spec.to_json(), "tasks": ["ioi"], "methods": ["acdc"], "options": {},
                             "thresholds": [job.threshold], "seeds": [job.seed]})
    folder = tmp_path / "killed"
    paths = JobPaths.of(folder, job.job_id)
    killed: list[int] = []

    def kill_mid_job() -> None:
        deadline = time.time() + 120
        while time.time() < deadline:
            if paths.running.exists() and paths.journal.exists() and paths.journal.read_text().count("\n") > 10:
                pid = int(__import__("json").loads(paths.running.read_text())["pid"])
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_mid_job)
    killer.start()
    result = run_sweep(one, folder, executor="ray", workers=1)
    killer.join()
    assert killed, "the job finished before its worker could be killed"
    (outcome,) = result.outcomes
    assert outcome.status == "done" and outcome.pid != killed[0]  # a restarted actor finished it
    circuit = load_circuit(paths.circuit)
    assert circuit.settings["resumed_decisions"] >= 10  # it resumed from the journal, not from scratch
    assert same_circuit(circuit, load_circuit(JobPaths.of(local.folder, job.job_id).circuit))
