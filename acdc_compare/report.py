"""A self-contained HTML report: one file, inline CSS, no scripts, no network.

A report is a title and a sequence of sections, each a frozen value:
`Text` (paragraphs, or preformatted text), `Table` (headers and rows), `KeyValues` (settings) and `Image`
(an SVG/PNG/... file in the report's folder, linked by relative path, or embedded as a data: URI with
`embed=True`). Every string is HTML-escaped. An image must be a file that exists inside the report's folder
(relative paths are taken relative to that folder), so the report only points at files written there.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from acdc_compare.files import PathLike, atomic_write

_IMAGE_TYPES = {".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                ".gif": "image/gif", ".webp": "image/webp"}


@dataclass(frozen=True)
class Text:
    """Paragraphs (split at blank lines) or, with `preformatted`, text shown as is in a monospace block."""

    title: str
    body: str
    preformatted: bool = False


@dataclass(frozen=True)
class Table:
    """Rows of cells under headers; floats are shown with 4 significant digits, None as an empty cell."""

    title: str
    headers: Sequence[str]
    rows: Sequence[Sequence[Any]]

    def __post_init__(self) -> None:
        headers, rows = tuple(str(h) for h in self.headers), tuple(tuple(r) for r in self.rows)
        for i, row in enumerate(rows):
            if len(row) != len(headers):
                raise ValueError(f"table {self.title!r}: row {i} has {len(row)} cells for {len(headers)} headers")
        object.__setattr__(self, "headers", headers)
        object.__setattr__(self, "rows", rows)


@dataclass(frozen=True)
class KeyValues:
    """Settings or numbers as a two-column list, in the given order."""

    title: str
    items: Mapping[str, Any] | Sequence[tuple[str, Any]]

    def __post_init__(self) -> None:
        items = self.items
        pairs = tuple(items.items()) if isinstance(items, Mapping) else tuple((k, v) for k, v in items)
        object.__setattr__(self, "items", tuple((str(k), v) for k, v in pairs))


@dataclass(frozen=True)
class Image:
    """An image file in the report's folder (path relative to that folder, or absolute inside it).
    `embed=True` puts the file's bytes into the HTML as a data: URI instead of linking to it."""

    title: str
    path: PathLike
    caption: str = ""
    embed: bool = False


ReportSection = Text | Table | KeyValues | Image

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; margin-top: 1.8em;
     border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
nav ol { columns: 2; font-size: 0.92em; } a { color: #0b5cad; }
table { border-collapse: collapse; font-size: 0.92em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } tr:nth-child(even) td { background: #fafafa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.kv th { width: 16em; }
pre { background: #f6f6f6; border: 1px solid #e2e2e2; padding: 0.7em; overflow-x: auto; font-size: 0.88em; }
figure { margin: 0.5em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #e2e2e2; }
figcaption { color: #555; font-size: 0.9em; }
"""


# ----- formatting ------------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def format_cell(value: Any) -> str:
    """Plain-text form of a table or key-value cell (not yet escaped)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return str(value) if not math.isfinite(value) else f"{value:.4g}"
    return str(value)


def _td(value: Any) -> str:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return f'<td class="num">{_e(format_cell(value))}</td>' if numeric else f"<td>{_e(format_cell(value))}</td>"


# ----- images ----------------------------------------------------------------------------------------
def _image_file(image: Image, folder: Path) -> Path:
    """The image's real path; ValueError unless it is an existing image file inside `folder`."""
    given = Path(image.path)
    path = (given if given.is_absolute() else folder / given).resolve()
    if not path.is_relative_to(folder):
        raise ValueError(f"image {image.title!r}: {given} is outside the report's folder {folder}; "
                         "write images next to the report and give their path relative to it")
    if not path.is_file():
        raise ValueError(f"image {image.title!r}: {path} does not exist (paths are relative to {folder})")
    if path.suffix.lower() not in _IMAGE_TYPES:
        raise ValueError(f"image {image.title!r}: {path.name} is not one of {', '.join(_IMAGE_TYPES)}")
    return path


def _image_src(image: Image, folder: Path) -> str:
    path = _image_file(image, folder)
    if image.embed:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f"data:{_IMAGE_TYPES[path.suffix.lower()]};base64,{data}"
    return quote(path.relative_to(folder).as_posix())


# ----- sections --------------------------------------------------------------------------------------
def _text_html(s: Text) -> str:
    if s.preformatted:
        return f"<pre>{_e(s.body)}</pre>"
    paragraphs = [p.strip() for p in s.body.split("\n\n") if p.strip()]
    return "".join(f"<p>{_e(p)}</p>" for p in paragraphs)


def _table_html(s: Table) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in s.headers)
    body = "".join("<tr>" + "".join(_td(v) for v in row) + "</tr>" for row in s.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _kv_html(s: KeyValues) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th>{_td(v)}</tr>" for k, v in s.items)
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def _image_html(s: Image, folder: Path) -> str:
    src = _image_src(s, folder)
    img = f'<img src="{_e(src)}" alt="{_e(s.title)}">'
    if not s.embed:
        img = f'<a href="{_e(src)}">{img}</a>'
    caption = f"<figcaption>{_e(s.caption)}</figcaption>" if s.caption else ""
    return f"<figure>{img}{caption}</figure>"


def _section_html(s: ReportSection, index: int, folder: Path) -> str:
    if isinstance(s, Text):
        body = _text_html(s)
    elif isinstance(s, Table):
        body = _table_html(s)
    elif isinstance(s, KeyValues):
        body = _kv_html(s)
    elif isinstance(s, Image):
        body = _image_html(s, folder)
    else:
        raise TypeError(f"section {index} is a {type(s).__name__}; use Text, Table, KeyValues or Image")
    heading = f'<h2 id="s{index}">{_e(s.title)}</h2>' if s.title else f'<div id="s{index}"></div>'
    return f"<section>{heading}{body}</section>\n"


def _contents(sections: Sequence[ReportSection]) -> str:
    items = "".join(f'<li><a href="#s{i}">{_e(s.title)}</a></li>' for i, s in enumerate(sections) if s.title)
    return f"<nav><ol>{items}</ol></nav>\n" if items else ""


def render_report(folder: PathLike, *, title: str, sections: Sequence[ReportSection], subtitle: str = "") -> str:
    """The report's HTML, with image paths checked against `folder` (the report's directory)."""
    folder = Path(folder).resolve()
    body = "".join(_section_html(s, i, folder) for i, s in enumerate(sections))
    sub = f"<p>{_e(subtitle)}</p>\n" if subtitle else ""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{_e(title)}</h1>\n{sub}{_contents(sections)}{body}</body>\n</html>\n"
    )


def write_report(path: PathLike, *, title: str, sections: Sequence[ReportSection], subtitle: str = "") -> Path:
    """Write the report to `path` (atomically) and return the path; images must lie in its folder."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"the report's folder {path.parent} does not exist")
    text = render_report(path.parent, title=title, sections=sections, subtitle=subtitle)
    atomic_write(path, text.encode("utf-8"))
    return path


__all__ = ["Image", "KeyValues", "ReportSection", "Table", "Text", "format_cell", "render_report", "write_report"]
