"""Explorer and diagnostics in headless Chromium: load clean, draw, and react to filters, selection and sweeps."""
import re

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.keys import Keys

from dashboard import ids
from tests.conftest import SAMPLE, console_errors

pytestmark = pytest.mark.browser


@pytest.fixture
def dash_br(shared_br):
    """One Chromium for the worker's browser tests (tests/conftest.py: worker_br), cleared after each test."""
    return shared_br


def _count(dash_br) -> tuple[int, int]:
    """(shown, of) from the explorer's 'Showing N of M customers' line."""
    text = dash_br.find_element(f"#{ids.EXPLORER_COUNT}").text
    match = re.match(r"Showing ([\d,]+) of ([\d,]+) customers", text)
    assert match, text
    return tuple(int(g.replace(",", "")) for g in match.groups())


def _figure(dash_br, graph_id: str) -> dict:
    """The figure Plotly is showing in a dcc.Graph (data lengths and layout), read in the page."""
    return dash_br.driver.execute_script(
        "const g = document.querySelector(arguments[0] + ' .js-plotly-plot');"
        "return {layout: g.layout, traces: g._fullData.map(t => ({name: t.name, type: t.type, n: t._length}))};",
        f"#{graph_id}")


def test_explorer_map_filter_and_selection(dash_br, live_server):
    from core.versions.pipeline import prepare

    frame = prepare(SAMPLE).frame
    dash_br.wait_for_page(url=live_server.url + "/explorer")
    dash_br.wait_for_element(f"#{ids.EXPLORER_MAP} .main-svg", timeout=30)
    dash_br.wait_for_contains_text(f"#{ids.EXPLORER_COUNT}", "Showing", timeout=30)
    assert _count(dash_br) == (len(frame), len(frame))
    fig = _figure(dash_br, ids.EXPLORER_MAP)
    assert [t["type"] for t in fig["traces"]] == ["scattergl"] * 6 + ["scatter"]
    assert sum(t["n"] for t in fig["traces"][:6]) == len(frame)
    assert re.fullmatch(r"PC1 \(\d+% of variance\)", fig["layout"]["xaxis"]["title"]["text"])

    dash_br.select_dcc_dropdown(f"#{ids.EXPLORER_EDUCATION}", "PhD")
    phd = int((frame["Education"] == "PhD").sum())
    dash_br.wait_for_contains_text(f"#{ids.EXPLORER_COUNT}", f"Showing {phd:,} of {phd:,}", timeout=20)
    assert "matching the filters" in dash_br.find_element(f"#{ids.EXPLORER_COUNT}").text
    assert sum(t["n"] for t in _figure(dash_br, ids.EXPLORER_MAP)["traces"][:-1]) == phd

    # A lasso around the middle of the map selects customers and enables the download.
    ActionChains(dash_br.driver).send_keys(Keys.ESCAPE).perform()  # close the dropdown's menu over the map
    dash_br.find_element(f"#{ids.EXPLORER_COUNT}").click()
    assert dash_br.find_element(f"#{ids.EXPLORER_DOWNLOAD_BTN}").get_attribute("disabled")
    for attempt in range(3):
        # The WebGL map may still be redrawing after the filter when the first lasso lands; draw again then.
        plot = dash_br.find_element(f"#{ids.EXPLORER_MAP} .nsewdrag")
        dash_br.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", plot)
        w, h = plot.size["width"], plot.size["height"]
        chain = ActionChains(dash_br.driver).move_to_element(plot).move_by_offset(-w // 4, -h // 4).click_and_hold()
        for dx, dy in ((w // 2, 0), (0, h // 2), (-w // 2, 0), (0, -h // 2 + 2)):
            for _ in range(5):  # plotly draws a lasso from many small mouse moves
                chain = chain.move_by_offset(dx // 5, dy // 5)
        chain.release().perform()
        try:
            dash_br.wait_for_contains_text(f"#{ids.EXPLORER_SELECTION}", "customers selected", timeout=8)
            break
        except TimeoutException:
            if attempt == 2:
                raise
    summary = dash_br.find_element(f"#{ids.EXPLORER_SELECTION}").text
    selected = int(summary.split("customers selected")[0].strip().replace(",", ""))
    assert 0 < selected < phd
    assert "Mean income" in summary and "Mean age" in summary
    assert not dash_br.find_element(f"#{ids.EXPLORER_DOWNLOAD_BTN}").get_attribute("disabled")
    assert console_errors(dash_br) == []


def _set_range_input(dash_br, index: int, value: int) -> None:
    """Type a value into one of the k range slider's number boxes."""
    box = dash_br.find_elements(f"#{ids.DIAG_K_RANGE} input")[index]
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(str(value), Keys.TAB)


def test_diagnostics_shows_default_sweep_and_reruns_a_new_range(dash_br, live_server):
    dash_br.wait_for_page(url=live_server.url + "/diagnostics")
    dash_br.wait_for_element(f"#{ids.DIAG_METRICS} .main-svg", timeout=30)
    dash_br.wait_for_element(f"#{ids.DIAG_SILHOUETTE} .main-svg", timeout=30)
    # The default range is there without a click.
    dash_br.wait_for_contains_text(f"#{ids.DIAG_RECOMMENDATION}", "Recommended k=", timeout=30)
    assert len(dash_br.find_elements(f"#{ids.DIAG_TABLE} tbody tr")) == 9
    assert _figure(dash_br, ids.DIAG_METRICS)["layout"]["xaxis"]["range"] == [1.5, 10.5]
    assert "k=6 is the current business choice" in dash_br.find_element(f"#{ids.DIAG_RECOMMENDATION}").text
    assert len(_figure(dash_br, ids.DIAG_SILHOUETTE)["traces"]) == 6

    _set_range_input(dash_br, 1, 7)
    _set_range_input(dash_br, 0, 4)
    dash_br.find_element(f"#{ids.DIAG_RUN}").click()
    dash_br.wait_for_contains_text(f"#{ids.DIAG_STATUS}", "Showing k=4 to 7", timeout=60)
    rows = dash_br.find_elements(f"#{ids.DIAG_TABLE} tbody tr")
    assert [r.find_element("css selector", "td").text for r in rows] == ["4", "5", "6", "7"]
    assert _figure(dash_br, ids.DIAG_METRICS)["layout"]["xaxis"]["range"] == [3.5, 7.5]
    bar = dash_br.find_element(f"#{ids.DIAG_PROGRESS} .progress-bar")
    dash_br.wait_for_text_to_equal(f"#{ids.DIAG_PROGRESS} .progress-bar", "4/4 k fitted", timeout=20)
    assert bar.get_attribute("aria-valuenow") == "4" and bar.get_attribute("aria-valuemax") == "4"
    assert not dash_br.find_element(f"#{ids.DIAG_RUN}").get_attribute("disabled")
    assert console_errors(dash_br) == []
