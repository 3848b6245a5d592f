"""Explore data (/eda) in headless Chromium: every chart, the cut-offs, the paginated rule rows, phone width."""
import re
import time

import pytest
from dash.testing.wait import until

from dashboard import ids
from tests.conftest import console_errors

pytestmark = pytest.mark.browser


@pytest.fixture
def dash_br(shared_br):
    """One Chromium for the worker's browser tests (tests/conftest.py: worker_br), cleared after each test."""
    return shared_br

_WAIT = 30
_RAW = re.compile(r"\b(Mnt[A-Z]\w+|Num[A-Z]\w+|Year_Birth|Total_\w+|Customer_since|Kidhome|Teenhome|AcceptedCmp\d)\b")


def _pick(dash_br, dropdown_id: str, label: str) -> None:
    """Choose an option as a person would (open, click)."""
    dropdown = dash_br.find_element(f"#{dropdown_id}")
    dash_br.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", dropdown)
    dropdown.click()
    dash_br.wait_for_element(".dash-dropdown-options")
    option = next(o for o in dash_br.find_elements(".dash-dropdown-options .dash-dropdown-option")
                  if o.text == label)
    dash_br.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", option)
    option.click()


def _graph_text(dash_br, graph_id: str) -> str:
    return dash_br.driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent).join(' ');",
        f"#{graph_id} .main-svg")


def test_eda_page_shows_distributions_cutoffs_correlations_and_rule_rows(dash_br, live_server):
    dash_br.wait_for_page(url=live_server.url + "/eda")
    for graph in (ids.EDA_DISTRIBUTION, ids.EDA_MISSING, ids.EDA_CORRELATION, ids.EDA_ENROLMENT):
        dash_br.wait_for_element(f"#{graph} .main-svg", timeout=_WAIT)
    facts = dash_br.find_element(f"#{ids.EDA_SUMMARY}").text
    assert "synthetic_customers.tsv" in facts and "2,240 rows read" in facts and "2,212 used" in facts
    until(lambda: "far-out fence" in _graph_text(dash_br, ids.EDA_DISTRIBUTION), timeout=_WAIT)
    assert "Tukey" in dash_br.find_element(f"#{ids.EDA_OUTLIERS}").text
    assert "Yearly household income" in _graph_text(dash_br, ids.EDA_MISSING)
    assert dash_br.find_elements(f"#{ids.EDA_CORRELATION} .heatmaplayer")
    for graph in (ids.EDA_DISTRIBUTION, ids.EDA_MISSING, ids.EDA_CORRELATION, ids.EDA_ENROLMENT):
        assert not _RAW.search(_graph_text(dash_br, graph)), graph

    # Another column: the birth-year bounds of the implausible-birth-year rule.
    _pick(dash_br, ids.EDA_COLUMN, "Year of birth")
    until(lambda: "born before 1926" in _graph_text(dash_br, ids.EDA_DISTRIBUTION), timeout=_WAIT)
    assert "Year of birth" in dash_br.find_element(f"#{ids.EDA_OUTLIERS}").text

    # The rules' rows: 24 + 3 + 1 dropped and 7 changed on the sample, 10 per page, IDs and lines only.
    rules = dash_br.find_element(f"#{ids.EDA_RULES}")
    assert "Income empty" in rules.text and "Extreme income" in rules.text
    table = f"#{ids.EDA_RULE_ROWS}"
    headers = [h.text for h in dash_br.find_elements(f"{table} th")]
    assert headers == ["Rule", "What happened", "Customer ID", "File line"]
    assert len(dash_br.find_elements(f"{table} tbody tr")) == 10
    first_page = dash_br.find_element(f"{table} tbody").text
    assert "Income empty" in first_page
    last = dash_br.find_elements(f"#{ids.EDA_ROWS_PAGE} .page-link")[-2]  # the last page's number, before "next"
    assert last.text == "4"  # 35 rows, 10 a page
    dash_br.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", last)
    last.click()
    until(lambda: len(dash_br.find_elements(f"{table} tbody tr")) == 5, timeout=_WAIT)
    assert "Marital status tidied" in dash_br.find_element(f"{table} tbody").text

    nav = [a.text for a in dash_br.find_elements(".navbar .nav-link")]
    assert "Explore data" in nav
    assert console_errors(dash_br) == []


def test_eda_page_fits_a_phone_without_sideways_scroll(dash_br, live_server):
    dash_br.driver.set_window_size(400, 900)
    try:
        inner = dash_br.driver.execute_script("return window.innerWidth;")
        if inner != 400:  # the window frame takes some pixels: size the viewport itself
            dash_br.driver.set_window_size(800 - inner, 900)
        dash_br.wait_for_page(url=live_server.url + "/eda")
        for graph in (ids.EDA_DISTRIBUTION, ids.EDA_CORRELATION, ids.EDA_ENROLMENT):
            dash_br.wait_for_element(f"#{graph} .main-svg", timeout=_WAIT)
        dash_br.wait_for_element(f"#{ids.EDA_RULE_ROWS} tbody td", timeout=_WAIT)
        time.sleep(0.8)  # responsive charts settle to the final width
        scroll, width = dash_br.driver.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth];")
        assert scroll <= width
        assert console_errors(dash_br) == []
    finally:
        dash_br.driver.set_window_size(1400, 1000)
