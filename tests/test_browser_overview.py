"""Overview page in headless Chromium: loads clean, shows KPIs, charts, personas; navigation works."""
import pytest

from dashboard import ids
from tests.conftest import console_errors

pytestmark = pytest.mark.browser


def test_overview_renders_kpis_charts_and_personas(dash_br, live_server):
    dash_br.wait_for_page(url=live_server.url + "/")
    dash_br.wait_for_element(f"#{ids.OVERVIEW_SIZES} .main-svg", timeout=20)
    kpis = dash_br.find_element(f"#{ids.OVERVIEW_KPIS}").text
    assert "CUSTOMERS" in kpis.upper() and "2,2" in kpis  # ~2,2xx customers used of 2,240 read
    bars = dash_br.find_elements(f"#{ids.OVERVIEW_SIZES} .bars .point")
    assert len(bars) == 6
    cards = dash_br.find_elements(f"#{ids.OVERVIEW_PERSONAS} .persona-card")
    assert len(cards) == 6
    assert "missing_income" in dash_br.find_element(f"#{ids.OVERVIEW_SOURCE}").text
    status = dash_br.find_element(f"#{ids.NAV_STATUS}").text
    assert "v0001" in status and "synthetic_customers.tsv" in status
    assert console_errors(dash_br) == []


def test_persona_link_opens_profiles_page(dash_br, live_server):
    dash_br.wait_for_page(url=live_server.url + "/")
    link = dash_br.wait_for_element(f"#{ids.OVERVIEW_PERSONAS} a[href='/profiles?segment=2']", timeout=20)
    link.click()
    dash_br.wait_for_element(f"#{ids.PROFILES_SEGMENT}", timeout=20)
    assert dash_br.driver.current_url.endswith("/profiles?segment=2")
    assert console_errors(dash_br) == []
