"""The dashboard on a transaction log (CDNOW): every page renders without an error alert; the API scores RFM.

One server (trained on ../shared/data/cdnow_transactions.txt through its suggested mapping) and one browser
visit every page in turn. Skips when the file is absent. The same page loop runs on a transaction log
generated in the test, so CI checks the pages on RFM customers without the real file.
"""
from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dash.testing.wait import until

from dashboard import ids
from tests.conftest import start_server
from tests.helpers import transaction_log

pytestmark = pytest.mark.browser

CDNOW = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cdnow_transactions.txt"
PAGES = ["/", "/profiles", "/compare", "/explorer", "/diagnostics", "/stability", "/predict", "/data", "/eda",
         "/campaigns", "/monitoring"]
_RENDERED = """
const content = document.querySelector('#_pages_content');
return content !== null && content.innerText.trim().length > 0
    && document.querySelectorAll('[data-dash-is-loading="true"]').length === 0;
"""


@pytest.fixture(scope="module")
def cdnow_server(tmp_path_factory):
    if not CDNOW.is_file():
        pytest.skip(f"CDNOW log not present at {CDNOW}")
    from core.versions.pipeline import train
    from core.versions.registry import Registry

    tmp = tmp_path_factory.mktemp("cdnow-server")
    train(CDNOW, k=5, registry=Registry(tmp / "models"))
    server = start_server(tmp, data=CDNOW)
    server.log = tmp / "server.log"
    yield server
    server.stop()


@pytest.fixture(scope="module")
def log_server(tmp_path_factory):
    """A server on a model trained on a generated transaction log (no real file needed)."""
    from core.versions.pipeline import train
    from core.versions.registry import Registry

    tmp = tmp_path_factory.mktemp("log-server")
    data = transaction_log(tmp)  # customer date amount
    train(data, k=3, n_init=2, registry=Registry(tmp / "models"))
    server = start_server(tmp, data=data)
    server.log = tmp / "server.log"
    yield server
    server.stop()


# console.error calls (Dash's "ID not found in layout" among them) kept for the test to read.
_CONSOLE = ("window.__errors = []; const _error = console.error; console.error = function(...args) {"
            " try { window.__errors.push(args.map(a => typeof a === 'string' ? a : JSON.stringify(a))"
            ".join(' ').slice(0, 300)); } catch (e) {} _error.apply(console, args); };")


def _page_problems(br, server) -> list[str]:
    """Every page in turn: rendered, no error alert, no traceback, no console error, no 500 in the log."""
    br.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _CONSOLE})
    problems = []
    for page in PAGES:
        br.driver.get(server.url + page)
        try:
            until(lambda: br.driver.execute_script(_RENDERED), timeout=60)
        except Exception:
            problems.append(f"{page}: did not render within 60 s")
            continue
        time.sleep(0.5)
        alerts = br.driver.execute_script(
            "return Array.from(document.querySelectorAll('.alert-danger, .dash-fe-error__title'))"
            ".map(e => e.innerText.slice(0, 160));")
        if alerts:
            problems.append(f"{page}: error shown: {alerts[:2]}")
        text = br.driver.execute_script("return document.body.innerText;")
        if "Traceback" in text:
            problems.append(f"{page}: a traceback is shown")
        if "is built for customer files with a" in text:
            problems.append(f"{page}: needed the last-resort note of the page guard")
        errors = br.driver.execute_script("return window.__errors || [];")
        if errors:
            problems.append(f"{page}: console errors: {errors[:2]}")
    log = server.log.read_text()
    if '" 500 ' in log or "Traceback" in log:
        problems.append("the server logged a 500 or a traceback:\n" + log[-1500:])
    return problems


def test_every_page_renders_on_a_generated_transaction_log(dash_br, log_server):
    problems = _page_problems(dash_br, log_server)
    assert problems == [], "\n".join(problems)


@pytest.mark.real_data
def test_every_page_renders_on_a_transaction_log(dash_br, cdnow_server):
    problems = _page_problems(dash_br, cdnow_server)
    assert problems == [], "\n".join(problems)


@pytest.mark.real_data
def test_api_scores_and_describes_rfm_fields(cdnow_server):
    with urllib.request.urlopen(cdnow_server.url + "/api/v1/openapi.json", timeout=30) as resp:
        doc = json.load(resp)
    customer = doc["components"]["schemas"]["Customer"]
    assert {"Recency", "Tenure", "Monetary"} <= set(customer["properties"])
    body = json.dumps({"Recency": 30, "Frequency": 4, "Monetary": 120.5, "Tenure": 400}).encode()
    request = urllib.request.Request(cdnow_server.url + "/api/v1/predict", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        answer = json.load(resp)
    prediction = answer["predictions"][0] if "predictions" in answer else answer
    assert 0 <= prediction["segment"] < 5 and 0 <= prediction["confidence"] <= 1


# ------------------------------------------------------------------------------ /data: the mapping step
@pytest.fixture(scope="module")
def data_server(tmp_path_factory, warm_models):
    """A server on the sample (canonical model active) of this module's own: uploads and retrains stay here."""
    server = start_server(tmp_path_factory.mktemp("own-data"), models_from=warm_models)
    yield server
    server.stop()


def _log(folder: Path) -> Path:
    """A shop export: orders of 200 customers under other column names, comma-separated."""
    rng = np.random.default_rng(5)
    n = 1200
    frame = pd.DataFrame({"order_no": np.arange(n) // 2, "shopper": rng.integers(1, 201, n),
                          "order_date": (pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n),
                                                                                      unit="D")).strftime("%Y-%m-%d"),
                          "paid_eur": rng.gamma(2.0, 20.0, n).round(2)})
    path = folder / "orders.csv"
    path.write_text(frame.to_csv(index=False))
    return path


def _click(br, element) -> None:
    """Scroll an element to the middle of the window and click it (a sticky header may cover it otherwise)."""
    br.driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", element)


def _wait_text(br, selector: str, text: str, timeout: float = 60) -> str:
    until(lambda: text in br.find_element(selector).text, timeout=timeout)
    return br.find_element(selector).text


def test_data_page_confirms_the_mapping_then_retrains_with_it(dash_br, data_server, tmp_path):
    from core.versions.registry import Registry

    dash_br.wait_for_page(url=data_server.url + "/data")
    upload = f"#{ids.DATA_UPLOAD} input[type=file]"
    people = tmp_path / "people.csv"
    people.write_text("name,city\nAnn,Oslo\nBob,Rome\nCy,Lima\n")
    dash_br.find_element(upload).send_keys(str(people))
    text = _wait_text(dash_br, f"#{ids.DATA_UPLOAD_REPORT}", "cannot be used")
    assert "no column holds a number to segment on" in text
    dash_br.find_element(upload).send_keys(str(_log(tmp_path)))
    text = _wait_text(dash_br, f"#{ids.DATA_UPLOAD_REPORT}", "Column mapping: confirm or change")
    assert "transaction log" in text and "1,200 transactions of 200 customers" in text
    roles = {e.get_attribute("id"): e.text for e in dash_br.find_elements(f"[id*='{ids.DATA_MAP_ROLE}']")}
    shown = " ".join(roles.values())
    assert "customer id" in shown and "amount" in shown and "order id" in shown and "date" in shown
    _click(dash_br, dash_br.find_element(f"#{ids.DATA_MAP_APPLY}"))
    time.sleep(1.5)
    assert dash_br.find_element(f"#{ids.DATA_MAP_MSG}").text == ""  # the suggested mapping checks out
    features = _wait_text(dash_br, f"#{ids.DATA_FEATURES}", "Days since last purchase", timeout=20)
    assert "Total spend" in features
    retrain = dash_br.find_element(f"#{ids.DATA_RETRAIN_BTN}")
    until(lambda: retrain.get_attribute("disabled") is None, timeout=20)
    k_box = dash_br.find_element(f"#{ids.DATA_K}")
    k_box.clear()
    k_box.send_keys("3")
    _click(dash_br, retrain)
    message = _wait_text(dash_br, f"#{ids.DATA_RETRAIN_MSG}", "Saved candidate", timeout=120)
    assert "Segments and RFM groups" in message
    registry = Registry(data_server.models_dir)
    candidate = [v["version"] for v in registry.versions()][-1]
    saved = registry.artifact_json(candidate, "mapping")
    assert saved["input"] == "transactions"
    assert saved["columns"] == {"order_no": "order_id", "shopper": "customer_id", "order_date": "date",
                                "paid_eur": "amount"}
    assert registry.metadata(candidate)["n_customers"] == 200
    assert registry.active_version() == "v0001"
    alerts = dash_br.driver.execute_script(
        "return Array.from(document.querySelectorAll('.dash-fe-error__title')).map(e => e.innerText);")
    assert alerts == []
