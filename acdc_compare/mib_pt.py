"""MIB / EAP-IG's `.pt` circuit files (EAP-IG's `Graph.to_pt`), converted to and from the JSON object
`acdc_compare.mib` reads and writes, so one mapping serves both formats.

The file is a dict: `cfg`; `src_nodes` (`input`, then per layer its heads `a{L}.h{H}` and `m{L}`);
`dst_nodes` (per layer `a{L}.h{H}<q>` for every head, then `<k>`, then `<v>`, then `m{L}`; `logits` last);
`edges_scores` and `edges_in_graph` [n_src x n_dst]; `nodes_in_graph` [n_src]. Cells that are no EAP-IG edge
(a sender that runs after the receiver) are skipped when they hold nothing (False, score 0.0), and passed on
under their `src->dst` name otherwise, so the importer names them as unmapped. Scores are written as float64
(EAP-IG copies them into its float32 matrix), so a round trip through this tool is exact.

Loading uses `torch.load(weights_only=True)`: tensors, lists, dicts and numbers only, never pickled code.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from acdc_compare.files import PathLike

PT_KEYS = ("cfg", "src_nodes", "dst_nodes", "edges_scores", "edges_in_graph", "nodes_in_graph")


def src_nodes(n_layers: int, n_heads: int) -> list[str]:
    """EAP-IG's sender order: `input`, then per layer its heads and its MLP."""
    out = ["input"]
    for layer in range(n_layers):
        out += [f"a{layer}.h{h}" for h in range(n_heads)] + [f"m{layer}"]
    return out


def dst_nodes(n_layers: int, n_heads: int) -> list[str]:
    """EAP-IG's receiver order (`Graph.get_dst_nodes`)."""
    out = []
    for layer in range(n_layers):
        out += [f"a{layer}.h{h}<{x}>" for x in "qkv" for h in range(n_heads)] + [f"m{layer}"]
    return out + ["logits"]


def _n_upstream(cfg: Mapping[str, Any], dst: str) -> int:
    """How many of `src_nodes` feed receiver `dst` in EAP-IG's graph."""
    n_heads = int(cfg["n_heads"])
    if dst == "logits":
        return 1 + int(cfg["n_layers"]) * (n_heads + 1)
    layer = int(dst[1:].split(".")[0].split("<")[0])
    before = 1 + layer * (n_heads + 1)
    return before + n_heads if dst.startswith("m") and not cfg["parallel_attn_mlp"] else before


def mib_to_pt(d: Mapping[str, Any]) -> dict[str, Any]:
    """The `.pt` dict of a MIB JSON object (`circuit_to_mib`'s output): edges absent from it stay 0.0 / False."""
    cfg = dict(d["cfg"])
    src = src_nodes(cfg["n_layers"], cfg["n_heads"])
    dst = dst_nodes(cfg["n_layers"], cfg["n_heads"])
    scores = torch.zeros(len(src), len(dst), dtype=torch.float64)
    in_graph = torch.zeros(len(src), len(dst), dtype=torch.bool)
    s_index, d_index = {n: i for i, n in enumerate(src)}, {n: j for j, n in enumerate(dst)}
    for name, info in d["edges"].items():
        a, _, b = name.partition("->")
        i, j = s_index[a], d_index[b]
        scores[i, j], in_graph[i, j] = info["score"], info["in_graph"]
    nodes = torch.tensor([bool(d["nodes"].get(n, {}).get("in_graph", False)) for n in src], dtype=torch.bool)
    return {"cfg": cfg, "src_nodes": src, "dst_nodes": dst, "edges_scores": scores, "edges_in_graph": in_graph,
            "nodes_in_graph": nodes}


def pt_to_mib(p: Mapping[str, Any]) -> dict[str, Any]:
    """The MIB JSON object of a `.pt` dict; ValueError naming what is missing or misshapen."""
    missing = [k for k in PT_KEYS if k not in p]
    if missing:
        raise ValueError(f"MIB .pt file lacks {missing} (EAP-IG's Graph.to_pt writes {list(PT_KEYS)})")
    for key in ("src_nodes", "dst_nodes"):
        if not isinstance(p[key], (list, tuple)) or not all(isinstance(n, str) for n in p[key]):
            raise ValueError(f"MIB .pt file: {key!r} must be a list of node names (str), got {p[key]!r:.80}")
    src, dst, cfg = list(p["src_nodes"]), list(p["dst_nodes"]), p["cfg"]
    try:
        scores, in_graph = torch.as_tensor(p["edges_scores"]), torch.as_tensor(p["edges_in_graph"]).bool()
        nodes_in = torch.as_tensor(p["nodes_in_graph"]).bool()
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"MIB .pt file: edges_scores, edges_in_graph and nodes_in_graph must be tensors ({err})") \
            from None
    if scores.shape != (len(src), len(dst)) or in_graph.shape != scores.shape:
        raise ValueError(f"MIB .pt file: edges_scores {tuple(scores.shape)} and edges_in_graph "
                         f"{tuple(in_graph.shape)} must both be [src_nodes x dst_nodes] = [{len(src)} x {len(dst)}]")
    if scores.is_complex() or nodes_in.ndim != 1:
        raise ValueError(f"MIB .pt file: edges_scores must be real (got {scores.dtype}) and nodes_in_graph a vector "
                         f"(got shape {tuple(nodes_in.shape)})")
    if not isinstance(cfg, Mapping) or not all(k in cfg for k in ("n_layers", "n_heads", "parallel_attn_mlp")):
        raise ValueError("MIB .pt file: 'cfg' needs n_layers, n_heads and parallel_attn_mlp")
    bad = [k for k in ("n_layers", "n_heads") if type(cfg[k]) is not int or cfg[k] < 1]
    if bad or not isinstance(cfg["parallel_attn_mlp"], bool):
        raise ValueError(f"MIB .pt file: 'cfg' needs n_layers and n_heads positive ints and parallel_attn_mlp a "
                         f"bool, got {dict(cfg)!r:.120}")
    if 1 + cfg["n_layers"] * (cfg["n_heads"] + 1) > len(src):
        raise ValueError(f"MIB .pt file: 'cfg' (n_layers {cfg['n_layers']}, n_heads {cfg['n_heads']}) names more "
                         f"senders than its {len(src)} src_nodes")
    order = {n: i for i, n in enumerate(src_nodes(cfg["n_layers"], cfg["n_heads"]))}
    receivers = set(dst_nodes(cfg["n_layers"], cfg["n_heads"]))
    edges: dict[str, dict[str, Any]] = {}
    score_list, kept_list = scores.double().tolist(), in_graph.tolist()
    for j, b in enumerate(dst):
        upstream = _n_upstream(cfg, b) if b in receivers else 0
        for i, a in enumerate(src):
            if order.get(a, upstream) < upstream or kept_list[i][j] or score_list[i][j] != 0.0:
                edges[f"{a}->{b}"] = {"score": score_list[i][j], "in_graph": kept_list[i][j]}
    nodes_in = nodes_in.tolist()
    nodes = {n: {"in_graph": bool(nodes_in[i]) if i < len(nodes_in) else False} for i, n in enumerate(src)}
    nodes["logits"] = {"in_graph": True}
    return {"cfg": dict(cfg), "nodes": nodes, "edges": edges}


def save_pt(d: Mapping[str, Any], path: PathLike) -> None:
    """Write a MIB JSON object as EAP-IG's `.pt` file."""
    torch.save(mib_to_pt(d), Path(path))


def load_pt(path: PathLike) -> dict[str, Any]:
    """A `.pt` circuit file as a MIB JSON object, read with `torch.load(weights_only=True)` (no code runs)."""
    data = Path(path).read_bytes()  # a missing or unreadable file: its OSError
    try:
        p = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - the unpickler refuses anything but plain values; a damaged zip raises OSError, RuntimeError, ...
        raise ValueError(f"{path} is not a MIB .pt circuit file that loads without running code: {err}") from None
    if not isinstance(p, Mapping):
        raise ValueError(f"{path} holds a {type(p).__name__}, not EAP-IG's circuit dict")
    return pt_to_mib(p)
