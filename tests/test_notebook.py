"""Circuits and comparisons in notebooks: `_repr_html_` gives the viewer inline and self-contained, and in a real
headless Chromium, inserted after the page has loaded the way a notebook front end inserts an output (HTML
set, then each script replaced by a fresh copy so it runs), it draws every arrow on an input-to-logits path,
fits the cell's width, keeps a bounded height, asks the network for nothing and paints a non-blank picture."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from browser import Browser, require_chromium

from acdc_compare.circuit import Circuit, random_circuit, set_notebook_renderer
from acdc_compare.compare import CircuitComparison, compare_circuits
from acdc_compare.graph import Graph, GraphConfig
from acdc_compare.notebook import NOTEBOOK_HEIGHT, comparison_html
from acdc_compare.viewer import script_json, viewer_data

GRAPH = Graph(GraphConfig(n_layers=3, n_heads=4, n_kv_heads=2))
CELL_WIDTH = 900

_PAGE = """<!doctype html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline';
 style-src 'unsafe-inline'; img-src data:"></head>
<body style="margin:0"><div id="cells" style="width:%dpx"></div><script>
function showOutput(html) {  // as JupyterLab renders text/html: innerHTML, then scripts re-created to run
  const cell = document.createElement("div");
  cell.className = "cell";
  cell.innerHTML = html;
  document.getElementById("cells").appendChild(cell);
  cell.querySelectorAll("script").forEach(old => {
    const s = document.createElement("script");
    for (const a of old.attributes) s.setAttribute(a.name, a.value);
    s.textContent = old.textContent;
    old.replaceWith(s);
  });
}
</script></body></html>"""


def _circuits() -> tuple[Circuit, Circuit]:
    return random_circuit(GRAPH, n_nodes=6, seed=0), random_circuit(GRAPH, n_nodes=6, seed=1)


def test_repr_html_is_the_viewer_inline_and_self_contained() -> None:
    a, b = _circuits()
    for value, n_circuits in ((a, 1), (compare_circuits(a, b, ("ours", "theirs")), 2)):
        page = value._repr_html_()
        assert page is not None and page.count('class="acdc-viewer"') == 1
        blob = re.search(r'class="acdc-viewer-data">(.*?)</script>', page, re.S)
        assert blob is not None and len(__import__("json").loads(blob.group(1))["circuits"]) == n_circuits
        assert not re.search(r"(src|href)\s*=|@import|url\(|https?://(?!www\.w3\.org/2000/svg)", page)
    table = compare_circuits(a, b, ("ours", "theirs"))._repr_html_()
    assert "only ours" in table and "only theirs" in table and "Jaccard" in table
    bare = CircuitComparison(*(getattr(compare_circuits(a, b), k) for k in ("edges", "nodes", "heads")))
    assert 'class="acdc-viewer"' not in comparison_html(bare) and "precision" in comparison_html(bare)
    set_notebook_renderer(None)
    try:
        assert a._repr_html_() is None  # no renderer: the notebook falls back to repr
    finally:
        import acdc_compare

        set_notebook_renderer(acdc_compare._notebook_html)
    with pytest.raises(ValueError, match="pixels"):
        comparison_html(compare_circuits(a, b), height=5)


@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    """A page standing in for a notebook, with a circuit's and a comparison's output inserted after load."""
    require_chromium("the notebook rendering test")
    folder = tmp_path_factory.mktemp("notebook")
    path = folder / "notebook.html"
    path.write_text(_PAGE % CELL_WIDTH, encoding="utf-8")
    a, b = _circuits()
    browser = Browser(tmp_path_factory.mktemp("profile"))
    try:
        browser.open(path)
        for value in (a, compare_circuits(a, b, ("ours", "theirs"))):
            browser.js(f"showOutput({script_json(value._repr_html_())})")
        yield browser, path, a, b
    finally:
        browser.close()


def _live_keys(data: dict, indices: list[int]) -> set[str]:
    return {e["name"] + "|" + e["down"] for i in indices for e in data["circuits"][i]["edges"] if e["live"]}


def test_outputs_draw_their_edges_without_errors_or_network(notebook) -> None:
    browser, path, a, b = notebook
    assert browser.js("Array.from(document.querySelectorAll('.acdc-viewer')).map(v => v.dataset.ready)") == \
        ["1", "1"]
    assert browser.problems() == []
    assert all(u == path.resolve().as_uri() for u in browser.requests()), browser.requests()
    shown = browser.js("Array.from(document.querySelectorAll('.cell')).map(c => "
                       "Array.from(c.querySelectorAll('.av-edge')).map(e => e.dataset.key))")
    assert set(shown[0]) == _live_keys(viewer_data({"circuit": a}), [0]) and shown[0]
    assert set(shown[1]) == _live_keys(viewer_data({"ours": a, "theirs": b}), [0, 1])
    radios = browser.js("Array.from(document.querySelectorAll('input[type=radio]')).map(r => r.name)")
    assert len({r for r in radios if r.startswith('av-mode')}) == 2  # one group per output: switching one leaves the
    assert len({r for r in radios if r.startswith('av-level')}) == 2  # other alone (circuit mode, and level)


def test_outputs_fit_the_cell_and_paint_something(notebook) -> None:
    browser, *_ = notebook
    boxes = browser.js("Array.from(document.querySelectorAll('svg.av-graph')).map(s => { "
                       "const r = s.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })")
    for x, y, width, height in boxes:
        assert CELL_WIDTH * 0.9 <= width <= CELL_WIDTH and height == pytest.approx(NOTEBOOK_HEIGHT, abs=2)
    x, y, width, height = boxes[0]
    browser.js(f"window.scrollTo(0, {y})")
    shot = browser.send("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True,
                        clip={"x": x, "y": y, "width": width, "height": height, "scale": 1})["data"]
    assert base64.b64decode(shot)[:8] == b"\x89PNG\r\n\x1a\n"
    colours = browser.js(
        "new Promise(done => { const img = new Image(); img.onload = () => { const c = document.createElement("
        "'canvas'); c.width = img.width; c.height = img.height; const g = c.getContext('2d'); g.drawImage(img, 0, 0);"
        " const d = g.getImageData(0, 0, c.width, c.height).data; const seen = new Set(); let ink = 0;"
        " for (let i = 0; i < d.length; i += 4) { const k = d[i] + ',' + d[i + 1] + ',' + d[i + 2]; seen.add(k);"
        " if (d[i] + d[i + 1] + d[i + 2] < 600) ink++; } done([seen.size, ink, c.width * c.height]); };"
        f" img.src = 'data:image/png;base64,{shot}'; }})")
    n_colours, ink, n_pixels = colours
    assert n_colours > 5 and 0.002 * n_pixels < ink < 0.5 * n_pixels  # nodes and edges drawn, not a blank box
