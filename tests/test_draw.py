"""Circuit diagrams: the DOT source holds exactly the drawn circuit, comparisons colour edges by set,
and SVG/PNG files are written (small graphs and a GPT-2-small-sized one; no model)."""

from __future__ import annotations

import random
import subprocess
from functools import partial
import sys
from pathlib import Path

import pygraphviz
import pytest
import torch

from acdc_compare.circuit import Circuit, random_circuit
from acdc_compare import draw
from acdc_compare.draw import COMPARISON_COLORS, EDGE_STYLES, ROLE_COLORS
from acdc_compare.export import prune_to_paths
from acdc_compare.graph import Graph, GraphConfig

SMALL = Graph(GraphConfig(n_layers=3, n_heads=4, n_kv_heads=4))
GPT2 = Graph(GraphConfig(n_layers=12, n_heads=12, n_kv_heads=12))
PATH = ["input->a0.h1<q>", "a0.h1<q>", "a0.h1->m1", "m1->logits", "input->a0.h1<k>", "a0.h1<k>",
        "a0.h1->a2.h3<v>", "a2.h3<v>", "a2.h3->logits", "input->m1"]
IOI_ROLES = {"a9.h9": "name mover", "a9.h6": "name mover", "a10.h0": "name mover", "a10.h7": "negative name mover",
             "a11.h2": "backup name mover", "a7.h3": "S-inhibition", "a8.h6": "S-inhibition", "a5.h5": "induction",
             "a3.h0": "duplicate token", "a2.h2": "previous token", "a4.h11": "previous token", "m5": "mover"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
draw_circuit = partial(draw.draw_circuit, level="edges")  # this file tests the edge level (test_draw_heads: heads)
draw_comparison = partial(draw.draw_comparison, level="edges")


def _circuit_edges(dot: str) -> dict[tuple[str, str, str], dict[str, str]]:
    """(tail, head, key) -> attributes of the circuit edges of a DOT source, parsed by Graphviz."""
    ag = pygraphviz.AGraph(string=dot)
    return {(u, v, k): dict(ag.get_edge(u, v, k).attr) for u, v, k in ag.edges(keys=True)
            if ag.get_edge(u, v, k).attr.get("class") == "circuit"}


def _direct_attrs(dot: str) -> dict[str, str]:
    ag = pygraphviz.AGraph(string=dot)
    return {n: ag.get_node(n).attr.get("direct") or "" for n in ag.nodes() if not n.startswith("_")}


def _residual_names(c: Circuit) -> set[str]:
    return {n for n in c.kept_edge_names() if "->" in n}


def _direct_names(dot: str) -> set[str]:
    return {f"{n}<{k}>" for n, kinds in _direct_attrs(dot).items() for k in kinds.split(",") if k}


def test_dot_holds_every_kept_edge_and_no_removed_one(tmp_path: Path) -> None:
    c = Circuit.from_edge_names(SMALL, PATH, scores=torch.linspace(0, 1, SMALL.n_edges, dtype=torch.float64))
    assert prune_to_paths(c).n_kept == c.n_kept  # no dangling edges
    dot = draw_circuit(c, tmp_path / "c.dot", roles={"a0.h1": "previous token"}, title="tiny")
    assert (tmp_path / "c.dot").read_text() == dot
    edges = _circuit_edges(dot)
    assert {k for _, _, k in edges} == _residual_names(c)
    assert ("input", "a0.h1", "input->a0.h1<q>") in edges and ("a0.h1", "a2.h3", "a0.h1->a2.h3<v>") in edges
    assert _direct_names(dot) == {"a0.h1<q>", "a0.h1<k>", "a2.h3<v>"}
    for (_, _, name), attrs in edges.items():
        kind = name.split("<")[1][:-1] if "<" in name else ("logits" if name.endswith("logits") else "mlp")
        colour, style = EDGE_STYLES[kind]
        assert attrs["color"].startswith(colour) and attrs["style"] == style
    widths = {name: float(attrs["penwidth"]) for (_, _, name), attrs in edges.items()}
    assert widths["m1->logits"] > widths["input->a0.h1<q>"]  # |score| larger near the end of the edge list


def test_pruning_removes_dangling_edges_from_the_drawing(tmp_path: Path) -> None:
    dangling = ["input->a2.h0<k>", "a2.h0<k>", "a1.h3->m2"]
    c = Circuit.from_edge_names(SMALL, PATH + dangling)
    pruned_dot = draw_circuit(c, tmp_path / "p.dot")
    assert {k for _, _, k in _circuit_edges(pruned_dot)} == _residual_names(Circuit.from_edge_names(SMALL, PATH))
    assert "a2.h0" not in _direct_attrs(pruned_dot) and "a1.h3" not in _direct_attrs(pruned_dot)
    raw_dot = draw_circuit(c, tmp_path / "raw.dot", prune=False)
    assert {k for _, _, k in _circuit_edges(raw_dot)} == _residual_names(c)


def test_gpt2_sized_circuit_png_and_svg(tmp_path: Path) -> None:
    c = random_circuit(GPT2, 45, seed=1)
    assert 120 <= c.n_kept <= 400
    dot = draw_circuit(c, tmp_path / "c.png", roles=IOI_ROLES, title="random GPT-2-small circuit")
    data = (tmp_path / "c.png").read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    draw_circuit(c, tmp_path / "c.svg", roles=IOI_ROLES)
    svg = (tmp_path / "c.svg").read_text()
    assert "<svg" in svg and "a0.h" in svg
    assert {k for _, _, k in _circuit_edges(dot)} == _residual_names(c)
    assert _direct_names(dot) == {n for n in c.kept_edge_names() if "->" not in n}


def test_comparison_colours_match_the_sets(tmp_path: Path) -> None:
    left = random_circuit(GPT2, 30, seed=3)
    mix = left.kept & (torch.rand(GPT2.n_edges, generator=torch.Generator().manual_seed(0)) < 0.7)
    right = prune_to_paths(left.with_kept(mix | random_circuit(GPT2, 20, seed=4).kept))
    dot = draw_comparison(left, right, tmp_path / "cmp.png", "ACDC", "EAP", roles=IOI_ROLES, title="ACDC vs EAP")
    assert (tmp_path / "cmp.png").read_bytes().startswith(PNG_MAGIC)
    a, b = _residual_names(left), _residual_names(right)
    assert a & b and a - b and b - a  # all three sets occur
    edges = _circuit_edges(dot)
    assert {k for _, _, k in edges} == a | b
    for (_, _, name), attrs in edges.items():
        member = "shared" if name in a and name in b else ("left" if name in a else "right")
        assert attrs["color"].startswith(COMPARISON_COLORS[member][0]), name
        assert attrs["membership"] == member
    assert "only ACDC" in dot and "only EAP" in dot


def test_comparison_legend_names_each_line_style_once(tmp_path: Path) -> None:
    left = random_circuit(SMALL, 8, seed=3)
    dot = draw_comparison(left, left, tmp_path / "cmp.dot", "A", "B")
    assert "solid: q input, MLP input, logits" in dot and "dashed: k input" in dot and "dotted: v input" in dot
    assert "mlp solid" not in dot and "logits solid" not in dot


def test_comparison_nodes_coloured_by_membership(tmp_path: Path) -> None:
    left = Circuit.from_edge_names(SMALL, PATH)
    right = Circuit.from_edge_names(SMALL, ["input->a1.h2<q>", "a1.h2<q>", "a1.h2->logits", "input->m1", "m1->logits"])
    ag = pygraphviz.AGraph(string=draw_comparison(left, right, tmp_path / "c.svg", "L", "R"))
    fills = {n: ag.get_node(n).attr["fillcolor"] for n in ("a0.h1", "a1.h2", "m1")}
    assert fills == {"a0.h1": COMPARISON_COLORS["left"][1], "a1.h2": COMPARISON_COLORS["right"][1],
                     "m1": COMPARISON_COLORS["shared"][1]}
    assert (tmp_path / "c.svg").stat().st_size > 0


def test_errors(tmp_path: Path) -> None:
    c = Circuit.from_edge_names(SMALL, PATH)
    other = Circuit.full(Graph(GraphConfig(n_layers=2, n_heads=4, n_kv_heads=4)))
    with pytest.raises(ValueError, match="different graphs"):
        draw_comparison(c, other, tmp_path / "x.svg", "a", "b")
    with pytest.raises(ValueError, match=".pdf"):
        draw_circuit(c, tmp_path / "x.pdf")
    with pytest.raises(ValueError, match="9.9"):
        draw_circuit(c, tmp_path / "x.svg", roles={"9.9": "name mover"})
    assert list(tmp_path.iterdir()) == []


def test_empty_and_gqa_circuits_draw(tmp_path: Path) -> None:
    assert _circuit_edges(draw_circuit(Circuit.empty(SMALL), tmp_path / "e.svg")) == {}
    gqa = Graph(GraphConfig(n_layers=2, n_heads=4, n_kv_heads=2))
    c = Circuit.from_edge_names(gqa, ["input->a0.kv0<k>", "a0.kv0<k>", "a0.h1->logits"])
    edges = _circuit_edges(draw_circuit(c, tmp_path / "g.png"))
    # the k edge of key-value head 0 enters only a0.h1, the query head of its group that feeds something
    assert set(edges) == {("input", "a0.h1", "input->a0.kv0<k>"), ("a0.h1", "logits", "a0.h1->logits")}
    dot = draw_circuit(c, tmp_path / "g.dot")
    # ... and so does its shared direct k edge: a0.h0, which uses it but feeds nothing, is not drawn
    assert _direct_attrs(dot) == {"input": "", "a0.h1": "k", "logits": ""}
    raw = _direct_attrs(draw_circuit(Circuit.from_edge_names(gqa, ["a0.kv0<k>"]), tmp_path / "r.dot", prune=False))
    assert raw["a0.h0"] == raw["a0.h1"] == "k"  # no head of the group feeds anything: all shown


def test_pygraphviz_is_not_imported_with_the_module() -> None:
    code = "import sys, acdc_compare.draw, acdc_compare.export, acdc_compare.report; print('pygraphviz' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_labels_with_markup_are_escaped_and_roles_coloured(tmp_path: Path) -> None:
    c = Circuit.from_edge_names(SMALL, PATH)
    roles = {"a0.h1": "name mover", "a2.h3": "adjective <mover> & co"}
    dot = draw_circuit(c, tmp_path / "c.svg", roles=roles, title='IOI & "friends" <b>')
    svg = (tmp_path / "c.svg").read_text()
    # Graphviz drops an HTML label it cannot parse, so the title showing means the legend parsed
    assert "IOI &amp; &quot;friends&quot; &lt;b&gt;" in svg or 'IOI &amp; "friends" &lt;b&gt;' in svg
    assert "adjective &lt;mover&gt; &amp; co" in svg
    ag = pygraphviz.AGraph(string=dot)
    assert ag.get_node("a0.h1").attr["fillcolor"] == ROLE_COLORS["name mover"]
    assert ag.get_node("a2.h3").attr["fillcolor"] not in ROLE_COLORS.values()  # an extra colour for a new role
    assert ag.get_node("m1").attr["fillcolor"] == ROLE_COLORS["unknown"]


def test_empty_circuit_draws_without_graphviz_errors(tmp_path, capfd):
    from acdc_compare.graph import Graph, GraphConfig

    g = Graph(GraphConfig(n_layers=3, n_heads=4, n_kv_heads=4))
    draw_circuit(Circuit.empty(g), tmp_path / "empty.png", title="nothing kept")
    draw_comparison(Circuit.empty(g), Circuit.empty(g), tmp_path / "cmp.png", "a", "b")
    assert "syntax error" not in capfd.readouterr().err
    assert (tmp_path / "empty.png").stat().st_size > 0


SMOLLM2 = Graph(GraphConfig(n_layers=30, n_heads=9, n_kv_heads=3))


def dense_circuit(graph: Graph, n_nodes: int, seed: int) -> Circuit:
    """Every edge among `n_nodes` random senders, the input and the logits (all on input-to-logits paths),
    with random scores."""
    rng = random.Random(seed)
    chosen = {0, *rng.sample(range(1, graph.n_senders), n_nodes)}
    nodes = {graph.sender_names[s] for s in chosen} | {"logits"}
    read = torch.tensor([bool(set(graph.receiver_nodes(r)) & nodes) for r in range(graph.n_receivers)])
    sender = graph.edge_sender_tensor
    from_chosen = torch.isin(sender, torch.tensor(sorted(chosen))) | (sender < 0)
    kept = read[graph.edge_receiver_tensor] & from_chosen
    scores = torch.rand(graph.n_edges, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return prune_to_paths(Circuit(graph, kept, scores))


def test_a_2000_edge_circuit_is_drawn_bounded_and_says_so(tmp_path: Path) -> None:
    from acdc_compare.draw import MAX_DRAWN_EDGES, plan_drawing

    c = dense_circuit(SMOLLM2, 60, seed=0)
    residual = _residual_names(c)
    assert len(residual) >= 2000
    plan = plan_drawing(c)
    assert plan.truncated and plan.n_on_paths == len(residual)
    assert 0 < len(plan.edges) <= MAX_DRAWN_EDGES and plan.n_drawn < len(residual)
    dot = draw_circuit(c, [tmp_path / "c.dot", tmp_path / "c.svg"])
    drawn = {k for _, _, k in _circuit_edges(dot)}
    assert len(drawn) == plan.n_drawn and drawn <= residual
    # the drawn edges are on paths among the top n_ranked by |score|
    ranked = sorted(residual, key=lambda n: -abs(c.edge_score(n)))
    assert drawn <= set(ranked[:plan.n_ranked])
    assert f"drawn: {plan.n_drawn} of {len(residual)} residual edges" in plan.note
    assert f"{plan.n_drawn} of {len(residual)} residual edges" in (tmp_path / "c.svg").read_text()
    assert plan_drawing(c, max_edges=None).n_drawn == len(residual)  # unbounded on request
    small = random_circuit(GPT2, 20, seed=0)
    assert plan_drawing(small).note == "" and not plan_drawing(small).truncated


def test_a_large_comparison_is_bounded_and_says_so(tmp_path: Path) -> None:
    from acdc_compare.draw import MAX_DRAWN_EDGES

    left, right = dense_circuit(SMOLLM2, 40, seed=1), dense_circuit(SMOLLM2, 40, seed=2)
    union = _residual_names(left) | _residual_names(right)
    assert len(union) > MAX_DRAWN_EDGES
    dot = draw_comparison(left, right, tmp_path / "cmp.dot", "L", "R")
    drawn = {k for _, _, k in _circuit_edges(dot)}
    assert 0 < len(drawn) <= MAX_DRAWN_EDGES and drawn <= union
    assert f"of {len(union)} residual edges" in dot and "in either circuit" in dot


def test_one_layout_serves_every_format(tmp_path: Path) -> None:
    c = random_circuit(GPT2, 10, seed=2)
    paths = [tmp_path / "c.svg", tmp_path / "c.png", tmp_path / "c.dot"]
    dot = draw_circuit(c, paths)
    assert paths[0].read_text().startswith("<?xml") and paths[1].read_bytes().startswith(PNG_MAGIC)
    assert paths[2].read_text() == dot
    with pytest.raises(ValueError, match="max_edges"):
        draw_circuit(c, tmp_path / "x.svg", max_edges=0)


def test_report_states_a_bounded_figure_and_does_not_redraw_an_up_to_date_one(tmp_path: Path, capsys) -> None:
    import os

    from acdc_compare.cli import EXIT_OK, main
    from acdc_compare.export import save_circuit

    big = save_circuit(dense_circuit(GPT2, 20, seed=0), tmp_path / "big.json")  # 547 residual edges
    save_circuit(random_circuit(GPT2, 10, seed=3), tmp_path / "small.json")
    assert main(["report", str(tmp_path)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "big: drawn: " in out and "merged arrows" in out and "small: drawn" not in out  # head level: arrows left out
    png = tmp_path / "big.png"
    assert png.read_bytes().startswith(PNG_MAGIC)
    drawn_at = png.stat().st_mtime_ns
    assert main(["report", str(tmp_path)]) == EXIT_OK
    assert "big.png: up to date, not redrawn" in capsys.readouterr().out and png.stat().st_mtime_ns == drawn_at
    later = drawn_at / 1e9 + 5
    os.utime(big, (later, later))  # the circuit file changed after its figure: drawn again
    assert main(["report", str(tmp_path)]) == EXIT_OK
    assert "big.png: up to date" not in capsys.readouterr().out and png.stat().st_mtime_ns != drawn_at


def test_figures_and_the_viewer_are_the_same_way_up(tmp_path: Path) -> None:
    """Input at the bottom and logits at the top in both (SVG y grows downwards)."""
    import xml.etree.ElementTree as ET

    from acdc_compare.viewer import layout

    c = random_circuit(SMALL, 12, seed=3)
    draw_circuit(c, tmp_path / "c.svg")
    ns = "{http://www.w3.org/2000/svg}"
    y = {}
    for node in ET.parse(tmp_path / "c.svg").getroot().iter(f"{ns}g"):
        title = node.find(f"{ns}title")
        if node.get("class") == "node" and title is not None and title.text in ("input", "logits"):
            y[title.text] = float(node.find(f".//{ns}text").get("y"))
    positions, _ = layout(SMALL, ["input", "a0.h1", "m1", "logits"])
    assert y["input"] > y["logits"]  # the figure: input below logits
    assert positions["input"][1] > positions["logits"][1]  # the viewer: the same


def test_the_figure_and_the_cli_name_their_two_edge_counts_the_same_way(tmp_path: Path, capsys) -> None:
    from acdc_compare.cli.discover import _print_circuit

    c = random_circuit(SMALL, 12, seed=3)
    c = c.with_kept(c.kept | torch.arange(SMALL.n_edges).eq(0))  # likely one more edge, maybe off every path
    counts = f"{c.n_kept} of {c.n_edges} edges kept, {c.n_functional_edges} of them on input-to-logits paths"
    dot = draw_circuit(c, tmp_path / "c.dot")
    _print_circuit(c)
    assert counts in dot and counts in capsys.readouterr().out


def test_report_of_a_folder_holds_the_viewer_and_comparisons(tmp_path: Path) -> None:
    from acdc_compare.cli import EXIT_OK, main
    from acdc_compare.export import save_circuit

    save_circuit(random_circuit(SMALL, 10, seed=3), tmp_path / "one.json")
    save_circuit(random_circuit(SMALL, 10, seed=4), tmp_path / "two.json")
    assert main(["report", str(tmp_path)]) == EXIT_OK
    html = (tmp_path / "report.html").read_text()
    assert "Interactive circuit viewer" in html and "Comparisons" in html and "edge Jaccard" in html
    assert "Comparison: one vs two" in html
    assert (tmp_path / "one_vs_two.png").read_bytes().startswith(PNG_MAGIC)
