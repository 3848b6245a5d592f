"""WCAG 2.1 AA with axe-core (issues 16, 29): every page at desktop (1400 px) and phone (400 px) width, in its
default state and after the main interactions, has no critical or serious violation, in every mode a deployment
can be in: open (no accounts, served on this machine), read-only (no accounts, served on the network) and signed
in as each role (viewer, analyst, admin), the sign-in page included. axe-core is read from the npm package
installed in node_modules and injected into the page (nothing is fetched from the network).

What a page renders depends on the mode in two places only: the header (badge, banner, user and sign-out form:
the same on every page) and the controls a role may not use (shown disabled with the reason, on the pages that
ask dashboard.components.may). Open mode checks every page and the interactions; read-only, viewer and analyst
check the header on "/" and every page that asks for a permission (ROLE_PAGES, kept in step with the page modules
by a test below); an admin may do all that open mode allows, so only its header ("/") is checked. Each page once
per width, on one server per mode (the roles share one).

The same visit also runs the layout checks of tests/layout_checks.py (issue 14: no sideways scroll, no
share/cloud button, no raw column names) on each page at each width, before axe opens the "view as table"
sections: one browser loads every page once for both."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from dash.testing.wait import until

from core.access.accounts import AccountStore
from dashboard import ids
from tests.conftest import ROOT, SAMPLE, start_server
from tests.layout_checks import _CHARTS_DRAWN, PAGES, layout_problems, wait_settled
from tests.test_browser_predict import _selector

pytestmark = pytest.mark.browser

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = [1400, 400]
BLOCKING = ("critical", "serious")
# Pages whose controls depend on the caller's role (their modules ask dashboard.components.may), and "/" for the
# header every page shares.
ROLE_PAGES = {"/": 2, "/profiles": 5, "/explorer": 1, "/diagnostics": 2, "/stability": 7, "/data": 0, "/campaigns": 2,
              "/monitoring": 1, "/value": 0}
ROLES = {"viewer": "viewer-pass-1", "analyst": "analyst-pass-1", "admin": "admin-pass-12"}
# WCAG 2.0/2.1 A and AA rules, plus axe's best practices for the page's structure (landmarks, one h1), plus the
# rules axe still calls experimental (label-content-name-mismatch among them: a control's name must contain the
# text it shows, WCAG 2.5.3).
_RUN_AXE = """
const done = arguments[arguments.length - 1];
document.querySelectorAll('details').forEach(d => { d.open = true; });  // tables behind "view as table" too
// Plotly's drawing (thousands of SVG nodes, no roles) is left out: charts are checked through their named
// figure, summary and table; the mode bar's buttons stay in.
axe.run({exclude: [['.js-plotly-plot svg.main-svg']]},
        {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice', 'experimental']},
         resultTypes: ['violations']})
   .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.map(n => n.target.join(' ') + (n.failureSummary ? ' :: ' +
               n.failureSummary.split('\\n').slice(1, 2).join('').trim() : ''))}))))
   .catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));
"""


@pytest.fixture
def dash_br(shared_br):
    """The worker's one Chromium (tests/conftest.py: worker_br), cleared after each test."""
    return shared_br


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


def _load(br, url: str, charts: int = 0) -> None:
    """Load a Dash page, wait until its charts are drawn, then until they have settled at the current width."""
    br.driver.get(url)
    until(lambda: br.driver.execute_script(_CHARTS_DRAWN, charts), timeout=40)
    wait_settled(br)


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


class _Audit:
    """axe-core, the structure checks and (on Dash pages) the layout checks on the page the browser shows,
    collected over many pages; ``finish`` fails the test with every problem found."""

    def __init__(self, br):
        self.br, self.problems, self.layout, self.counts, self.rules = br, [], [], {}, {}

    def check(self, where: str, *, structure: bool = True) -> None:
        violations = _axe(self.br)
        for v in violations:
            self.counts[v["impact"]] = self.counts.get(v["impact"], 0) + len(v["nodes"])
            self.rules[(v["impact"], v["id"])] = self.rules.get((v["impact"], v["id"]), 0) + len(v["nodes"])
        self.problems.extend(_report(where, violations))
        if structure:
            self.problems.extend(f"{where}: {p}" for p in _structure(self.br))

    def page(self, url: str, where: str, charts: int) -> None:
        """Load a Dash page, wait for its charts to settle at the current width, then check it."""
        _load(self.br, url, charts)  # responsive charts settled to the final width before the layout is measured
        self.layout.extend(f"{where}: {p}" for p in layout_problems(self.br))
        self.check(where)

    def pages(self, base: str, pages: dict, label: str) -> None:
        """Every page of ``pages`` once at each width."""
        try:
            for width in WIDTHS:
                _width(self.br, width)
                assert self.br.driver.execute_script("return window.innerWidth;") == width
                for page, charts in pages.items():
                    self.page(base + page, f"{label}{page} at {width} px", charts)
        finally:
            _width(self.br, 1400)

    def finish(self) -> None:
        print("axe-core violations by impact (nodes):", self.counts)
        print("\n".join(f"  {n:4d} {impact} {rule}"
                        for (impact, rule), n in sorted(self.rules.items(), key=lambda r: -r[1])))
        failures = []
        if self.layout:
            failures.append(f"{len(self.layout)} layout problems:\n" + "\n".join(self.layout))
        if self.problems:
            failures.append(f"{len(self.problems)} accessibility problems:\n" + "\n".join(self.problems))
        if failures:
            pytest.fail("\n".join(failures), pytrace=False)


def test_every_page_fits_both_widths_and_has_no_serious_axe_violation_also_after_interactions(dash_br, live_server):
    """Open mode (live_server: no accounts, served on 127.0.0.1): every page, then the main interactions."""
    audit = _Audit(dash_br)
    check = audit.check
    audit.pages(live_server.url, PAGES, "open ")
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
    audit.finish()


@pytest.fixture(scope="module")
def read_only_server(tmp_path_factory, warm_models):
    """No accounts and served on every address (0.0.0.0): read-only, with the banner saying how to add an admin."""
    server = start_server(tmp_path_factory.mktemp("a11y-read-only"), host="0.0.0.0", models_from=warm_models)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def accounts_server(tmp_path_factory, warm_models):
    """One user of each role: every page needs a session."""
    tmp = tmp_path_factory.mktemp("a11y-accounts")
    shutil.copytree(warm_models, tmp / "models")
    store = AccountStore(tmp / "models")
    for role, password in ROLES.items():
        store.add_user(f"{role}-user", role, password)
    server = start_server(tmp, wait_path="/login")
    yield server
    server.stop()


def test_read_only_mode_has_no_serious_axe_violation(dash_br, read_only_server):
    audit = _Audit(dash_br)
    _load(dash_br, read_only_server.url + "/")
    assert "read-only" in dash_br.find_element("body").text  # the mode under test, not open mode
    audit.pages(read_only_server.url, ROLE_PAGES, "read-only ")
    audit.finish()


def test_the_sign_in_page_and_each_role_have_no_serious_axe_violation(dash_br, accounts_server):
    audit = _Audit(dash_br)
    driver = dash_br.driver
    for width in WIDTHS:  # the sign-in page (plain HTML: no Dash header, nav or charts)
        _width(dash_br, width)
        driver.get(accounts_server.url + "/login")
        dash_br.wait_for_element("#username", timeout=20)
        audit.layout.extend(f"/login at {width} px: {p}" for p in layout_problems(dash_br))
        audit.check(f"/login at {width} px", structure=False)
    _width(dash_br, 1400)
    for role, password in ROLES.items():
        driver.execute_cdp_cmd("Network.clearBrowserCookies", {})  # signed out
        driver.get(accounts_server.url + "/login")
        dash_br.wait_for_element("#username", timeout=20).send_keys(f"{role}-user")
        dash_br.find_element("#password").send_keys(password)
        dash_br.find_element("button[type=submit]").click()
        dash_br.wait_for_text_to_equal(f"#{ids.NAV_USER}", f"{role}-user · {role}", timeout=30)
        # An admin may do everything, as everybody may in open mode: only the header differs from open mode.
        audit.pages(accounts_server.url, {"/": ROLE_PAGES["/"]} if role == "admin" else ROLE_PAGES, f"{role} ")
    audit.finish()


def test_the_role_pages_are_the_pages_that_ask_for_a_permission():
    """ROLE_PAGES names every page module that asks for a permission: the other pages render the same in
    every mode apart from the header, which "/" shows."""
    modules = {m.stem: m.read_text(encoding="utf-8") for m in (ROOT / "dashboard" / "pages").glob("*.py")}

    def page_of(stem: str) -> str:
        """The page a module renders: its own register_page path, else that of the page module importing it."""
        path = re.search(r'register_page\([^)]*path="([^"]+)"', modules[stem], re.S)
        if path:
            return path.group(1)
        parents = [other for other, text in modules.items() if other != stem
                   and re.search(rf"from dashboard\.pages\.{stem} import|from \.{stem} import", text)]
        return page_of(parents[0]) if parents else stem

    asking = {page_of(stem) for stem, text in modules.items()
              if re.search(r"\b(may|permission|current_role)\(", text)}
    assert asking and asking <= set(ROLE_PAGES), sorted(asking - set(ROLE_PAGES))
    assert set(ROLE_PAGES) <= set(PAGES)


def test_axe_core_is_the_installed_npm_package():
    assert AXE.is_file() and Path(AXE).stat().st_size > 100_000, f"axe-core missing at {AXE} (npm ci)"
