"""The HTML report: escaped content, images only from its own folder, no scripts or network."""

from __future__ import annotations

import base64
import re
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
