"""The HTML report: escaped content, images only from its own folder, scripts only from the package's own
Html sections, no network; the demo's report as one self-contained file that runs in a real browser."""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from acdc_compare.circuit import Circuit
from acdc_compare.draw import draw_circuit
from acdc_compare.graph import Graph, GraphConfig
from acdc_compare.report import Image, KeyValues, Table, Text, write_report

SMALL = Graph(GraphConfig(n_layers=3, n_heads=4, n_kv_heads=4))
PNG_BYTES = b"\x89PNG\r\n\x1a\nfake"


class _Refs(HTMLParser):
    """Collects src/href attribute values and tag names."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.refs.extend(v for k, v in attrs if k in ("src", "href") and v)


def _parse(html_text: str) -> _Refs:
    p = _Refs()
    p.feed(html_text)
    return p


def _files(refs: list[str]) -> list[str]:
    return [r for r in refs if not r.startswith(("#", "data:"))]


def test_report_holds_escaped_content_and_existing_images(tmp_path: Path) -> None:
    c = Circuit.from_edge_names(SMALL, ["input->a0.h1<q>", "a0.h1<q>", "a0.h1->logits"])
    draw_circuit(c, tmp_path / "circuit.svg")
    (tmp_path / "figs").mkdir()
    (tmp_path / "figs" / "roc curve.png").write_bytes(PNG_BYTES)
    sections = [
        Text("Summary", "First <b>paragraph</b> & more.\n\nSecond paragraph."),
        Table("Edges", ["edge", "score", "kept"],
              [["a0.h1->a5.h5<q>", 0.123456789, True], ["<script>x</script>", None, 3]]),
        KeyValues("Settings", {"tau": 0.01, "metric": "kl", "note": 'quote " and <tag>'}),
        Text("Log", "line 1\n  <indented>", preformatted=True),
        Image("Circuit", "circuit.svg", caption="found by ACDC"),
        Image("ROC", tmp_path / "figs" / "roc curve.png"),
    ]
    path = write_report(tmp_path / "report.html", title="IOI & friends <1>", sections=sections)
    text = path.read_text(encoding="utf-8")
    assert "<title>IOI &amp; friends &lt;1&gt;</title>" in text
    assert "<td>a0.h1-&gt;a5.h5&lt;q&gt;</td>" in text and '<td class="num">0.1235</td>' in text
    assert "&lt;script&gt;x&lt;/script&gt;" in text and "<script" not in text
    assert "First &lt;b&gt;paragraph&lt;/b&gt; &amp; more." in text and "<p>Second paragraph.</p>" in text
    assert "<th>note</th><td>quote &quot; and &lt;tag&gt;</td>" in text
    assert "<pre>line 1\n  &lt;indented&gt;</pre>" in text
    assert "found by ACDC" in text
    parsed = _parse(text)
    assert "script" not in parsed.tags and "link" not in parsed.tags and "iframe" not in parsed.tags
    files = _files(parsed.refs)
    assert sorted(set(files)) == ["circuit.svg", "figs/roc%20curve.png"]
    for ref in files:  # relative, inside the folder, existing
        assert not ref.startswith("/") and ".." not in ref and ":" not in ref
        target = (tmp_path / unquote(ref)).resolve()
        assert target.is_file() and target.is_relative_to(tmp_path.resolve())
    assert not re.search(r"https?://", text)


def test_embedded_image_is_a_data_uri(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(PNG_BYTES)
    text = write_report(tmp_path / "r.html", title="t", sections=[Image("A", "a.png", embed=True)]).read_text()
    refs = _parse(text).refs
    assert _files(refs) == []
    expected = "data:image/png;base64," + base64.b64encode(PNG_BYTES).decode()
    assert [r for r in refs if not r.startswith("#")] == [expected]


@pytest.mark.parametrize("where", ["outside", "dotdot", "missing", "symlink"])
def test_images_must_exist_inside_the_report_folder(where: str, tmp_path: Path) -> None:
    folder, outside = tmp_path / "report", tmp_path / "elsewhere"
    folder.mkdir()
    outside.mkdir()
    (outside / "x.png").write_bytes(PNG_BYTES)
    image = {
        "outside": Image("x", outside / "x.png"),
        "dotdot": Image("x", "../elsewhere/x.png"),
        "missing": Image("x", "nope.png"),
        "symlink": Image("x", "link.png"),
    }[where]
    if where == "symlink":
        (folder / "link.png").symlink_to(outside / "x.png")
    with pytest.raises(ValueError, match="outside the report's folder" if where != "missing" else "does not exist"):
        write_report(folder / "r.html", title="t", sections=[image])
    assert not (folder / "r.html").exists()


def test_bad_sections_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="row 1 has 1 cells for 2 headers"):
        Table("t", ["a", "b"], [[1, 2], [3]])
    with pytest.raises(TypeError, match="Text, Table, KeyValues or Image"):
        write_report(tmp_path / "r.html", title="t", sections=["just a string"])  # type: ignore[list-item]
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="notes.txt"):
        write_report(tmp_path / "r.html", title="t", sections=[Image("n", "notes.txt")])
    with pytest.raises(ValueError, match="does not exist"):
        write_report(tmp_path / "missing" / "r.html", title="t", sections=[])


def test_sections_are_frozen_values() -> None:
    t = Table("t", ["a"], [[1]])
    kv = KeyValues("k", [("x", 1)])
    assert t.rows == ((1,),) and t.headers == ("a",) and kv.items == (("x", 1),)
    assert KeyValues("k", {"x": 1}) == kv
    with pytest.raises(AttributeError):
        t.title = "u"  # type: ignore[misc]


def test_html_sections_are_inserted_as_is_and_the_report_forbids_fetches(tmp_path: Path) -> None:
    from acdc_compare.report import Html

    text = write_report(tmp_path / "r.html", title="t", sections=[
        Html("Plot", "<svg><circle r='2'/></svg>", caption="a <caption>"), Text("x", "<svg>")]).read_text()
    assert "<svg><circle r='2'/></svg>" in text and "a &lt;caption&gt;" in text and "<p>&lt;svg&gt;</p>" in text
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', text)
    assert csp is not None and "default-src 'none'" in csp.group(1) and "connect-src 'none'" in csp.group(1)


def test_svg_plots_are_valid_escaped_svg() -> None:
    import xml.etree.ElementTree as ET

    from acdc_compare.plots import faithfulness_plot, line_plot, sweep_plot

    svg = line_plot({"a <b>": [(10, 0.1), (100, 0.5), (1000, float("nan")), (10000, 1.0)], "c": [(10, 0.2)]},
                    x_label="edges", y_label="f", log_x=True)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    lines = root.findall(f"{ns}polyline")
    assert [p.get("data-series") for p in lines] == ["a <b>", "c"]
    assert len(lines[0].get("points").split()) == 3  # the NaN point is skipped
    xs = [float(p.split(",")[0]) for p in lines[0].get("points").split()]
    assert xs[1] - xs[0] == pytest.approx((xs[2] - xs[0]) / 3, abs=0.2)  # log scale: 10 -> 100 is a third of 10 -> 10^4
    assert {t.text for t in root.iter(f"{ns}text")} >= {"10", "100", "1000", "1e+04", "a <b>"}
    html = faithfulness_plot({"ioi": ((72, 214), (0.2, 0.4))}, "curves").html
    ET.fromstring(html)
    assert "data-series=\"ioi\"" in html
    sweep = sweep_plot([{"threshold": 0.01, "edges": 50, "faithfulness": 0.9},
                        {"threshold": 0.1, "edges": 5, "faithfulness": 0.2}], "sweep").html
    assert sweep.count("<svg") == 2


def _png(width: int, height: int) -> bytes:
    """A valid grey PNG of that size (no imaging library needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


class _Figures(HTMLParser):
    """For every <img>: the href of the link it sits in (None when it is in none)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str | None] = []
        self._open: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._open.append(dict(attrs).get("href"))
        elif tag == "img":
            self.links.append(self._open[-1] if self._open else None)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open:
            self._open.pop()


def test_every_figure_links_to_its_full_size(tmp_path: Path) -> None:
    """Issue 22 row 8: wide PNGs were shrunk to the page with no way to enlarge them; each figure now links to
    its full size: the file when linked, itself (shown at full size in a scrolling box) when embedded."""
    (tmp_path / "wide.png").write_bytes(_png(3000, 40))
    path = write_report(tmp_path / "r.html", title="t", sections=[
        Text("intro", "x"), Image("linked", "wide.png"), Image("embedded", "wide.png", embed=True, caption="c")])
    figures = _Figures()
    figures.feed(path.read_text())
    assert figures.links == ["wide.png", "#f2"]
    from browser import Browser, require_chromium

    require_chromium("the figure-size test")
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(path)
        width = "document.querySelector('#f2 img').getBoundingClientRect().width"
        assert browser.js(width) < 1300  # shrunk to the page
        x, y = browser.js("(() => { const r = document.querySelector('#f2 img').getBoundingClientRect();"
                          " return [r.x + 20, r.y + r.height / 2]; })()")
        browser.click(x, y)
        browser.js("new Promise(r => setTimeout(r, 100))")
        assert browser.js("location.hash") == "#f2"
        assert browser.js(width) == pytest.approx(3000, abs=3)  # the full image (and its 1 px border)
        browser.js("document.querySelector('#f2 a.fit').click()")
        assert browser.js(width) < 1300
        assert browser.problems() == []
    finally:
        browser.close()


def test_demo_report_is_one_self_contained_file_that_runs_in_a_browser(tmp_path: Path, tiny_dir) -> None:
    from browser import Browser, require_chromium

    from acdc_compare.experiment import ExperimentConfig, run_experiment

    result = run_experiment(ExperimentConfig(model=str(tiny_dir), k=40, n_prompts=4, n_eval=4, progress=False,
                                             curve=True), tmp_path / "demo")
    moved = tmp_path / "elsewhere" / "report.html"
    moved.parent.mkdir()
    moved.write_bytes(result.report.read_bytes())  # moved away from its PNGs: still complete
    text = moved.read_text()
    parsed = _parse(text)
    assert _files(parsed.refs) == []
    assert any(r.startswith("data:image/png;base64,") for r in parsed.refs)
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text)
    assert "acdc-viewer-data" in text and 'class="plot"' in text and "Example prompt per task" in text
    assert "Analogy: does each circuit head attend" in text and "1 - TV shuffled" in text
    assert "Order-vs-meaning control: pet position - " in text and "Kept edges of ioi" in text
    assert "Heads of the ioi circuit" in text and "edges on paths" in text and "Drawn: the " in text
    assert "score is" in text and "ranked by the score that kept each" in text and text.count("ranked by the score") == 1
    visible = re.sub(r"<script.*?</script>|<svg.*?</svg>|data:[^\"]+", "", text, flags=re.S)
    digits = [len(n.replace(".", "").lstrip("0")) for n in re.findall(r"\d+\.\d+", visible)]
    assert digits and max(digits) <= 5  # numbers formatted, no 17-digit floats
    assert json.loads((tmp_path / "demo" / "analogy.json").read_text())
    require_chromium("the browser half of this test")
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(moved)
        assert browser.js("document.querySelector('.acdc-viewer').dataset.ready") == "1"
        node = browser.js("(() => { const n = Array.from(document.querySelectorAll('.av-node'))"
                          ".filter(e => e.style.display !== 'none' && e.dataset.node.startsWith('a'));"
                          " return n.length ? n[0].dataset.node : null; })()")
        if node is not None:
            browser.js(f"document.querySelector('.av-node[data-node=\"{node}\"]')"
                       ".dispatchEvent(new MouseEvent('click', {bubbles: true}))")
            assert browser.js("document.querySelector('svg.av-graph').dataset.pinned") == node
            assert browser.js("document.querySelectorAll('.av-attn-map').length") > 0
        assert browser.problems() == []
        assert all(u == moved.resolve().as_uri() or u.startswith("data:") for u in browser.requests())
    finally:
        browser.close()


def _conclusion_inputs(verb_movers: tuple[str, ...], adjective_first: float):
    """A synthetic experiment result: IOI, pet-last and verb-last circuits, and the evaluations of three
    order-vs-meaning pairs (adjective recall at 65% vs `adjective_first` on 20 prompts)."""
    from acdc_compare.experiment import ExperimentConfig, ExperimentResult, TaskRun
    from acdc_compare.roles import MoverSet
    from acdc_compare.tasks import TaskEvaluation

    config = ExperimentConfig(extra=("verb-last",))
    circuit = Circuit.from_edge_names(SMALL, ["input->a0.h1<q>", "a0.h1<q>", "a0.h1->logits"])
    movers = {"ioi": MoverSet("ioi", ("a2.h0", "a2.h1")), "pet-last": MoverSet("pet-last", ("a2.h1", "a1.h3"), ("a2.h3",)),
              "pet-first": MoverSet("pet-first"), "verb-last": MoverSet("verb-last", verb_movers)}
    result = ExperimentResult(Path("."), name_movers=MoverSet("ioi", ("a2.h0", "a2.h1"), ("a2.h3",)))
    for t in config.circuit_tasks:
        result.runs[t] = TaskRun(t, circuit, Path(f"{t}.json"), [], 0.9, 0.8, movers=movers[t])
    accuracies = {"ioi": 1.0, "pet-last": 0.8, "pet-first": 0.15, "verb-last": 1.0, "verb-first": 0.4,
                  "adjective-last": 0.65, "adjective-first": adjective_first}
    evals = {(t, config.corruption_of(t).value): TaskEvaluation(
        t, 20, acc, 1.5, 0.1, 0.3, 1.0, 0.0, corruption=config.corruption_of(t).value) for t, acc in accuracies.items()}
    return config, result, evals


def test_the_conclusion_is_derived_from_the_result_and_leads_the_report(tmp_path: Path) -> None:
    """Issue 22 row 5: the answer was spread over many sections; a conclusion right under the title states it,
    each line with its evidence, and follows the data (other movers, other accuracies: other answers)."""
    from acdc_compare.experiment.conclusion import conclusion_section
    from acdc_compare.tasks import TaskEvaluation

    config, result, evals = _conclusion_inputs(("a2.h0", "a2.h1", "a0.h2"), 0.65)
    table = conclusion_section(config, result, evals, n_heads=SMALL.n_layers * SMALL.n_heads)
    rows = {row[0]: row[1:] for row in table.rows}
    ioi = rows["Which heads are ioi's name movers?"]
    assert ioi[0] == "a2.h0, a2.h1 (borderline: a2.h3); 2 of 2 on its circuit"
    assert "accuracy 100% [84-100%] (n=20)" in ioi[1] and "faithfulness 0.90 (0.80 on 32 new prompts)" in ioi[1]
    verb = rows["verb-last: are its verb movers IOI's name movers?"]
    # the verdict states its evidence: the shared heads (with their intervals where the scores kept them; these
    # hand-set movers have none) and the overlap chance gives
    assert verb[0] == "yes: 2 of its 3 movers are IOI's (a2.h0, a2.h1); chance 0.50"
    pet = rows["pet-last: are its name movers IOI's name movers?"]
    assert pet[0].startswith("yes: 1 of its 2 movers are IOI's (a2.h1); chance 0.33") and pet[0].endswith("borderline: a2.h3")
    assert rows["pet-first: are its name movers IOI's name movers?"][0].startswith("no: no head")
    adjective = rows["adjective recall: does the model answer by meaning or by word order?"]
    assert adjective[0].startswith("no clear preference")
    assert "65% (95% CI 43-82%, n=20)" in adjective[1]
    assert rows["pet position: does the model answer by meaning or by word order?"][0] == "answers by position"
    config, result, evals = _conclusion_inputs(("a0.h2",), 0.62)  # other data, other answers
    for e in [("adjective-last", "answers"), ("adjective-first", "answers")]:
        evals[e] = TaskEvaluation(e[0], 2000, 0.9 if e[0].endswith("last") else 0.88, 1.5, 0.1, 0.3, 1.0, 0.0,
                                  corruption="answers")
    rows = {row[0]: row[1:] for row in conclusion_section(config, result, evals, n_heads=12).rows}
    assert rows["verb-last: are its verb movers IOI's name movers?"][0] == "no: 1 mover of its own (a0.h2), none of IOI's; chance 0.17"
    assert rows["adjective recall: does the model answer by meaning or by word order?"][0] == "answers by meaning"
    text = write_report(tmp_path / "r.html", title="t", sections=[Text("Later", "x")], lead=[table]).read_text()
    assert text.index("<h1>") < text.index("Conclusion (each answer") < text.index("<nav>") < text.index("Later")


@pytest.mark.parametrize("rows", [
    [{"threshold": 0.0, "edges": 40, "faithfulness": 0.99991}, {"threshold": 0.0002, "edges": 41,
                                                                 "faithfulness": 0.99996}],
    [{"threshold": 0.0001, "edges": 10, "faithfulness": 0.5}, {"threshold": 0.0003, "edges": 12,
                                                                "faithfulness": 0.51}]])
def test_sweep_plot_tick_labels_are_never_repeated(rows) -> None:
    import xml.etree.ElementTree as ET

    from acdc_compare.plots import sweep_plot

    html = sweep_plot(rows, "sweep").html
    ns = "{http://www.w3.org/2000/svg}"
    for svg in re.findall(r"<svg.*?</svg>", html):
        root = ET.fromstring(svg)
        for anchor in ("end", "middle"):  # y ticks, x ticks (and the x axis title, once)
            labels = [t.text for t in root.iter(f"{ns}text") if t.get("text-anchor") == anchor]
            assert len(labels) == len(set(labels)), labels


def test_head_tables_put_the_most_important_head_first_and_wide_tables_scroll(tmp_path: Path) -> None:
    from types import SimpleNamespace

    import torch

    from acdc_compare.circuit import Circuit
    from acdc_compare.experiment.layout import _head_rows
    from acdc_compare.graph import Graph, GraphConfig
    from acdc_compare.report import Table, write_report

    graph = Graph(GraphConfig(n_layers=2, n_heads=2, n_kv_heads=2))
    c = Circuit.full(graph)
    mover = torch.tensor([[0.1, -0.9], [float("nan"), 0.5]])
    scores = SimpleNamespace(mover=mover, answer_attention=torch.zeros(2, 2), direct_logit=torch.zeros(2, 2))
    assert [row[0] for row in _head_rows(c, {}, scores)] == ["a0.h1", "a1.h1", "a0.h0", "a1.h0"]
    path = write_report(tmp_path / "r.html", title="t", sections=[Table("wide", ["a"], [["x" * 500]])])
    text = Path(path).read_text()
    assert '<div class="wide"><table>' in text and "overflow-x: auto" in text


def test_the_head_role_table_gives_each_rule_once_in_a_footnote() -> None:
    from acdc_compare.experiment.layout import role_table_sections

    rule = "score >= 0.2 and in the top 5 heads"
    rows = [{"head": f"a{i}.h0", "role": "name mover", "score": 0.5, "rank": i + 1, "rule": rule}
            for i in range(3)] + [{"head": "a5.h1", "role": "induction", "score": 0.3, "rank": 1, "rule": "r2"}]
    table, note = role_table_sections(rows, "ioi")
    assert isinstance(table, Table) and "rule" not in table.headers and len(table.rows) == 4
    assert not any(rule in str(cell) for row in table.rows for cell in row)
    assert isinstance(note, Text) and note.body.count(rule) == 1 and "induction: r2" in note.body
    assert role_table_sections([], "ioi") == []
