"""The interactive circuit viewer: its data (layout, counts, paths), safe embedding, and the page itself in a
real headless Chromium (no console error, no network request, clicking a node highlights its paths)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import networkx as nx
import pytest
import torch
from browser import Browser, require_chromium
from conftest import tiny_task

from acdc_compare.attention import head_analogies, viewer_attention
from acdc_compare.circuit import Circuit, random_circuit
from acdc_compare.export import prune_to_paths
from acdc_compare.graph import Graph, GraphConfig
from acdc_compare.backends import model_config
from acdc_compare.report import Html, Image, Table, write_report
from acdc_compare.draw.head_plan import merged_arrows
from acdc_compare.viewer import script_json, viewer_data, viewer_html, viewer_section

GQA = Graph(GraphConfig(n_layers=3, n_heads=6, n_kv_heads=2))


def _on(graph: Graph, nodes: set[str], scores: torch.Tensor, drop: int = 7) -> Circuit:
    """Every edge among `nodes` (and input, logits), less every `drop`-th one, so some are off every path."""
    nodes = nodes | {"input", "logits"}
    kept = torch.zeros(graph.n_edges, dtype=torch.bool)
    for e in range(graph.n_edges):
        up, down = graph.edge_nodes(e)
        kept[e] = set(up) <= nodes and bool(set(down) & nodes) and e % drop != 0
    return Circuit(graph, kept, scores)


def _circuits(graph: Graph) -> dict[str, Circuit]:
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(graph.n_edges, generator=g, dtype=torch.float64)
    other = scores + 0.6 * torch.randn(graph.n_edges, generator=g, dtype=torch.float64)
    return {"left <one>": _on(graph, {"a0.h1", "a0.h4", "a1.h2", "a1.h3", "a2.h0", "m0", "m1"}, scores),
            "right": _on(graph, {"a0.h1", "a0.h5", "a1.h2", "a2.h4", "a2.h0", "m1", "m2"}, other, drop=5)}


def _arrow_graph(edges: list[dict]) -> nx.MultiDiGraph:
    g = nx.MultiDiGraph()
    for e in edges:
        g.add_edge(e["up"], e["down"], key=e["name"] + "|" + e["down"])
    return g


def _closure_keys(edges: list[dict], node: str) -> set[str]:
    """Arrows on a path into or out of `node`: into an ancestor (or the node), or out of a descendant."""
    g = _arrow_graph(edges)
    up, down = nx.ancestors(g, node) | {node}, nx.descendants(g, node) | {node}
    return {e["name"] + "|" + e["down"] for e in edges if e["down"] in up or e["up"] in down}


def test_viewer_data_layout_counts_and_paths() -> None:
    circuits = _circuits(GQA)
    data = viewer_data(circuits, roles={"a2.h1": "name mover"})
    nodes = data["nodes"]
    ys = {name: n["y"] for name, n in nodes.items()}
    assert ys["input"] == max(ys.values()) and ys["logits"] == min(ys.values())
    for name, n in nodes.items():
        if n["kind"] in ("head", "mlp"):
            assert ys["logits"] < n["y"] < ys["input"]
            same_layer = [m for m in nodes.values() if m["layer"] == n["layer"]]
            assert {m["y"] for m in same_layer} == {n["y"]}  # one row per layer
    heads_l0 = sorted((n["x"], n["head"]) for n in nodes.values() if n["layer"] == 0 and n["kind"] == "head")
    assert [h for _, h in heads_l0] == sorted(h for _, h in heads_l0)
    assert len({(n["x"], n["y"]) for n in nodes.values()}) == len(nodes)
    assert nodes["a2.h1"]["role"] == "name mover" if "a2.h1" in nodes else True
    for (label, c), entry in zip(circuits.items(), data["circuits"]):
        live = set(prune_to_paths(c).kept_edge_names())
        residual = {n for n in c.kept_edge_names() if "->" in n}
        assert entry["label"] == label and entry["n_kept"] == c.n_kept and entry["n_live"] == len(live)
        assert entry["n_residual"] + entry["n_direct"] == c.n_kept == len(residual) + entry["n_direct"]
        assert {e["name"] for e in entry["edges"]} == residual
        assert all(e["live"] == (e["name"] in live) for e in entry["edges"])
        importance = c.importance()
        for e in entry["edges"]:
            assert e["score"] == pytest.approx(c.edge_score(e["name"]))
            assert e["importance"] == float(importance[c.graph.edge_index(e["name"])])
            assert e["score_kind"] == c.score_kind(e["name"]).value
            assert e["kind"] == ("logits" if e["down"] == "logits" else "mlp" if e["down"].startswith("m")
                                 else e["name"][-2])
        assert set(entry["nodes"]) <= set(nodes)
        merged, _ = merged_arrows(c)
        assert [(a["up"], a["down"], a["n_edges"]) for a in entry["arrows"]] == \
            [(a.up, a.down, len(a.edges)) for a in merged]
        assert sum(a["importance"] for a in entry["arrows"]) == pytest.approx(
            sum(float(importance[c.graph.edge_index(n)]) for n in prune_to_paths(c).kept_edge_names() if "->" in n))
    assert data["level"] == "edges"  # small circuits open at edge level, as their figures are drawn
    with pytest.raises(ValueError, match="share one graph"):
        viewer_data({"a": circuits["right"], "b": Circuit.empty(Graph(GraphConfig(2, 2, 2)))})


def test_embedded_json_cannot_end_the_script() -> None:
    c = Circuit.from_edge_names(GQA, ["input->a0.h1<q>", "a0.h1<q>", "a0.h1->logits"])
    label = "</script><script>alert(1)</script><!-- & \u2028"
    html = viewer_html(viewer_data({label: c}))
    blob = re.search(r'<script type="application/json" class="acdc-viewer-data">(.*?)</script>', html, re.S)
    assert blob is not None and "<" not in blob.group(1) and ">" not in blob.group(1)
    assert json.loads(blob.group(1))["circuits"][0]["label"] == label
    assert html.count("</script>") == 2 and "http://www.w3.org/2000/svg" in html
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", html)  # the SVG namespace is a name, not a fetch
    assert json.loads(script_json({"x": "</"})) == {"x": "</"}


@pytest.fixture(scope="module")
def page(tmp_path_factory, tiny_llama):
    """The report with the viewer of two circuits on the tiny Llama's graph, open in headless Chromium."""
    require_chromium("the viewer's browser test")
    folder = tmp_path_factory.mktemp("report")
    graph = Graph.from_model_config(model_config(tiny_llama))
    circuits = _circuits(graph)
    a, b = tiny_task(seed=0, n=4, p=7), tiny_task(seed=1, n=4, p=7)
    heads = sorted(set().union(*(c.heads() for c in circuits.values())))
    attention = viewer_attention(tiny_llama, [a, b], heads, n_prompts=2,
                                 analogies=head_analogies(tiny_llama, a, b, heads, n_shuffles=10))
    (folder / "fig.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    section = viewer_section(circuits, roles={heads[0]: "name mover"}, attention=attention)
    path = write_report(folder / "report.html", title="viewer test", sections=[
        Table("t", ["a"], [[1.5]]), section, Image("fig", "fig.png", embed=True), Html("plot", "<svg></svg>")])
    browser = Browser(tmp_path_factory.mktemp("profile"))
    try:
        browser.open(path)
        yield browser, viewer_data(circuits, roles={heads[0]: "name mover"}, attention=attention), path
    finally:
        browser.close()


def _shown_keys(browser: Browser, selector: str = ".av-edge") -> set[str]:
    return set(browser.js(f"Array.from(document.querySelectorAll('{selector}')).map(e => e.dataset.key)"))


def _centre(browser: Browser, selector: str) -> tuple[float, float]:
    r = browser.js(f"(() => {{ const e = document.querySelector('{selector}'); e.scrollIntoView({{block: 'center'}});"
                   " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
    return r[0], r[1]


def test_viewer_page_loads_without_errors_or_network(page) -> None:
    browser, data, path = page
    assert browser.js("document.querySelector('.acdc-viewer').dataset.ready") == "1"
    assert browser.problems() == []
    requests = browser.requests()
    assert requests and all(u == path.resolve().as_uri() or u.startswith("data:") for u in requests), requests
    live = [[e for e in c["edges"] if e["live"]] for c in data["circuits"]]
    union = {e["name"] + "|" + e["down"] for edges in live for e in edges}
    assert _shown_keys(browser) == union  # compare mode, paths only
    shared = {e["name"] + "|" + e["down"] for e in live[0]} & {e["name"] + "|" + e["down"] for e in live[1]}
    assert _shown_keys(browser, ".av-edge.av-shared") == shared


def test_clicking_a_node_highlights_its_paths(page) -> None:
    browser, data, _ = page
    live = [e for c in data["circuits"] for e in c["edges"] if e["live"]]
    edges = list({e["name"] + "|" + e["down"]: e for e in live}.values())
    every = {e["name"] + "|" + e["down"] for e in edges}
    closures = {n: _closure_keys(edges, n) for e in edges for n in (e["up"], e["down"])
                if n not in ("input", "logits")}
    node = max((n for n, keys in closures.items() if keys != every), key=lambda n: (len(closures[n]), n))
    expected = closures[node]
    assert len(expected) >= 3
    browser.click(*_centre(browser, f'.av-node[data-node="{node}"]'))
    assert browser.js("document.querySelector('svg.av-graph').dataset.pinned") == node
    assert _shown_keys(browser, ".av-edge.av-hl") == expected
    assert _shown_keys(browser, ".av-edge.av-dim") == every - expected
    g = _arrow_graph(edges)
    lit = set(browser.js("Array.from(document.querySelectorAll('.av-node.av-hl')).map(e => e.dataset.node)"))
    assert lit == nx.ancestors(g, node) | nx.descendants(g, node)
    assert browser.js("document.querySelector('.av-node.av-pinned').dataset.node") == node
    if node in data["attention"]["patterns"]:
        assert browser.js("document.querySelectorAll('.av-attn-map').length") == 4
        assert browser.js("document.querySelectorAll('.av-attn-map .av-scored-row').length") == 4
    browser.click(*_centre(browser, f'.av-node[data-node="{node}"]'))
    assert browser.js("document.querySelector('svg.av-graph').dataset.pinned") == ""
    assert _shown_keys(browser, ".av-edge.av-hl") == set()
    assert browser.problems() == []


def test_modes_filter_zoom_and_tooltips(page) -> None:
    browser, data, _ = page
    left = {e["name"] + "|" + e["down"] for e in data["circuits"][0]["edges"] if e["live"]}
    browser.click(*_centre(browser, ".av-mode-left"))
    assert _shown_keys(browser) == left
    browser.js("(() => { const c = document.querySelector('.av-live'); c.click(); })()")
    assert _shown_keys(browser) == {e["name"] + "|" + e["down"] for e in data["circuits"][0]["edges"]}
    browser.js("document.querySelector('.av-live').click()")
    scores = sorted(e["importance"] for e in data["circuits"][0]["edges"] if e["live"])
    k = len(scores) // 2
    browser.js(f"(() => {{ const s = document.querySelector('.av-slider'); s.value = '{k}';"
               " s.dispatchEvent(new Event('input')); })()")
    shown = browser.js("document.querySelectorAll('.av-edge').length")
    assert shown == sum(1 for s in scores if s >= scores[k]) and shown < len(scores)
    browser.js("(() => { const s = document.querySelector('.av-slider'); s.value = '0';"
               " s.dispatchEvent(new Event('input')); })()")
    before = browser.js("document.querySelector('svg.av-graph').getAttribute('viewBox')")
    x, y = _centre(browser, "svg.av-graph")
    browser.mouse("mouseWheel", x, y, deltaX=0, deltaY=-300)
    after = browser.js("document.querySelector('svg.av-graph').getAttribute('viewBox')")
    assert float(after.split()[2]) < float(before.split()[2])
    point = browser.js("(() => { const p = document.querySelector('.av-edge .av-hit'); const l = p.getTotalLength();"
                       " const q = p.getPointAtLength(l / 2); const m = p.getScreenCTM();"
                       " return [q.x * m.a + q.y * m.c + m.e, q.x * m.b + q.y * m.d + m.f,"
                       " p.parentNode.dataset.name, p.parentNode.dataset.kind]; })()")
    browser.mouse("mouseMoved", point[0], point[1])
    tip = browser.js("document.querySelector('.av-tip').textContent")
    assert point[2] in tip and f"kind: {point[3]}" in tip and "score (left <one>)" in tip
    browser.click(*_centre(browser, ".av-mode-compare"))
    assert browser.problems() == []


def _rendered(browser: Browser) -> dict[str, float]:
    """Widths in screen pixels: the viewer's panel (content box), its graph, and the graph's drawn nodes."""
    return browser.js("(() => { const v = document.querySelector('.acdc-viewer'); const s = v.querySelector('svg.av-graph');"
                      " const cs = getComputedStyle(v); const inner = v.clientWidth - parseFloat(cs.paddingLeft)"
                      " - parseFloat(cs.paddingRight); const n = s.querySelector('.av-nodes').getBoundingClientRect();"
                      " return {panel: inner, svg: s.getBoundingClientRect().width, nodes: n.width,"
                      " height: s.getBoundingClientRect().height, window: window.innerHeight}; })()")


def test_a_tall_circuit_fills_the_viewer_width(tmp_path: Path) -> None:
    """Issue 22 row 8: a 30-layer graph (SmolLM2's shape) was drawn as a ~150-200 px strip in a 1200 px panel,
    fitted to the panel's height; it now spans the panel's width, its height capped by the window's."""
    require_chromium("the viewer's width test")
    graph = Graph(GraphConfig(n_layers=30, n_heads=9, n_kv_heads=3))
    scores = torch.linspace(-1, 1, graph.n_edges, dtype=torch.float64)
    nodes = {"a0.h1", "a6.h4", "a20.h3", "a23.h7", "a29.h0", "m3", "m29", *(f"a12.h{h}" for h in range(9)), "m12"}
    circuit = _on(graph, nodes, scores)
    path = write_report(tmp_path / "report.html", title="tall", sections=[viewer_section({"tall": circuit})])
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(path)
        size = _rendered(browser)
        assert size["svg"] == pytest.approx(size["panel"], abs=4)  # its 1 px borders
        assert size["nodes"] >= 0.8 * size["svg"], size  # the drawn graph spans the panel, not a strip
        assert size["height"] <= 0.86 * size["window"], size  # a tall graph is cut by the window, not shrunk
        browser.send("Emulation.setDeviceMetricsOverride", session=True, width=700, height=900,
                     deviceScaleFactor=1, mobile=False)
        browser.js("new Promise(r => setTimeout(r, 200))")
        narrow = _rendered(browser)
        assert narrow["svg"] < size["svg"] and narrow["nodes"] >= 0.8 * narrow["svg"], narrow  # refitted
        assert browser.problems() == []
    finally:
        browser.close()


def test_a_large_circuit_opens_at_head_level_with_edges_one_click_away(tmp_path: Path) -> None:
    """Issue 32 item 4: the viewer opens on the head-level view where the figures do, and the edge level is one
    click away; both rank by the same importance."""
    require_chromium("the viewer's level test")
    graph = Graph(GraphConfig(n_layers=12, n_heads=12, n_kv_heads=12))
    circuit = random_circuit(graph, 60, seed=1)
    assert circuit.n_functional_edges > 150
    data = viewer_data({"big": circuit})
    assert data["level"] == "heads"
    path = write_report(tmp_path / "report.html", title="big", sections=[viewer_section({"big": circuit})])
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(path)
        arrows = {f"{a['up']}->{a['down']}|{a['down']}" for a in data["circuits"][0]["arrows"]}
        assert _shown_keys(browser) == arrows
        browser.click(*_centre(browser, ".av-level-edges"))
        edges = {e["name"] + "|" + e["down"] for e in data["circuits"][0]["edges"] if e["live"]}
        assert _shown_keys(browser) == edges and len(edges) > len(arrows)
        assert "merged" not in browser.js("document.querySelector('.av-info').textContent")
        browser.click(*_centre(browser, ".av-level-heads"))
        assert _shown_keys(browser) == arrows
        assert "merged arrows" in browser.js("document.querySelector('.av-info').textContent")
        assert browser.problems() == []
    finally:
        browser.close()
