"""Overview page in headless Chromium: loads clean, shows KPIs, charts, personas; navigation works."""
import pytest

from core.versions.pipeline import prepare
from core.versions.registry import Registry
from dashboard import ids
from tests.conftest import SAMPLE, console_errors

pytestmark = pytest.mark.browser


@pytest.fixture
def dash_br(shared_br):
    """One Chromium for the worker's browser tests (tests/conftest.py: worker_br), cleared after each test."""
    return shared_br


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
    # The cards are taller now that they carry numbers: bring the link into view first.
    dash_br.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", link)
    link.click()
    dash_br.wait_for_element(f"#{ids.PROFILES_SEGMENT}", timeout=20)
    assert dash_br.driver.current_url.endswith("/profiles?segment=2")
    assert console_errors(dash_br) == []


def test_overview_numbers_for_managers(dash_br, live_server):
    """Persona cards carry the segment's numbers, the share chart is named, the demo data says so,
    and the KPIs speak of spend, not silhouettes."""
    model, meta = Registry(live_server.models_dir).load()
    names = meta["segment_names"]
    frame = prepare(SAMPLE).frame
    frame = frame.assign(segment=model.predict(frame))
    by = frame.groupby("segment")
    spend_share = by["Total_Spending"].sum() / frame["Total_Spending"].sum()
    top = int(spend_share.idxmax())

    dash_br.wait_for_page(url=live_server.url + "/")
    dash_br.wait_for_element(f"#{ids.OVERVIEW_SPEND_SHARE} .main-svg", timeout=20)
    assert "synthetic sample" in dash_br.find_element(f"#{ids.OVERVIEW_DEMO_NOTE}").text
    kpis = dash_br.find_element(f"#{ids.OVERVIEW_KPIS}").text
    assert "silhouette" not in kpis.lower()
    top_kpi = dash_br.find_element(f"#{ids.OVERVIEW_TOP_SHARE}").text
    assert f"{spend_share[top]:.0%}" in top_kpi and names[top] in top_kpi
    assert f"{frame['Total_Spending'].sum() / len(frame):,.0f}" in kpis  # spend per customer

    cards = dash_br.find_elements(f"#{ids.OVERVIEW_PERSONAS} .persona-card")
    for seg, card in enumerate(cards):
        text = card.text
        assert names[seg] in text
        assert f"{by['Total_Spending'].mean()[seg]:,.0f}" in text
        assert f"{by['Income'].mean()[seg]:,.0f}" in text
        assert f"{by['Response'].mean()[seg]:.0%}" in text
        assert f"{spend_share[seg]:.0%}" in text

    # The share chart names the segments under their bars (no "Segment 3" ticks).
    ticks = " ".join(t.text for t in dash_br.find_elements(f"#{ids.OVERVIEW_SPEND_SHARE} .xtick text"))
    assert names[0].split()[0] in ticks and "Segment 0" not in ticks
    assert console_errors(dash_br) == []


def test_plotly_is_loaded_once_with_the_page(dash_br, live_server):
    """Issue 29: the deferred plotly.js serves the charts; dcc.Graph does not fetch a second copy."""
    dash_br.wait_for_page(url=live_server.url + "/")
    dash_br.wait_for_element(f"#{ids.OVERVIEW_SPEND_SHARE} .main-svg", timeout=20)
    assert dash_br.driver.execute_script("return typeof window.Plotly.react") == "function"
    names = dash_br.driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name).filter(n => /plotly[^/]*\\.js/.test(n)"
        " && !/segmentlens-plotly/.test(n));")
    assert len(names) == 1 and "/_dash-component-suites/plotly/package_data/plotly.v" in names[0], names
    assert console_errors(dash_br) == []
