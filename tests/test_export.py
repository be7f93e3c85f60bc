"""JSON round trip, networkx view and path pruning of circuits (small graphs, no model)."""

from __future__ import annotations

import json
import math
import re
import random
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
import torch

from acdc_compare.circuit import SCORE_KINDS, Circuit
from acdc_compare.export import (
    SCHEMA,
    circuit_from_json,
    circuit_to_json,
    load_circuit,
    prune_to_paths,
    save_circuit,
    to_networkx,
)
from acdc_compare.graph import Graph, GraphConfig
from acdc_compare.types import Metric, ScoreKind

SMALL = Graph(GraphConfig(n_layers=3, n_heads=4, n_kv_heads=4))
GQA = Graph(GraphConfig(n_layers=3, n_heads=4, n_kv_heads=2))
NO_DIRECT = Graph(GraphConfig(n_layers=3, n_heads=4, n_kv_heads=4, include_direct=False))

# input -> a0.h1 (q) -> m1 -> logits, with a0.h1's direct q edge: one full path.
PATH = ["input->a0.h1<q>", "a0.h1<q>", "a0.h1->m1", "m1->logits"]


def _random_scores(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(n, generator=g, dtype=torch.float64) * 10.0 ** torch.randint(-12, 6, (n,), generator=g)
    scores[::7] = math.nan
    scores[1] = math.inf
    scores[2] = -math.inf
    scores[3] = -0.0
    scores[4] = 5e-324  # smallest subnormal
    return scores


def _rich_circuit(graph: Graph, seed: int = 0) -> Circuit:
    g = torch.Generator().manual_seed(seed)
    kept = torch.rand(graph.n_edges, generator=g) < 0.3
    metrics = {"kl": 0.123456789012345678, "logit_diff": -3.25, "empty": math.nan, "n_evals": 4123, "big": math.inf}
    settings = {
        "tau": 1e-3, "metric": "kl", "order": ["logits", "m2"], "nested": {"a": [1, 2.5, None, True]},
        "none": None, "flag": False, "unicode": "héllo <b>", "neg_inf": -math.inf,
    }
    scores = _random_scores(graph.n_edges, seed)
    kinds = torch.randint(1, len(SCORE_KINDS), (graph.n_edges,), generator=g).to(torch.int8)
    return Circuit(graph, kept, scores, metrics=metrics, settings=settings, score_kinds=kinds)


def _same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return _same_float(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_value(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _assert_same_circuit(a: Circuit, b: Circuit) -> None:
    assert a.graph == b.graph and a.graph.config == b.graph.config
    assert torch.equal(a.kept, b.kept)
    nan_a, nan_b = torch.isnan(a.scores), torch.isnan(b.scores)
    assert torch.equal(nan_a, nan_b)
    assert torch.equal(a.scores[~nan_a].view(torch.int64), b.scores[~nan_b].view(torch.int64))  # bit-exact
    assert torch.equal(a.score_kinds, b.score_kinds)
    assert _same_value(dict(a.metrics), dict(b.metrics))
    assert _same_value(dict(a.settings), dict(b.settings))


# ----- JSON ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("graph", [SMALL, GQA, NO_DIRECT, Graph(GraphConfig(2, 3, 3, has_mlp=False)),
                                   Graph(GraphConfig(2, 4, 1, parallel_attn_mlp=True))], ids=lambda g: g.config.key)
def test_json_round_trip_is_exact(graph: Graph, tmp_path: Path) -> None:
    c = _rich_circuit(graph)
    _assert_same_circuit(c, circuit_from_json(circuit_to_json(c)))
    path = save_circuit(c, tmp_path / "c.json")
    _assert_same_circuit(c, load_circuit(path))
    assert [p.name for p in tmp_path.iterdir()] == ["c.json"]  # the temporary file is gone


def test_file_is_standard_json_with_names_and_checks(tmp_path: Path) -> None:
    c = _rich_circuit(SMALL)
    text = save_circuit(c, tmp_path / "c.json").read_text()
    d = json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard constant {name}"))
    assert d["schema"] == SCHEMA == "acdc_compare.circuit/2"
    assert d["graph"] == {"n_layers": 3, "n_heads": 4, "n_kv_heads": 4, "has_mlp": True,
                          "parallel_attn_mlp": False, "include_direct": True}
    assert d["graph_key"] == SMALL.config.key and d["n_edges"] == SMALL.n_edges
    assert d["kept"] == c.kept_edge_names()
    assert len(d["scores"]) == SMALL.n_edges and d["scores"][0] is None and d["scores"][1:3] == ["inf", "-inf"]
    assert d["metrics"]["empty"] == {"__float__": "nan"}
    assert sum(count for _, count in d["score_kinds"]) == SMALL.n_edges
    assert d["score_kinds"][0] == ["none", 1]  # scores[0] is NaN


def test_str_enums_and_tuples_come_back_as_plain_values() -> None:
    c = Circuit.from_edge_names(SMALL, PATH, settings={"metric": Metric.KL, "shape": (1, 2)})
    back = circuit_from_json(circuit_to_json(c))
    assert back.settings["metric"] == Metric.KL and type(back.settings["metric"]) is str
    assert back.settings["shape"] == [1, 2]


def test_empty_and_full_circuits_round_trip() -> None:
    for c in (Circuit.empty(SMALL), Circuit.full(SMALL)):
        _assert_same_circuit(c, circuit_from_json(circuit_to_json(c)))


def _good() -> dict[str, Any]:
    return circuit_to_json(Circuit.from_edge_names(SMALL, PATH, metrics={"kl": 0.5}))


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(schema="acdc_compare.circuit/3"), "schema"),
    (lambda d: d.pop("score_kinds"), "score_kinds"),
    (lambda d: d["score_kinds"].append(["given", 1]), "score_kinds"),
    (lambda d: d["score_kinds"].__setitem__(0, ["magic", d["score_kinds"][0][1]]), "magic"),
    (lambda d: d["score_kinds"].__setitem__(0, ["given", "3"]), "score_kinds"),
    (lambda d: d.update(score_kinds=[["acdc", SMALL.n_edges]]), "null"),
    (lambda d: d.pop("schema"), "schema"),
    (lambda d: d["kept"].append("a2.h3->a0.h1<q>"), "a2.h3->a0.h1<q>"),
    (lambda d: d["kept"].append(PATH[0]), "twice"),
    (lambda d: d["scores"].pop(), "scores"),
    (lambda d: d["scores"].__setitem__(5, "x"), "scores"),
    (lambda d: d.update(n_edges=7), "n_edges"),
    (lambda d: d.update(graph_key="L9"), "graph_key"),
    (lambda d: d["graph"].update(n_layers=0), "n_layers"),
    (lambda d: d["graph"].update(n_kv_heads=3), "multiple"),
    (lambda d: d["graph"].update(extra=1), "extra"),
    (lambda d: d.update(metrics=[1]), "metrics"),
    (lambda d: d.pop("kept"), "kept"),
])
def test_bad_circuit_json_is_refused_with_a_clear_error(change: Any, message: str) -> None:
    d = _good()
    change(d)
    with pytest.raises(ValueError, match=re.escape(message)):
        circuit_from_json(d)


@pytest.mark.parametrize("settings, where", [
    ({"t": torch.tensor(1.0)}, "settings['t']"),
    ({"o": object()}, "settings['o']"),
    ({"deep": {"x": [1, {2, 3}]}}, "settings['deep']['x'][1]"),
    ({1: "int key"}, "key 1"),
    ({"x": {"__float__": "nan"}}, "reserve"),
])
def test_non_json_settings_are_refused(settings: dict[Any, Any], where: str, tmp_path: Path) -> None:
    c = Circuit.from_edge_names(SMALL, PATH, settings=settings)
    with pytest.raises(ValueError) as err:
        save_circuit(c, tmp_path / "c.json")
    assert where in str(err.value)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_load_refuses_broken_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a valid circuit JSON"):
        load_circuit(bad)
    d = _good()
    bad.write_text(json.dumps(d).replace('"kl": 0.5', '"kl": NaN'))
    with pytest.raises(ValueError, match="NaN"):
        load_circuit(bad)
    bad.write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match="JSON object"):
        load_circuit(bad)
    d["kept"] = ["nope"]
    bad.write_text(json.dumps(d))
    with pytest.raises(ValueError, match=f"{bad.name}.*'nope'"):
        load_circuit(bad)


def test_save_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    save_circuit(Circuit.full(SMALL), path)
    save_circuit(Circuit.from_edge_names(SMALL, PATH), path)
    assert load_circuit(path).kept_edge_names() == Circuit.from_edge_names(SMALL, PATH).kept_edge_names()


# ----- networkx --------------------------------------------------------------------------------------
def test_networkx_nodes_edges_and_attributes() -> None:
    names = PATH + ["input->a0.h1<k>", "a0.h1<v>", "a0.h1->logits"]
    scores = torch.arange(SMALL.n_edges, dtype=torch.float64)
    c = Circuit.from_edge_names(SMALL, names, scores=scores)
    g = to_networkx(c, roles={"a0.h1": "previous token"})
    assert isinstance(g, nx.MultiDiGraph) and isinstance(g, nx.DiGraph)
    assert set(g.nodes) == {"input", "a0.h1", "m1", "logits"} == c.nodes()
    assert g.nodes["input"] == {"layer": -1, "head": None, "kind": "input", "role": "unknown",
                                "direct_edges_kept": [], "direct_scores": {}}
    assert g.nodes["logits"]["layer"] == 3 and g.nodes["logits"]["kind"] == "logits"
    assert g.nodes["m1"]["kind"] == "mlp" and g.nodes["m1"]["layer"] == 1 and g.nodes["m1"]["head"] is None
    head = g.nodes["a0.h1"]
    assert (head["layer"], head["head"], head["kind"], head["role"]) == (0, 1, "head", "previous token")
    assert head["direct_edges_kept"] == ["q", "v"]
    assert head["direct_scores"] == {"q": c.edge_score("a0.h1<q>"), "v": c.edge_score("a0.h1<v>")}
    assert not list(nx.selfloop_edges(g))
    # two parallel edges input -> a0.h1 (q and k), keyed by edge name
    assert set(g["input"]["a0.h1"]) == {"input->a0.h1<q>", "input->a0.h1<k>"}
    edge = g.edges["input", "a0.h1", "input->a0.h1<k>"]
    assert edge == {"kind": "k", "score": c.edge_score("input->a0.h1<k>"), "name": "input->a0.h1<k>"}
    assert g.edges["a0.h1", "m1", "a0.h1->m1"]["kind"] == "mlp"
    assert g.edges["m1", "logits", "m1->logits"]["kind"] == "logits"
    assert g.number_of_edges() == 5  # the two direct edges are node attributes


def test_networkx_gqa_kv_edge_enters_every_head_of_its_group() -> None:
    c = Circuit.from_edge_names(GQA, ["input->a1.kv1<k>", "a1.kv1<k>"])
    g = to_networkx(c)
    assert set(g.successors("input")) == {"a1.h2", "a1.h3"}  # key-value head 1 serves query heads 2, 3
    assert g.nodes["a1.h2"]["direct_edges_kept"] == ["k"] == g.nodes["a1.h3"]["direct_edges_kept"]


def test_networkx_refuses_unknown_role_node() -> None:
    with pytest.raises(ValueError, match="9.9"):
        to_networkx(Circuit.from_edge_names(SMALL, PATH), roles={"9.9": "name mover"})


# ----- pruning ---------------------------------------------------------------------------------------
def test_prune_keeps_a_full_path_and_drops_dangling_edges() -> None:
    dangling = ["input->a2.h0<k>", "a2.h0<k>",  # a2.h0 feeds nothing
                "a1.h3->m2"]  # a1.h3 is fed by nothing (m2 itself does not reach logits here)
    c = Circuit.from_edge_names(SMALL, PATH + dangling, metrics={"kl": 1.0})
    pruned = prune_to_paths(c)
    assert set(pruned.kept_edge_names()) == set(PATH)
    assert dict(pruned.metrics) == {"kl": 1.0} and torch.equal(pruned.scores.isnan(), c.scores.isnan())
    assert prune_to_paths(pruned).kept_edge_names() == pruned.kept_edge_names()


def test_prune_direct_edges_gate_heads() -> None:
    # the q input of a0.h1 has a kept residual edge but its direct edge is removed: the head gets nothing
    no_direct = [e for e in PATH if e != "a0.h1<q>"]
    assert prune_to_paths(Circuit.from_edge_names(SMALL, no_direct)).n_kept == 0
    # a kept direct edge with no kept residual edge into its input carries nothing either
    extra = PATH + ["a0.h1<k>"]
    assert set(prune_to_paths(Circuit.from_edge_names(SMALL, extra)).kept_edge_names()) == set(PATH)
    # a k path is as good as a q path
    via_k = ["input->a0.h1<k>", "a0.h1<k>", "a0.h1->logits"]
    assert set(prune_to_paths(Circuit.from_edge_names(SMALL, via_k)).kept_edge_names()) == set(via_k)


def test_prune_without_direct_edges_and_with_gqa() -> None:
    names = ["input->a0.h1<v>", "a0.h1->a2.h2<q>", "a2.h2->logits", "input->a1.h0<q>"]
    assert set(prune_to_paths(Circuit.from_edge_names(NO_DIRECT, names)).kept_edge_names()) == set(names[:3])
    gqa = ["input->a0.kv0<k>", "a0.kv0<k>", "a0.h1->logits"]  # kv head 0 feeds query heads 0 and 1
    assert set(prune_to_paths(Circuit.from_edge_names(GQA, gqa)).kept_edge_names()) == set(gqa)


def test_prune_full_and_empty() -> None:
    for graph in (SMALL, GQA, NO_DIRECT):
        assert prune_to_paths(Circuit.full(graph)).n_kept == graph.n_edges
        assert prune_to_paths(Circuit.empty(graph)).n_kept == 0


def test_prune_on_random_circuits_keeps_only_live_edges() -> None:
    rng = random.Random(0)
    for _ in range(20):
        kept = torch.tensor([rng.random() < 0.08 for _ in range(SMALL.n_edges)])
        c = Circuit(SMALL, kept)
        pruned = prune_to_paths(c)
        assert not (pruned.kept & ~c.kept).any()  # a subset
        assert torch.equal(prune_to_paths(pruned).kept, pruned.kept)  # idempotent
        g = to_networkx(pruned)
        for node in g.nodes:  # every node lies between input and logits
            assert node == "input" or nx.has_path(g, "input", node)
            assert node == "logits" or nx.has_path(g, node, "logits")


# ----- schema 1 files --------------------------------------------------------------------------------
def _schema_1(c: Circuit) -> dict[str, Any]:
    d = circuit_to_json(c)
    d["schema"] = "acdc_compare.circuit/1"
    del d["score_kinds"]
    return d


def test_schema_1_files_load_with_kinds_from_their_method() -> None:
    scores = torch.full((SMALL.n_edges,), math.nan, dtype=torch.float64)
    scores[SMALL.edge_index(PATH[0])] = 0.5
    for method, kind in (("acdc", ScoreKind.ACDC), ("eap-ig", ScoreKind.EAP_IG), ("custom", ScoreKind.GIVEN)):
        c = Circuit.from_edge_names(SMALL, PATH[:1], scores=scores, settings={"method": method})
        back = circuit_from_json(_schema_1(c))
        assert back.score_kind(PATH[0]) is kind and back.score_kind(PATH[1]) is ScoreKind.NONE


def test_schema_1_hybrid_says_which_kept_edges_have_no_score() -> None:
    scores = torch.full((SMALL.n_edges,), math.nan, dtype=torch.float64)
    scores[SMALL.edge_index(PATH[3])] = 0.01  # the one edge ACDC tested
    c = Circuit.from_edge_names(SMALL, PATH, scores=scores, settings={"method": "hybrid"})
    with pytest.warns(UserWarning, match=r"3 of its 4 kept edges have no score"):
        back = circuit_from_json(_schema_1(c), "old.json")
    assert back.score_kind(PATH[3]) is ScoreKind.ACDC
    assert int(back.ranking()[0]) == SMALL.edge_index(PATH[3])  # the scored edge ranks first
