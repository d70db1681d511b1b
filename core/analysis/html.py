"""Pieces of the static report pages: a page with its style and script inline, sections,
tables (sortable by a click on a heading, optionally paged), pictures and code blocks.

Everything is plain HTML written from string templates with every value escaped; the pages
open from disk and fetch nothing from the network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

#: A table cell: text, a number (shown with its format, sorted by value) or ``None`` ("n/a").
Cell = str | int | float | None

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1180px; padding: 0 16px 48px;
       color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ddd; margin-top: 1.6em; }
nav a { margin-right: 0.9em; } .muted { color: #666; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; vertical-align: middle; }
th { background: #f3f3f3; cursor: pointer; user-select: none; }
td:first-child, th:first-child, td.text { text-align: left; }
th[data-order=asc]::after { content: " \\25B2"; } th[data-order=desc]::after { content: " \\25BC"; }
td.up { color: #1a7f37; } td.down { color: #c62828; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
td img { max-width: 320px; display: block; }
pre { background: #f7f7f7; padding: 8px; overflow-x: auto; font-size: 0.85em; }
.pager { margin: 0.3em 0 1em; } .pager button { margin: 0 0.4em; }
"""

SCRIPT = """
(function () {
  function key(cell) {
    var value = cell.getAttribute('data-v');
    return value === null ? cell.textContent.trim().toLowerCase() : parseFloat(value);
  }
  function compare(a, b) {
    if (typeof a === 'number' && typeof b === 'number') { return a - b; }
    return String(a) < String(b) ? -1 : (String(a) > String(b) ? 1 : 0);
  }
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (table) {
    var body = table.tBodies[0];
    var size = parseInt(table.getAttribute('data-page-size') || '0', 10);
    var page = 0;
    var pager = null;
    function show() {
      if (!size) { return; }
      var rows = Array.prototype.slice.call(body.rows);
      var pages = Math.max(1, Math.ceil(rows.length / size));
      page = Math.max(0, Math.min(page, pages - 1));
      rows.forEach(function (row, i) { row.hidden = Math.floor(i / size) !== page; });
      pager.querySelector('span').textContent = 'page ' + (page + 1) + ' of ' + pages;
    }
    if (size) {
      pager = document.createElement('div');
      pager.className = 'pager';
      pager.innerHTML = '<button type="button" data-step="-1">previous</button>' +
        '<span></span><button type="button" data-step="1">next</button>';
      table.parentNode.insertBefore(pager, table.nextSibling);
      pager.addEventListener('click', function (event) {
        var step = event.target.getAttribute('data-step');
        if (step) { page += parseInt(step, 10); show(); }
      });
    }
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
      th.addEventListener('click', function () {
        var order = th.getAttribute('data-order') === 'desc' ? 'asc' : 'desc';
        Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) {
          other.removeAttribute('data-order');
        });
        th.setAttribute('data-order', order);
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var result = compare(key(a.cells[column]), key(b.cells[column]));
          return order === 'asc' ? result : -result;
        });
        rows.forEach(function (row) { body.appendChild(row); });
        page = 0;
        show();
      });
    });
    show();
  });
})();
"""


def number(value: float | None, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals; "n/a" for ``None`` or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def cell(value: Cell, digits: int = 3, raw: bool = False, delta: bool = False) -> str:
    """A ``<td>``: numbers carry their value for sorting (``delta``: signed and coloured);
    ``raw`` text is inserted as HTML (for links and pictures built with these helpers)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '<td data-v="-1e300">n/a</td>'
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = str(value) if raw else escape(str(value))
        return f'<td class="text">{text}</td>'
    shown = f"{value:+.{digits}f}" if delta else (
        str(value) if isinstance(value, int) else f"{value:.{digits}f}")
    style = (' class="up"' if value > 0 else ' class="down"' if value < 0 else "") if delta \
        else ""
    return f'<td data-v="{float(value)!r}"{style}>{shown}</td>'


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], page_size: int = 0,
          table_id: str = "") -> str:
    """A sortable table; ``rows`` hold ``<td>`` strings made by :func:`cell`."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "\n".join(f"<tr>{''.join(row)}</tr>" for row in rows)
    attributes = f' id="{escape(table_id)}"' if table_id else ""
    if page_size:
        attributes += f' data-page-size="{page_size}"'
    return (f'<table class="sortable"{attributes}><thead><tr>{head}</tr></thead>'
            f"<tbody>\n{body}\n</tbody></table>")


def picture(src: str, caption: str, width: int | None = None) -> str:
    """A ``<figure>`` of the file ``src`` (a path relative to the page)."""
    size = f' width="{width}"' if width else ""
    return (f'<figure><img src="{escape(src)}" alt="{escape(caption)}"{size}>'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def link(href: str, text: str) -> str:
    return f'<a href="{escape(href)}">{escape(text)}</a>'


def section(anchor: str, title: str, *parts: str) -> str:
    return f'<section id="{escape(anchor)}"><h2>{escape(title)}</h2>\n' + "\n".join(parts) + \
        "\n</section>"


def paragraph(text: str) -> str:
    return f'<p class="muted">{escape(text)}</p>'


def code(text: str, summary: str) -> str:
    """A folded ``<pre>`` block."""
    return f"<details><summary>{escape(summary)}</summary><pre>{escape(text)}</pre></details>"


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]],
         scripts: Sequence[str] = ()) -> str:
    """A whole page: ``sections`` are ``(anchor, title, html)``; ``scripts`` are files next to
    the page loaded before the page's own script."""
    nav = "".join(link(f"#{anchor}", name) for anchor, name, _ in sections)
    body = "\n".join(section(anchor, name, content) for anchor, name, content in sections)
    loaded = "".join(f'<script src="{escape(s)}"></script>' for s in scripts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body>"
            f"<h1>{escape(title)}</h1><p class=\"muted\">{escape(subtitle)}</p>"
            f"<nav>{nav}</nav>\n{body}\n{loaded}<script>{SCRIPT}</script></body></html>\n")
