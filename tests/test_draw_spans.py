"""Span figures: spans as columns, layers as rows; q inputs stay in their column, k/v inputs cross into the
head where its output is kept, and the SVG names every span and every kept head."""

from __future__ import annotations

import html
import re

import pytest

from acdc_compare.circuit import Circuit
from acdc_compare.draw.span_figure import draw_span_circuit, plan_spans, span_arrows
from acdc_compare.graph import Graph, GraphConfig

SPANS = ("pre", "X", "END")
GRAPH = Graph(GraphConfig(n_layers=3, n_heads=4, n_kv_heads=2)).with_spans(SPANS)
# a1.h1 reads X through its key-value group (kv0) and writes at END; a0.h2 computes at X and feeds a1.h1's value
KEPT = ["input->a0.h2<q>@X", "a0.h2<q>@X", "input->a0.kv1<k>@X", "a0.kv1<k>@X", "input->a0.kv1<v>@X", "a0.kv1<v>@X",
        "a0.h2->a1.kv0<v>@X", "a1.kv0<v>@X", "input->a1.kv0<k>@X", "a1.kv0<k>@X",
        "input->a1.h1<q>@END", "a1.h1<q>@END", "a1.h1->logits@END"]


def circuit() -> Circuit:
    return Circuit.from_edge_names(GRAPH, KEPT)


def test_q_arrows_stay_in_their_column_and_k_v_arrows_cross_into_the_writing_head():
    arrows, importance = span_arrows(circuit())
    pairs = {(a.up, a.down): set(a.kinds) for a in arrows}
    assert pairs[("a0.h2@X", "a1.h1@END")] == {"v"}  # read at X, written at END
    assert pairs[("input@X", "a1.h1@END")] == {"k"}
    assert pairs[("input@END", "a1.h1@END")] == {"q"} and pairs[("a1.h1@END", "logits@END")] == {"logits"}
    assert pairs[("input@X", "a0.h2@X")] == {"q", "k", "v"}
    assert set(importance) == {"a0.h2@X", "a1.h1@END"}  # a1.h0 shares kv0 but writes nowhere
    plan = plan_spans(circuit())
    assert set(plan.shown_nodes) == {"a0.h2@X", "a1.h1@END"} and len(plan.shown_arrows) == len(arrows)


def test_the_svg_has_the_spans_as_columns_and_the_kept_heads(tmp_path):
    path = tmp_path / "spans.svg"
    draw_span_circuit(circuit(), [path, tmp_path / "spans.dot"], roles={"a1.h1": "name mover"}, title="tiny spans")
    text = path.read_text()
    words = [html.unescape(t) for t in re.findall(r"<text[^>]*>(.*?)</text>", text)]
    assert set(SPANS) <= set(words) and {"a0.h2", "a1.h1", "L0 attn", "L1 attn", "name mover"} <= set(words)
    titles = {html.unescape(t) for t in re.findall(r'<g id="node\d+" class="node">\s*<title>(.*?)</title>', text)}
    assert {"a0.h2@X", "a1.h1@END", "input@X", "input@END", "logits@END"} <= titles
    assert not any(t.startswith("a1.h0") for t in titles)
    arrows = re.findall(r'<g id="edge\d+" class="edge circuit">\s*<title>(.*?)</title>', text)
    assert len(arrows) == 5
    columns = re.findall(r'<title>_column\d+</title>\s*<text [^>]*x="([\d.-]+)"[^>]*>(.*?)<', text)
    x = {span: float(pos) for pos, span in columns}
    assert x["pre"] < x["X"] < x["END"]  # columns in span order
    assert (tmp_path / "spans.dot").is_file()


def test_a_circuit_without_spans_is_refused(tmp_path):
    with pytest.raises(ValueError, match="span graph"):
        draw_span_circuit(Circuit.full(GRAPH.base), [tmp_path / "x.svg"])


def test_an_empty_span_circuit_draws_only_its_columns(tmp_path):
    path = tmp_path / "empty.svg"
    draw_span_circuit(Circuit.empty(GRAPH), [path])
    titles = re.findall(r'<g id="node\d+" class="node">\s*<title>(.*?)</title>', path.read_text())
    assert titles == [f"_column{j}" for j in range(len(SPANS))]
