"""MIB / EAP-IG circuit files: the round trip native -> MIB -> native on tiny MHA and GQA models, EAP-IG's
edge set, the refusals (model shape, disagreeing GQA groups, malformed files) and the reports of what has no
counterpart; `acdc-compare convert` both ways on the tiny saved model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import make_tiny

from acdc_compare.backends import model_config
from acdc_compare.circuit import Circuit, random_circuit
from acdc_compare.cli import EXIT_OK, EXIT_USAGE, main
from acdc_compare.export import load_circuit, save_circuit
from acdc_compare.graph import Graph, GraphConfig
from acdc_compare.mib import circuit_from_mib, circuit_to_mib, load_mib, mib_export_report, mib_scores, save_mib
from acdc_compare.mib_files import n_mib_edges


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def graph(request) -> Graph:
    """The graph of a tiny GPT-2 (multi-head attention) or a tiny Llama (6 query heads, 2 key-value heads)."""
    return Graph.from_model_config(model_config(make_tiny(request.param)))


def _random_circuit(graph: Graph, seed: int = 0) -> Circuit:
    """Random kept edges and finite scores; under GQA every edge of a k/v group gets one score (by design)."""
    g = torch.Generator().manual_seed(seed)
    kept = torch.rand(graph.n_edges, generator=g) < 0.3
    scores = torch.randn(graph.n_edges, generator=g, dtype=torch.float64)
    return Circuit(graph, kept, scores)


def _eap_ig_edge_count(n_layers: int, n_heads: int) -> int:
    """EAP-IG's `Graph.from_model` edge count (sequential attention and MLP)."""
    total = 0
    for layer in range(n_layers):
        upstream = 1 + layer * (n_heads + 1)
        total += 3 * n_heads * upstream + upstream + n_heads
    return total + 1 + n_layers * (n_heads + 1)


def _resid(c: Circuit) -> torch.Tensor:
    return c.graph.edge_sender_tensor >= 0


def test_round_trip_keeps_residual_edges_and_scores(graph: Graph, tmp_path: Path) -> None:
    c = _random_circuit(graph)
    report = save_mib(c, tmp_path / "c.json", d_model=48)
    d = json.loads((tmp_path / "c.json").read_text())
    assert d["cfg"] == {"n_layers": 3, "n_heads": graph.n_heads, "parallel_attn_mlp": False, "d_model": 48}
    assert len(d["edges"]) == report.n_edges_written == _eap_ig_edge_count(3, graph.n_heads)
    assert len(d["nodes"]) == 1 + 3 * (graph.n_heads + 1) + 1 and d["nodes"]["logits"]["in_graph"]
    assert report.dropped_direct == tuple(n for n in c.kept_edge_names() if "->" not in n)
    back, imported = load_mib(tmp_path / "c.json", graph, d_model=48)
    resid = _resid(c)
    assert torch.equal(back.kept[resid], c.kept[resid])
    assert torch.equal(back.scores[resid], mib_scores(c)[resid])
    assert imported.complete and not imported.missing_edges
    assert torch.isnan(back.scores[~resid]).all()


def test_gqa_writes_one_entry_per_query_head_with_the_group_edge(tiny_llama) -> None:
    graph = Graph.from_model_config(model_config(tiny_llama))
    assert graph.grouped and graph.group_size == 3
    c = Circuit.from_edge_names(graph, ["m0->a1.kv1<v>"], scores=torch.full((graph.n_edges,), 0.25))
    edges = circuit_to_mib(c)["edges"]
    for h in range(6):
        group_edge = graph.edge_index(f"m0->a1.kv{h // 3}<v>")
        assert edges[f"m0->a1.h{h}<v>"] == {"score": float(mib_scores(c)[group_edge]), "in_graph": h in (3, 4, 5)}
    assert not any(".kv" in name for name in edges)


def test_import_keeps_a_direct_edge_when_its_input_has_a_kept_edge(graph: Graph) -> None:
    c = _random_circuit(graph, seed=3)
    back, report = circuit_from_mib(circuit_to_mib(c), graph)
    for r in range(graph.n_receivers):
        direct = int(graph.direct_index[r])
        if direct >= 0:
            fed = bool(back.kept[(graph.edge_receiver_tensor == r) & _resid(back)].any())
            assert bool(back.kept[direct]) == fed
    assert report.n_direct_kept == int(back.kept[~_resid(back)].sum())


def test_random_circuit_round_trips_whole() -> None:
    """A circuit whose direct edges follow the import rule comes back edge for edge."""
    graph = Graph(GraphConfig(n_layers=3, n_heads=4, n_kv_heads=2))
    c = random_circuit(graph, n_nodes=6, seed=1)
    back, _ = circuit_from_mib(circuit_to_mib(c), graph)
    assert torch.equal(back.kept, c.kept)


def test_export_reports_what_mib_cannot_hold() -> None:
    graph = Graph(GraphConfig(n_layers=2, n_heads=2, n_kv_heads=2))
    scores = torch.zeros(graph.n_edges, dtype=torch.float64)
    scores[graph.edge_index("input->m0")] = math.nan
    scores[graph.edge_index("input->a1.h0<k>")] = math.inf
    c = Circuit.from_edge_names(graph, ["input->a1.h0<q>", "a1.h0<k>"], scores=scores)
    report = mib_export_report(c)
    assert report.dropped_direct == ("a1.h0<k>",)
    assert report.blocked_by_direct == ("input->a1.h0<q>",)
    assert report.unranked == 1 and report.kept_unscored == 0  # input->m0: removed, never scored
    unscored = Circuit.from_edge_names(graph, ["input->a1.h0<q>"])
    report = mib_export_report(unscored)
    assert report.kept_unscored == 1 and report.unranked == n_mib_edges(graph) - 1
    edges = circuit_to_mib(unscored)["edges"]
    assert edges["input->a1.h0<q>"]["score"] == 1.0 and edges["input->m0"]["score"] == 0.0
    assert any("0.0" in line for line in report.lines()) and any("no score" in line for line in report.lines())
    assert any("metrics" in line for line in report.lines())


def test_other_model_shapes_are_refused(graph: Graph) -> None:
    d = circuit_to_mib(_random_circuit(graph))
    for key, value in (("n_heads", graph.n_heads + 1), ("n_layers", 2), ("parallel_attn_mlp", True)):
        with pytest.raises(ValueError, match=key):
            circuit_from_mib({**d, "cfg": {**d["cfg"], key: value}}, graph)
    with pytest.raises(ValueError, match="d_model"):
        circuit_from_mib({**d, "cfg": {**d["cfg"], "d_model": 16}}, graph, d_model=48)
    with pytest.raises(ValueError, match="lacks"):
        circuit_from_mib({**d, "cfg": {"n_layers": 3}}, graph)
    with pytest.raises(ValueError, match="attention-only"):
        circuit_to_mib(Circuit.empty(Graph(GraphConfig(2, 2, 2, has_mlp=False))))


def test_unknown_and_missing_names_are_reported(graph: Graph) -> None:
    d = circuit_to_mib(_random_circuit(graph))
    edges = dict(d["edges"])
    del edges["input->logits"]
    odd = ["a2.h0->a1.h0<q>", "input->a9.h0<q>", "input->a0.h0", "nonsense", f"input->a0.h{graph.n_heads}<k>"]
    edges.update({name: {"score": 1.0, "in_graph": True} for name in odd})
    nodes = {**d["nodes"], "a9.h0": {"in_graph": True}, "m0": {"in_graph": True, "score": 0.5}}
    c, report = circuit_from_mib({**d, "edges": edges, "nodes": nodes}, graph)
    assert set(report.unmapped_edges) == set(odd)
    assert report.missing_edges == ("input->logits",) and "input->logits" not in c
    assert report.unmapped_nodes == ("a9.h0",) and report.ignored_node_fields == {"score": 1}
    assert not report.complete
    text = "\n".join(report.lines())
    assert "nonsense" in text and "input->logits" in text


def test_a_gqa_group_that_disagrees_is_refused(tiny_llama) -> None:
    graph = Graph.from_model_config(model_config(tiny_llama))
    d = circuit_to_mib(_random_circuit(graph))
    for change in ({"in_graph": not d["edges"]["m0->a2.h4<k>"]["in_graph"]}, {"score": 123.0}):
        edges = {**d["edges"], "m0->a2.h4<k>": {**d["edges"]["m0->a2.h4<k>"], **change}}
        with pytest.raises(ValueError, match=r"a2\.kv1<k>"):
            circuit_from_mib({**d, "edges": edges}, graph)


def test_malformed_files_are_refused(tmp_path: Path) -> None:
    graph = Graph(GraphConfig(n_layers=2, n_heads=2, n_kv_heads=2))
    d = circuit_to_mib(Circuit.full(graph))
    with pytest.raises(ValueError, match="'cfg', 'nodes' and 'edges'"):
        circuit_from_mib({"cfg": d["cfg"]}, graph)
    with pytest.raises(ValueError, match="input->m0"):
        circuit_from_mib({**d, "edges": {**d["edges"], "input->m0": {"score": "high", "in_graph": True}}}, graph)
    with pytest.raises(ValueError, match="input->m0"):
        circuit_from_mib({**d, "edges": {**d["edges"], "input->m0": {"score": 1.0, "in_graph": 1}}}, graph)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        load_mib(tmp_path / "bad.json", graph)


def test_cli_convert_both_ways(tiny_dir, tmp_path: Path, capsys) -> None:
    graph = Graph(GraphConfig(n_layers=2, n_heads=4, n_kv_heads=2))
    c = random_circuit(graph, n_nodes=5, seed=2)
    save_circuit(c, tmp_path / "native.json")
    assert main(["convert", str(tmp_path / "native.json"), str(tmp_path / "mib.json"), "--to", "mib",
                 "--model", str(tiny_dir)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "MIB edges" in out and "direct edges have no MIB counterpart" in out
    assert json.loads((tmp_path / "mib.json").read_text())["cfg"]["d_model"] == 32
    assert main(["convert", str(tmp_path / "mib.json"), str(tmp_path / "back.json"), "--to", "native",
                 "--model", str(tiny_dir)]) == EXIT_OK
    assert "kept" in capsys.readouterr().out
    back = load_circuit(tmp_path / "back.json")
    assert torch.equal(back.kept, c.kept)
    assert torch.equal(back.scores[_resid(c)], mib_scores(c)[_resid(c)])
    for args in (["native.json", "mib.pt", "--to", "mib"], ["mib.pt", "back_pt.json", "--to", "native"]):
        assert main(["convert", *(str(tmp_path / a) for a in args[:2]), *args[2:], "--model", str(tiny_dir)]) == 0
    assert torch.equal(load_circuit(tmp_path / "back_pt.json").kept, c.kept)
    d = json.loads((tmp_path / "mib.json").read_text())
    d["cfg"]["n_heads"] = 8
    (tmp_path / "wrong.json").write_text(json.dumps(d))
    assert main(["convert", str(tmp_path / "wrong.json"), str(tmp_path / "x.json"), "--to", "native",
                 "--model", str(tiny_dir)]) == EXIT_USAGE
    assert "another model shape" in capsys.readouterr().err


class _Payload:
    """Not a tensor: `torch.load(weights_only=True)` must refuse to build it."""


def test_pt_round_trip_and_layout(graph: Graph, tmp_path: Path) -> None:
    from acdc_compare.mib_pt import dst_nodes, src_nodes

    c = _random_circuit(graph, seed=5)
    save_mib(c, tmp_path / "c.pt", d_model=48)
    p = torch.load(tmp_path / "c.pt", weights_only=True)
    assert p["src_nodes"] == src_nodes(3, graph.n_heads) and p["dst_nodes"] == dst_nodes(3, graph.n_heads)
    assert p["edges_scores"].shape == (len(p["src_nodes"]), len(p["dst_nodes"]))
    assert p["dst_nodes"][:2] == ["a0.h0<q>", "a0.h1<q>"] and p["dst_nodes"][-1] == "logits"
    back, report = load_mib(tmp_path / "c.pt", graph)
    resid = _resid(c)
    assert torch.equal(back.kept[resid], c.kept[resid]) and torch.equal(back.scores[resid], mib_scores(c)[resid])
    assert report.complete
    assert torch.equal(back.kept, circuit_from_mib(circuit_to_mib(c), graph)[0].kept)


def test_pt_oddities_are_reported_or_refused(tmp_path: Path) -> None:
    from acdc_compare.mib_pt import mib_to_pt

    graph = Graph(GraphConfig(n_layers=2, n_heads=2, n_kv_heads=2))
    p = mib_to_pt(circuit_to_mib(Circuit.empty(graph)))
    p["edges_in_graph"][p["src_nodes"].index("m1"), p["dst_nodes"].index("a0.h0<q>")] = True
    torch.save(p, tmp_path / "odd.pt")
    _, report = load_mib(tmp_path / "odd.pt", graph)
    assert report.unmapped_edges == ("m1->a0.h0<q>",) and not report.missing_edges
    torch.save({k: v for k, v in p.items() if k != "dst_nodes"}, tmp_path / "short.pt")
    with pytest.raises(ValueError, match="dst_nodes"):
        load_mib(tmp_path / "short.pt", graph)
    torch.save({**p, "extra": _Payload()}, tmp_path / "code.pt")
    with pytest.raises(ValueError, match="without running code"):
        load_mib(tmp_path / "code.pt", graph)
