"""Sign-in, sign-out and role-aware controls in headless Chromium; user-typed names never become markup."""
from __future__ import annotations

import shutil
import time

import pytest

from core.access.accounts import AccountStore
from core.versions.pipeline import train
from core.versions.registry import Registry
from dashboard import ids
from tests.conftest import SAMPLE, console_errors, start_server

pytestmark = pytest.mark.browser
EVIL = '<a href="https://evil.example/" id="evil-link">Evil</a><img src=x onerror="window.pwned=1">'


@pytest.fixture(scope="module")
def server(tmp_path_factory, warm_models):
    tmp = tmp_path_factory.mktemp("browser-auth")
    shutil.copytree(warm_models, tmp / "models")  # v0001 as train(SAMPLE) makes it, its views already stored
    registry = Registry(tmp / "models")
    version = registry.active_version()
    meta = registry.metadata(version)
    names = list(meta.get("segment_names") or [f"Segment {i}" for i in range(meta["k"])])
    names[0] = EVIL  # stored as typed
    registry.update_meta(version, segment_names=names)
    train(SAMPLE, registry=registry, k=3, activate=False)
    store = AccountStore(tmp / "models")
    store.add_user("vera", "viewer", "viewer-pass-1")
    store.add_user("adam", "admin", "admin-pass-12")
    srv = start_server(tmp, wait_path="/login")
    yield srv
    srv.stop()


def sign_in(br, server, name, password):
    br.driver.get(server.url + "/login?next=/data")
    br.wait_for_element("#username", timeout=20).send_keys(name)
    br.find_element("#password").send_keys(password)
    br.find_element("button[type=submit]").click()


def test_sign_in_shows_the_user_and_role_and_a_viewer_sees_admin_controls_disabled(dash_br, server):
    dash_br.driver.get(server.url + "/data")
    dash_br.wait_for_element("#username", timeout=20)  # redirected to the sign-in page
    assert "/login" in dash_br.driver.current_url
    sign_in(dash_br, server, "vera", "viewer-pass-1")
    dash_br.wait_for_text_to_equal(f"#{ids.NAV_USER}", "vera · viewer", timeout=30)
    assert dash_br.driver.current_url.endswith("/data")
    dash_br.wait_for_element(f"#{ids.DATA_VERSIONS} button", timeout=30)
    buttons = dash_br.find_elements(f"#{ids.DATA_VERSIONS} button")
    admin_only = [b for b in buttons if b.text.strip().lower() in ("activate", "delete", "roll back")]
    assert admin_only and all(not b.is_enabled() for b in admin_only), [(b.text, b.is_enabled()) for b in buttons]
    assert "admins" in dash_br.find_element(f"#{ids.PAGE_CONTAINER}").text
    assert console_errors(dash_br) == []


def test_sign_out_returns_to_the_sign_in_page(dash_br, server):
    sign_in(dash_br, server, "adam", "admin-pass-12")
    dash_br.wait_for_text_to_equal(f"#{ids.NAV_USER}", "adam · admin", timeout=30)
    dash_br.find_element(f"#{ids.NAV_STATUS} form button[type=submit]").click()
    dash_br.wait_for_element("#username", timeout=20)
    dash_br.driver.get(server.url + "/profiles")
    dash_br.wait_for_element("#username", timeout=20)  # signed out: pages send you to sign in again


def test_a_name_with_markup_renders_as_text_on_every_page(dash_br, server):
    sign_in(dash_br, server, "adam", "admin-pass-12")
    dash_br.wait_for_text_to_equal(f"#{ids.NAV_USER}", "adam · admin", timeout=30)
    for path in ("/", "/profiles?segment=0", "/compare?a=0&b=1", "/explorer", "/stability", "/predict", "/data"):
        dash_br.driver.get(server.url + path)
        if path in ("/stability", "/data"):  # no chart before a click: wait for the page's cards
            dash_br.wait_for_element(f"#{ids.PAGE_CONTAINER} .card", timeout=40)
            time.sleep(2)
        else:
            dash_br.wait_for_element(".main-svg", timeout=40)
        dash_br.driver.implicitly_wait(0)
        assert dash_br.driver.execute_script(
            "return document.querySelectorAll('#evil-link, a[href^=\"https://evil\"], img[src=x]').length") == 0, path
        assert dash_br.driver.execute_script("return window.pwned === undefined"), path
    # The name is still there, shown literally.
    dash_br.driver.get(server.url + "/profiles?segment=0")
    dash_br.wait_for_element(".main-svg", timeout=40)
    assert "<a href=" in dash_br.driver.execute_script("return document.body.innerText")
