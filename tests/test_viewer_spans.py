"""The viewer's span view: a span circuit's nodes are (head or MLP, span) ids on the span figure's grid, spans
labelled as columns, and the page shows its merged arrows, then its span edges one click away."""

from __future__ import annotations

from pathlib import Path

from browser import Browser, require_chromium
from test_draw_spans import SPANS, circuit

from acdc_compare.draw.span_figure import span_arrows
from acdc_compare.report import write_report
from acdc_compare.viewer import viewer_data, viewer_section


def test_span_viewer_data_places_ids_in_span_columns() -> None:
    data = viewer_data({"spans": circuit()}, roles={"a1.h1": "name mover"})
    columns = {c["label"]: c["x"] for c in data["layout"]["columns"]}
    assert list(columns) == list(SPANS) and columns["pre"] < columns["X"] < columns["END"]
    nodes = data["nodes"]
    assert set(nodes) == {"input@X", "input@END", "a0.h2@X", "a1.h1@END", "logits@END"}
    assert nodes["a1.h1@END"]["label"] == "a1.h1" and nodes["a1.h1@END"]["role"] == "name mover"
    assert abs(nodes["a0.h2@X"]["x"] - columns["X"]) < 1 and abs(nodes["a1.h1@END"]["x"] - columns["END"]) < 1
    assert nodes["logits@END"]["y"] < nodes["a1.h1@END"]["y"] < nodes["a0.h2@X"]["y"] < nodes["input@X"]["y"]
    entry = data["circuits"][0]
    assert data["level"] == "heads" and len(entry["arrows"]) == len(span_arrows(circuit())[0])
    assert {(e["up"], e["down"]) for e in entry["edges"] if e["name"] == "a0.h2->a1.kv0<v>@X"} == {("a0.h2@X", "a1.h1@END")}


def test_span_viewer_page_shows_arrows_then_edges(tmp_path: Path) -> None:
    require_chromium("the viewer's span view")
    data = viewer_data({"spans": circuit()})
    path = write_report(tmp_path / "report.html", title="spans", sections=[viewer_section({"spans": circuit()})])
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(path)
        labels = browser.js("Array.from(document.querySelectorAll('.av-collabel')).map(e => e.textContent)")
        assert labels == list(SPANS)
        shown = set(browser.js("Array.from(document.querySelectorAll('.av-edge')).map(e => e.dataset.key)"))
        assert shown == {f"{a['up']}->{a['down']}|{a['down']}" for a in data["circuits"][0]["arrows"]}
        r = browser.js("(() => { const r = document.querySelector('.av-level-edges').getBoundingClientRect();"
                       " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        browser.click(r[0], r[1])
        shown = set(browser.js("Array.from(document.querySelectorAll('.av-edge')).map(e => e.dataset.key)"))
        assert shown == {e["name"] + "|" + e["down"] for e in data["circuits"][0]["edges"]}
        assert browser.problems() == []
    finally:
        browser.close()
