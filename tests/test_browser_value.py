"""The value page (/value) and the Overview's value line in headless Chromium, on the CDNOW log."""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from dashboard import ids
from tests.conftest import ROOT, console_errors, start_server

pytestmark = pytest.mark.browser

CDNOW = ROOT.parent / "shared" / "data" / "cdnow_transactions.txt"
_WAIT = 150  # the first visit fits both models (twice: values and the calibration check)


@pytest.fixture
def dash_br(shared_br):
    """One Chromium for the worker's browser tests (tests/conftest.py: worker_br), cleared after each test."""
    return shared_br


@pytest.fixture(scope="module")
def cdnow_server(tmp_path_factory, cdnow_cli_models):
    """The app on a copy of the registry `python -m core train --n-init 2` made once on CDNOW (tests/conftest.py)."""
    tmp = tmp_path_factory.mktemp("value-browser")
    server = start_server(tmp, data=CDNOW, models_from=cdnow_cli_models, wait_path="/api/v1/health")
    yield server
    server.stop()


def _type(br, cid: str, value) -> None:
    field = br.find_element(f"#{cid}")
    br.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", field)
    field.click()
    field.send_keys("\ue009a")  # Ctrl+A
    field.send_keys("\ue017")  # Delete
    field.send_keys(str(value), "\ue004")  # Tab


def _click(br, cid: str) -> None:
    button = br.find_element(f"#{cid}")
    br.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", button)
    button.click()


def test_value_page_on_cdnow(dash_br, cdnow_server, tmp_path):
    dash_br.wait_for_page(url=cdnow_server.url + "/value")
    dash_br.wait_for_element(f"#{ids.VALUE_SEGMENTS_GRAPH} .main-svg", timeout=_WAIT)
    kpis = dash_br.find_element(f"#{ids.VALUE_KPIS}").text
    assert "23,570" in kpis and "95%:" in kpis and "nan" not in kpis.lower()
    assert len(dash_br.find_elements(f"#{ids.VALUE_SEGMENTS_TABLE} table tbody tr")) == 6
    dash_br.wait_for_element(f"#{ids.VALUE_SEGMENTS_GRAPH} g.errorbar", timeout=_WAIT)
    dash_br.wait_for_element(f"#{ids.VALUE_ALIVE_GRAPH} .main-svg", timeout=_WAIT)
    assert "holdout" in dash_br.find_element(f"#{ids.VALUE_CHECK_SENTENCE}").text
    assert dash_br.find_elements(f"#{ids.VALUE_CHECK_WEEKLY_GRAPH} .scatterlayer .trace")
    assert len(dash_br.find_elements(f"#{ids.VALUE_SLIPPING_TABLE} table tbody tr")) == 25
    assert "r = " in dash_br.find_element(f"#{ids.VALUE_PARAMS}").text
    dash_br.driver.save_screenshot(str(tmp_path / "value.png"))
    # the list downloads as CSV
    _click(dash_br, ids.VALUE_DOWNLOAD_BTN)
    folder = dash_br.download_path
    deadline = time.monotonic() + 30
    found = []
    while time.monotonic() < deadline and not found:
        found = list(Path(folder).glob("valuable-but-slipping-*.csv"))
        time.sleep(0.3)
    assert found
    frame = pd.read_csv(found[0])
    assert {"ID", "total_value", "p_alive", "clv"} <= set(frame.columns) and (frame["p_alive"] < 0.5).all()
    # a calibration end outside the data: one line, the stored results stay
    _type(dash_br, ids.VALUE_CAL_END, "2030-01-01")
    _click(dash_br, ids.VALUE_COMPUTE_BTN)
    dash_br.wait_for_contains_text(f"#{ids.VALUE_STATUS}", "outside the data's dates", timeout=_WAIT)
    assert len(dash_br.find_elements(f"#{ids.VALUE_SEGMENTS_TABLE} table tbody tr")) == 6
    # the paper's calibration period: fitted on 39 weeks, checked on the next 39
    _type(dash_br, ids.VALUE_CAL_END, "1997-09-30")
    _click(dash_br, ids.VALUE_COMPUTE_BTN)
    dash_br.wait_for_contains_text(f"#{ids.VALUE_STATUS}", "Recomputed", timeout=_WAIT)
    dash_br.wait_for_contains_text(f"#{ids.VALUE_CHECK_SENTENCE}", "after 1997-09-30", timeout=_WAIT)
    assert "fitted on purchases up to 1997-09-30" in dash_br.find_element(f"#{ids.VALUE_PARAMS}").text
    dash_br.driver.save_screenshot(str(tmp_path / "value-calibrated.png"))
    assert console_errors(dash_br) == []


def test_overview_cards_show_value(dash_br, cdnow_server):
    dash_br.wait_for_page(url=cdnow_server.url + "/value")
    dash_br.wait_for_element(f"#{ids.VALUE_SEGMENTS_GRAPH} .main-svg", timeout=_WAIT)
    dash_br.wait_for_page(url=cdnow_server.url + "/")
    dash_br.wait_for_element(f"#{ids.OVERVIEW_PERSONAS}", timeout=_WAIT)
    text = dash_br.find_element(f"#{ids.OVERVIEW_PERSONAS}").text
    assert text.count("Mean CLV") == 6 and text.count("Share of customer value") == 6


def test_campaigns_win_back_audience(dash_br, cdnow_server):
    dash_br.wait_for_page(url=cdnow_server.url + "/value")
    dash_br.wait_for_element(f"#{ids.VALUE_SEGMENTS_GRAPH} .main-svg", timeout=_WAIT)
    dash_br.wait_for_page(url=cdnow_server.url + "/campaigns")
    dash_br.wait_for_element(f"#{ids.CAMPAIGNS_VALUE_BTN}", timeout=_WAIT)
    _click(dash_br, ids.CAMPAIGNS_VALUE_BTN)  # win-back, probability alive below 0.5, 10% holdout
    dash_br.wait_for_contains_text(f"#{ids.CAMPAIGNS_VALUE_MSG}", "held out", timeout=_WAIT)
    deadline = time.monotonic() + 30
    found = []
    while time.monotonic() < deadline and not found:
        found = list(Path(dash_br.download_path).glob("value-audience-winback*.csv"))
        time.sleep(0.3)
    assert found
    audience = pd.read_csv(found[0])
    assert list(audience.columns) == ["ID", "segment", "group", "p_alive", "clv", "total_value"]
    assert (audience["p_alive"] < 0.5).all() and set(audience["group"]) == {"target", "holdout"}
    assert (audience["group"] == "holdout").sum() == round(0.1 * len(audience))
    # highest CLV needs a number: one line says so
    dash_br.find_element(f"#{ids.CAMPAIGNS_VALUE_TARGET} input[value='clv']").click()
    _click(dash_br, ids.CAMPAIGNS_VALUE_BTN)
    dash_br.wait_for_contains_text(f"#{ids.CAMPAIGNS_VALUE_MSG}", "top N", timeout=_WAIT)
    assert console_errors(dash_br) == []


def test_customer_table_gets_a_note(dash_br, live_server):
    dash_br.wait_for_page(url=live_server.url + "/value")
    dash_br.wait_for_contains_text(f"#{ids.VALUE_NOTE}", "value needs a transaction log (customer, date, amount)",
                                   timeout=_WAIT)
    assert not dash_br.find_element(f"#{ids.VALUE_COMPUTE_BTN}").is_enabled()
    assert console_errors(dash_br) == []
