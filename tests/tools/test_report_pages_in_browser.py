"""Both report pages in a real browser (headless Chromium, from disk): every picture loads, no
script error, the worst-images table is paged and sorts on a click."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .report_runs import analyzed_runs

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no chromium on PATH (Debian: apt-get install -y chromium)")

#: Runs first in the page: records script errors, failed loads and console errors.
WATCH = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  window.__errors.push(e.message || ('failed to load ' + (e.target.src || e.target.href)));
}, true);
var __consoleError = console.error;
console.error = function () { window.__errors.push([].join.call(arguments, ' '));
  __consoleError.apply(console, arguments); };
</script>"""
#: Runs after the page's scripts, once everything loaded: writes the verdict into the DOM.
CHECK = """<script>
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
    .map(function (i) { return i.getAttribute('src'); });
  var table = document.getElementById('worst-images');
  var paging = null;
  if (table) {
    table.tHead.rows[0].cells[1].click();
    table.tHead.rows[0].cells[1].click();
    paging = {rows: table.tBodies[0].rows.length,
              visible: Array.prototype.filter.call(table.tBodies[0].rows,
                function (r) { return !r.hidden; }).length,
              pager: !!document.querySelector('.pager'),
              ids: Array.prototype.map.call(table.tBodies[0].rows,
                function (r) { return parseInt(r.cells[1].textContent, 10); })};
  }
  var comparisons = document.querySelectorAll('#comparisons a').length;
  var out = document.createElement('pre');
  out.id = 'verdict';
  out.textContent = JSON.stringify({images: images.length, broken: broken,
    errors: window.__errors, paging: paging, comparisons: comparisons});
  document.body.appendChild(out);
});
</script>"""


def _verdict(page: Path) -> dict:
    """Open a copy of ``page`` (beside it, so relative pictures resolve) with the watch and
    check scripts added, and return what the check wrote into the DOM."""
    text = page.read_text()
    checked = page.with_name("browser_check.html")
    checked.write_text(text.replace("<head>", "<head>" + WATCH, 1)
                       .replace("</body>", CHECK + "</body>", 1))
    result = subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
         "--dump-dom", checked.as_uri()], capture_output=True, text=True, timeout=120,
        check=False)
    checked.unlink()
    found = re.search(r'<pre id="verdict">(.*?)</pre>', result.stdout, re.S)
    assert found, result.stderr[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.fixture(scope="module")
def pages(tiny_demo, tmp_path_factory):
    run_a, _, compare, _ = analyzed_runs(tiny_demo, tmp_path_factory.mktemp("browser"))
    return run_a / "report" / "index.html", compare / "index.html"


def test_analysis_page_loads_every_picture_without_errors(pages):
    verdict = _verdict(pages[0])
    assert verdict["images"] >= 9 and verdict["broken"] == []
    assert verdict["errors"] == []
    paging = verdict["paging"]
    assert paging["pager"] and paging["visible"] == min(paging["rows"], 12)
    assert paging["ids"] == sorted(paging["ids"])  # two clicks on "id": ascending
    assert verdict["comparisons"] == 1  # the comparison page, from comparisons.js


def test_comparison_page_loads_every_picture_without_errors(pages):
    verdict = _verdict(pages[1])
    assert verdict["images"] >= 1 and verdict["broken"] == []
    assert verdict["errors"] == []
