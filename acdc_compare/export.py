"""Circuits out of (and back into) Python: a JSON file format, a networkx view, and pruning to live paths.

JSON file (schema `acdc_compare.circuit/2`), one object:

- `schema`: the schema and version string; a loader refuses any other;
- `graph`: every `GraphConfig` field, so the `Graph` is rebuilt from the file alone; `spans` (the span names
  of a position-aware circuit, whose edges are named `a3.h5->m7@IO`) only when the graph has spans, so a
  span-free circuit's file is as before and a reader that knows no spans refuses a span circuit's file;
  `graph_key` and `n_edges` repeat the graph's identity and size as checks;
- `kept`: the NAMES of the kept edges, in graph order (readable, and robust to index mix-ups); files
  written before key-value heads had names of their own (`a3.h1<k>` for key-value head 1 of a grouped
  model, now `a3.kv1<k>`) load with their names mapped;
- `scores`: one entry per graph edge, in graph order: a number, `null` for NaN, `"inf"` / `"-inf"`;
- `score_kinds`: what each score is (`ScoreKind`: "acdc", "learned", "eap-ig", ...), as runs `[kind, count]`
  over the edges in graph order;
- `metrics`, `settings`: JSON objects. Non-finite floats inside them are written as
  `{"__float__": "nan" | "inf" | "-inf"}` (strict JSON has no NaN), so a mapping whose only key is
  `__float__` is refused as reserved.

Files of schema `acdc_compare.circuit/1` (no `score_kinds`) still load: the kinds are inferred from the
method that wrote them, and a warning says what the file lacks (a hybrid circuit of schema 1 scored only the
edges ACDC tested, so its other kept edges have no score to be ranked by).

Floats are written with `repr` (json's default), so float64 scores and metrics read back bit for bit.
Tuples in settings come back as lists and str-valued enums as plain str (equal to the enum); numpy scalars
are written as their Python value. Anything else that is not JSON (tensors, objects, non-str keys) is
refused with an error naming where it sits. Loading runs `json.loads` only: no pickle, no code.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import networkx as nx
import torch

from acdc_compare.circuit import SCORE_KINDS, Circuit, kind_codes
from acdc_compare.files import PathLike, atomic_write
from acdc_compare.graph import INPUT, LOGITS, Graph, GraphConfig
from acdc_compare.types import ScoreKind

SCHEMA = "acdc_compare.circuit/2"
SCHEMA_1 = "acdc_compare.circuit/1"
_FLOAT_TAG = "__float__"
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_MAX_FLOAT = int(torch.finfo(torch.float64).max)  # a larger int has no float64 value


# ----- JSON-compatible values ------------------------------------------------------------------------
def _float_token(x: float) -> str | None:
    """'nan' / 'inf' / '-inf' for a non-finite float, None for a finite one."""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return None


def _to_json_value(value: Any, where: str) -> Any:
    """A JSON-ready copy of `value`; ValueError naming `where` for anything JSON cannot hold exactly."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)  # a str enum's value, not 'Metric.KL'
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        token = _float_token(value)
        return float(value) if token is None else {_FLOAT_TAG: token}
    if isinstance(value, Mapping):
        return _mapping_to_json(value, where)
    if isinstance(value, (list, tuple)):
        return [_to_json_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return _to_json_value(value.item(), where)
    raise ValueError(
        f"{where} is a {type(value).__name__} ({value!r:.80}), which JSON cannot hold: "
        "use None, bool, int, float, str, lists and str-keyed mappings (convert tensors with float() or .tolist())"
    )


def _mapping_to_json(mapping: Mapping[Any, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise ValueError(f"{where} has the key {key!r} ({type(key).__name__}); JSON object keys must be str")
        if key == _FLOAT_TAG and len(mapping) == 1:
            raise ValueError(f"{where} is a mapping whose only key is {_FLOAT_TAG!r}, which the file format reserves")
        out[str(key)] = _to_json_value(value, f"{where}[{key!r}]")
    return out


def _from_json_value(value: Any) -> Any:
    """Inverse of `_to_json_value` (tagged non-finite floats back to floats)."""
    if isinstance(value, dict):
        if len(value) == 1 and _FLOAT_TAG in value:
            if not (isinstance(value[_FLOAT_TAG], str) and value[_FLOAT_TAG] in _NONFINITE):
                raise ValueError(f"{{{_FLOAT_TAG!r}: {value[_FLOAT_TAG]!r:.40}}} is reserved for a non-finite float: "
                                 f"its value is one of {sorted(_NONFINITE)}")
            return _NONFINITE[value[_FLOAT_TAG]]
        return {k: _from_json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json_value(v) for v in value]
    return value


# ----- scores ----------------------------------------------------------------------------------------
def _scores_to_json(scores: torch.Tensor) -> list[float | str | None]:
    out: list[float | str | None] = []
    for x in scores.tolist():
        token = _float_token(x)
        out.append(x if token is None else (None if token == "nan" else token))
    return out


def _scores_from_json(entries: Any, n_edges: int) -> torch.Tensor:
    if not isinstance(entries, list):
        raise ValueError(f"'scores' must be a list, got {type(entries).__name__}")
    if len(entries) != n_edges:
        raise ValueError(f"'scores' has {len(entries)} entries but the graph has {n_edges} edges")
    values: list[float] = []
    for i, x in enumerate(entries):
        if x is None:
            values.append(math.nan)
        elif isinstance(x, str) and x in ("inf", "-inf"):
            values.append(_NONFINITE[x])
        elif isinstance(x, float) or (isinstance(x, int) and not isinstance(x, bool) and abs(x) <= _MAX_FLOAT):
            values.append(float(x))
        else:
            raise ValueError(f"'scores'[{i}] is {x!r}; expected a number, null (NaN), 'inf' or '-inf'")
    return torch.tensor(values, dtype=torch.float64)


def _kinds_to_json(codes: torch.Tensor) -> list[list[Any]]:
    """Runs [kind, count] of the per-edge kind codes, in graph order."""
    runs: list[list[Any]] = []
    for code in codes.tolist():
        kind = SCORE_KINDS[code].value
        if runs and runs[-1][0] == kind:
            runs[-1][1] += 1
        else:
            runs.append([kind, 1])
    return runs


def _kinds_from_json(runs: Any, n_edges: int) -> torch.Tensor:
    if not isinstance(runs, list):
        raise ValueError(f"'score_kinds' must be a list of [kind, count] runs, got {type(runs).__name__}")
    known = {k.value: i for i, k in enumerate(SCORE_KINDS)}
    codes: list[int] = []
    for i, run in enumerate(runs):
        if not (isinstance(run, list) and len(run) == 2 and isinstance(run[0], str) and run[0] in known
                and isinstance(run[1], int) and not isinstance(run[1], bool) and run[1] >= 1):
            raise ValueError(f"'score_kinds'[{i}] is {run!r:.80}; expected [kind, count >= 1] with kind one of "
                             f"{sorted(known)}")
        codes.extend([known[run[0]]] * min(run[1], n_edges + 1 - len(codes)))  # a huge count: no huge list
        if len(codes) > n_edges:
            break
    if len(codes) != n_edges:
        raise ValueError(f"'score_kinds' covers {len(codes)} edges but the graph has {n_edges}")
    return torch.tensor(codes, dtype=torch.int8)


_METHOD_KINDS = {"acdc": ScoreKind.ACDC, "hybrid": ScoreKind.ACDC, "eap": ScoreKind.EAP, "eap-ig": ScoreKind.EAP_IG}


def _legacy_kinds(scores: torch.Tensor, kept: torch.Tensor, settings: Mapping[str, Any],
                  where: str) -> torch.Tensor:
    """The kinds of a schema-1 file's scores, from the method that wrote it; warns about kept edges without a
    score (a schema-1 hybrid circuit scored only the edges ACDC tested)."""
    kinds = kind_codes(_METHOD_KINDS.get(str(settings.get("method")), ScoreKind.GIVEN), scores)
    unscored = int((kept & torch.isnan(scores)).sum())
    if unscored:
        warnings.warn(f"{where}: a circuit file of schema {SCHEMA_1!r}: {unscored} of its {int(kept.sum())} kept "
                      "edges have no score (files of that schema kept only the scores of the edges ACDC tested, "
                      "not the ranking score that chose the others), so figures, tables and exports rank those "
                      "after the scored edges, in edge order. Rediscover the circuit to keep every edge's score.",
                      stacklevel=3)
    return kinds


# ----- graph -----------------------------------------------------------------------------------------
def _graph_config_from_json(d: Any) -> GraphConfig:
    """Rebuild a GraphConfig, checking field names and types (the file is untrusted input)."""
    if not isinstance(d, dict):
        raise ValueError(f"'graph' must be an object of GraphConfig fields, got {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(GraphConfig)}
    unknown, missing = set(d) - set(fields), set(fields) - set(d) - {"spans"}
    if unknown or missing:
        raise ValueError(
            f"'graph' fields do not match GraphConfig: unknown {sorted(unknown)}, missing {sorted(missing)}"
        )
    for name in ("n_layers", "n_heads", "n_kv_heads"):
        if not isinstance(d[name], int) or isinstance(d[name], bool) or d[name] < 1:
            raise ValueError(f"'graph'.{name} must be a positive int, got {d[name]!r}")
    for name in ("has_mlp", "parallel_attn_mlp", "include_direct"):
        if not isinstance(d[name], bool):
            raise ValueError(f"'graph'.{name} must be true or false, got {d[name]!r}")
    if d["n_heads"] % d["n_kv_heads"]:
        raise ValueError(f"'graph'.n_heads ({d['n_heads']}) must be a multiple of n_kv_heads ({d['n_kv_heads']})")
    spans = d.get("spans")
    if spans is None:
        return GraphConfig(**d)
    if not isinstance(spans, list) or not spans or not all(isinstance(n, str) for n in spans):
        raise ValueError(f"'graph'.spans must be a non-empty list of span names, got {spans!r}")
    return GraphConfig(**{**d, "spans": tuple(spans)})


def _graph_config_to_json(config: GraphConfig) -> dict[str, Any]:
    """The GraphConfig fields, `spans` (as a list) only when the graph has spans."""
    out = dataclasses.asdict(config)
    spans = out.pop("spans")
    return {**out, "spans": list(spans)} if spans else out


_OLD_KV_RECEIVER = re.compile(r"a(\d+)\.h(\d+)<([kv])>$")


def upgrade_edge_name(graph: Graph, name: str) -> str:
    """An edge name in today's spelling: under grouped-query attention the k/v receivers were once named
    like query heads (`a3.h1<k>`, key-value head 1) and are now `a3.kv1<k>`; other names are unchanged."""
    return _OLD_KV_RECEIVER.sub(r"a\1.kv\2<\3>", name) if graph.grouped else name


def _kept_from_json(names: Any, graph: Graph) -> torch.Tensor:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError("'kept' must be a list of edge names (strings)")
    kept = torch.zeros(graph.n_edges, dtype=torch.bool)
    for name in (upgrade_edge_name(graph, n) for n in names):
        try:
            e = graph.edge_index(name)
        except KeyError:
            raise ValueError(f"kept edge {name!r} is not an edge of graph {graph.config.key}") from None
        if kept[e]:
            raise ValueError(f"kept edge {name!r} is listed twice")
        kept[e] = True
    return kept


# ----- public: JSON ----------------------------------------------------------------------------------
def circuit_to_json(c: Circuit) -> dict[str, Any]:
    """A JSON-ready dict holding everything needed to rebuild `c` exactly (see the module docstring)."""
    return {
        "schema": SCHEMA,
        "graph": _graph_config_to_json(c.graph.config),
        "graph_key": c.graph.config.key,
        "n_edges": c.graph.n_edges,
        "kept": c.kept_edge_names(),
        "scores": _scores_to_json(c.scores),
        "score_kinds": _kinds_to_json(c.score_kinds),
        "metrics": _mapping_to_json(c.metrics, "metrics"),
        "settings": _mapping_to_json(c.settings, "settings"),
    }


def circuit_from_json(d: Mapping[str, Any], where: str = "circuit") -> Circuit:
    """Rebuild a circuit from `circuit_to_json`'s dict (or one of schema 1); ValueError naming the problem for a
    bad one. `where` names the source in the schema-1 warning."""
    if not isinstance(d, Mapping):
        raise ValueError(f"a circuit file holds a JSON object, got {type(d).__name__}")
    if d.get("schema") not in (SCHEMA, SCHEMA_1):
        raise ValueError(f"not a circuit of schema {SCHEMA!r} (or {SCHEMA_1!r}): the file's schema is "
                         f"{d.get('schema')!r}")
    legacy = d["schema"] == SCHEMA_1
    for key in ("graph", "graph_key", "n_edges", "kept", "scores", "metrics", "settings",
                *(() if legacy else ("score_kinds",))):
        if key not in d:
            raise ValueError(f"the circuit has no {key!r} field")
    config = _graph_config_from_json(d["graph"])
    if d["graph_key"] != config.key:
        raise ValueError(f"'graph_key' is {d['graph_key']!r}, but the graph fields give {config.key!r}")
    if isinstance(d["scores"], list) and config.n_layers * config.n_heads * 3 > len(d["scores"]):
        # every head has at least 3 edges (into q, k, v): checked before building a graph too large to build
        raise ValueError(f"'scores' has {len(d['scores'])} entries, too few for graph {config.key}")
    graph = Graph(config)
    if d["n_edges"] != graph.n_edges:
        raise ValueError(f"'n_edges' is {d['n_edges']!r}, but graph {graph.config.key} has {graph.n_edges} edges")
    for key in ("metrics", "settings"):
        if not isinstance(d[key], Mapping):
            raise ValueError(f"{key!r} must be a JSON object, got {type(d[key]).__name__}")
    kept, scores = _kept_from_json(d["kept"], graph), _scores_from_json(d["scores"], graph.n_edges)
    settings = _from_json_value(dict(d["settings"]))
    kinds = (_legacy_kinds(scores, kept, settings, where) if legacy
             else _kinds_from_json(d["score_kinds"], graph.n_edges))
    if bool((torch.isnan(scores) != (kinds == SCORE_KINDS.index(ScoreKind.NONE))).any()):
        raise ValueError("'score_kinds' must be \"none\" exactly where 'scores' is null")
    return Circuit(graph, kept, scores, metrics=_from_json_value(dict(d["metrics"])), settings=settings,
                   score_kinds=kinds)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"the file holds the non-standard JSON constant {name}; circuit files never do")


def save_circuit(c: Circuit, path: PathLike) -> Path:
    """Write `c` as JSON, atomically (temporary file in the same folder, then os.replace). Returns the path."""
    path = Path(path)
    text = json.dumps(circuit_to_json(c), allow_nan=False, indent=1) + "\n"
    atomic_write(path, text.encode("utf-8"))
    return path


def load_circuit(path: PathLike) -> Circuit:
    """Read a circuit written by `save_circuit` (plain JSON; never executes anything from the file)."""
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, NaN constants
        raise ValueError(f"{path} is not a valid circuit JSON file: {err}") from None
    try:
        return circuit_from_json(d, str(path))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


# ----- nodes and edges -------------------------------------------------------------------------------
def node_attributes(graph: Graph, name: str) -> dict[str, Any]:
    """layer (input -1, logits n_layers), head (None unless a head) and kind of a node name."""
    if name == INPUT:
        return {"layer": -1, "head": None, "kind": "input"}
    if name == LOGITS:
        return {"layer": graph.n_layers, "head": None, "kind": "logits"}
    s = graph.sender_index(name)
    if graph.is_head_sender(s):
        layer, head = graph.sender_head(s)
        return {"layer": layer, "head": head, "kind": "head"}
    return {"layer": graph.sender_layer[s], "head": None, "kind": "mlp"}


def edge_kind(graph: Graph, e: int) -> str:
    """'direct' for a direct edge, else the receiver kind: 'q', 'k', 'v', 'mlp' or 'logits'."""
    if graph.is_direct(e):
        return "direct"
    return graph.receivers[graph.edge_receiver(e)].kind.value


def check_roles(graph: Graph, roles: Mapping[str, str] | None) -> dict[str, str]:
    """Roles as a dict; ValueError for a key that is not a node name of `graph` (typos like '9.9')."""
    out = dict(roles or {})
    names = set(graph.node_names)
    for node, role in out.items():
        if node not in names:
            raise ValueError(f"roles names {node!r}, which is not a node of {graph!r}; nodes look like 'a9.h9', 'm3'")
        if not isinstance(role, str):
            raise ValueError(f"the role of {node!r} must be a str, got {role!r}")
    return out


def to_networkx(c: Circuit, roles: Mapping[str, str] | None = None) -> nx.MultiDiGraph:
    """The kept edges as a networkx MultiDiGraph (a DiGraph subclass).

    Nodes are the nodes kept edges touch (`Graph.edge_nodes`), with attributes `layer` (input -1, logits
    n_layers), `head` (int or None), `kind` ('input', 'head', 'mlp', 'logits'), `role` (from `roles`,
    default 'unknown') and `direct_edges_kept` (the kinds among 'q', 'k', 'v' whose direct edge into this
    head is kept; [] for other nodes) with `direct_scores` ({kind: score}).

    Each kept residual edge is one networkx edge keyed by its edge name, with attributes `kind`
    ('q', 'k', 'v', 'mlp', 'logits'), `score` and `name`: a MultiDiGraph, because a sender often feeds
    several inputs (q and k, say) of the same head. Under grouped-query attention a k/v edge enters every
    query head reading that key-value head, so one edge name can key several node pairs. Direct edges join
    a head to itself, so they are node attributes, not self loops: the graph stays acyclic.
    """
    roles = check_roles(c.graph, roles)
    g = nx.MultiDiGraph(graph_key=c.graph.config.key, n_kept=c.n_kept)
    graph, names = c.graph, c.graph.edge_names
    order = {name: i for i, name in enumerate(graph.node_names)}
    for node in sorted(c.nodes(), key=order.__getitem__):
        g.add_node(node, **node_attributes(graph, node), role=roles.get(node, "unknown"),
                   direct_edges_kept=[], direct_scores={})
    for e in torch.nonzero(c.kept).flatten().tolist():
        score = float(c.scores[e])
        up, down = graph.edge_nodes(e)
        if graph.is_direct(e):
            kind = graph.receivers[graph.edge_receiver(e)].kind.value
            for head in down:
                g.nodes[head]["direct_edges_kept"].append(kind)
                g.nodes[head]["direct_scores"][kind] = score
            continue
        for node in down:
            g.add_edge(up[0], node, key=names[e], kind=edge_kind(graph, e), score=score, name=names[e])
    for node in g.nodes:
        g.nodes[node]["direct_edges_kept"].sort(key="qkv".index)
    return g


# ----- pruning ---------------------------------------------------------------------------------------
def prune_to_paths(c: Circuit) -> Circuit:
    """Keep only the kept edges on some path from `input` to `logits` (the others change nothing): the
    circuit's functional part, `Circuit.functional` (which states the rule)."""
    return c.functional()
