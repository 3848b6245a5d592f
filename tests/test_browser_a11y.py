"""WCAG 2.1 AA with axe-core (issue 16): every page at desktop (1400 px) and phone (400 px) width, in its default
state and after the main interactions, has no critical or serious violation. axe-core is read from the npm
package installed in node_modules and injected into the page (nothing is fetched from the network).

The same visit also runs the layout checks of tests/layout_checks.py (issue 14: no sideways scroll, no
share/cloud button, no raw column names) on each page at each width, before axe opens the "view as table"
sections: one browser loads every page once for both."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from dash.testing.wait import until

from dashboard import ids
from tests.conftest import ROOT, SAMPLE
from tests.layout_checks import _CHARTS_DRAWN, PAGES, layout_problems
from tests.test_browser_predict import _selector

pytestmark = pytest.mark.browser

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = [1400, 400]
BLOCKING = ("critical", "serious")
# WCAG 2.0/2.1 A and AA rules, plus axe's best practices for the page's structure (landmarks, one h1).
_RUN_AXE = """
const done = arguments[arguments.length - 1];
document.querySelectorAll('details').forEach(d => { d.open = true; });  // tables behind "view as table" too
// Plotly's drawing (thousands of SVG nodes, no roles) is left out: charts are checked through their named
// figure, summary and table; the mode bar's buttons stay in.
axe.run({exclude: [['.js-plotly-plot svg.main-svg']]},
        {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']},
         resultTypes: ['violations']})
   .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.map(n => n.target.join(' ') + (n.failureSummary ? ' :: ' +
               n.failureSummary.split('\\n').slice(1, 2).join('').trim() : ''))}))))
   .catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));
"""


def _axe(br) -> list[dict]:
    """axe-core's violations on the current page (injected once per page load)."""
    if not br.driver.execute_script("return typeof window.axe !== 'undefined';"):
        br.driver.execute_script(AXE.read_text(encoding="utf-8"))
    br.driver.set_script_timeout(60)
    return br.driver.execute_async_script(_RUN_AXE)


def _report(where: str, violations: list[dict], impacts=BLOCKING) -> list[str]:
    """One readable line per blocking violation: where, impact, rule, what it means, first offending nodes."""
    return [f"{where}: {v['impact']} {v['id']} ({v['help']}) x{len(v['nodes'])}: {'; '.join(v['nodes'][:3])}"
            for v in violations if v["impact"] in impacts]


def _load(br, url: str, charts: int = 0, settle: float = 0.5) -> None:
    br.driver.get(url)
    until(lambda: br.driver.execute_script(_CHARTS_DRAWN, charts), timeout=40)
    time.sleep(settle)


def _width(br, width: int) -> None:
    br.driver.set_window_size(width, 1000)
    inner = br.driver.execute_script("return window.innerWidth;")
    if inner != width:  # the window frame takes some pixels: size the viewport itself
        br.driver.set_window_size(2 * width - inner, 1000)


def _structure(br) -> list[str]:
    """The structural checks axe reports only as moderate: lang, one main, one h1, header and nav landmarks."""
    found = br.driver.execute_script("""
        return {lang: document.documentElement.getAttribute('lang'),
                main: document.querySelectorAll('main, [role=main]').length,
                h1: document.querySelectorAll('h1').length,
                header: document.querySelectorAll('header, [role=banner]').length,
                nav: document.querySelectorAll('nav, [role=navigation]').length,
                skip: Array.from(document.querySelectorAll('a[href^="#"]')).some(
                    a => /skip to (main )?content/i.test(a.textContent)),
                // every chart: a named figure (or card) with its summary sentence and its "view as table"
                mute: Array.from(document.querySelectorAll('.js-plotly-plot')).filter(p => {
                    const box = p.closest('figure[aria-label]') || p.closest('.card');
                    const summary = box && box.querySelector('.chart-summary');
                    return !summary || !summary.textContent.trim() || !box.querySelector('details.chart-table');
                }).map(p => p.closest('[id]') ? p.closest('[id]').id : '?')};""")
    out = []
    if found["lang"] != "en":
        out.append(f"<html lang> is {found['lang']!r}")
    for what in ("main", "h1"):
        if found[what] != 1:
            out.append(f"{found[what]} <{what}> elements (one expected)")
    for what in ("header", "nav"):
        if found[what] < 1:
            out.append(f"no <{what}> landmark")
    if not found["skip"]:
        out.append("no 'skip to content' link")
    if found["mute"]:
        out.append(f"charts without a summary or table: {found['mute']}")
    return out


def test_every_page_fits_both_widths_and_has_no_serious_axe_violation_also_after_interactions(dash_br, live_server):
    problems, counts, rules = [], {}, {}
    layout = []  # tests/layout_checks.py's checks, on the same page loads

    def check(where: str) -> None:
        violations = _axe(dash_br)
        for v in violations:
            counts[v["impact"]] = counts.get(v["impact"], 0) + len(v["nodes"])
            rules[(v["impact"], v["id"])] = rules.get((v["impact"], v["id"]), 0) + len(v["nodes"])
        problems.extend(_report(where, violations))
        problems.extend(f"{where}: {p}" for p in _structure(dash_br))

    try:
        for width in WIDTHS:
            _width(dash_br, width)
            assert dash_br.driver.execute_script("return window.innerWidth;") == width
            for page, charts in PAGES.items():
                # 0.8 s: responsive charts settle to the final width before the layout is measured.
                _load(dash_br, live_server.url + page, charts, settle=0.8)
                layout.extend(f"{page} at {width} px: {p}" for p in layout_problems(dash_br))
                check(f"{page} at {width} px")

        _width(dash_br, 1400)
        # A segment chosen (profiles, compare) and a prediction made (predict opens on one; then a field typed).
        for page in ("/profiles?segment=2", "/compare?a=1&b=3", "/predict?segment=1"):
            _load(dash_br, live_server.url + page, 1)
            check(page)
        age = dash_br.find_element(_selector("Age"))
        age.clear()
        age.send_keys("abc")  # a field error shown beside its field
        dash_br.wait_for_contains_text(f"#{ids.PREDICT_RESULT}", "Fix the highlighted field", timeout=30)
        # The charts' text follows the figures a callback draws, not only the ones the page opened with.
        summary = '[id="{\\"graph\\":\\"%s\\",\\"type\\":\\"%s\\"}"]' % (ids.PREDICT_DISTANCES, ids.CHART_SUMMARY)
        dash_br.wait_for_text_to_equal(summary, "Fix the form first", timeout=30)
        # The error is tied to its field: announced with it (aria-describedby) and the field marked invalid.
        until(lambda: age.get_attribute("aria-invalid") == "true", timeout=10)
        feedback = dash_br.find_element(_selector("Age", ids.PREDICT_FIELD_FEEDBACK))
        assert feedback.get_attribute("id") in (age.get_attribute("aria-describedby") or "").split()
        assert "enter a number" in feedback.text
        check("/predict with a field error")

        # A sweep run.
        _load(dash_br, live_server.url + "/diagnostics", 2)
        dash_br.find_element(f"#{ids.DIAG_RUN}").click()
        dash_br.wait_for_contains_text(f"#{ids.DIAG_PROGRESS_TEXT}", "Finished", timeout=90)
        check("/diagnostics after a sweep")

        # A file uploaded (the upload's report, with its preview table and cleaning summary).
        _load(dash_br, live_server.url + "/data")
        dash_br.find_element(f"#{ids.DATA_UPLOAD} input[type=file]").send_keys(str(SAMPLE))
        dash_br.wait_for_contains_text(f"#{ids.DATA_UPLOAD_REPORT}", "rows read", timeout=60)
        check("/data after an upload")
    finally:
        _width(dash_br, 1400)
    print("axe-core violations by impact (nodes):", counts)
    print("\n".join(f"  {n:4d} {impact} {rule}" for (impact, rule), n in sorted(rules.items(), key=lambda r: -r[1])))
    failures = []
    if layout:
        failures.append(f"{len(layout)} layout problems:\n" + "\n".join(layout))
    if problems:
        failures.append(f"{len(problems)} accessibility problems:\n" + "\n".join(problems))
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)


def test_axe_core_is_the_installed_npm_package():
    assert AXE.is_file() and Path(AXE).stat().st_size > 100_000, f"axe-core missing at {AXE} (npm ci)"
