"""The /stability page in headless Chromium: default results on load, a background re-run, a drift upload."""
import pytest
from dash.testing.wait import until

from dashboard import ids
from tests.conftest import SAMPLE, console_errors

GRAPHS = (ids.STABILITY_JACCARD, ids.STABILITY_ARI, ids.STABILITY_ARI_TIME, ids.STABILITY_SHARES,
          ids.STABILITY_DRIFT_HEATMAP, ids.STABILITY_SANKEY, ids.STABILITY_COHORTS)


def _figure(dash_br, graph_id: str) -> dict:
    """The figure plotly actually drew in a graph (data and layout)."""
    return dash_br.driver.execute_script(
        "const el = document.querySelector(arguments[0] + ' .js-plotly-plot');"
        "return el ? {data: el.data, layout: el.layout} : null;", f"#{graph_id}")


@pytest.mark.browser
def test_stability_page_loads_runs_and_compares(dash_br, live_server):
    dash_br.wait_for_page(url=live_server.url + "/stability")
    for graph in GRAPHS:
        dash_br.wait_for_element(f"#{graph} .main-svg", timeout=30)
    # Default results on load: 30 resamples, one bar per segment, one badge per segment linking to its profile.
    jaccard = _figure(dash_br, ids.STABILITY_JACCARD)
    assert len(jaccard["data"][0]["x"]) == 6 and all(0 < v <= 1 for v in jaccard["data"][0]["x"])
    assert len(_figure(dash_br, ids.STABILITY_ARI)["data"][0]["x"]) == 30
    links = [a.get_attribute("href") for a in dash_br.find_elements(f"#{ids.STABILITY_VERDICTS} a")]
    assert [link.split("/profiles?segment=")[1] for link in links] == [str(i) for i in range(6)]
    assert "30 bootstrap resamples" in dash_br.find_element(f"#{ids.STABILITY_RESULTS}").text
    assert "enrolment cohort" in dash_br.find_element(f"#{ids.STABILITY_RESULTS}").text
    quarters = _figure(dash_br, ids.STABILITY_ARI_TIME)["data"][0]["x"]
    assert quarters[-1] == "2014Q2"
    assert len(_figure(dash_br, ids.STABILITY_SHARES)["data"]) == 6
    assert _figure(dash_br, ids.STABILITY_SANKEY)["data"][0]["type"] == "sankey"

    # Re-run as a background job with monthly snapshots.
    dash_br.find_element(f"label[for='_dbcprivate_radioitems_{ids.STABILITY_WINDOW}_input_month']").click()
    dash_br.find_element(f"#{ids.STABILITY_RUN}").click()

    def monthly():
        fig = _figure(dash_br, ids.STABILITY_ARI_TIME)
        return bool(fig and fig["data"] and fig["data"][0]["x"][-1] == "2014-06")
    until(monthly, timeout=60, msg="monthly snapshots never appeared")
    assert not dash_br.find_element(f"#{ids.STABILITY_RUN}").get_attribute("disabled")

    # Drift of an uploaded file: the training file itself must read "keep".
    upload = dash_br.find_element(f"#{ids.STABILITY_UPLOAD} input[type=file]")
    upload.send_keys(str(SAMPLE))
    dash_br.wait_for_contains_text(f"#{ids.STABILITY_RECOMMENDATION}", "Keep:", timeout=60)
    dash_br.wait_for_element(f"#{ids.STABILITY_PSI} .main-svg", timeout=30)
    psi = _figure(dash_br, ids.STABILITY_PSI)["data"][0]["x"]
    assert len(psi) == 7 and max(psi) == pytest.approx(0, abs=1e-9)
    assert len(_figure(dash_br, ids.STABILITY_SHARE_SHIFT)["data"]) == 2
    assert console_errors(dash_br) == []
