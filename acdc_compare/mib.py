"""Circuits to and from MIB / EAP-IG circuit files (EAP-IG's `Graph.to_json`, the format MIB's circuit track reads).

The file is one JSON object: `cfg` (`n_layers`, `n_heads`, `parallel_attn_mlp`, `d_model`), `nodes` (name ->
`{"in_graph": bool}`, optionally `score`, `neurons`, `neurons_scores`) and `edges` (name -> `{"score": float,
"in_graph": bool}`). Node names are `input`, `a{L}.h{H}`, `m{L}`, `logits`; edge names `{src}->{dst}` with dst
`a{L}.h{H}<q>` / `<k>` / `<v>`, `m{L}` or `logits`. EAP-IG's graph always has MLPs, so attention-only graphs are
refused both ways.

The mapping (never silent: everything without a counterpart is counted or named in a report):

- Residual edges have the same names on both sides (`a3.h5->a9.h9<q>`, `m2->logits`), with one exception:
- grouped-query attention. This tool has one k/v receiver per key-value head (`a3.kv1<k>`), MIB one per query
  head (`a3.h2<k>`, `a3.h3<k>`). Export writes the group edge once per query head of the group, each with the
  group edge's score and in_graph; import requires the entries of one group to agree (equal score, NaN equal
  to NaN, and equal in_graph) and refuses the file naming the group otherwise.
- Direct edges (`a9.h9<q>`, ACDC's edge from a head's q/k/v input into the head) have no MIB counterpart: in
  MIB a q/k/v input always reaches its head. Export does not write them and reports how many kept ones it
  dropped, and which kept residual edges feed an input whose direct edge is removed (MIB will read those as
  reaching the head). Import keeps a direct edge exactly when its q/k/v input has a kept residual edge, and
  leaves its score NaN. (An input with no kept residual edge carries its ablated value either way, so this
  is the smallest circuit computing what the MIB circuit computes.)
- Scores: export writes the circuit's ranking (`Circuit.ranking`: kept edges first, each by the evidence it
  was kept on), as scores in (0, 1] (1 = first) so that MIB's order by |score| is that ranking; a circuit's
  evidence mixes kinds (ACDC's metric changes, learned logits, EAP-IG scores) that no single number of MIB's
  can order. Edges the ranking cannot place (removed and never scored) are written as 0.0, and the report
  counts them and says what the file does not carry (the evidence itself, metrics, settings). Import reads every number (NaN included); a residual edge the file lacks is left out
  with a NaN score and named in the report.
- Nodes: export marks a node in_graph when a written kept edge touches it (`logits` always, as EAP-IG does)
  and writes no node scores. Import derives nodes from edges: node in_graph flags are not read, node names
  this graph lacks are named, and node scores / neuron masks (no counterpart) are counted per field.
- `cfg`: import refuses a file whose n_layers, n_heads or parallel_attn_mlp differ from the graph's (and its
  d_model, when the caller gives one and the file's is not 0). Export writes `d_model` as given (0 when
  unknown: EAP-IG reads it only for neuron masks; give the model's for a MIB submission).

The same object travels as EAP-IG's `.pt` file when a path ends in `.pt` (`acdc_compare.mib_pt`). Loading
runs `json.loads`, or `torch.load(weights_only=True)` for `.pt`: no pickled code ever runs.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from acdc_compare.circuit import Circuit
from acdc_compare.files import PathLike, atomic_write
from acdc_compare.graph import LOGITS, Graph
from acdc_compare.mib_pt import load_pt, save_pt
from acdc_compare.types import ReceiverKind

_MIB_HEAD_INPUT = re.compile(r"^a(\d+)\.h(\d+)<([qkv])>$")
_CFG_KEYS = ("n_layers", "n_heads", "parallel_attn_mlp")
_MAX_FLOAT = int(torch.finfo(torch.float64).max)  # a larger int has no float64 value


@dataclass(frozen=True)
class MibExportReport:
    """What an export could not express: counts and names, for the caller to show."""

    n_edges_written: int
    n_kept_written: int
    dropped_direct: tuple[str, ...]  # kept direct edges (no MIB counterpart), not written
    blocked_by_direct: tuple[str, ...]  # kept residual edges into a q/k/v input whose direct edge is removed
    unranked: int  # MIB edges the ranking cannot place (removed and never scored), written as 0.0
    kept_unscored: int = 0  # MIB edges kept without a score: ranked after the scored kept edges, in edge order
    kinds: Mapping[str, int] = field(default_factory=dict)  # kept edges per kind of evidence

    def lines(self) -> list[str]:
        """A human summary, one fact per line."""
        kinds = ", ".join(f"{n} {kind}" for kind, n in self.kinds.items()) or "none"
        out = [f"wrote {self.n_edges_written} MIB edges, {self.n_kept_written} in the circuit",
               "scores are the circuit's ranking (1 = its first edge, kept edges above the rest), not its evidence "
               f"(kept edges scored by: {kinds}), which stays in the circuit's JSON with its metrics and "
               "settings: MIB's file has no place for them"]
        if self.dropped_direct:
            out.append(f"{len(self.dropped_direct)} kept direct edges have no MIB counterpart and were not written")
        if self.blocked_by_direct:
            out.append(f"{len(self.blocked_by_direct)} kept residual edges feed a q/k/v input whose direct edge is "
                       f"removed; MIB reads them as reaching the head (e.g. {self.blocked_by_direct[0]})")
        if self.unranked:
            out.append(f"{self.unranked} edges were never scored nor kept, so the ranking cannot place them: "
                       "written with score 0.0")
        if self.kept_unscored:
            out.append(f"{self.kept_unscored} kept edges have no score (an old circuit file?): ranked after the "
                       "scored kept edges in edge order; rediscover the circuit to rank them")
        return out


@dataclass(frozen=True)
class MibImportReport:
    """What an import could not map: never dropped silently."""

    unmapped_edges: tuple[str, ...]  # file edges with no counterpart in the graph
    missing_edges: tuple[str, ...]  # graph residual edges the file has no entry for (left out, score NaN)
    unmapped_nodes: tuple[str, ...]  # file node names the graph lacks
    ignored_node_fields: Mapping[str, int] = field(default_factory=dict)  # e.g. {"score": 158}: nodes carrying it
    n_direct_kept: int = 0  # direct edges kept by the rule (their q/k/v input has a kept residual edge)

    @property
    def complete(self) -> bool:
        """Whether every file entry found its edge and every residual edge of the graph had an entry."""
        return not (self.unmapped_edges or self.missing_edges or self.unmapped_nodes or self.ignored_node_fields)

    def lines(self) -> list[str]:
        """A human summary, one fact per line, naming up to 10 entries of each list."""
        out = [f"kept {self.n_direct_kept} direct edges (their q/k/v input has a kept edge; MIB has none)"]
        for what, names in (("file edges have no counterpart in this graph", self.unmapped_edges),
                            ("graph edges have no entry in the file (left out)", self.missing_edges),
                            ("file nodes have no counterpart in this graph", self.unmapped_nodes)):
            if names:
                more = f", ... ({len(names) - 10} more)" if len(names) > 10 else ""
                out.append(f"{len(names)} {what}: {', '.join(names[:10])}{more}")
        for name, count in self.ignored_node_fields.items():
            out.append(f"{count} nodes carry '{name}', which has no counterpart here (ignored)")
        return out


# ----- export ----------------------------------------------------------------------------------------
def _check_mib_graph(graph: Graph) -> None:
    if not graph.config.has_mlp:
        raise ValueError(f"{graph!r} is attention-only; MIB / EAP-IG graphs always have MLPs")
    if graph.has_spans:
        raise ValueError(f"the circuit is position-aware (spans {', '.join(graph.spans)}), but MIB / EAP-IG graphs "
                         "have no token positions, so its span edges cannot be written: export "
                         "acdc_compare.span_circuits.collapse_spans(circuit) instead (an edge kept in any span "
                         "is kept, scored by the sum over its spans; which spans keep it is dropped)")


def mib_edge_names(graph: Graph, e: int) -> tuple[str, ...]:
    """The MIB names of residual edge `e`: its own name, or under grouped-query attention one name per query
    head reading the key-value head it enters. Empty for a direct edge."""
    s = graph.edge_sender(e)
    if s < 0:
        return ()
    rec = graph.receivers[graph.edge_receiver(e)]
    if graph.grouped and rec.kind in (ReceiverKind.K, ReceiverKind.V):
        g = graph.group_size
        src = graph.sender_names[s]
        return tuple(f"{src}->a{rec.layer}.h{h}<{rec.kind.value}>" for h in range(rec.head * g, (rec.head + 1) * g))
    return (graph.edge_names[e],)


def mib_scores(c: Circuit) -> torch.Tensor:
    """float64 [n_edges]: the circuit's ranking as MIB scores, `rank_scores` / n_ranked in (0, 1]; 0.0 for
    edges it cannot place."""
    return (c.rank_scores() / max(c.n_ranked(), 1)).nan_to_num(nan=0.0)


def circuit_to_mib(c: Circuit, d_model: int = 0) -> dict[str, Any]:
    """The circuit as EAP-IG's `Graph.to_json` object: every residual edge (per query head under GQA) with its
    ranking score (`mib_scores`) and in_graph = kept; direct edges are not written (see `mib_export_report`)."""
    graph = c.graph
    _check_mib_graph(graph)
    edges: dict[str, dict[str, Any]] = {}
    touched: set[str] = {LOGITS}
    scores, kept = mib_scores(c).tolist(), c.kept.tolist()
    for e in range(graph.n_edges):
        names = mib_edge_names(graph, e)
        score = scores[e]
        for name in names:
            edges[name] = {"score": score, "in_graph": kept[e]}
        if names and kept[e]:
            up, down = graph.edge_nodes(e)
            touched.update(up)
            touched.update(down)
    nodes = {name: {"in_graph": name in touched} for name in graph.node_names}
    cfg = {"n_layers": graph.n_layers, "n_heads": graph.n_heads,
           "parallel_attn_mlp": graph.config.parallel_attn_mlp, "d_model": int(d_model)}
    return {"cfg": cfg, "nodes": nodes, "edges": edges}


def mib_export_report(c: Circuit) -> MibExportReport:
    """What `circuit_to_mib` leaves out or changes for this circuit."""
    graph = c.graph
    _check_mib_graph(graph)
    names = graph.edge_names
    kept = c.kept.tolist()
    dropped, blocked, written, kept_written = [], [], 0, 0
    for e in range(graph.n_edges):
        if graph.is_direct(e):
            if kept[e]:
                dropped.append(names[e])
            continue
        n = len(mib_edge_names(graph, e))
        written += n
        if kept[e]:
            kept_written += n
            direct = int(graph.direct_index[graph.edge_receiver(e)])
            if direct >= 0 and not kept[direct]:
                blocked.append(names[e])
    unscored = torch.isnan(c.scores)
    unranked = sum(len(mib_edge_names(graph, e)) for e in torch.nonzero(unscored & ~c.kept).flatten().tolist())
    kept_unscored = sum(len(mib_edge_names(graph, e)) for e in torch.nonzero(unscored & c.kept).flatten().tolist())
    kinds = {kind.value: n for kind, n in c.kept_score_kinds().items()}
    return MibExportReport(written, kept_written, tuple(dropped), tuple(blocked), unranked, kept_unscored, kinds)


def save_mib(c: Circuit, path: PathLike, d_model: int = 0) -> MibExportReport:
    """Write `circuit_to_mib(c, d_model)` to `path`: EAP-IG's `.pt` format when the name ends in `.pt`, else
    JSON (atomically). Returns what the file could not express."""
    path = Path(path)
    if path.suffix == ".pt":
        save_pt(circuit_to_mib(c, d_model), path)
    else:
        atomic_write(path, (json.dumps(circuit_to_mib(c, d_model)) + "\n").encode())
    return mib_export_report(c)


# ----- import ----------------------------------------------------------------------------------------
def check_mib_cfg(cfg: Any, graph: Graph, d_model: int | None = None) -> None:
    """Refuse a `cfg` that does not describe `graph`'s shape, naming every field that differs."""
    if not isinstance(cfg, Mapping):
        raise ValueError("MIB file: 'cfg' must be an object with n_layers, n_heads, parallel_attn_mlp, d_model")
    missing = [k for k in _CFG_KEYS if k not in cfg]
    if missing:
        raise ValueError(f"MIB file: 'cfg' lacks {missing}")
    ours = {"n_layers": graph.n_layers, "n_heads": graph.n_heads,
            "parallel_attn_mlp": graph.config.parallel_attn_mlp}
    if d_model is not None and cfg.get("d_model"):
        ours["d_model"] = d_model
    wrong = [f"{k} {cfg[k]!r} (the model's: {v!r})" for k, v in ours.items() if cfg[k] != v
             or isinstance(cfg[k], bool) != isinstance(v, bool)]
    if wrong:
        raise ValueError(f"MIB file is for another model shape: {'; '.join(wrong)}")


def _our_edge(graph: Graph, name: str) -> tuple[int, str] | None:
    """(our edge index, the GQA group it stands for or '') of a MIB edge name; None when there is none."""
    src, sep, dst = name.partition("->")
    if not sep:
        return None
    group = ""
    m = _MIB_HEAD_INPUT.match(dst)
    if m and graph.grouped and m[3] in "kv":
        layer, head = int(m[1]), int(m[2])
        if head >= graph.n_heads:
            return None
        dst = f"a{layer}.kv{head // graph.group_size}<{m[3]}>"
        group = dst
    elif not (m or dst == LOGITS or re.fullmatch(r"m\d+", dst)):
        return None
    try:
        return graph.edge_index(f"{src}->{dst}"), group
    except KeyError:
        return None


def _entry(name: str, info: Any) -> tuple[float, bool]:
    """(score, in_graph) of one file edge; ValueError naming the edge when malformed."""
    if not isinstance(info, Mapping) or not isinstance(info.get("in_graph"), bool):
        raise ValueError(f"MIB file: edge {name!r} must be an object with a bool 'in_graph' and a number 'score'")
    score = info.get("score", math.nan)
    if score is None:
        score = math.nan
    if isinstance(score, bool) or not isinstance(score, (int, float)) or (isinstance(score, int)
                                                                            and abs(score) > _MAX_FLOAT):
        raise ValueError(f"MIB file: edge {name!r} has score {score!r}; a number is needed")
    return float(score), info["in_graph"]


def _same(a: tuple[float, bool], b: tuple[float, bool]) -> bool:
    return a[1] == b[1] and (a[0] == b[0] or (math.isnan(a[0]) and math.isnan(b[0])))


def _read_edges(edges: Any, graph: Graph) -> tuple[dict[int, tuple[float, bool]], list[str]]:
    """Each mapped edge's (score, in_graph), and the file names with no counterpart. Refuses a GQA group whose
    per-query-head entries disagree."""
    if not isinstance(edges, Mapping):
        raise ValueError("MIB file: 'edges' must be an object of edge name -> {score, in_graph}")
    found: dict[int, tuple[float, bool]] = {}
    first: dict[int, str] = {}
    unmapped: list[str] = []
    for name, info in edges.items():
        entry = _entry(name, info)
        ours = _our_edge(graph, name)
        if ours is None:
            unmapped.append(name)
            continue
        e, group = ours
        if e in found and not _same(found[e], entry):
            raise ValueError(
                f"MIB file: the query heads of key-value group {group} disagree on edge {graph.edge_names[e]}: "
                f"{first[e]} has (score {found[e][0]!r}, in_graph {found[e][1]}), {name} has (score "
                f"{entry[0]!r}, in_graph {entry[1]}); a grouped model's k/v edge needs equal entries per group")
        found.setdefault(e, entry)
        first.setdefault(e, name)
    return found, unmapped


def _read_nodes(nodes: Any, graph: Graph) -> tuple[list[str], dict[str, int]]:
    """File node names the graph lacks, and how many nodes carry each field with no counterpart."""
    if not isinstance(nodes, Mapping):
        raise ValueError("MIB file: 'nodes' must be an object of node name -> {in_graph, ...}")
    known = set(graph.node_names)
    unmapped = [n for n in nodes if n not in known]
    fields: dict[str, int] = {}
    for info in nodes.values():
        for key in (info if isinstance(info, Mapping) else ()):
            if key != "in_graph":
                fields[key] = fields.get(key, 0) + 1
    return unmapped, fields


def _direct_kept(graph: Graph, kept: torch.Tensor) -> torch.Tensor:
    """Direct edges kept by the import rule: those whose q/k/v input has a kept residual edge."""
    out = kept.clone()
    if not graph.config.include_direct:
        return out
    fed = torch.zeros(graph.n_receivers, dtype=torch.bool)
    resid = graph.edge_sender_tensor >= 0
    fed[graph.edge_receiver_tensor[resid & kept]] = True
    has_direct = graph.direct_index >= 0
    out[graph.direct_index[has_direct]] = fed[has_direct]
    return out


def circuit_from_mib(d: Mapping[str, Any], graph: Graph,
                     d_model: int | None = None) -> tuple[Circuit, MibImportReport]:
    """A MIB / EAP-IG circuit object on `graph` (see the module docstring for the rules), and what it could not
    map. ValueError for a file of another model shape, a malformed file, or a GQA group that disagrees."""
    if not isinstance(d, Mapping) or not all(k in d for k in ("cfg", "nodes", "edges")):
        raise ValueError("MIB file: needs the keys 'cfg', 'nodes' and 'edges' (EAP-IG's Graph.to_json)")
    _check_mib_graph(graph)
    check_mib_cfg(d["cfg"], graph, d_model)
    found, unmapped = _read_edges(d["edges"], graph)
    unmapped_nodes, fields = _read_nodes(d["nodes"], graph)
    kept = torch.zeros(graph.n_edges, dtype=torch.bool)
    scores = torch.full((graph.n_edges,), math.nan, dtype=torch.float64)
    for e, (score, in_graph) in found.items():
        kept[e], scores[e] = in_graph, score
    kept = _direct_kept(graph, kept)
    missing = tuple(graph.edge_names[e] for e in range(graph.n_edges) if not graph.is_direct(e) and e not in found)
    report = MibImportReport(tuple(unmapped), missing, tuple(unmapped_nodes), fields,
                             int((kept & (graph.edge_sender_tensor < 0)).sum()))
    settings = {"source": "mib", **{f"mib_{k}": d["cfg"][k] for k in (*_CFG_KEYS, "d_model") if k in d["cfg"]}}
    return Circuit(graph, kept, scores, settings=settings), report


def load_mib(path: PathLike, graph: Graph, d_model: int | None = None) -> tuple[Circuit, MibImportReport]:
    """Read a MIB / EAP-IG circuit file onto `graph` (`circuit_from_mib`): a `.pt` file through
    `torch.load(weights_only=True)`, anything else as JSON. No code in the file runs."""
    path = Path(path)
    if path.suffix == ".pt":
        return circuit_from_mib(load_pt(path), graph, d_model)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as err:  # also not UTF-8, numbers of over 4300 digits, nesting too deep
        raise ValueError(f"{path} is not JSON ({f'{err}'[:200] or type(err).__name__}); a MIB circuit file is "
                         "EAP-IG's Graph.to_json output") from None
    return circuit_from_mib(d, graph, d_model)

