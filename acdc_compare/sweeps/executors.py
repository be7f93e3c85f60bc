"""Where a sweep's jobs run: in this process (`local`) or on a Ray cluster (`ray`). Both run the same
`Worker.run_job` on the same job list, so they give the same circuits; only this module imports ray, and only
when the Ray executor is chosen.

Ray: the driver starts a local cluster unless `address` names one to join (`"auto"`, `"ray://host:10001"`,
...). One worker actor per GPU (each asks for `num_gpus=1`; more workers than GPUs share them), or on a
CPU-only cluster one per CPU, unless `workers` says how many; every actor keeps its model loaded and is handed the jobs of the model it holds
before others. An actor whose process dies is restarted and its job retried (up to `max_retries` times):
the job resumes from its journal, so it ends with the circuit an uninterrupted run finds. The cluster needs
acdc_compare installed on every node (the same version as the driver).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from acdc_compare.backends import ModelLoadError
from acdc_compare.sweeps.spec import Job
from acdc_compare.sweeps.worker import JobOutcome, Worker, record_failure

ExecutorKind = Literal["local", "ray"]
EXECUTORS: tuple[ExecutorKind, ...] = ("local", "ray")
Log = Callable[[str], None]


def run_jobs(jobs: Sequence[Job], folder: str | os.PathLike, executor: ExecutorKind = "local", *,
             address: str | None = None, workers: int | None = None, device: str | None = None,
             threads: int | None = None, max_retries: int = 3, log: Log = lambda _: None) -> list[JobOutcome]:
    """Run every job whose circuit is not yet in `folder`; outcomes in the jobs' order. `threads`: torch
    threads per worker (default: local keeps torch's, each Ray actor gets its share of the CPUs)."""
    if executor == "local":
        return run_local(jobs, folder, device=device, threads=threads, log=log)
    if executor == "ray":
        return run_ray(jobs, folder, address=address, workers=workers, device=device, threads=threads,
                       max_retries=max_retries, log=log)
    raise ValueError(f"unknown executor {executor!r}; choose one of {list(EXECUTORS)}")


def run_local(jobs: Sequence[Job], folder: str | os.PathLike, *, device: str | None = None,
              threads: int | None = None, log: Log = lambda _: None) -> list[JobOutcome]:
    """The jobs one after another in this process. A model that cannot be loaded stops the sweep (nothing
    of it could run); any other failure is recorded in the job's folder and the sweep goes on."""
    previous = torch.get_num_threads()
    try:
        return _run_here(Worker(device, threads), jobs, folder, log)
    finally:
        torch.set_num_threads(previous)


def _run_here(worker: Worker, jobs: Sequence[Job], folder: str | os.PathLike, log: Log) -> list[JobOutcome]:
    outcomes = []
    for i, job in enumerate(jobs):
        started = time.perf_counter()
        try:
            outcome = worker.run_job(job, folder)
        except ModelLoadError as err:
            record_failure(job, folder, err, time.perf_counter() - started)
            raise
        except Exception as err:  # a failed job must not lose the others; its error is kept on disk
            outcome = record_failure(job, folder, err, time.perf_counter() - started)
        outcomes.append(outcome)
        log(_progress_line(i + 1, len(jobs), outcome))
    return outcomes


class _RayWorker:
    """The body of a Ray worker actor: a `Worker` whose jobs arrive as plain JSON settings."""

    def __init__(self, device: str | None, threads: int) -> None:
        self.worker = Worker(device, threads)

    def run(self, settings: dict[str, Any], folder: str) -> dict[str, Any]:
        job = Job.from_settings(settings)
        started = time.perf_counter()
        try:
            return self.worker.run_job(job, folder).to_json()
        except Exception as err:  # reported to the driver as a failed job, with its error kept on disk
            return record_failure(job, folder, err, time.perf_counter() - started).to_json()


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ValueError("the Ray executor needs ray: pip install 'acdc_compare[ray]' (or use --executor local)") \
            from None
    return ray


def run_ray(jobs: Sequence[Job], folder: str | os.PathLike, *, address: str | None = None,
            workers: int | None = None, device: str | None = None, threads: int | None = None,
            max_retries: int = 3, log: Log = lambda _: None) -> list[JobOutcome]:
    """The jobs on Ray worker actors (see the module docstring). A cluster this call started is shut down
    at the end; one it joined is left running."""
    ray = _import_ray()
    folder = str(Path(folder).resolve())
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, logging_level="warning", log_to_driver=False)
    try:
        resources = ray.cluster_resources()
        n_gpus, n_cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
        n_workers = max(1, min(len(jobs), workers or n_gpus or n_cpus))
        cpus_each = max(1, n_cpus // n_workers)
        gpus_each = min(1.0, n_gpus / n_workers)  # more workers than GPUs share them rather than wait forever
        actor_class = ray.remote(num_cpus=cpus_each, num_gpus=gpus_each, max_restarts=max_retries,
                                 max_task_retries=max_retries)(_RayWorker)
        threads = threads or cpus_each
        actors = [actor_class.remote(device, threads) for _ in range(n_workers)]
        log(f"ray: {n_workers} worker(s), {cpus_each} CPU(s){f' and {gpus_each:g} GPU' if n_gpus else ''} each, "
            f"{len(jobs)} job(s)")
        return _schedule(ray, jobs, folder, actors, lambda: actor_class.remote(device, threads), log)
    finally:
        if started_here:
            ray.shutdown()


def _schedule(ray: Any, jobs: Sequence[Job], folder: str, actors: list[Any], new_actor: Callable[[], Any],
              log: Log) -> list[JobOutcome]:
    """Hand each idle actor the next job of the model it last ran (else the queue's next) until all are done."""
    queue = list(jobs)
    holding: dict[int, str] = {}
    running: dict[Any, tuple[int, Job, float]] = {}
    outcomes: dict[str, JobOutcome] = {}
    idle = list(range(len(actors)))
    while queue or running:
        while idle and queue:
            slot = idle.pop(0)
            job = next((j for j in queue if j.model == holding.get(slot)), queue[0])
            queue.remove(job)
            holding[slot] = job.model
            running[actors[slot].run.remote(job.settings(), folder)] = (slot, job, time.perf_counter())
        ready, _ = ray.wait(list(running), num_returns=1)
        slot, job, started = running.pop(ready[0])
        try:
            outcome = JobOutcome.from_json(ray.get(ready[0]))
        except ray.exceptions.RayError as err:  # the actor died more often than it may be restarted
            outcome = record_failure(job, folder, err, time.perf_counter() - started)
            actors[slot], holding[slot] = new_actor(), ""
        outcomes[job.job_id] = outcome
        idle.append(slot)
        log(_progress_line(len(outcomes), len(jobs), outcome))
    return [outcomes[j.job_id] for j in jobs]


def _progress_line(i: int, n: int, outcome: JobOutcome) -> str:
    what = {"done": f"done in {outcome.seconds:.1f} s", "skipped": "finished before, skipped",
            "failed": f"FAILED: {outcome.error}"}[outcome.status]
    return f"[{i}/{n}] {outcome.job_id}: {what} (pid {outcome.pid})"


__all__ = ["EXECUTORS", "ExecutorKind", "run_jobs", "run_local", "run_ray"]
