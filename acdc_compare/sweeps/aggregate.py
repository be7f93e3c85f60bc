"""A sweep's aggregate, from the files its jobs wrote: one JSON summary and one HTML page.

Per group of jobs that differ only in their prompt seed (model, task, corruption, method, threshold):
circuit size and normalised faithfulness (mean and spread over seeds), the fraction of seeds whose circuit
keeps each edge, edge and head Jaccard between every pair of seeds, and the stable circuit (the edges kept in
at least `stable_fraction` of the seeds; its scores are those fractions), saved as a circuit file, shown in the
report's viewer and compared with IOI's stable circuit of the same model, method and threshold. Nothing here
needs a model: it reads circuit JSON files (never pickle).
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from acdc_compare.circuit import Circuit
from acdc_compare.compare import compare_circuits
from acdc_compare.export import load_circuit, save_circuit
from acdc_compare.faithfulness import circuit_faithfulness
from acdc_compare.files import atomic_write
from acdc_compare.fmt import num
from acdc_compare.plots import line_plot
from acdc_compare.report import Html, KeyValues, Table, Text, write_report
from acdc_compare.sweeps.spec import Job, SweepSpec
from acdc_compare.sweeps.worker import JobPaths
from acdc_compare.viewer import viewer_section

SCHEMA = "acdc_compare.sweep/1"
REFERENCE_TASK = "ioi"
_TOLERANCE = 1e-9  # 4 of 5 seeds is 0.8 exactly, whatever the float rounding


@dataclass(frozen=True)
class Group:
    """The finished jobs of one grid point, one circuit per prompt seed (seed order)."""

    jobs: tuple[Job, ...]
    circuits: tuple[Circuit, ...]

    @property
    def first(self) -> Job:
        return self.jobs[0]

    @property
    def group_id(self) -> str:
        return self.first.group_id

    def edge_fraction(self) -> torch.Tensor:
        """Fraction of seeds whose circuit keeps each edge: float64 [n_edges]."""
        return torch.stack([c.kept for c in self.circuits]).to(torch.float64).mean(0)

    def stable(self, min_fraction: float) -> Circuit:
        """The edges kept in at least `min_fraction` of the seeds, scored by that fraction."""
        fraction = self.edge_fraction()
        j = self.first
        return Circuit(self.circuits[0].graph, fraction >= min_fraction - _TOLERANCE, fraction,
                       settings={"method": f"stable {j.method}", "task": j.task, "corruption": j.corruption,
                                 "threshold": j.threshold, "threshold_scale": j.threshold_scale,
                                 "seeds": [x.seed for x in self.jobs], "min_fraction": min_fraction,
                                 "model": self.circuits[0].settings.get("model", j.model)})


def group_jobs(jobs: Sequence[Job], folder: Path) -> tuple[list[Group], list[str]]:
    """Finished jobs grouped over seeds (grid order), and the ids of jobs with no circuit yet."""
    by_key: dict[tuple[Any, ...], list[tuple[Job, Circuit]]] = {}
    missing = []
    for job in jobs:
        path = JobPaths.of(folder, job.job_id).circuit
        if not path.is_file():
            missing.append(job.job_id)
            continue
        by_key.setdefault(job.group_key, []).append((job, load_circuit(path)))
    groups = [Group(tuple(j for j, _ in sorted(items, key=lambda x: x[0].seed)),
                    tuple(c for _, c in sorted(items, key=lambda x: x[0].seed))) for items in by_key.values()]
    return groups, missing


def _stats(values: Sequence[float]) -> dict[str, float | None]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return {"mean": None, "std": None}
    return {"mean": statistics.fmean(finite), "std": statistics.pstdev(finite) if len(finite) > 1 else 0.0}


def _pairs(group: Group) -> list[dict[str, Any]]:
    out = []
    for (ja, a), (jb, b) in itertools.combinations(zip(group.jobs, group.circuits), 2):
        cmp_ = compare_circuits(a, b)
        out.append({"seeds": [ja.seed, jb.seed], "edge_jaccard": cmp_.edges.jaccard,
                    "head_jaccard": cmp_.heads.jaccard})
    return out


def _mean_of(pairs: Sequence[Mapping[str, Any]], key: str) -> float | None:
    return statistics.fmean(p[key] for p in pairs) if pairs else None


def group_summary(group: Group, stable: Circuit, stable_file: Path, reference: Circuit | None,
                  folder: Path) -> dict[str, Any]:
    """The JSON record of one group (see the module docstring)."""
    j = group.first
    fraction = group.edge_fraction()
    names = group.circuits[0].graph.edge_names
    order = sorted((i for i in range(len(names)) if fraction[i] > 0), key=lambda i: (-float(fraction[i]), i))
    pairs = _pairs(group)
    out: dict[str, Any] = {
        "group": group.group_id, "model": j.model, "task": j.task, "corruption": j.corruption, "method": j.method,
        "threshold": j.threshold, "threshold_scale": j.threshold_scale, "n_prompts": j.n_prompts,
        "seeds": [x.seed for x in group.jobs], "jobs": [x.job_id for x in group.jobs],
        "edges": [c.n_kept for c in group.circuits],
        "heads": [len(c.heads()) for c in group.circuits],
        "faithfulness": [_json_float(circuit_faithfulness(c)) for c in group.circuits],
        "edges_stats": _stats([c.n_kept for c in group.circuits]),
        "faithfulness_stats": _stats([circuit_faithfulness(c) for c in group.circuits]),
        "seed_pairs": pairs, "edge_jaccard_mean": _mean_of(pairs, "edge_jaccard"),
        "head_jaccard_mean": _mean_of(pairs, "head_jaccard"),
        "edge_fraction": {names[i]: float(fraction[i]) for i in order},
        "stable_edges": stable.n_kept, "stable_heads": sorted(stable.heads()),
        "stable_file": str(stable_file.relative_to(folder)),
    }
    if reference is not None:
        cmp_ = compare_circuits(stable, reference)
        out["vs_ioi"] = {level: {"jaccard": o.jaccard, "precision": o.precision, "recall": o.recall,
                                 "both": len(o.both)}
                         for level, o in (("edges", cmp_.edges), ("heads", cmp_.heads))}
    return out


def _json_float(x: float) -> float | None:
    return x if math.isfinite(x) else None


def aggregate(spec: SweepSpec, folder: str | Path) -> dict[str, Any]:
    """Write `sweep.json`, the stable circuits (`stable/*.json`) and `report.html` into the sweep folder
    from the circuits its jobs have written so far; returns the summary."""
    folder = Path(folder)
    groups, missing = group_jobs(spec.jobs(), folder)
    (folder / "stable").mkdir(parents=True, exist_ok=True)
    stables = {g.group_id: g.stable(spec.stable_fraction) for g in groups}
    files = {gid: save_circuit(c, folder / "stable" / f"{gid}.json") for gid, c in stables.items()}
    references = {_reference_key(g.first): stables[g.group_id] for g in groups if g.first.task == REFERENCE_TASK}
    summaries = []
    for g in groups:
        ref = references.get(_reference_key(g.first)) if g.first.task != REFERENCE_TASK else None
        if ref is not None and ref.graph != stables[g.group_id].graph:
            ref = None
        summaries.append(group_summary(g, stables[g.group_id], files[g.group_id], ref, folder))
    summary = {"schema": SCHEMA, "spec": spec.to_json(), "n_jobs": len(spec.jobs()),
               "n_finished": len(spec.jobs()) - len(missing), "missing": missing,
               "skipped": [list(p) for p in spec.skipped()], "groups": summaries}
    atomic_write(folder / "sweep.json", (json.dumps(summary, indent=1, allow_nan=False) + "\n").encode("utf-8"))
    write_report(folder / "report.html", title=f"acdc_compare sweep: {folder.name}",
                 sections=report_sections(spec, summary, groups, stables))
    return summary


def _reference_key(job: Job) -> tuple[Any, ...]:
    return (job.model, job.method, job.threshold, job.threshold_scale, job.n_prompts, job.metric, job.ablation,
            job.include_direct)


# ----- the HTML page --------------------------------------------------------------------------------------
def _fmt_stats(s: Mapping[str, float | None]) -> str:
    if s["mean"] is None:
        return "n/a"
    return f"{num(s['mean'])} ± {num(s['std'], 2)}"


def report_sections(spec: SweepSpec, summary: Mapping[str, Any], groups: Sequence[Group],
                    stables: Mapping[str, Circuit]) -> list[Any]:
    scale = "relative threshold (fraction of M(empty) - M(full))" if spec.threshold_scale == "relative" \
        else "threshold (metric units)"
    sections: list[Any] = [KeyValues("Sweep", {
        "models": ", ".join(spec.models), "tasks": ", ".join(spec.tasks), "corruptions": ", ".join(spec.corruptions),
        "methods": ", ".join(spec.methods), "thresholds": ", ".join(f"{t:g}" for t in spec.thresholds),
        "threshold scale": spec.threshold_scale, "prompt seeds": ", ".join(map(str, spec.seeds)),
        "prompts per job": spec.n_prompts, "jobs finished": f"{summary['n_finished']} of {summary['n_jobs']}",
        "stable circuit": f"edges kept in >= {spec.stable_fraction:.0%} of the seeds",
        "not offered (skipped)": ", ".join(f"{t}/{c}" for t, c in summary["skipped"]) or "none"})]
    rows = summary["groups"]
    sections.append(Table("Size, faithfulness and seed stability", [
        "model", "task", "corruption", "method", "threshold", "seeds", "edges (mean ± sd)",
        "faithfulness (mean ± sd)", "edge Jaccard", "head Jaccard", "stable edges", "stable heads",
        "stable vs IOI: edge Jaccard", "head Jaccard"],
        [[r["model"], r["task"], r["corruption"], r["method"], r["threshold"], len(r["seeds"]),
          _fmt_stats(r["edges_stats"]), _fmt_stats(r["faithfulness_stats"]), r["edge_jaccard_mean"],
          r["head_jaccard_mean"], r["stable_edges"], len(r["stable_heads"]),
          r.get("vs_ioi", {}).get("edges", {}).get("jaccard"), r.get("vs_ioi", {}).get("heads", {}).get("jaccard")]
         for r in rows]))
    for model in spec.models:
        mine = [r for r in rows if r["model"] == model]
        if not mine:
            continue
        series: dict[str, dict[str, list[tuple[float, float]]]] = {"edges": {}, "faithfulness": {}}
        for r in mine:
            label = f"{r['task']}/{r['corruption']} {r['method']}"
            for what in series:
                mean = r[f"{what}_stats"]["mean"]
                series[what].setdefault(label, []).append((r["threshold"], math.nan if mean is None else mean))
        log_x = all(t > 0 for t in spec.thresholds)
        plots = [line_plot(series[what], x_label=scale, y_label=y, log_x=log_x)
                 for what, y in (("edges", "edges kept (mean over seeds)"),
                                 ("faithfulness", "normalised faithfulness (mean)"))]
        sections.append(Html(f"Size and faithfulness vs threshold: {model}",
                             f'<div style="display:flex;flex-wrap:wrap;gap:1em">{"".join(plots)}</div>'))
    by_view: dict[tuple[Any, ...], dict[str, Circuit]] = {}
    for g in groups:
        j = g.first
        by_view.setdefault((j.model, j.method, j.threshold), {})[f"{j.task} ({j.corruption})"] = stables[g.group_id]
    for (model, method, tau), circuits in by_view.items():
        graphs = {c.graph for c in circuits.values()}
        if len(graphs) == 1 and any(c.n_kept for c in circuits.values()):
            sections.append(viewer_section(circuits, title=f"Stable circuits: {model}, {method} @ {tau:g} "
                                                           f"(edges in >= {spec.stable_fraction:.0%} of seeds)"))
    for r in rows:
        top = list(r["edge_fraction"].items())
        sections.append(Table(f"Edge stability: {r['task']} ({r['corruption']}) {r['method']} @ {r['threshold']:g}, "
                              f"{r['model']} ({len(top)} edges kept by some seed; the 25 most kept)",
                              ["edge", "fraction of seeds keeping it"], [[n, f] for n, f in top[:25]]))
    if summary["missing"]:
        sections.append(Text("Jobs not finished", "Rerun the same command to run them: "
                             + ", ".join(summary["missing"])))
    return sections


__all__ = ["Group", "REFERENCE_TASK", "SCHEMA", "aggregate", "group_jobs", "group_summary", "report_sections"]
