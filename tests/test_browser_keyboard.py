"""The keyboard alone (issue 16): a skip link first, a visible focus ring on every stop, Tab and Shift-Tab
retracing the same path (no trap), a prediction on /predict and a retrain on /data without the mouse.
One server of this module's own (a retrain adds a model version) and one browser."""
from __future__ import annotations

import time

import pytest
from dash.testing.wait import until
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from core.versions.registry import Registry
from dashboard import ids
from tests.conftest import SAMPLE, console_errors, start_server
from tests.test_browser_predict import _selector

pytestmark = pytest.mark.browser

_WAIT = 30
# What has focus: its id (or tag and text), whether it shows a focus ring, and whether it is on screen.
_ACTIVE = """
const e = document.activeElement;
if (!e || e === document.body) return {key: 'body', ring: false, visible: false};
const s = getComputedStyle(e);
const ring = (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2) || (s.boxShadow && s.boxShadow !== 'none');
const r = e.getBoundingClientRect();
return {key: e.id || (e.tagName.toLowerCase() + ':' + (e.textContent || e.getAttribute('aria-label') || '').trim()
                .slice(0, 40)),
        tag: e.tagName.toLowerCase(), ring: ring, visible: r.width > 0 && r.height > 0};
"""


@pytest.fixture(scope="module")
def keyboard_server(tmp_path_factory, warm_models):
    """A server of this module's own (the retrain adds a version, which the shared server must not see), on a copy
    of the first start's registry (tests/conftest.py ``warm_models``) instead of training its own."""
    server = start_server(tmp_path_factory.mktemp("keyboard"), models_from=warm_models)
    yield server
    server.stop()


def _press(br, *keys) -> None:
    """Keys to whatever has focus, as a person types them."""
    ActionChains(br.driver).send_keys(*keys).perform()


def _shift_tab(br) -> None:
    ActionChains(br.driver).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()


def _active(br) -> dict:
    return br.driver.execute_script(_ACTIVE)


def _tab_to(br, key: str, limit: int = 120) -> list[dict]:
    """Tab until the element ``key`` has focus; every stop on the way (checked for a visible focus ring)."""
    stops = []
    for _ in range(limit):
        _press(br, Keys.TAB)
        stop = _active(br)
        stops.append(stop)
        if stop["key"] == key:
            return stops
    raise AssertionError(f"{key} not reached in {limit} tabs; went through {[s['key'] for s in stops][-15:]}")


def _skip_link_first(br) -> None:
    """On a freshly loaded page the first Tab lands on "Skip to content"; Enter moves focus to the main content."""
    _press(br, Keys.TAB)
    first = _active(br)
    assert first["key"] == ids.SKIP_LINK and first["visible"] and first["ring"], first
    _press(br, Keys.ENTER)
    until(lambda: _active(br)["key"] == ids.MAIN_CONTENT, timeout=5)


def _no_trap(br, stops: list[dict]) -> None:
    """Shift-Tab retraces the last stops in reverse: focus moves both ways and never sticks."""
    path = [s["key"] for s in stops]
    back = []
    for _ in range(min(len(path) - 1, 12)):
        _shift_tab(br)
        back.append(_active(br)["key"])
    assert back == path[-2::-1][:len(back)], f"Shift-Tab went {back}, Tab came {path[::-1]}"


def _type(br, text: str) -> None:
    _press(br, Keys.CONTROL, "a")
    _press(br, Keys.BACKSPACE, text)


def test_predict_and_retrain_with_the_keyboard_only(dash_br, keyboard_server, tmp_path):
    # /predict: skip link, then to the first field, changing values and reading the answer.
    dash_br.wait_for_page(url=keyboard_server.url + "/predict")
    dash_br.wait_for_element(f"#{ids.PREDICT_CONFIDENCE}", timeout=_WAIT)
    _skip_link_first(dash_br)
    age_id = dash_br.find_element(_selector("Age")).get_attribute("id")
    stops = _tab_to(dash_br, age_id)
    keys = [s["key"] for s in stops]
    assert ids.PREDICT_PREFILL_SEGMENT in keys and ids.PREDICT_PREFILL_CUSTOMER in keys, keys  # the form, in order
    assert keys.index(ids.PREDICT_PREFILL_SEGMENT) < keys.index(ids.PREDICT_PREFILL_CUSTOMER)
    unringed = [s["key"] for s in stops if not s["ring"]]
    assert unringed == [], f"focus without a visible ring: {unringed}"
    _no_trap(dash_br, stops)
    _tab_to(dash_br, age_id)

    model, meta = Registry(keyboard_server.models_dir).load()
    wanted = {"Age": "45", "Income": "150000", "Total_Spending": "2200"}
    values = {f: dash_br.find_element(_selector(f)).get_attribute("value") for f in model.features}
    for field in model.features:  # the fields in tab order: type where a value is wanted, Tab on
        if _active(dash_br)["key"] != dash_br.find_element(_selector(field)).get_attribute("id"):
            _tab_to(dash_br, dash_br.find_element(_selector(field)).get_attribute("id"), limit=6)
        if field in wanted:
            _type(dash_br, wanted[field])
            values[field] = wanted[field]
    _press(dash_br, Keys.TAB)
    seg, conf, _typ, _d = model.score_one([float(values[f]) for f in model.features])
    dash_br.wait_for_text_to_equal(f"#{ids.PREDICT_CONFIDENCE}", f"{conf:.2f}", timeout=_WAIT)
    dash_br.wait_for_contains_text(f"#{ids.PREDICT_SEGMENT_NAME}", meta["segment_names"][seg], timeout=_WAIT)

    # Save it as a scenario: name typed, "Save scenario" pressed with Enter.
    _tab_to(dash_br, ids.PREDICT_SCENARIO_NAME)
    _type(dash_br, "Keyboard")
    _press(dash_br, Keys.TAB)
    assert _active(dash_br)["key"] == ids.PREDICT_SAVE
    _press(dash_br, Keys.ENTER)
    dash_br.wait_for_contains_text(f"#{ids.PREDICT_SCENARIO_TABLE}", "1. Keyboard", timeout=_WAIT)

    # A dropdown opens with the keyboard, Escape closes it, and focus stays on it (no trap).
    dash_br.driver.refresh()
    dash_br.wait_for_element(f"#{ids.PREDICT_CONFIDENCE}", timeout=_WAIT)
    _skip_link_first(dash_br)
    _tab_to(dash_br, ids.PREDICT_PREFILL_SEGMENT)
    _press(dash_br, Keys.ARROW_DOWN)
    dash_br.wait_for_element(".dash-dropdown-options", timeout=5)
    _press(dash_br, Keys.ESCAPE)
    until(lambda: not dash_br.find_elements(".dash-dropdown-options"), timeout=5)
    assert _active(dash_br)["key"] == ids.PREDICT_PREFILL_SEGMENT
    _press(dash_br, Keys.TAB)
    assert _active(dash_br)["key"] == ids.PREDICT_PREFILL_SEGMENT_BTN

    # /data: the upload zone is a tab stop; the file itself comes from the file chooser (send_keys on its
    # input, as the operating system's dialog would), then Retrain is reached and pressed with the keyboard.
    dash_br.wait_for_page(url=keyboard_server.url + "/data")
    dash_br.wait_for_element(f"#{ids.DATA_VERSIONS} tr[data-version='v0001']", timeout=_WAIT)
    _skip_link_first(dash_br)
    stops = _tab_to(dash_br, ids.DATA_K)
    assert any(s["tag"] in ("div", "a") and ("choose one" in s["key"] or s["key"] == ids.DATA_UPLOAD)
               for s in stops), [s["key"] for s in stops]  # the upload is reachable
    unringed = [s["key"] for s in stops if not s["ring"]]
    assert unringed == [], f"focus without a visible ring: {unringed}"
    _no_trap(dash_br, stops)
    dash_br.find_element(f"#{ids.DATA_UPLOAD} input[type=file]").send_keys(str(SAMPLE))
    dash_br.wait_for_contains_text(f"#{ids.DATA_UPLOAD_REPORT}", "rows read", timeout=60)
    retrain = dash_br.find_element(f"#{ids.DATA_RETRAIN_BTN}")
    until(lambda: retrain.get_attribute("disabled") is None, timeout=_WAIT)
    dash_br.driver.refresh()  # the upload stays (session storage); the keyboard starts again from the top
    dash_br.wait_for_contains_text(f"#{ids.DATA_UPLOAD_REPORT}", "rows read", timeout=_WAIT)
    retrain = dash_br.find_element(f"#{ids.DATA_RETRAIN_BTN}")
    until(lambda: retrain.get_attribute("disabled") is None, timeout=_WAIT)
    _skip_link_first(dash_br)
    _tab_to(dash_br, ids.DATA_RETRAIN_BTN)
    _press(dash_br, Keys.ENTER)
    dash_br.wait_for_contains_text(f"#{ids.DATA_RETRAIN_MSG}", "Saved candidate v0002", timeout=90)
    time.sleep(0.3)
    assert "v0002" in [v["version"] for v in Registry(keyboard_server.models_dir).versions()]
    assert console_errors(dash_br) == []
