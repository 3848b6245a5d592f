"""Issue 30 in headless Chromium: a version's data in its own terms.

On the CDNOW order log (skipped when absent): typing 3 orders and 120 in spend on /predict gives the
segment and confidence ``POST /api/v1/predict`` gives for the same customer in the same units; no field,
range or label on /predict, /profiles, /compare or /explorer is in log units; no raw-fields section. On a
generated customer table with columns named like roles, trained by the CLI with ``--features
visits,income``: every page shows those names and the API schema asks for them.
"""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from dash.testing.wait import until
from selenium.webdriver.common.keys import Keys

from dashboard import ids
from tests.conftest import console_errors, start_server
from tests.test_own_terms_names import own_table

pytestmark = pytest.mark.browser

CDNOW = Path("../shared/data/cdnow_transactions.txt")
_WAIT = 60
_LOG_WORDS = ("log scale)", "(log", "Frequency_log", "Monetary_log")
# Text a page's person reads, SVG chart labels included (innerText skips SVG); the rule's SQL/pandas query
# (<pre>) names the clustered column on purpose: it runs on the model's table.
_TEXT = ("const page = (document.querySelector('#_pages_content') || document.body).cloneNode(true);"
         "page.querySelectorAll('pre').forEach(e => e.remove()); return page.textContent;")


@pytest.fixture
def dash_br(shared_br):
    """One Chromium for the worker's browser tests (tests/conftest.py: worker_br), cleared after each test."""
    return shared_br


@pytest.fixture(scope="module")
def cdnow_server(tmp_path_factory, cdnow_trained_models):
    """The app on a copy of the registry trained once on the CDNOW log with the defaults (tests/conftest.py)."""
    tmp = tmp_path_factory.mktemp("cdnow-terms-browser")
    server = start_server(tmp, data=CDNOW.resolve(), models_from=cdnow_trained_models)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def own_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("own-terms-browser")
    data = own_table(tmp)
    proc = subprocess.run([sys.executable, "-m", "core", "train", "--data", str(data), "--models",
                           str(tmp / "models"), "--k", "3", "--features", "visits,income", "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    server = start_server(tmp, data=data)
    yield server
    server.stop()


def _field(dash_br, name: str):
    key = json.dumps({"field": name, "type": ids.PREDICT_FIELD}, separators=(",", ":"))
    return dash_br.find_element('[id="' + key.replace('"', '\\"') + '"]')


def _type(element, text: str) -> None:
    element.send_keys(Keys.CONTROL, "a")
    element.send_keys(Keys.BACKSPACE)
    element.send_keys(text)


def _api(server, path: str, body=None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.url + path, data=data, method="POST" if body is not None else "GET",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())


def _page_text(dash_br, server, path: str, ready: str) -> str:
    dash_br.driver.get(server.url + path)
    dash_br.wait_for_element(ready, timeout=_WAIT)
    until(lambda: dash_br.driver.execute_script("return !document.querySelector('._dash-loading');"), timeout=_WAIT)
    return dash_br.driver.execute_script(_TEXT)


def test_predict_in_orders_and_money_answers_as_the_api(dash_br, cdnow_server):
    dash_br.wait_for_page(url=cdnow_server.url + "/predict")
    dash_br.wait_for_element(f"#{ids.PREDICT_SEGMENT_NAME}", timeout=_WAIT)
    labels = [e.text for e in dash_br.find_elements("label.form-label, label.small")]
    assert "Orders" in labels and "Total spend" in labels
    assert not [label for label in labels if "log" in label.lower()], labels
    # The typical ranges under the fields are in orders and money (CDNOW: 1-3 orders, 1 to 217 seen).
    hints = [e.text for e in dash_br.find_elements(".form-text")]
    assert "typical (25–75 %): 1–3 · seen 1–217" in hints, hints
    form = dash_br.driver.find_element("xpath", "//h2[text()='Hypothetical customer']/..")
    assert "From raw fields" not in form.text and "birth year" not in form.text
    assert "Orders and Total spend are clustered on a log scale" in form.text

    customer = {"Recency": _field(dash_br, "Recency").get_attribute("value"),
                "Tenure": _field(dash_br, "Tenure").get_attribute("value"), "Frequency": "3", "Monetary": "120"}
    _type(_field(dash_br, "Frequency"), "3")
    _type(_field(dash_br, "Monetary"), "120")
    answer = _api(cdnow_server, "/api/v1/predict", {k: float(v) for k, v in customer.items()})["predictions"][0]
    dash_br.wait_for_text_to_equal(f"#{ids.PREDICT_CONFIDENCE}", f"{answer['confidence']:.2f}", timeout=_WAIT)
    dash_br.wait_for_contains_text(f"#{ids.PREDICT_SEGMENT_NAME}", answer["segment_name"], timeout=_WAIT)
    # "What would change the segment" speaks orders: the row is "Orders", now 3.
    rows = [r.text for r in dash_br.find_elements(f"#{ids.PREDICT_FLIPS} tbody tr")]
    assert any(r.startswith("Orders 3 ") for r in rows), rows
    assert any(r.startswith("Total spend 120 ") for r in rows), rows
    assert console_errors(dash_br) == []


def test_no_page_is_labelled_or_valued_in_log_units(dash_br, cdnow_server):
    pages = {"/predict": f"#{ids.PREDICT_FLIPS} table", "/profiles": f"#{ids.PROFILES_HEATMAP} .heatmaplayer",
             "/compare": f"#{ids.COMPARE_DIFF} .barlayer", "/explorer": f"#{ids.EXPLORER_MAP} .scatterlayer"}
    for path, ready in pages.items():
        text = _page_text(dash_br, cdnow_server, path, ready)
        for word in _LOG_WORDS:
            assert word not in text, f"{path} shows {word!r}"
    # The explorer's feature arrows are named in units, the scale said once in the page's words.
    assert "clustered on a log scale" in text and "Orders" in text


def test_a_customer_table_keeps_its_names_on_every_page(dash_br, own_server):
    pages = {"/predict": f"#{ids.PREDICT_FLIPS} table", "/profiles": f"#{ids.PROFILES_HEATMAP} .heatmaplayer",
             "/compare": f"#{ids.COMPARE_DIFF} .barlayer", "/explorer": f"#{ids.EXPLORER_MAP} .scatterlayer"}
    for path, ready in pages.items():
        text = _page_text(dash_br, own_server, path, ready)
        assert "visits" in text and "income" in text, path
        for canonical in ("NumWebVisitsMonth", "Web visits / month", "Yearly household income"):
            assert canonical not in text, f"{path} shows {canonical!r}"
    dash_br.driver.get(own_server.url + "/predict")
    dash_br.wait_for_element(f"#{ids.PREDICT_SEGMENT_NAME}", timeout=_WAIT)
    _type(_field(dash_br, "visits"), "6")
    _type(_field(dash_br, "income"), "55000")
    answer = _api(own_server, "/api/v1/predict", {"visits": 6, "income": 55000})["predictions"][0]
    dash_br.wait_for_text_to_equal(f"#{ids.PREDICT_CONFIDENCE}", f"{answer['confidence']:.2f}", timeout=_WAIT)
    schema = _api(own_server, "/api/v1/openapi.json")
    assert '"visits"' in json.dumps(schema) and "NumWebVisitsMonth" not in json.dumps(schema)
