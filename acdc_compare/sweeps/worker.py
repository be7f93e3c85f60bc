"""Running one sweep job where a result is never lost: each job owns a folder under the sweep's
`jobs/`, holding its settings, its decision journal (greedy methods) and, once finished, its circuit.

    jobs/<job id>/job.json       the job's settings (written first)
    jobs/<job id>/running.json   which process runs it (pid, host), removed when it ends
    jobs/<job id>/journal.jsonl  ACDC's decisions as they are made (acdc, hybrid): a cut run resumes from it
    jobs/<job id>/circuit.json   the result, written atomically: its presence is what "finished" means
    jobs/<job id>/failed.json    the error of the last failed attempt (removed by a later success)

A `Worker` holds one model at a time and the problems prepared on it, so the jobs of one model (sorted
together by the executors) load it once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from acdc_compare.algorithms.problem import Problem, make_problem
from acdc_compare.algorithms.registry import algorithm, make_options, run
from acdc_compare.backends import load_model, make_patcher, model_name, tokenizer
from acdc_compare.circuit import Circuit
from acdc_compare.export import save_circuit
from acdc_compare.files import atomic_write
from acdc_compare.sweeps.spec import Job
from acdc_compare.tasks.registry import make_task

JobStatus = Literal["done", "skipped", "failed"]


@dataclass(frozen=True)
class JobPaths:
    """Where one job's files live inside a sweep folder."""

    folder: Path

    @classmethod
    def of(cls, sweep_folder: str | os.PathLike, job_id: str) -> "JobPaths":
        return cls(Path(sweep_folder) / "jobs" / job_id)

    @property
    def settings(self) -> Path:
        return self.folder / "job.json"

    @property
    def running(self) -> Path:
        return self.folder / "running.json"

    @property
    def journal(self) -> Path:
        return self.folder / "journal.jsonl"

    @property
    def circuit(self) -> Path:
        return self.folder / "circuit.json"

    @property
    def failed(self) -> Path:
        return self.folder / "failed.json"


@dataclass(frozen=True)
class JobOutcome:
    """What became of one job: done now, skipped (finished before), or failed (with the error)."""

    job_id: str
    status: JobStatus
    seconds: float
    pid: int  # the process that ran it
    models_loaded: int = 0  # how many models that process had loaded by then
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "JobOutcome":
        return cls(**d)


class Worker:
    """Runs jobs in this process, keeping the last model loaded and the problems prepared on it."""

    def __init__(self, device: str | None = None, threads: int | None = None) -> None:
        """`threads`: torch's CPU threads for this process (float sums depend on how work is split, so
        runs compare bit for bit only at equal thread counts)."""
        if threads is not None:
            torch.set_num_threads(threads)
        self.device = device
        self._model: tuple[str, Any] | None = None
        self._patchers: dict[bool, Any] = {}
        self._problem: tuple[tuple[Any, ...], Problem] | None = None
        self.models_loaded = 0

    def problem(self, job: Job) -> Problem:
        """The job's prepared problem (model, prompts of its seed, ablated run), reused across its jobs."""
        if self._problem is not None and self._problem[0] == job.problem_key:
            return self._problem[1]
        bridge = self._bridge(job.model)
        if job.include_direct not in self._patchers:
            self._patchers[job.include_direct] = make_patcher(bridge, include_direct=job.include_direct)
        task = make_task(job.task, tokenizer(bridge), n=job.n_prompts, seed=job.seed, corruption=job.corruption)
        problem = make_problem(self._patchers[job.include_direct], task, metric=job.metric, ablation=job.ablation,
                               model_name=model_name(bridge))
        self._problem = (job.problem_key, problem)
        return problem

    def _bridge(self, model: str) -> Any:
        if self._model is None or self._model[0] != model:
            self._model, self._patchers, self._problem = None, {}, None  # one model at a time: they are large
            self._model = (model, load_model(model, device=self.device))
            self.models_loaded += 1
        return self._model[1]

    def run_job(self, job: Job, sweep_folder: str | os.PathLike) -> JobOutcome:
        """Run `job` unless its circuit is already there; a cut greedy run resumes from its journal."""
        started = time.perf_counter()
        paths = JobPaths.of(sweep_folder, job.job_id)
        if paths.circuit.is_file():
            return JobOutcome(job.job_id, "skipped", 0.0, os.getpid(), self.models_loaded)
        paths.folder.mkdir(parents=True, exist_ok=True)
        _write_json(paths.settings, job.settings())
        _write_json(paths.running, {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()})
        circuit = self._discover(job, paths)
        save_circuit(circuit, paths.circuit)
        paths.running.unlink(missing_ok=True)
        paths.failed.unlink(missing_ok=True)
        return JobOutcome(job.job_id, "done", time.perf_counter() - started, os.getpid(), self.models_loaded)

    def _discover(self, job: Job, paths: JobPaths) -> Circuit:
        problem = self.problem(job)
        tau = job.threshold if job.threshold_scale == "absolute" else problem.relative_threshold(job.threshold)
        extra = {"journal": str(paths.journal)} if "journal" in {f.name for f in
                                                                 algorithm(job.method).option_fields()} else {}
        found = run(problem, make_options(job.method, tau, **dict(job.options), **extra))
        settings = {**found.settings, "sweep_job": job.job_id, "sweep": job.settings()}
        return dataclasses.replace(found, settings=settings)


def record_failure(job: Job, sweep_folder: str | os.PathLike, err: BaseException, seconds: float) -> JobOutcome:
    """Note a failed attempt in the job's folder (its journal stays, so a rerun resumes) and return it."""
    paths = JobPaths.of(sweep_folder, job.job_id)
    paths.folder.mkdir(parents=True, exist_ok=True)
    message = f"{type(err).__name__}: {err}"
    _write_json(paths.failed, {"error": message, "traceback": traceback.format_exception(err)})
    paths.running.unlink(missing_ok=True)
    return JobOutcome(job.job_id, "failed", seconds, os.getpid(), error=message)


def _write_json(path: Path, data: Any) -> None:
    atomic_write(path, (json.dumps(data, indent=1, allow_nan=False) + "\n").encode("utf-8"))


__all__ = ["JobOutcome", "JobPaths", "JobStatus", "Worker", "record_failure"]
