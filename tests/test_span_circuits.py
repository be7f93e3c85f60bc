"""Span circuits as values and files: JSON keeps the spans (span-free files unchanged), MIB export refuses
them with what to do, graphs with and without spans never mix, and `discover(positions="spans")`."""

import json

import pytest
import torch

from acdc_compare.circuit import Circuit
from acdc_compare.export import circuit_from_json, circuit_to_json, load_circuit, save_circuit
from acdc_compare.graph import Graph, GraphConfig
from acdc_compare.mib import circuit_to_mib, mib_export_report
from acdc_compare.span_circuits import collapse_spans, kept_per_span, kept_spans
from acdc_compare.spans import PromptSpans, SpanError, end_aligned

BASE = Graph(GraphConfig(n_layers=2, n_heads=4, n_kv_heads=2))
SPANS = ("IO", "S1", "END", "rest")


def span_circuit(seed: int = 0) -> Circuit:
    g = BASE.with_spans(SPANS)
    gen = torch.Generator().manual_seed(seed)
    return Circuit(g, torch.rand(g.n_edges, generator=gen) < 0.3, torch.randn(g.n_edges, generator=gen, dtype=torch.float64))


def test_span_graphs_name_and_order_their_edges():
    g = BASE.with_spans(SPANS)
    assert g != BASE and g.base == BASE and g.config.key.endswith(".spans=IO,S1,END,rest")
    assert g.n_edges == 4 * BASE.n_edges
    e = g.edge_index("a0.h1->m1@END")
    assert g.base_edge(e) == BASE.edge_index("a0.h1->m1") and g.spans[g.edge_span(e)] == "END"
    assert list(g.resid_edges(g.sender_index("a0.h1"), g.mlp_receiver(1))) == list(g.span_edges(g.base_edge(e)))
    with pytest.raises(ValueError, match="one edge per span"):
        g.resid_index
    with pytest.raises(KeyError, match="@IO"):
        g.edge_index("a0.h1->m1")
    with pytest.raises(SpanError, match="distinct"):
        BASE.with_spans(("a", "a"))


def test_a_span_circuit_round_trips_through_json_and_span_free_files_are_unchanged(tmp_path):
    c = span_circuit()
    back = load_circuit(save_circuit(c, tmp_path / "c.json"))
    assert back.graph == c.graph and torch.equal(back.kept, c.kept) and torch.equal(back.scores, c.scores)
    assert json.loads((tmp_path / "c.json").read_text())["graph"]["spans"] == list(SPANS)
    plain = circuit_to_json(Circuit.full(BASE))
    assert "spans" not in plain["graph"]
    assert circuit_from_json(plain).graph == BASE
    with pytest.raises(ValueError, match="belongs|graph"):
        Circuit.full(BASE).check_graph(c.graph)


def test_mib_export_refuses_span_circuits_and_names_the_way_out():
    c = span_circuit()
    for export in (circuit_to_mib, mib_export_report):
        with pytest.raises(ValueError, match="no token positions.*collapse_spans"):
            export(c)
    assert circuit_to_mib(collapse_spans(c))["edges"]


def test_per_span_views_and_collapse():
    c = span_circuit(1)
    counts = kept_per_span(c)
    assert list(counts) == list(SPANS) and sum(counts.values()) == c.n_kept
    assert counts == {s: int(c.kept.view(-1, 4)[:, j].sum()) for j, s in enumerate(SPANS)}
    by_edge = kept_spans(c)
    assert sum(len(v) for v in by_edge.values()) == c.n_kept
    flat = collapse_spans(c)
    assert flat.graph == BASE and flat.n_kept == len(by_edge)
    assert torch.allclose(flat.scores, c.scores.view(-1, 4).sum(1))
    with pytest.raises(ValueError, match="positions='spans'"):
        kept_per_span(Circuit.full(BASE))


def test_prompt_spans_check_their_input():
    with pytest.raises(SpanError, match="outside"):
        PromptSpans(("a", "b"), torch.tensor([[0, 2]]))
    spans = end_aligned(2, 2, n_end=3)
    assert spans.names == ("end-0", "end-1") and spans.index.tolist() == [[1, 0], [1, 0]]


def test_discover_positions_spans_on_a_task_value():
    import dataclasses

    from acdc_compare.api import discover
    from conftest import make_tiny, tiny_task

    task = tiny_task()
    task = dataclasses.replace(task, spans=PromptSpans(("a", "b"), (torch.arange(task.seq_len) > 3).long()
                                                        .expand(task.n_prompts, -1).clone()))
    model = make_tiny("gpt2")
    c = discover(task, method="eap-ig", model=model, positions="spans", top_n=25, steps=2, absolute=False)
    assert c.graph.spans == ("a", "b") and c.n_kept == 25
    plain = discover(task, method="eap-ig", model=model, top_n=25, steps=2, absolute=False)
    assert not plain.graph.has_spans and plain.graph == c.graph.base
    assert torch.allclose(collapse_spans(c).scores, plain.scores, atol=1e-9)
    with pytest.raises(ValueError, match="positions must be"):
        discover(task, method="eap-ig", model=model, positions="tokens", top_n=25)
