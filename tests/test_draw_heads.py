"""Head-level drawings: the plan keeps complete paths and the nodes asked for, every count in a legend is
what the SVG holds or the circuits' own counts, and a comparison of two non-empty circuits draws both."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
import torch

from acdc_compare.circuit import Circuit, random_circuit
from acdc_compare.compare import compare_circuits
from acdc_compare.draw import draw_circuit, draw_comparison, plan_heads
from acdc_compare.draw.head_plan import merged_arrows
from acdc_compare.graph import INPUT, LOGITS, Graph, GraphConfig

GPT2 = Graph(GraphConfig(n_layers=12, n_heads=12, n_kv_heads=12))
GQA = Graph(GraphConfig(n_layers=6, n_heads=6, n_kv_heads=2))
ROLES = {"a9.h9": "name mover", "a10.h0": "name mover", "a7.h3": "S-inhibition"}


def _svg(path: Path) -> tuple[list[str], list[str], str]:
    """Node titles (no layout nodes), circuit arrow titles, and the visible text of an SVG."""
    text = path.read_text()
    nodes = [html.unescape(t) for t in re.findall(r'<g id="node\d+" class="node">\s*<title>(.*?)</title>', text)]
    arrows = re.findall(r'<g id="edge\d+" class="edge circuit">\s*<title>(.*?)</title>', text)
    words = " ".join(html.unescape(t) for t in re.findall(r"<text[^>]*>(.*?)</text>", text))
    return [n for n in nodes if not n.startswith("_")], arrows, words


def _reach(arrows, start, forward=True) -> set[str]:
    seen, stack = {start}, [start]
    while stack:
        node = stack.pop()
        for a in arrows:
            u, v = (a.up, a.down) if forward else (a.down, a.up)
            if u == node and v not in seen:
                seen.add(v)
                stack.append(v)
    return seen


@pytest.mark.parametrize("graph, seed", [(GPT2, 1), (GPT2, 5), (GQA, 2)])
def test_every_drawn_node_lies_on_a_complete_drawn_path(graph: Graph, seed: int) -> None:
    c = random_circuit(graph, 40 if graph is GPT2 else 12, seed=seed)
    must = ["a9.h9"] if "a9.h9" in c.functional().nodes() else []
    plan = plan_heads(c, must=must, max_nodes=15, max_arrows=30)
    assert len(plan.shown_nodes) <= 15 and set(must) <= set(plan.shown_nodes)
    heads = {n for n in plan.node_importance if n.startswith("a")}
    assert heads == c.functional_heads()  # one head count everywhere: heads sending an edge on a path
    forward, backward = _reach(plan.shown_arrows, INPUT), _reach(plan.shown_arrows, LOGITS, forward=False)
    assert set(plan.shown_nodes) <= forward & backward
    assert len(plan.shown_arrows) <= max(30, len(plan.shown_nodes) + 1)
    everything = plan_heads(c, max_nodes=None, max_arrows=None)
    assert len(everything.shown_nodes) == everything.n_nodes and everything.n_edges_shown() == c.n_functional_edges - \
        sum(1 for n in c.functional().kept_edge_names() if "->" not in n)


def test_merged_arrows_sum_the_importance_of_their_edges() -> None:
    c = random_circuit(GPT2, 30, seed=3)
    arrows, nodes = merged_arrows(c)
    importance = c.importance()
    for a in arrows:
        assert a.importance == pytest.approx(sum(float(importance[c.graph.edge_index(n)]) for n in a.edges))
        assert a.main_kind == max(a.importance_by_kind, key=lambda kv: kv[1])[0]
    assert sum(nodes.values()) == pytest.approx(sum(a.importance * sum(n not in (INPUT, LOGITS) for n in (a.up, a.down))
                                                    for a in arrows))


def test_the_head_figure_holds_what_its_legend_counts(tmp_path: Path) -> None:
    c = random_circuit(GPT2, 60, seed=1)
    assert c.n_functional_edges > 150  # drawn at head level by default
    draw_circuit(c, tmp_path / "c.svg", roles=ROLES, title="random")
    plan = plan_heads(c, must=[n for n in ROLES if n in c.functional().nodes()])
    nodes, arrows, words = _svg(tmp_path / "c.svg")
    assert sorted(nodes) == sorted([INPUT, LOGITS, *plan.shown_nodes])
    assert len(arrows) == len(plan.shown_arrows)
    assert {"a9.h9", "a10.h0"} <= set(nodes)  # nodes with a role are drawn first
    heads = sum(1 for n in plan.node_importance if n.startswith("a"))
    assert (f"{c.n_kept:,} edges kept, {c.n_functional_edges:,} of them on input-to-logits paths, between {heads} "
            f"heads and {plan.n_nodes - heads} MLPs") in words
    assert f"{len(plan.shown_nodes)} of {plan.n_nodes} heads and MLPs" in words
    assert f"{len(arrows)} of the {len(plan.arrows)} merged arrows" in words


def test_edge_level_stays_available_and_draws_every_edge_up_to_300(tmp_path: Path) -> None:
    c = random_circuit(GPT2, 60, seed=1)
    draw_circuit(c, tmp_path / "e.svg", level="edges", max_edges=None)
    _, arrows, _ = _svg(tmp_path / "e.svg")
    assert len(set(arrows)) >= 150  # edge level: one arrow per residual edge (per node pair)
    with pytest.raises(ValueError, match="level"):
        draw_circuit(c, tmp_path / "x.svg", level="nodes")  # type: ignore[arg-type]


def test_a_comparison_of_two_non_empty_circuits_draws_both_panels(tmp_path: Path) -> None:
    a, b = random_circuit(GPT2, 60, seed=1), random_circuit(GPT2, 60, seed=2)
    draw_comparison(a, b, tmp_path / "ab.svg", "ioi", "pet-last", roles=ROLES, title="ioi vs pet-last")
    nodes, arrows, words = _svg(tmp_path / "ab.svg")
    left = [n for n in nodes if n.startswith("left/")]
    right = [n for n in nodes if n.startswith("right/")]
    assert len(left) > 2 and len(right) > 2 and len(arrows) > 10
    text = (tmp_path / "ab.svg").read_text()
    for side, circuit in (("left", a), ("right", b)):
        for mover in ("a9.h9", "a10.h0"):
            if mover in circuit.functional().nodes():
                assert f"{side}/{mover}" in nodes  # IOI's name movers are drawn in both panels, outlined
                block = text.split(f"<title>{side}/{mover}</title>")[1].split("</g>")[0]
                assert "#0b3d91" in block
    overlap = compare_circuits(a, b).edges
    assert (f"kept edges: {len(overlap.both):,} in both, {len(overlap.only_a):,} only ioi, "
            f"{len(overlap.only_b):,} only pet-last") in words
    shared = a.functional_heads() & b.functional_heads()
    assert f"heads on input-to-logits paths: {len(shared)} in both" in words


def test_head_level_shows_the_same_circuit_whatever_the_edge_order() -> None:
    """Importance comes from the ranking: reversing the edge indices' scores reverses what is drawn first."""
    c = random_circuit(GPT2, 40, seed=4)
    low_first = Circuit(c.graph, c.kept, torch.arange(c.n_edges, dtype=torch.float64))
    high_first = Circuit(c.graph, c.kept, c.n_edges - torch.arange(c.n_edges, dtype=torch.float64))
    a, b = plan_heads(low_first, max_nodes=6), plan_heads(high_first, max_nodes=6)
    assert a.shown_nodes != b.shown_nodes


def test_an_edge_level_comparison_counts_what_it_draws_and_the_whole_circuits(tmp_path: Path) -> None:
    a, b = random_circuit(GPT2, 8, seed=1), random_circuit(GPT2, 8, seed=2)
    draw_comparison(a, b, tmp_path / "ab.svg", "A", "B", level="edges")
    text = (tmp_path / "ab.svg").read_text()
    _, arrows, words = _svg(tmp_path / "ab.svg")
    names = [{n for n in x.functional().kept_edge_names() if "->" in n} for x in (a, b)]
    both, only_a, only_b = names[0] & names[1], names[0] - names[1], names[1] - names[0]
    assert f"in both ({len(both)} drawn edges)" in words and f"only A ({len(only_a)} drawn edges)" in words
    assert f"only B ({len(only_b)} drawn edges)" in words
    assert len(arrows) == len(both | only_a | only_b) > 0  # one arrow per residual edge (no GQA here)
    overlap = compare_circuits(a, b).edges
    assert f"kept edges: {len(overlap.both):,} in both, {len(overlap.only_a):,} only A" in words
    assert text.count('class="edge circuit"') == len(arrows)


def test_figures_and_notebook_captions_name_the_task_by_default(tmp_path: Path) -> None:
    from acdc_compare.notebook import circuit_html

    c = Circuit(GPT2, random_circuit(GPT2, 8, seed=1).kept, settings={"task": "ioi", "model": "gpt2"})
    dot = draw_circuit(c, tmp_path / "c.dot")
    assert "ioi on gpt2" in dot
    assert "A vs B" in draw_comparison(c, c, tmp_path / "ab.dot", "A", "B")
    html_text = circuit_html(c)
    assert "ioi on gpt2:" in html_text and GPT2.config.key not in html_text.split("acdc-viewer")[0]


def test_a_head_level_comparison_colours_arrows_in_both_and_only_one(tmp_path: Path) -> None:
    a, b = random_circuit(GPT2, 60, seed=1), random_circuit(GPT2, 60, seed=2)
    dot = draw_comparison(a, b, tmp_path / "ab.dot", "A", "B")
    import pygraphviz

    ag = pygraphviz.AGraph(string=dot)
    pairs = [{(x.up, x.down) for x in plan_heads(c).arrows} for c in (a, b)]
    seen = set()
    for u, v in ag.edges():
        edge = ag.get_edge(u, v)
        if edge.attr.get("class") != "circuit":
            continue
        side, up, down = u.split("/")[0], u.split("/", 1)[1], v.split("/", 1)[1]
        other = pairs[1] if side == "left" else pairs[0]
        expected = "shared" if (up, down) in other else side
        assert edge.attr["membership"] == expected
        seen.add(expected)
    assert seen == {"shared", "left", "right"}


def test_compare_prints_the_heads_on_paths_the_figure_counts(tmp_path: Path, capsys) -> None:
    """Issue 35 finding 9: one head count with its meaning everywhere: `compare` prints the heads on
    input-to-logits paths, as the head-level figure's legend counts them."""
    from acdc_compare.cli import EXIT_OK, main
    from acdc_compare.export import save_circuit

    a, b = random_circuit(GPT2, 60, seed=1), random_circuit(GPT2, 60, seed=2)
    left, right = save_circuit(a, tmp_path / "a.json"), save_circuit(b, tmp_path / "b.json")
    assert main(["compare", str(left), str(right), "--out", str(tmp_path / "out")]) == EXIT_OK
    out = capsys.readouterr().out
    shared = a.functional_heads() & b.functional_heads()
    line = next(x for x in out.splitlines() if x.strip().startswith("heads on paths"))
    assert line.rstrip().endswith(f"both {len(shared)}")
    _, _, words = _svg(tmp_path / "out" / "a_vs_b.svg")
    assert f"heads on input-to-logits paths: {len(shared)} in both" in words and "a vs b" in words
