"""The campaign planner (/campaigns) in headless Chromium: plan, react, save, upload outcomes, roles, phone width."""
from __future__ import annotations

import shutil
import time

import pandas as pd
import pytest

from core.access.accounts import AccountStore
from core.campaigns.store import CampaignStore
from core.versions.registry import Registry
from dashboard import ids
from tests.conftest import console_errors, start_server

pytestmark = pytest.mark.browser


@pytest.fixture
def dash_br(shared_br):
    """One Chromium for the worker's browser tests (tests/conftest.py: worker_br), cleared after each test."""
    return shared_br

_WAIT = 40
PASSWORDS = {"vera": "viewer-pass-1", "anna": "analyst-pass-1"}


def _type(br, cid: str, value) -> None:
    """Replace an input's value as a person would, then leave it (debounced inputs send on blur)."""
    field = br.find_element(f"#{cid}")
    br.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", field)
    field.click()
    field.send_keys("\ue009a")  # Ctrl+A
    field.send_keys("\ue017")  # Delete
    field.send_keys(str(value), "\ue004")  # Tab


def _open(br, server):
    br.wait_for_page(url=server.url + "/campaigns")
    br.wait_for_element(f"#{ids.CAMPAIGNS_CURVE} .main-svg", timeout=_WAIT)


def test_campaigns_page_plans_and_reacts_to_the_economics(dash_br, live_server):
    _open(dash_br, live_server)
    k = Registry(live_server.models_dir).metadata()["k"]
    dash_br.wait_for_element(f"#{ids.CAMPAIGNS_CALIBRATION} g.errorbar", timeout=_WAIT)
    assert "AUC" in dash_br.find_element(f"#{ids.CAMPAIGNS_MODEL_NOTE}").text
    assert "like the last one" in dash_br.find_element(f"#{ids.CAMPAIGNS_MODEL_NOTE}").text
    assert len(dash_br.find_elements(f"#{ids.CAMPAIGNS_TABLE} table tbody tr")) == k
    assert "best = chosen" in dash_br.find_element(f"#{ids.CAMPAIGNS_CURVE}").text
    # Bad economics: a message naming the field; the plan shown stays.
    _type(dash_br, ids.CAMPAIGNS_COST, 0)
    dash_br.wait_for_contains_text(f"#{ids.CAMPAIGNS_FEEDBACK}", "cost: must be greater than 0", timeout=_WAIT)
    _type(dash_br, ids.CAMPAIGNS_COST, 3)
    dash_br.wait_for_text_to_equal(f"#{ids.CAMPAIGNS_FEEDBACK}", "", timeout=_WAIT)
    # Top 100 with a 10 % holdout: 90 contacted, 10 held back.
    dash_br.find_element(f"#{ids.CAMPAIGNS_MODE} input[value='top_n']").click()
    _type(dash_br, ids.CAMPAIGNS_TOP_N, 100)
    dash_br.wait_for_contains_text(f"#{ids.CAMPAIGNS_KPIS}", "+ 10 held out", timeout=_WAIT)
    assert "90" in dash_br.find_element(f"#{ids.CAMPAIGNS_KPIS} .kpi-value").text
    assert console_errors(dash_br) == []


def test_save_a_plan_then_upload_outcomes_and_see_the_uplift(dash_br, live_server, tmp_path):
    _open(dash_br, live_server)
    button = dash_br.find_element(f"#{ids.CAMPAIGNS_SAVE_BTN}")
    dash_br.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", button)
    button.click()
    dash_br.wait_for_contains_text(f"#{ids.CAMPAIGNS_SAVE_FEEDBACK}", "Saved plan", timeout=_WAIT)
    plan = CampaignStore(live_server.models_dir).plans()[0]
    dash_br.wait_for_contains_text(f"#{ids.CAMPAIGNS_PLANS_TABLE}", plan["id"], timeout=_WAIT)
    audience = CampaignStore(live_server.models_dir).audience(plan["id"])
    upload = dash_br.find_element(f"#{ids.CAMPAIGNS_UPLOAD} input[type=file]")
    # A file with a duplicate ID is refused with the rows named, and nothing is saved.
    bad = tmp_path / "bad.csv"
    bad.write_text(f"ID,responded\n{audience['ID'][0]},1\n{audience['ID'][0]},0\n", encoding="utf-8")
    upload.send_keys(str(bad))
    dash_br.wait_for_contains_text(f"#{ids.CAMPAIGNS_RESULTS_FEEDBACK}", "duplicate ID on rows 1, 2", timeout=_WAIT)
    assert CampaignStore(live_server.models_dir).results(plan["id"]) is None
    # Every target responds, no holdout member does: uplift 100 %.
    good = tmp_path / "outcomes.csv"
    pd.DataFrame({"ID": audience["ID"], "responded": (audience["group"] == "target").astype(int)}).to_csv(
        good, index=False)
    upload = dash_br.find_element(f"#{ids.CAMPAIGNS_UPLOAD} input[type=file]")
    upload.send_keys(str(good))
    dash_br.wait_for_contains_text(f"#{ids.CAMPAIGNS_RESULTS_FEEDBACK}", "Measured results saved", timeout=_WAIT)
    dash_br.wait_for_contains_text(f"#{ids.CAMPAIGNS_RESULTS}", "+100.0%", timeout=_WAIT)
    assert "Incremental profit" in dash_br.find_element(f"#{ids.CAMPAIGNS_RESULTS}").text
    assert CampaignStore(live_server.models_dir).results(plan["id"])["overall"]["uplift"] == 1.0
    assert console_errors(dash_br) == []


def test_campaigns_page_fits_a_phone(dash_br, live_server):
    dash_br.driver.set_window_size(400, 900)
    try:
        _open(dash_br, live_server)
        time.sleep(0.8)  # responsive charts settle to the final width
        scroll, width = dash_br.driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth];")
        assert scroll <= width
        assert console_errors(dash_br) == []
    finally:
        dash_br.driver.set_window_size(1400, 1000)


# ---------------------------------------------------------------- roles
@pytest.fixture(scope="module")
def accounts_server(tmp_path_factory, warm_models):
    tmp = tmp_path_factory.mktemp("browser-campaigns")
    shutil.copytree(warm_models, tmp / "models")  # v0001 trained on the sample, as train(SAMPLE) makes it
    store = AccountStore(tmp / "models")
    store.add_user("vera", "viewer", PASSWORDS["vera"])
    store.add_user("anna", "analyst", PASSWORDS["anna"])
    srv = start_server(tmp, wait_path="/login")
    yield srv
    srv.stop()


def test_a_viewer_sees_campaign_controls_disabled_and_a_crafted_save_is_refused(dash_br, accounts_server):
    from tests.test_auth import callback_body, sign_in as http_sign_in

    dash_br.driver.get(accounts_server.url + "/login?next=/campaigns")
    dash_br.wait_for_element("#username", timeout=20).send_keys("vera")
    dash_br.find_element("#password").send_keys(PASSWORDS["vera"])
    dash_br.find_element("button[type=submit]").click()
    dash_br.wait_for_element(f"#{ids.CAMPAIGNS_CURVE} .main-svg", timeout=_WAIT)
    assert not dash_br.find_element(f"#{ids.CAMPAIGNS_SAVE_BTN}").is_enabled()
    assert not dash_br.find_element(f"#{ids.CAMPAIGNS_DOWNLOAD_BTN}").is_enabled()
    assert "analysts" in dash_br.find_element(f"#{ids.CAMPAIGNS_PERMISSION_NOTE}").text
    time.sleep(1)
    assert console_errors(dash_br) == []  # a viewer's page has every id its callbacks name

    def crafted(session):
        body = callback_body(accounts_server, session, ids.CAMPAIGNS_SAVED,
                             {ids.CAMPAIGNS_SAVE_BTN: (ids.CAMPAIGNS_SAVE_BTN, 1)})
        for item in body["state"]:  # the economics a real form would send
            item["value"] = {ids.CAMPAIGNS_COST: 3, ids.CAMPAIGNS_REVENUE: 11, ids.CAMPAIGNS_HOLDOUT: 0.1,
                             ids.CAMPAIGNS_SEED: 42, ids.CAMPAIGNS_MODE: "best", ids.CAMPAIGNS_SEGMENTS: []}.get(
                item["id"])
        return session.post(accounts_server.url + "/_dash-update-component", json=body, timeout=60)

    viewer = http_sign_in(accounts_server, "vera", PASSWORDS["vera"])
    resp = crafted(viewer)
    assert resp.status_code == 403 and "analysts" in resp.json()["message"]
    assert CampaignStore(accounts_server.models_dir).plans() == []
    analyst = http_sign_in(accounts_server, "anna", PASSWORDS["anna"])
    resp = crafted(analyst)  # the same request from an analyst saves a plan (so the 403 above means something)
    assert resp.status_code == 200, resp.text[:300]
    plans = CampaignStore(accounts_server.models_dir).plans()
    assert len(plans) == 1 and plans[0]["economics"]["cost"] == 3
