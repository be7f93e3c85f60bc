"""The Graphviz graph of a drawing: nodes in ranks (one per layer's heads, one per layer's MLP, each led by
a grey layer label), and writing the DOT source and its dot layouts (.svg, .png), all from one layout.
pygraphviz is imported inside the functions only."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import networkx as nx

from acdc_compare.export import node_attributes
from acdc_compare.files import PathLike, atomic_write
from acdc_compare.graph import Graph
from acdc_compare.native_stderr import fontconfig_warnings_dropped

if TYPE_CHECKING:
    import pygraphviz

Layout = Literal["dot", "fixed"]  # dot's layered layout, or the nodes' own positions
_SUFFIXES = (".svg", ".png", ".dot")
FAST_LAYOUT_ARROWS = 150  # above it dot runs with fewer layout iterations
_FAST_LAYOUT = {"nslimit": "2", "nslimit1": "2", "mclimit": "0.2"}


def new_agraph(label_html: str, splines: str = "spline") -> "pygraphviz.AGraph":
    """An empty bottom-to-top graph (input at the bottom) with the drawings' fonts and spacing, labelled by
    `label_html`; `splines` as Graphviz's (head-level drawings use straight "line"s: long arrows across many rows
    zigzag less)."""
    import pygraphviz

    ag = pygraphviz.AGraph(directed=True, strict=False, name="circuit")
    ag.graph_attr.update(
        rankdir="BT", splines=splines, nodesep="0.18", ranksep="0.55", outputorder="edgesfirst",
        labelloc="t", labeljust="l", fontname="Helvetica", fontsize="12", dpi="96", newrank="true",
        label=f"<{label_html}>",
    )
    ag.node_attr.update(fontname="Helvetica", fontsize="11", style="filled", penwidth="1", margin="0.04,0.02")
    ag.edge_attr.update(arrowsize="0.5", fontname="Helvetica")
    return ag


def sorted_nodes(graph: Graph, nodes: set[str]) -> list[str]:
    """Nodes in forward order, so the DOT source (and the layout) is the same on every run."""
    order = {name: i for i, name in enumerate(graph.node_names)}
    return sorted(nodes, key=order.__getitem__)


def rank_of(graph: Graph, node: str) -> tuple[int, int]:
    """Sort key of a node's rank: (layer, 0) for heads, (layer, 1) for MLPs; input first, logits last."""
    info = node_attributes(graph, node)
    return info["layer"], int(info["kind"] == "mlp")


def rank_label(graph: Graph, rank: tuple[int, int]) -> str:
    """A rank's grey row label, 'L3 attn' or 'L3 mlp'; none for the input's and the logits' ranks."""
    layer, is_mlp = rank
    if layer < 0 or layer >= graph.n_layers:
        return ""
    return f"L{layer} mlp" if is_mlp else f"L{layer} attn"


def add_ranks(ag: "pygraphviz.AGraph", graph: Graph, nodes: list[str],
              node_of: Callable[[str], str] = lambda node: node,
              panel_of: Callable[[str], int] | None = None) -> None:
    """One `rank=same` subgraph per occupied rank, led by a layer label chained from input up to
    logits (rankdir BT: input at the bottom, logits at the top, as in the viewer); invisible flat edges put
    the label left of its rank. `nodes` are drawing ids, `node_of` gives each one's graph node. With
    `panel_of` (0 or 1 per id: a comparison draws a node once per panel) both panels share the rows, and an
    invisible divider per row, chained from row to row, keeps panel 0's nodes left of panel 1's."""
    ranks: dict[tuple[int, int], list[str]] = {}
    for node in nodes:
        ranks.setdefault(rank_of(graph, node_of(node)), []).append(node)
    previous: tuple[str, str] | None = None
    for i, rank in enumerate(sorted(ranks)):
        label, divider = f"_rank{i}", f"_divider{i}"
        ag.add_node(label, label=rank_label(graph, rank), shape="plaintext", style="", fontcolor="#888888",
                    fontsize="10", width="0.6")
        members = [label, *ranks[rank]]
        if panel_of is not None:
            ag.add_node(divider, label="", shape="point", style="invis", width="0.8")
            members.append(divider)
            _invisible(ag, label, divider, "_order")
        ag.add_subgraph(members, name=f"rank{i}", rank="same")
        for node in ranks[rank]:
            if panel_of is None:
                _invisible(ag, label, node, "_order")
            elif panel_of(node) == 0:
                _invisible(ag, label, node, "_order")
                _invisible(ag, node, divider, "_order")
            else:
                _invisible(ag, divider, node, "_order")
        if previous is not None:
            _invisible(ag, previous[0], label, "_spine", weight="100")
            if panel_of is not None:
                _invisible(ag, previous[1], divider, "_spine", weight="100")
        previous = (label, divider)


def _invisible(ag: "pygraphviz.AGraph", up: str, down: str, key: str, **attrs: str) -> None:
    ag.add_edge(up, down, key=key, style="invis", **attrs, **{"class": "layout"})


def _node_style(graph: Graph, node: str) -> dict[str, str]:
    kind = node_attributes(graph, node)["kind"]
    if kind in ("input", "logits"):
        return {"shape": "box", "style": "filled,bold", "fontsize": "12", "width": "1.2"}
    if kind == "mlp":
        return {"shape": "box", "style": "filled"}
    return {"shape": "box", "style": "filled,rounded"}


def direct_text(g: nx.MultiDiGraph, node: str) -> str:
    """The node's kept direct edges ('q,k'), '' for none."""
    return ",".join(g.nodes[node]["direct_edges_kept"]) if node in g.nodes else ""


def add_node(ag: "pygraphviz.AGraph", graph: Graph, node: str, fill: str, label: str, tooltip: str,
             direct: str, node_id: str | None = None, **style: str) -> None:
    """A node shaped by its kind (input/logits, head, MLP); `direct` lists its kept direct edges; `node_id`
    (default: the node's name) is its id in the drawing, `style` overrides Graphviz attributes."""
    ag.add_node(node_id or node, label=label, fillcolor=fill, tooltip=tooltip, direct=direct,
                **{**_node_style(graph, node), **style})


def write_drawing(ag: "pygraphviz.AGraph", paths: Sequence[Path], n_arrows: int, layout: Layout = "dot") -> str:
    """Write the DOT source (.dot) and renderings (.svg, .png), all from one layout: dot's, or ("fixed") the
    nodes' own `pos` attributes in points (neato -n2); return the DOT source (without layout attributes)."""
    source = ag.string()
    laid_out = False
    for path in paths:
        suffix = path.suffix.lower()
        if suffix == ".dot":
            atomic_write(path, source.encode("utf-8"))
            continue
        with fontconfig_warnings_dropped():  # Graphviz's font setup warns about the machine, not the drawing
            if not laid_out:
                if layout == "fixed":
                    ag.layout(prog="nop")
                else:
                    if n_arrows > FAST_LAYOUT_ARROWS:
                        ag.graph_attr.update(_FAST_LAYOUT)
                    ag.layout(prog="dot")
                laid_out = True
            drawing = ag.draw(format=suffix[1:])
        atomic_write(path, drawing)
    return source


def check_paths(path: PathLike | Sequence[PathLike]) -> list[Path]:
    """One path or several; each must end in a known format."""
    paths = [Path(p) for p in path] if isinstance(path, Sequence) and not isinstance(path, str) else [Path(path)]
    if not paths:
        raise ValueError("no output path given")
    for p in paths:
        if p.suffix.lower() not in _SUFFIXES:
            raise ValueError(f"cannot tell the format of {p}: use one of {', '.join(_SUFFIXES)}")
    return paths
