"""The what-if page in headless Chromium: fill the form, read the answer, see field errors, save scenarios."""
import json

import numpy as np
import pytest
from dash.testing.wait import until
from selenium.webdriver.common.keys import Keys

from core.versions.registry import Registry
from dashboard import ids
from tests.conftest import console_errors

pytestmark = pytest.mark.browser


@pytest.fixture
def dash_br(shared_br):
    """One Chromium for the worker's browser tests (tests/conftest.py: worker_br), cleared after each test."""
    return shared_br

_WAIT = 30


def _selector(field: str, kind: str = ids.PREDICT_FIELD) -> str:
    """CSS selector of a pattern-matching id (Dash writes dict ids as sorted, compact JSON)."""
    key = json.dumps({"field": field, "type": kind}, separators=(",", ":"))
    return '[id="' + key.replace('"', '\\"') + '"]'


def _input(dash_br, field: str, kind: str = ids.PREDICT_FIELD):
    """A form input by its field name."""
    return dash_br.find_element(_selector(field, kind))


def _feedback_selector(field: str) -> str:
    return _selector(field, ids.PREDICT_FIELD_FEEDBACK)


def _click(dash_br, selector: str) -> None:
    """Scroll a button to the middle of the window, then click it."""
    element = dash_br.find_element(selector)
    dash_br.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", element)
    element.click()


def _type(element, text: str) -> None:
    """Replace an input's text as a person would (select all, type)."""
    element.send_keys(Keys.CONTROL, "a")
    element.send_keys(Keys.BACKSPACE)
    element.send_keys(text)


def _expected(server, values: dict):
    """Segment name and confidence text the page must show for these values (from the server's model)."""
    registry = Registry(server.models_dir)
    model, meta = registry.load()
    seg, conf, _typ, _d = model.score_one([float(values[f]) for f in model.features])
    return model, meta["segment_names"][seg], f"{conf:.2f}"


def test_fill_the_form_read_the_answer_and_see_field_errors(dash_br, live_server):
    dash_br.wait_for_page(url=live_server.url + "/predict?segment=1")
    model, meta = Registry(live_server.models_dir).load()
    # Opens on segment 1's typical member: it belongs to segment 1.
    dash_br.wait_for_contains_text(f"#{ids.PREDICT_SEGMENT_NAME}", meta["segment_names"][1], timeout=_WAIT)
    assert 0.0 <= float(dash_br.find_element(f"#{ids.PREDICT_CONFIDENCE}").text) <= 1.0
    dash_br.wait_for_element(f"#{ids.PREDICT_MAP} .scatterlayer", timeout=_WAIT)
    dash_br.wait_for_element(f"#{ids.PREDICT_DISTANCES} .barlayer", timeout=_WAIT)

    # Fill the form with a wealthy big spender; the page must give the model's answer.
    values = {f: _input(dash_br, f).get_attribute("value") for f in model.features}
    values.update(Income="150000", Total_Spending="2200", NumStorePurchases="12", NumWebVisitsMonth="2")
    for field in ("Income", "Total_Spending", "NumStorePurchases", "NumWebVisitsMonth"):
        _type(_input(dash_br, field), values[field])
    _, name, confidence = _expected(live_server, values)
    dash_br.wait_for_text_to_equal(f"#{ids.PREDICT_CONFIDENCE}", confidence, timeout=_WAIT)
    dash_br.wait_for_contains_text(f"#{ids.PREDICT_SEGMENT_NAME}", name, timeout=_WAIT)
    assert "no change" in dash_br.find_element(f"#{ids.PREDICT_FLIPS}").text or "→" in \
        dash_br.find_element(f"#{ids.PREDICT_FLIPS}").text

    # A non-number: a message beside the field and no answer.
    age = _input(dash_br, "Age")
    _type(age, "abc")
    dash_br.wait_for_contains_text(_feedback_selector("Age"), "enter a number", timeout=_WAIT)
    assert "is-invalid" in age.get_attribute("class")
    assert dash_br.find_element(_feedback_selector("Age")).is_displayed()
    dash_br.wait_for_contains_text(f"#{ids.PREDICT_RESULT}", "Fix the highlighted field", timeout=_WAIT)
    assert not dash_br.find_elements(f"#{ids.PREDICT_CONFIDENCE}")
    # Out of range: says the range.
    _type(age, "5")
    dash_br.wait_for_contains_text(_feedback_selector("Age"), "between 16 and 110", timeout=_WAIT)
    # Valid again: the answer is back and the field is clean.
    _type(age, "45")
    values["Age"] = "45"
    _, name, confidence = _expected(live_server, values)
    dash_br.wait_for_text_to_equal(f"#{ids.PREDICT_CONFIDENCE}", confidence, timeout=_WAIT)
    assert "is-invalid" not in _input(dash_br, "Age").get_attribute("class")
    assert console_errors(dash_br) == []


def test_save_scenarios_and_prefill_from_a_customer(dash_br, live_server):
    dash_br.wait_for_page(url=live_server.url + "/predict")
    dash_br.wait_for_element(f"#{ids.PREDICT_CONFIDENCE}", timeout=_WAIT)
    _type(dash_br.find_element(f"#{ids.PREDICT_SCENARIO_NAME}"), "Base")
    _click(dash_br, f"#{ids.PREDICT_SAVE}")
    dash_br.wait_for_contains_text(f"#{ids.PREDICT_SCENARIO_TABLE}", "1. Base", timeout=_WAIT)

    features = Registry(live_server.models_dir).load()[0].features
    _type(_input(dash_br, "Age"), "80")
    _, _, confidence = _expected(live_server, {f: _input(dash_br, f).get_attribute("value") for f in features})
    dash_br.wait_for_text_to_equal(f"#{ids.PREDICT_CONFIDENCE}", confidence, timeout=_WAIT)
    _type(dash_br.find_element(f"#{ids.PREDICT_SCENARIO_NAME}"), "Older")
    _click(dash_br, f"#{ids.PREDICT_SAVE}")
    dash_br.wait_for_contains_text(f"#{ids.PREDICT_SCENARIO_TABLE}", "2. Older", timeout=_WAIT)
    table = dash_br.find_element(f"#{ids.PREDICT_SCENARIO_TABLE}").text
    assert "Age (years)" in table and "80" in table and "Segment" in table

    # Prefill from an existing customer of the served data.
    from core.versions.pipeline import prepare
    from tests.conftest import SAMPLE

    row = prepare(SAMPLE).frame.iloc[5]
    _type(dash_br.find_element(f"#{ids.PREDICT_PREFILL_CUSTOMER}"), str(int(row["ID"])))
    _click(dash_br, f"#{ids.PREDICT_PREFILL_CUSTOMER_BTN}")
    dash_br.wait_for_contains_text(f"#{ids.PREDICT_PREFILL_MESSAGE}", f"Customer {int(row['ID'])}", timeout=_WAIT)
    assert _input(dash_br, "Age").get_attribute("value") == str(int(row["Age"]))
    # An unknown ID: a message, the form unchanged.
    _type(dash_br.find_element(f"#{ids.PREDICT_PREFILL_CUSTOMER}"), "999999999")
    _click(dash_br, f"#{ids.PREDICT_PREFILL_CUSTOMER_BTN}")
    dash_br.wait_for_contains_text(f"#{ids.PREDICT_PREFILL_MESSAGE}", "no customer with ID 999999999", timeout=_WAIT)
    assert _input(dash_br, "Age").get_attribute("value") == str(int(row["Age"]))
    # From raw fields: a birth year gives the age (2026 - year); a bad raw value is flagged.
    _click(dash_br, f"#{ids.PREDICT_RAW_SECTION} .accordion-button")
    year = _input(dash_br, "Year_Birth", ids.PREDICT_RAW_FIELD)
    until(year.is_displayed, timeout=_WAIT)  # the section opens with an animation
    _type(year, "1990")
    _click(dash_br, f"#{ids.PREDICT_RAW_APPLY}")
    dash_br.wait_for_text_to_equal(f"#{ids.PREDICT_PREFILL_MESSAGE}",
                                   "Computed “Age (years)” and “Total spend, 2 years” from the raw fields.",
                                   timeout=_WAIT)
    assert _input(dash_br, "Age").get_attribute("value") == "36"
    _type(_input(dash_br, "MntWines", ids.PREDICT_RAW_FIELD), "lots")
    _click(dash_br, f"#{ids.PREDICT_RAW_APPLY}")
    dash_br.wait_for_contains_text(_selector("MntWines", ids.PREDICT_RAW_FEEDBACK), "enter a number", timeout=_WAIT)
    assert console_errors(dash_br) == []


def _largest_segment_member(server):
    """The sample's largest segment under the server's model and its member nearest the centre."""
    from core.versions.pipeline import prepare
    from tests.conftest import SAMPLE

    model, meta = Registry(server.models_dir).load()
    frame = prepare(SAMPLE).frame
    labels = model.predict(frame)
    largest = int(np.bincount(labels, minlength=model.k).argmax())
    d = model.distances(frame)
    members = np.flatnonzero(labels == largest)
    best = frame.iloc[members[d[members, largest].argmin()]]
    return model, meta, frame, largest, best


def test_opens_on_a_typical_member_of_the_largest_segment_and_use_goes_in_the_url(dash_br, live_server):
    model, meta, frame, largest, best = _largest_segment_member(live_server)
    dash_br.wait_for_page(url=live_server.url + "/predict")
    dash_br.wait_for_contains_text(f"#{ids.PREDICT_SEGMENT_NAME}", meta["segment_names"][largest], timeout=_WAIT)
    assert f"customer {int(best['ID'])}" in dash_br.find_element(f"#{ids.PREDICT_PREFILL_MESSAGE}").text
    assert _input(dash_br, "Age").get_attribute("value") == str(int(best["Age"]))
    # It is clearly inside the segment, not on a border.
    seg, conf, _t, _d = model.score_one([float(best[f]) for f in model.features])
    assert seg == largest and conf >= 0.3
    # The placeholder is a customer of the loaded data: loading it works.
    placeholder = dash_br.find_element(f"#{ids.PREDICT_PREFILL_CUSTOMER}").get_attribute("placeholder")
    example = int(placeholder.split("e.g. ")[1])
    assert example in set(frame["ID"].astype(int))

    # "Load" puts the customer in the address; a reload opens on it.
    row = frame[frame["ID"].astype(int) == example].iloc[0]
    _type(dash_br.find_element(f"#{ids.PREDICT_PREFILL_CUSTOMER}"), str(example))
    _click(dash_br, f"#{ids.PREDICT_PREFILL_CUSTOMER_BTN}")
    dash_br.wait_for_contains_text(f"#{ids.PREDICT_PREFILL_MESSAGE}", f"Customer {example}", timeout=_WAIT)
    until(lambda: dash_br.driver.current_url.endswith(f"/predict?customer={example}"), timeout=_WAIT)
    dash_br.driver.refresh()
    dash_br.wait_for_contains_text(f"#{ids.PREDICT_PREFILL_MESSAGE}", f"Customer {example}", timeout=_WAIT)
    assert _input(dash_br, "Age").get_attribute("value") == str(int(row["Age"]))

    # "Use" on a segment does the same with ?segment=.
    other = (largest + 1) % model.k
    dropdown = dash_br.find_element(f"#{ids.PREDICT_PREFILL_SEGMENT}")
    dash_br.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", dropdown)
    dropdown.click()
    dash_br.wait_for_element(".dash-dropdown-options")
    option = next(o for o in dash_br.find_elements(".dash-dropdown-options .dash-dropdown-option")
                  if o.text.startswith(f"{other} · "))
    # Out from under the menu's search box ("instant": a click during a smooth scroll misses).
    dash_br.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", option)
    option.click()
    _click(dash_br, f"#{ids.PREDICT_PREFILL_SEGMENT_BTN}")
    until(lambda: dash_br.driver.current_url.endswith(f"/predict?segment={other}"), timeout=_WAIT)
    dash_br.wait_for_contains_text(f"#{ids.PREDICT_SEGMENT_NAME}", meta["segment_names"][other], timeout=_WAIT)
    dash_br.driver.refresh()
    dash_br.wait_for_contains_text(f"#{ids.PREDICT_SEGMENT_NAME}", meta["segment_names"][other], timeout=_WAIT)
    assert console_errors(dash_br) == []


def test_phone_width_shows_the_answer_above_the_form(dash_br, live_server):
    dash_br.driver.set_window_size(400, 900)
    try:
        dash_br.wait_for_page(url=live_server.url + "/predict")
        compact = dash_br.wait_for_element(f"#{ids.PREDICT_RESULT_COMPACT}", timeout=_WAIT)
        dash_br.wait_for_element(f"#{ids.PREDICT_CONFIDENCE}", timeout=_WAIT)
        until(lambda: "confidence" in compact.text, timeout=_WAIT)
        assert dash_br.find_element(f"#{ids.PREDICT_CONFIDENCE}").text in compact.text
        top = dash_br.driver.execute_script("return arguments[0].getBoundingClientRect().top + window.scrollY",
                                            compact)
        first_field = dash_br.driver.execute_script(
            "return arguments[0].getBoundingClientRect().top + window.scrollY", _input(dash_br, "Age"))
        assert top < first_field and top < 400  # on the first screen, above the form
        width = dash_br.driver.execute_script("return document.documentElement.scrollWidth")
        assert width <= 400  # no sideways scroll
    finally:
        dash_br.driver.set_window_size(1400, 1000)
