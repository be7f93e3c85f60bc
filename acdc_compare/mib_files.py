"""MIB leaderboard submissions, and any circuit file (this tool's JSON or MIB / EAP-IG's JSON or `.pt`) read by
its content.

A submission (MIB circuit track README, "Submitting to the MIB Leaderboard"; folder names as its
`run_evaluation.py` builds them) is one folder per method holding one folder per task and model, named
`{task}_{model}` with the task's underscores written as hyphens (MIB splits the name at its first underscore).
Each such folder holds either

- `importances.json` (or `.pt`): one MIB circuit file with the score of every edge (`circuit_to_mib`), or
- 9 binary circuits, one per size limit in `MIB_PERCENTAGES`: the circuit for limit p keeps at most p% of the
  MIB graph's edges. MIB names no file names for these; this tool writes `edges_{p}pct.json` (`.pt`) and reads
  any `edges_*pct` file back.

The binary circuits keep a prefix of the circuit's ranking (`Circuit.ranking`: its kept edges first, each by
the evidence it was kept on), so each is contained in the next, the smallest within the circuit and the
largest holding all of it once the size limit allows. Edge counts are MIB edges: under grouped-query
attention one k/v edge of this tool is one MIB edge per query head of its group, and counts that many. Edges
the ranking cannot place (removed and never scored) are never kept. Direct edges have no MIB counterpart (see `acdc_compare.mib`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from acdc_compare.circuit import Circuit
from acdc_compare.export import load_circuit
from acdc_compare.files import PathLike
from acdc_compare.graph import Graph
from acdc_compare.mib import (MibExportReport, MibImportReport, circuit_from_mib, load_mib, mib_edge_names,
                              mib_export_report, save_mib)
from acdc_compare.mib_pt import load_pt

MIB_PERCENTAGES: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
IMPORTANCES = "importances"
_BINARY = re.compile(r"^edges_(\d+(?:\.\d+)?)pct$")
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format


def _pct_text(p: float) -> str:
    return f"{p:g}"


def binary_file_name(p: float, fmt: str = "json") -> str:
    """The file name this tool gives the binary circuit of size limit p percent."""
    return f"edges_{_pct_text(p)}pct.{fmt}"


def submission_folder(root: PathLike, method: str, task: str, model: str) -> Path:
    """`root/method/{task}_{model}`, the task's underscores as hyphens; ValueError for names MIB cannot parse."""
    for what, name in (("method", method), ("task", task), ("model", model)):
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"MIB submission: {what} {name!r} must be a non-empty name without '/'")
    return Path(root) / method / f"{task.replace('_', '-')}_{model}"


def n_mib_edges(graph: Graph) -> int:
    """How many edges the MIB graph of `graph` has (residual edges, k/v ones per query head under GQA)."""
    return sum(len(mib_edge_names(graph, e)) for e in range(graph.n_edges))


def binary_circuits(c: Circuit, percentages: tuple[float, ...] = MIB_PERCENTAGES) -> dict[float, Circuit]:
    """Per size limit p (percent of the MIB graph's edges): the circuit of the first residual edges of `c`'s
    ranking whose MIB edge count stays within p%. Each circuit is scored by `c`'s ranking (`rank_scores`), so
    its MIB file ranks its edges as `c` does."""
    graph = c.graph
    if any(not 0 < p <= 100 for p in percentages):
        raise ValueError(f"MIB percentages must lie in (0, 100]; got {list(percentages)}")
    weight = [len(mib_edge_names(graph, e)) for e in range(graph.n_edges)]
    total = sum(weight)
    ranked = [e for e in c.ranking()[:c.n_ranked()].tolist() if weight[e]]
    scores = c.rank_scores()
    out: dict[float, Circuit] = {}
    for p in percentages:
        limit, used = math.floor(p / 100 * total), 0
        kept = torch.zeros(graph.n_edges, dtype=torch.bool)
        for e in ranked:
            if used + weight[e] > limit:
                break
            kept[e], used = True, used + weight[e]
        out[p] = Circuit(graph, kept, scores, settings={**c.settings, "mib_percent": p})
    return out


@dataclass(frozen=True)
class MibSubmissionReport:
    """What a submission export wrote, and what each file could not express."""

    folder: Path
    paths: tuple[Path, ...]
    n_mib_edges: int
    kept_per_file: dict[str, int]  # file name -> MIB edges in the circuit
    export: MibExportReport  # of the circuit written (the binary files are prefixes of its ranking)

    def lines(self) -> list[str]:
        out = [f"wrote {len(self.paths)} files to {self.folder} (the MIB graph has {self.n_mib_edges} edges)"]
        out += [f"  {name}: {n} edges in the circuit" for name, n in self.kept_per_file.items()]
        return out + self.export.lines()[1:]


def write_submission(c: Circuit, root: PathLike, method: str, task: str, model: str, *, d_model: int = 0,
                     binary: bool = False, fmt: str = "json") -> MibSubmissionReport:
    """Write circuit c as a MIB submission under `root` (see the module docstring): `importances.{fmt}`, or with
    binary=True the 9 binary circuits. `d_model` goes into each file's cfg (give the model's)."""
    if fmt not in ("json", "pt"):
        raise ValueError(f"MIB submission format {fmt!r}: use 'json' or 'pt'")
    folder = submission_folder(root, method, task, model)
    folder.mkdir(parents=True, exist_ok=True)
    stale = [p.name for p in folder.iterdir() if p.stem == IMPORTANCES or _BINARY.match(p.stem)]
    if stale:
        raise ValueError(f"{folder} already holds MIB circuit files ({', '.join(sorted(stale))}); "
                              "remove them or write to another folder, so no old circuit stays mixed in")
    circuits = binary_circuits(c) if binary else {None: c}
    paths, counts = [], {}
    report = None
    for p, circuit in circuits.items():
        path = folder / (binary_file_name(p, fmt) if p is not None else f"{IMPORTANCES}.{fmt}")
        report = save_mib(circuit, path, d_model=d_model)
        paths.append(path)
        counts[path.name] = report.n_kept_written
    assert report is not None
    return MibSubmissionReport(folder, tuple(paths), n_mib_edges(c.graph), counts, mib_export_report(c))


@dataclass(frozen=True)
class MibSubmission:
    """A submission folder read onto a graph: the importances circuit or the binary circuits (by percent), and
    each file's import report (file name -> report)."""

    importances: Circuit | None
    circuits: dict[float, Circuit] = field(default_factory=dict)
    reports: dict[str, MibImportReport] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()  # files in the folder that are neither


def read_submission(folder: PathLike, graph: Graph, d_model: int | None = None) -> MibSubmission:
    """Read a `{task}_{model}` submission folder onto `graph`. ValueError when it holds neither an importances
    file nor binary circuits, or both, or two files for one size."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"MIB submission folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    importances = [p for p in files if p.stem == IMPORTANCES and p.suffix in (".json", ".pt")]
    binary = {p: float(m[1]) for p in files if p.suffix in (".json", ".pt") and (m := _BINARY.match(p.stem))}
    ignored = tuple(p.name for p in files if p not in importances and p not in binary)
    if bool(importances) == bool(binary) or len(importances) > 1:
        what = ("both" if importances and binary else "two importances files" if len(importances) > 1
                else "neither")
        raise ValueError(f"{folder}: a MIB submission folder holds one importances.json / .pt or binary circuits "
                         f"edges_{{p}}pct.json / .pt, not {what} (files: {[p.name for p in files]})")
    if len(set(binary.values())) < len(binary):
        raise ValueError(f"{folder}: two binary circuits for one size ({sorted(p.name for p in binary)})")
    reports: dict[str, MibImportReport] = {}
    if importances:
        circuit, reports[importances[0].name] = load_mib(importances[0], graph, d_model)
        return MibSubmission(circuit, {}, reports, ignored)
    circuits = {}
    for path, p in sorted(binary.items(), key=lambda item: item[1]):
        circuits[p], reports[path.name] = load_mib(path, graph, d_model)
    return MibSubmission(None, circuits, reports, ignored)


# ----- any circuit file, by content ------------------------------------------------------------------
def is_mib_file(path: PathLike) -> bool:
    """Whether `path` holds a MIB / EAP-IG circuit (a torch zip, or a JSON object with cfg, nodes and edges)
    rather than this tool's circuit JSON. Reads the file; runs nothing from it."""
    path = Path(path)
    with path.open("rb") as f:
        if f.read(4) == _ZIP_MAGIC:
            return True
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return False  # let the native reader name what is wrong
    return isinstance(d, dict) and {"cfg", "nodes", "edges"} <= set(d) and "schema" not in d


def load_any_circuit(path: PathLike, graph: Graph | None = None,
                     d_model: int | None = None) -> tuple[Circuit, MibImportReport | None]:
    """A circuit file of either format: this tool's JSON as saved (its own graph; checked against `graph` when
    given), or a MIB file mapped onto `graph` with its import report. ValueError when a MIB file comes with no
    graph to read it onto."""
    path = Path(path)
    if not is_mib_file(path):
        circuit = load_circuit(path)
        if graph is not None:
            circuit.check_graph(graph)
        return circuit, None
    if graph is None:
        raise ValueError(f"{path} is a MIB / EAP-IG circuit file: it names no model, so give the model (--model) "
                         "or a native circuit whose graph it is read onto")
    with path.open("rb") as f:
        zipped = f.read(4) == _ZIP_MAGIC
    if zipped:
        return circuit_from_mib(load_pt(path), graph, d_model)
    return load_mib(path, graph, d_model)
