"""The Snakemake report of the test study, rendered in a real browser (headless chromium).

The report is a single HTML file whose JavaScript (React) builds every page from data
embedded in it: the file names and images are in the raw file whether or not a page
shows them. So the test drives the rendered report as a reader would (the "tiny"
experiment in the menu, then "Figures", the recovery curve's view button, then "Tables")
and keeps a copy of the rendered page after each step; the assertions read those copies,
which hold only what the JavaScript drew.

Chromium is required: without it the test fails (CI installs Debian's, see .ci/run).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import run_snakemake

pytestmark = pytest.mark.workflow

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=15000"]

# Clicks through the rendered report, one step every 500 ms (of the browser's virtual
# time), and copies the rendered app into a hidden <div id="probe-NAME"> at each
# snapshot; a step that finds nothing to click writes <pre id="probe-error">.
DRIVER = """
(function () {
  function snap(name) {
    const copy = document.createElement("div");
    copy.id = "probe-" + name;
    copy.hidden = true;
    copy.innerHTML = document.querySelector("#app").innerHTML;
    document.body.appendChild(copy);
  }
  function fail(message) {
    const pre = document.createElement("pre");
    pre.id = "probe-error";
    pre.textContent = message;
    document.body.appendChild(pre);
  }
  function link(text) {
    const found = Array.from(document.querySelectorAll("#app nav a"))
      .find((a) => a.textContent.trim() === text);
    if (!found) throw new Error("no link '" + text + "' in the menu");
    return found;
  }
  function viewButton(name) {
    const row = Array.from(document.querySelectorAll("#app nav tr"))
      .find((tr) => tr.textContent.includes(name));
    if (!row) throw new Error("no row '" + name + "' in the results table");
    const button = row.querySelector("a");
    if (!button) throw new Error("row '" + name + "' has no view button");
    return button;
  }
  const steps = [
    () => snap("start"),
    () => link("tiny").click(),
    () => link("Figures").click(),
    () => snap("figures"),
    () => viewButton(FIGURE).click(),
    () => snap("figure"),
    () => link("tiny").click(),
    () => link("Tables").click(),
    () => snap("tables"),
  ];
  function run(i) {
    if (i >= steps.length) return;
    try { steps[i](); } catch (err) { fail(String(err)); return; }
    setTimeout(() => run(i + 1), 500);
  }
  window.addEventListener("load", () => setTimeout(() => run(0), 500));
})();
"""


def chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.fail("chromium is not installed, and the report test needs a real browser: "
                    "install Debian's (as root: apt-get install -y --no-install-recommends "
                    "chromium), as .ci/run does")
    return path


class Snapshots(HTMLParser):
    """The probe copies of a dumped DOM: per snapshot its text pieces (tag, text), its
    images' sources, and its links' (text, href); script contents are skipped."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.current: str | None = None
        self.depth = 0
        self.text: dict[str, list[tuple[str, str]]] = {}
        self.images: dict[str, list[str]] = {}
        self.rows: dict[str, list[list[tuple[str, str]]]] = {}
        self.error: str | None = None
        self._in_error = False
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        ident = attrs.get("id") or ""
        if tag == "script":
            self._in_script = True
        if tag == "pre" and ident == "probe-error":
            self._in_error, self.error = True, ""
        if self.current is None and tag == "div" and ident.startswith("probe-"):
            self.current, self.depth = ident[len("probe-"):], 0
            self.text[self.current], self.images[self.current] = [], []
            self.rows[self.current] = []
        if self.current is None:
            return
        if tag == "div":
            self.depth += 1
        if tag == "img":
            self.images[self.current].append(attrs.get("src") or "")
        if tag == "tr":
            self.rows[self.current].append([])
        if tag == "a" and self.rows[self.current]:
            self.rows[self.current][-1].append(("href", attrs.get("href") or ""))
        self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False
        if tag == "pre":
            self._in_error = False
        if self.current is None:
            return
        if self.stack and self.stack[-1] == tag:
            self.stack.pop()
        if tag == "div":
            self.depth -= 1
            if self.depth == 0:
                self.current = None
                self.stack = []

    def handle_data(self, data):
        if self._in_script:
            return
        if self._in_error:
            self.error += data
        if self.current is None or not data.strip():
            return
        tag = self.stack[-1] if self.stack else ""
        self.text[self.current].append((tag, data.strip()))
        if self.rows[self.current] and tag == "td":
            self.rows[self.current][-1].append(("td", data.strip()))


def render(report: Path, work: Path, figure: str = "recovery_curve.png") -> Snapshots:
    """Drive ``report`` in headless chromium (:data:`DRIVER`, viewing ``figure``) and
    parse the snapshots."""
    html = report.read_text()
    end = html.rindex("</body>")
    driven = work / "driven_report.html"
    driver = f"const FIGURE = {json.dumps(figure)};\n{DRIVER}"
    driven.write_text(html[:end] + f"<script>{driver}</script>" + html[end:])
    profile = work / "chromium-profile"
    profile.mkdir()
    proc = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                           "--dump-dom", driven.as_uri()],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    snapshots = Snapshots()
    snapshots.feed(proc.stdout)
    assert snapshots.error is None, f"driving the report failed: {snapshots.error}"
    assert set(snapshots.text) == {"start", "figures", "figure", "tables"}, (
        sorted(snapshots.text), proc.stdout[-2000:])
    return snapshots


def data_uri_bytes(uri: str) -> bytes:
    head, _, payload = uri.partition(",")
    assert head.endswith(";base64"), head[:80]
    return base64.b64decode(payload)


@pytest.fixture(scope="module")
def rendered(tiny, tmp_path_factory) -> tuple[Snapshots, Path, str]:
    workdir, cfg = tiny
    report = workdir / "report.html"
    proc = run_snakemake(workdir, "--report", str(report))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (experiment,) = cfg["experiments"]
    assert experiment == "tiny"  # the menu entry DRIVER clicks
    return render(report, tmp_path_factory.mktemp("browser")), workdir, experiment


def test_the_report_renders_its_categories(rendered):
    snaps, _, experiment = rendered
    shown = [text for tag, text in snaps.text["start"] if tag == "span"]
    assert "Results" in [t for _, t in snaps.text["start"]]
    assert experiment in shown and "Across experiments" in shown, shown
    # The workflow description (workflow/report/workflow.rst) is drawn on the start page.
    assert any("Model-recovery study" in t for _, t in snaps.text["start"])


def test_the_recovery_curve_figure_is_listed_and_shown(rendered):
    snaps, workdir, experiment = rendered
    curve = f"results/{experiment}/figures/recovery_curve.png"
    listed = [text for tag, text in snaps.text["figures"] if tag == "td"]
    assert curve in listed and f"results/{experiment}/figures/confusion.png" in listed, listed
    # Its view button draws the figure itself: the PNG of the study, byte for byte.
    before = set(snaps.images["figures"])
    drawn = [src for src in snaps.images["figure"]
             if src not in before and src.startswith("data:image/png")]
    assert len(drawn) == 1, [s[:60] for s in snaps.images["figure"]]
    assert re.search(r"filename=recovery_curve\.png", drawn[0].split(",")[0])
    assert data_uri_bytes(drawn[0]) == (workdir / curve).read_bytes()


def test_the_summary_table_is_listed_with_its_data(rendered):
    snaps, workdir, experiment = rendered
    summary = f"results/{experiment}/tables/summary.csv"
    listed = [text for tag, text in snaps.text["tables"] if tag == "td"]
    assert summary in listed, listed
    for name in ("recovery_curve", "confusion", "alignment"):
        assert f"results/{experiment}/tables/{name}.csv" in listed
    # Tables of a row per simulated dataset stay in results/: the report must not grow
    # with the number of jobs.
    from test_report_size import embedded

    files = embedded(workdir / "report.html")
    assert summary in files
    for name in ("scores", "outcomes"):
        table = f"results/{experiment}/tables/{name}.csv"
        assert table not in listed and table not in files
        assert (workdir / table).exists()
    (row,) = [r for r in snaps.rows["tables"] if ("td", summary) in r]
    links = [value for kind, value in row if kind == "href" and value.startswith("data:")]
    assert links, row
    assert data_uri_bytes(links[0]) == (workdir / summary).read_bytes()
