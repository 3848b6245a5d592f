"""Profiles and compare pages in headless Chromium: load clean, draw, react, keep the selection in the URL."""
import pytest

from core.versions.registry import Registry
from dashboard import ids
from tests.conftest import console_errors, start_server

pytestmark = pytest.mark.browser


@pytest.fixture
def dash_br(shared_br):
    """One Chromium for the worker's browser tests (tests/conftest.py: worker_br), cleared after each test."""
    return shared_br

_GRAPH_WAIT = 30


def _names(server) -> list[str]:
    """The segment names the server's active model carries."""
    return Registry(server.models_dir).metadata()["segment_names"]


def _dropdown_text(dash_br, dropdown_id: str) -> str:
    return dash_br.find_element(f"#{dropdown_id}").text.strip()


def _pick(dash_br, dropdown_id: str, choice) -> None:
    """Choose an option as a person would (open, click): a segment number, or an option's label."""
    label = f"{choice} · " if isinstance(choice, int) else choice
    dropdown = dash_br.find_element(f"#{dropdown_id}")
    dash_br.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", dropdown)
    dropdown.click()
    dash_br.wait_for_element(".dash-dropdown-options")
    option = next(o for o in dash_br.find_elements(".dash-dropdown-options .dash-dropdown-option")
                  if o.text.startswith(label))
    # The open menu scrolls to the current value; bring the wanted option out from under the search box
    # ("instant": Bootstrap turns on smooth scrolling, and a click during the glide misses).
    dash_br.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", option)
    option.click()


def test_profiles_page_draws_every_chart(dash_br, live_server):
    names = _names(live_server)
    dash_br.wait_for_page(url=live_server.url + "/profiles")
    dash_br.wait_for_element(f"#{ids.PROFILES_HEATMAP} .heatmaplayer", timeout=_GRAPH_WAIT)
    dash_br.wait_for_element(f"#{ids.PROFILES_CHANNEL_MIX} .main-svg", timeout=_GRAPH_WAIT)
    assert len(dash_br.find_elements(f"#{ids.PAGE_CONTAINER} .js-plotly-plot")) == 5
    # One bar trace per segment, each with error bars.
    assert len(dash_br.find_elements(f"#{ids.PROFILES_CAMPAIGNS} g.trace.bars")) == len(names)
    assert len(dash_br.find_elements(f"#{ids.PROFILES_CAMPAIGNS} g.errorbar")) > 0
    assert len(dash_br.find_elements(f"#{ids.PROFILES_DISTRIBUTION} g.trace.boxes")) == len(names)
    heat_ticks = [t.text for t in dash_br.find_elements(f"#{ids.PROFILES_HEATMAP} .ytick text")]
    assert any(names[0].split()[0] in t for t in heat_ticks)
    # No query: segment 0, its card, and the URL now says so (shareable).
    dash_br.wait_for_contains_text(f"#{ids.PROFILES_SUMMARY}", names[0], timeout=_GRAPH_WAIT)
    assert _dropdown_text(dash_br, ids.PROFILES_SEGMENT).startswith(f"0 · {names[0]}")
    economics = dash_br.find_element(f"#{ids.PROFILES_ECONOMICS}").text
    assert "Z_CostContact" in economics and "ROI" in economics
    assert console_errors(dash_br) == []


def test_profiles_segment_pick_updates_card_and_url(dash_br, live_server):
    names = _names(live_server)
    dash_br.wait_for_page(url=live_server.url + "/profiles?segment=2")
    dash_br.wait_for_contains_text(f"#{ids.PROFILES_SUMMARY}", names[2], timeout=_GRAPH_WAIT)
    dash_br.wait_for_element(f"#{ids.PROFILES_HEATMAP} .heatmaplayer", timeout=_GRAPH_WAIT)
    _pick(dash_br, ids.PROFILES_SEGMENT, 4)
    dash_br.wait_for_contains_text(f"#{ids.PROFILES_SUMMARY}", names[4], timeout=_GRAPH_WAIT)
    assert "Segment 4 ·" in dash_br.find_element(f"#{ids.PROFILES_SUMMARY}").text
    assert dash_br.find_element(f"#{ids.PROFILES_RENAME_INPUT}").get_attribute("value") == names[4]
    dash_br.wait_for_text_to_equal(f"#{ids.PROFILES_SUMMARY} h2", names[4], timeout=_GRAPH_WAIT)
    assert dash_br.driver.current_url.endswith("/profiles?segment=4")
    # The compare link carries the selection.
    link = dash_br.find_element(f"#{ids.PROFILES_COMPARE_LINK}")
    assert "/compare?a=4&b=" in link.get_attribute("href")
    # Feature labels come from one source (core.reading.schema.FEATURE_LABELS): "Income" reads "Yearly household income".
    _pick(dash_br, ids.PROFILES_FEATURE, "Yearly household income")
    dash_br.wait_for_text_to_equal(f"#{ids.PROFILES_DISTRIBUTION} .xtitle", "Yearly household income",
                                   timeout=_GRAPH_WAIT)
    assert console_errors(dash_br) == []


def test_profiles_invalid_query_falls_back_to_first_segment(dash_br, live_server):
    names = _names(live_server)
    for query in ("segment=99", "segment=abc"):
        dash_br.wait_for_page(url=f"{live_server.url}/profiles?{query}")
        dash_br.wait_for_contains_text(f"#{ids.PROFILES_SUMMARY}", names[0], timeout=_GRAPH_WAIT)
        assert _dropdown_text(dash_br, ids.PROFILES_SEGMENT).startswith("0 · ")
        assert dash_br.driver.current_url.endswith("/profiles?segment=0")  # the address is corrected too
    assert console_errors(dash_br) == []


def test_compare_page_reads_query_and_updates_on_pick(dash_br, live_server):
    names = _names(live_server)
    dash_br.wait_for_page(url=live_server.url + "/compare?a=1&b=4")
    dash_br.wait_for_element(f"#{ids.COMPARE_DIFF} g.trace.bars", timeout=_GRAPH_WAIT)
    dash_br.wait_for_element(f"#{ids.COMPARE_CHANNEL_MIX} .main-svg", timeout=_GRAPH_WAIT)
    assert _dropdown_text(dash_br, ids.COMPARE_A) == f"1 · {names[1]}"
    assert _dropdown_text(dash_br, ids.COMPARE_B) == f"4 · {names[4]}"
    assert len(dash_br.find_elements(f"#{ids.PAGE_CONTAINER} .js-plotly-plot")) == 4
    assert "Cohen's d" in dash_br.find_element(f"#{ids.COMPARE_TABLE}").text
    kpi_a = dash_br.find_element(f"#{ids.COMPARE_KPI_A}").text
    kpi_b = dash_br.find_element(f"#{ids.COMPARE_KPI_B}").text
    assert names[1] in kpi_a and names[4] in kpi_b and "Response rate" in kpi_a

    _pick(dash_br, ids.COMPARE_A, 3)
    dash_br.wait_for_contains_text(f"#{ids.COMPARE_KPI_A}", names[3], timeout=_GRAPH_WAIT)
    _pick(dash_br, ids.COMPARE_B, 0)
    dash_br.wait_for_contains_text(f"#{ids.COMPARE_KPI_B}", names[0], timeout=_GRAPH_WAIT)
    new_a = dash_br.find_element(f"#{ids.COMPARE_KPI_A}").text
    new_b = dash_br.find_element(f"#{ids.COMPARE_KPI_B}").text
    assert new_a != kpi_a and new_b != kpi_b
    assert dash_br.driver.current_url.endswith("/compare?a=3&b=0")
    # The effect-size chart was redrawn for the new pair (its legend names the two segments).
    dash_br.wait_for_contains_text(f"#{ids.COMPARE_DIFF}", f"Higher in 3 · {names[3]}", timeout=_GRAPH_WAIT)
    # The feature dropdown redraws the overlaid histograms for that feature.
    _pick(dash_br, ids.COMPARE_FEATURE, "Web visits / month")
    dash_br.wait_for_contains_text(f"#{ids.COMPARE_DISTRIBUTION} .xtitle", "Web visits / month",
                                   timeout=_GRAPH_WAIT)
    assert len(dash_br.find_elements(f"#{ids.COMPARE_DISTRIBUTION} g.trace.bars")) == 2
    assert console_errors(dash_br) == []


def test_compare_invalid_query_falls_back_and_swap_works(dash_br, live_server):
    names = _names(live_server)
    dash_br.wait_for_page(url=live_server.url + "/compare?a=abc&b=99")
    dash_br.wait_for_element(f"#{ids.COMPARE_DIFF} .main-svg", timeout=_GRAPH_WAIT)
    assert _dropdown_text(dash_br, ids.COMPARE_A) == f"0 · {names[0]}"
    assert _dropdown_text(dash_br, ids.COMPARE_B) == f"1 · {names[1]}"
    dash_br.find_element(f"#{ids.COMPARE_SWAP}").click()
    dash_br.wait_for_contains_text(f"#{ids.COMPARE_KPI_A}", names[1], timeout=_GRAPH_WAIT)
    assert _dropdown_text(dash_br, ids.COMPARE_A) == f"1 · {names[1]}"
    assert dash_br.driver.current_url.endswith("/compare?a=1&b=0")
    assert console_errors(dash_br) == []


def test_rename_in_the_browser_shows_everywhere(dash_br, tmp_path, warm_models):
    # A private server: the shared live_server's names must stay as trained for the other tests.
    server = start_server(tmp_path, models_from=warm_models)
    try:
        names = _names(server)
        dash_br.wait_for_page(url=server.url + "/profiles?segment=2")
        dash_br.wait_for_contains_text(f"#{ids.PROFILES_SUMMARY}", names[2], timeout=_GRAPH_WAIT)
        box = dash_br.find_element(f"#{ids.PROFILES_RENAME_INPUT}")
        dash_br.clear_input(box)
        box.send_keys("Wine lovers")
        dash_br.find_element(f"#{ids.PROFILES_RENAME_BTN}").click()
        dash_br.wait_for_contains_text(f"#{ids.PROFILES_RENAME_FEEDBACK}", "Saved", timeout=_GRAPH_WAIT)
        dash_br.wait_for_text_to_equal(f"#{ids.PROFILES_SUMMARY} h2", "Wine lovers", timeout=_GRAPH_WAIT)
        assert _dropdown_text(dash_br, ids.PROFILES_SEGMENT) == "2 · Wine lovers"
        dash_br.wait_for_element(f"#{ids.PROFILES_HEATMAP} .heatmaplayer", timeout=_GRAPH_WAIT)
        ticks = " ".join(t.text for t in dash_br.find_elements(f"#{ids.PROFILES_HEATMAP} .ytick text"))
        assert "Wine lovers" in ticks
        assert _names(server)[2] == "Wine lovers"

        # A name another segment already has is refused beside the input, and nothing changes.
        dash_br.clear_input(box)
        box.send_keys(names[0].upper())
        dash_br.find_element(f"#{ids.PROFILES_RENAME_BTN}").click()
        dash_br.wait_for_contains_text(f"#{ids.PROFILES_RENAME_FEEDBACK}", "already called", timeout=_GRAPH_WAIT)
        assert "is-invalid" in box.get_attribute("class")
        assert _names(server)[2] == "Wine lovers"

        # A name with markup is saved as typed and shown as text, never as an element.
        dash_br.clear_input(box)
        box.send_keys("<b>Bold</b> buyers")
        dash_br.find_element(f"#{ids.PROFILES_RENAME_BTN}").click()
        dash_br.wait_for_contains_text(f"#{ids.PROFILES_RENAME_FEEDBACK}", "<b>Bold</b> buyers", timeout=_GRAPH_WAIT)
        assert not dash_br.find_elements(f"#{ids.PROFILES_RENAME_FEEDBACK} b")
        dash_br.wait_for_text_to_equal(f"#{ids.PROFILES_SUMMARY} h2", "<b>Bold</b> buyers", timeout=_GRAPH_WAIT)
        assert _names(server)[2] == "<b>Bold</b> buyers"
        dash_br.clear_input(box)
        box.send_keys("Wine lovers")
        dash_br.find_element(f"#{ids.PROFILES_RENAME_BTN}").click()
        dash_br.wait_for_contains_text(f"#{ids.PROFILES_RENAME_FEEDBACK}", "“Wine lovers”", timeout=_GRAPH_WAIT)

        # The overview shows the new name too.
        dash_br.wait_for_page(url=server.url + "/")
        dash_br.wait_for_contains_text(f"#{ids.OVERVIEW_PERSONAS}", "Wine lovers", timeout=_GRAPH_WAIT)
        assert console_errors(dash_br) == []
    finally:
        server.stop()


def test_products_to_feature_are_the_selected_segments(dash_br, live_server):
    from core.versions.pipeline import prepare
    from core.insight.profiles import LIFT_THRESHOLD, product_lift
    from tests.conftest import SAMPLE

    model, meta = Registry(live_server.models_dir).load()
    names = meta["segment_names"]
    frame = prepare(SAMPLE).frame
    lift = product_lift(frame, model.predict(frame)).reindex(range(model.k)).fillna(0.0)
    featured = [s for s in range(model.k) if (lift.loc[s] >= LIFT_THRESHOLD).any()]
    plain = [s for s in range(model.k) if s not in featured]
    assert featured, "the sample has over-indexing segments"
    seg = featured[0]
    dash_br.wait_for_page(url=f"{live_server.url}/profiles?segment={seg}")
    box = f"#{ids.PROFILES_RECOMMENDATIONS_SEGMENT}"
    dash_br.wait_for_contains_text(box, f"Feature these to {names[seg]}", timeout=_GRAPH_WAIT)
    text = dash_br.find_element(box).text
    best = lift.loc[seg].idxmax()
    assert f"{lift.loc[seg, best]:.1f}×" in text
    others = [names[s] for s in featured if s != seg]
    assert not any(f"{n} spends" in text for n in others)  # the other segments are folded away
    if plain:
        _pick(dash_br, ids.PROFILES_SEGMENT, plain[0])
        dash_br.wait_for_contains_text(box, f"No product category stands out for {names[plain[0]]}",
                                       timeout=_GRAPH_WAIT)
    assert console_errors(dash_br) == []
