"""Sweeps over models x tasks x corruptions x methods x thresholds x prompt seeds, resumable job by job, on
this machine or a Ray cluster, with an aggregate of circuit size, faithfulness and stability across seeds.

    from acdc_compare.sweeps import run_sweep
    result = run_sweep("sweep.toml", executor="ray", out="results/sweep")

`spec` reads and expands the grid, `worker` runs one job into its folder, `executors` runs the jobs (only
it imports ray, lazily), `aggregate` writes sweep.json and report.html.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acdc_compare.files import atomic_write
from acdc_compare.sweeps.aggregate import aggregate
from acdc_compare.sweeps.executors import EXECUTORS, ExecutorKind, Log, run_jobs
from acdc_compare.sweeps.spec import Job, SpecError, SweepSpec, as_spec, load_spec, spec_from_mapping
from acdc_compare.sweeps.worker import JobOutcome, JobPaths


@dataclass(frozen=True)
class SweepResult:
    """What a sweep run did: its folder, every job's outcome now, and the aggregate's summary."""

    folder: Path
    outcomes: tuple[JobOutcome, ...]
    summary: Mapping[str, Any]

    @property
    def failed(self) -> list[JobOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def summary_path(self) -> Path:
        return self.folder / "sweep.json"

    @property
    def report_path(self) -> Path:
        return self.folder / "report.html"


def run_sweep(spec: SweepSpec | Mapping[str, Any] | str | os.PathLike, out: str | os.PathLike = "results/sweep", *,
              executor: ExecutorKind = "local", address: str | None = None, workers: int | None = None,
              device: str | None = None, threads: int | None = None, max_retries: int = 3,
              log: Log = lambda _: None) -> SweepResult:
    """Run every job of the spec not finished in `out` yet (rerunning resumes), then aggregate. `spec`: a
    `SweepSpec`, a mapping of its fields or a TOML file. `executor`: "local" (this process) or "ray" (a
    local Ray cluster, or the one at `address`; `workers` actors). `threads`: torch threads per worker
    (equal thread counts give bit-identical scores on both executors)."""
    the_spec = as_spec(spec)
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of {list(EXECUTORS)}")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "spec.json", (json.dumps(the_spec.to_json(), indent=1) + "\n").encode("utf-8"))
    outcomes = run_jobs(the_spec.jobs(), folder, executor, address=address, workers=workers, device=device,
                        threads=threads, max_retries=max_retries, log=log)
    return SweepResult(folder, tuple(outcomes), aggregate(the_spec, folder))


def interrupted_note(spec: SweepSpec | Mapping[str, Any] | str | os.PathLike, out: str | os.PathLike) -> str:
    """What an interrupted sweep left in `out` and that rerunning resumes, for the message after Ctrl-C."""
    jobs = as_spec(spec).jobs()
    paths = {job.job_id: JobPaths.of(out, job.job_id) for job in jobs}
    finished = [j for j, p in paths.items() if p.circuit.is_file()]
    started = [j for j, p in paths.items() if not p.circuit.is_file() and p.journal.is_file()]
    if not finished and not started:
        return f"no job of the sweep had finished (0 of {len(jobs)}); run the same command again to start it"
    shown = ", ".join(finished[:3]) + (", ..." if len(finished) > 3 else "")
    done = f"{len(finished)} of {len(jobs)} job(s) had finished" + (f" ({shown})" if finished else "")
    part = f"; {len(started)} more journalled their decisions so far" if started else ""
    return (f"{done}{part}; their results are kept in {Path(out) / 'jobs'}. Run the same command again to resume: "
            "finished jobs are reused, journalled ones continue where they stopped")


__all__ = ["EXECUTORS", "ExecutorKind", "Job", "JobOutcome", "JobPaths", "SpecError", "SweepResult", "SweepSpec",
           "aggregate", "as_spec", "interrupted_note", "load_spec", "run_sweep", "spec_from_mapping"]
