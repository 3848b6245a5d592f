"""The /monitoring page in headless Chromium: live counts and alerts, the admin's reset, a phone's width,
and a viewer who cannot reset (control disabled, crafted callback refused by the server)."""
import json
import time
import urllib.request

import pytest

from core.access.accounts import AccountStore
from dashboard import ids
from tests.conftest import console_errors, start_server

pytestmark = pytest.mark.browser


@pytest.fixture
def dash_br(shared_br):
    """One Chromium for the worker's browser tests (tests/conftest.py: worker_br), cleared after each test."""
    return shared_br

_WAIT = 40
CUSTOMER = {"Age": 52, "Income": 58_000, "Total_Spending": 640, "NumWebPurchases": 4, "NumStorePurchases": 6,
            "NumWebVisitsMonth": 5, "Recency": 41}


def _predict(server, customers):
    request = urllib.request.Request(server.url + "/api/v1/predict", data=json.dumps({"customers": customers}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=60) as resp:
        assert resp.status == 200


@pytest.fixture(scope="module")
def server(tmp_path_factory, warm_models):
    srv = start_server(tmp_path_factory.mktemp("browser-monitoring"), models_from=warm_models)
    # 80 customers far above the training incomes: Income drifts.
    _predict(srv, [dict(CUSTOMER, Income=400_000 + 1_000 * i, Age=25 + i % 50) for i in range(80)])
    yield srv
    srv.stop()


def _phone(dash_br):
    dash_br.driver.set_window_size(400, 900)
    inner = dash_br.driver.execute_script("return window.innerWidth;")
    if inner != 400:  # the window frame takes some pixels: size the viewport itself
        dash_br.driver.set_window_size(800 - inner, 900)


def test_page_shows_counts_alerts_and_charts_and_fits_a_phone(dash_br, server):
    dash_br.wait_for_page(url=server.url + "/monitoring")
    dash_br.wait_for_contains_text(f"#{ids.MONITORING_SUMMARY}", "80 predictions", timeout=_WAIT)
    assert dash_br.find_element(f"#{ids.MONITORING_SUMMARY}").text.startswith("Retrain")
    alerts = dash_br.find_element(f"#{ids.MONITORING_ALERTS}").text
    assert "Income: PSI" in alerts and "above 0.2" in alerts
    for graph in (ids.MONITORING_TRAFFIC, ids.MONITORING_SEGMENTS, ids.MONITORING_CONFIDENCE):
        dash_br.wait_for_element(f"#{graph} .main-svg", timeout=_WAIT)
    dash_br.wait_for_element(f"#{ids.MONITORING_DRIFT} .barlayer .point", timeout=_WAIT)
    assert len(dash_br.find_elements(f"#{ids.MONITORING_DRIFT} .barlayer .point")) == 7
    assert dash_br.find_elements(f"#{ids.MONITORING_TRAFFIC} .modebar-container")  # the app's graph config
    errors = console_errors(dash_br)
    try:
        _phone(dash_br)
        dash_br.wait_for_page(url=server.url + "/monitoring")
        dash_br.wait_for_element(f"#{ids.MONITORING_DRIFT} .barlayer .point", timeout=_WAIT)
        time.sleep(0.8)  # responsive charts settle to the final width
        scroll, width = dash_br.driver.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth];")
        assert scroll <= width
    finally:
        dash_br.driver.set_window_size(1400, 1000)
    assert errors == []


def test_admin_resets_the_window(dash_br, server):
    # Open mode (no accounts, loopback): the local user is an admin.
    dash_br.wait_for_page(url=server.url + "/monitoring")
    dash_br.wait_for_contains_text(f"#{ids.MONITORING_SUMMARY}", "predictions", timeout=_WAIT)
    button = dash_br.find_element(f"#{ids.MONITORING_RESET}")
    assert button.is_enabled()
    button.click()
    dash_br.wait_for_contains_text(f"#{ids.MONITORING_RESET_NOTE}", "Window reset by local", timeout=_WAIT)
    dash_br.wait_for_contains_text(f"#{ids.MONITORING_SUMMARY}", ", 0 predictions since", timeout=_WAIT)
    assert "No alert" in dash_br.find_element(f"#{ids.MONITORING_ALERTS}").text
    with urllib.request.urlopen(server.url + "/api/v1/monitoring", timeout=30) as resp:
        body = json.loads(resp.read())
    assert body["predictions"] == 0 and body["window"]["reset_by"] == "local"
    _predict(server, [CUSTOMER] * 3)  # counting goes on after a reset
    with urllib.request.urlopen(server.url + "/api/v1/monitoring", timeout=30) as resp:
        assert json.loads(resp.read())["predictions"] == 3
    assert console_errors(dash_br) == []


def test_a_viewer_cannot_reset(dash_br, tmp_path_factory, warm_models):
    tmp = tmp_path_factory.mktemp("browser-monitoring-viewer")
    AccountStore(tmp / "models").add_user("vera", "viewer", "viewer-pass-1")
    srv = start_server(tmp, wait_path="/login", models_from=warm_models)
    try:
        dash_br.driver.get(srv.url + "/login?next=/monitoring")
        dash_br.wait_for_element("#username", timeout=20).send_keys("vera")
        dash_br.find_element("#password").send_keys("viewer-pass-1")
        dash_br.find_element("button[type=submit]").click()
        dash_br.wait_for_contains_text(f"#{ids.MONITORING_SUMMARY}", "predictions", timeout=_WAIT)
        button = dash_br.find_element(f"#{ids.MONITORING_RESET}")
        assert not button.is_enabled()
        assert "admins" in dash_br.find_element(f"#{ids.PAGE_CONTAINER}").text
        # A crafted callback request with the viewer's session: refused by the server, not just the button.
        status = dash_br.driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            fetch('/_dash-update-component', {method: 'POST', headers: {'Content-Type': 'application/json'},
              body: JSON.stringify({output: '..%s.data...%s.children..',
                outputs: [{id: '%s', property: 'data'}, {id: '%s', property: 'children'}],
                inputs: [{id: '%s', property: 'n_clicks', value: 1}], changedPropIds: ['%s.n_clicks']})})
              .then(r => done(r.status)).catch(e => done(String(e)));
        """ % (ids.MONITORING_RESET_STORE, ids.MONITORING_RESET_NOTE, ids.MONITORING_RESET_STORE,
               ids.MONITORING_RESET_NOTE, ids.MONITORING_RESET, ids.MONITORING_RESET))
        assert status == 403
    finally:
        srv.stop()
