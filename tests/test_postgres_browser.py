"""/data in headless Chromium: an admin adds a PostgreSQL source and retrains from it; a viewer cannot.

A real PostgreSQL server (tests/test_postgres.py's), the real app (``python app.py``) with its password
in the server's environment (PGPASSWORD), never in the form. The viewer's refusal is checked twice:
the page shows no controls, and a crafted raw callback request is refused by the server (nothing saved).
"""
from __future__ import annotations

import json
import shutil
import time

import psycopg
import pytest

from core.access.accounts import AccountStore
from core.access.audit import AuditLog
from core.versions.registry import Registry
from dashboard import ids
from tests.conftest import start_server
from tests.test_postgres import DB, PASSWORD, USER, load_sample, server  # noqa: F401  (the database fixture)
from tests.test_security_attacks import UPDATE, body_for, spec_writing
from tests.test_security_attacks import sign_in as raw_sign_in

pytestmark = pytest.mark.browser
USERS = {"adam": ("admin", "admin-pass-12"), "vera": ("viewer", "viewer-pass-1")}


@pytest.fixture(scope="module")
def app(server, tmp_path_factory, warm_models):  # noqa: F811
    host, port = server
    url = f"postgresql://{USER}@{host}:{port}/{DB}"
    with psycopg.connect(url, password=PASSWORD, autocommit=True) as conn:
        load_sample(conn, "public.crm_customers")
    tmp = tmp_path_factory.mktemp("pg-browser")
    shutil.copytree(warm_models, tmp / "models")
    store = AccountStore(tmp / "models")
    for name, (role, password) in USERS.items():
        store.add_user(name, role, password)
    srv = start_server(tmp, wait_path="/login", env={"PGPASSWORD": PASSWORD})
    yield srv, url
    srv.stop()


def click(br, element) -> None:
    """Scroll to the element and click it (content arriving above can move it: try again)."""
    from selenium.common.exceptions import ElementClickInterceptedException

    for _ in range(20):
        br.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});", element)
        try:
            return element.click()
        except ElementClickInterceptedException:
            time.sleep(0.25)
    raise AssertionError("the click was intercepted")


def wait(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def sign_in(br, srv, name):
    br.driver.delete_all_cookies()
    br.driver.get(srv.url + "/login?next=/data")
    br.wait_for_element("#username", timeout=20).send_keys(name)
    br.find_element("#password").send_keys(USERS[name][1])
    br.find_element("button[type=submit]").click()


def test_admin_adds_a_database_source_and_retrains_a_viewer_cannot(dash_br, app):
    srv, url = app
    source = f"{url}?table=public.crm_customers"
    registry = Registry(srv.models_dir)
    sign_in(dash_br, srv, "adam")
    box = dash_br.wait_for_element(f"#{ids.DATA_DB_URL}", timeout=30)
    box.send_keys(source)
    click(dash_br, dash_br.find_element(f"#{ids.DATA_DB_SAVE}"))
    dash_br.wait_for_contains_text(f"#{ids.DATA_DB_MSG}", "Copied 2,240 rows", timeout=60)
    dash_br.wait_for_contains_text(f"#{ids.DATA_UPLOAD_REPORT}", "crm_customers (database)", timeout=30)
    assert source in dash_br.find_element(f"#{ids.DATA_DB_SAVED}").text
    retrain = dash_br.find_element(f"#{ids.DATA_RETRAIN_BTN}")
    wait(lambda: retrain.get_attribute("disabled") is None, what="Retrain to be enabled")
    click(dash_br, retrain)
    dash_br.wait_for_contains_text(f"#{ids.DATA_RETRAIN_MSG}", "Saved candidate v0002", timeout=240)
    meta = registry.metadata("v0002")
    assert meta["data_url"] == source and meta["data_source"] == source
    assert registry.active_version() == "v0001"  # a candidate, never activated by training
    saved = (srv.models_dir / "db_source.json").read_text()
    assert PASSWORD not in saved and json.loads(saved)["saved_by"] == "adam"

    # The viewer sees the saved source, no controls.
    sign_in(dash_br, srv, "vera")
    dash_br.wait_for_contains_text(f"#{ids.DATA_DB_SAVED}", source, timeout=30)
    assert not dash_br.find_element(f"#{ids.DATA_DB_URL}").is_displayed()
    assert not dash_br.find_element(f"#{ids.DATA_DB_SAVE}").is_displayed()
    assert dash_br.find_element(f"#{ids.DATA_DB_SAVE}").get_attribute("disabled") is not None

    # A crafted request for the save-and-copy callback, as the viewer: refused by the server, nothing saved.
    viewer = raw_sign_in(srv, "vera", USERS["vera"][1])
    spec = spec_writing(srv, viewer, ids.DATA_DB_MSG)
    body = body_for(spec, {ids.DATA_DB_SAVE: (ids.DATA_DB_SAVE, 1)},
                    {ids.DATA_DB_URL: f"{url}?table=pg_catalog.pg_authid", ids.DATA_DB_QUERY: None})
    assert viewer.post(srv.url + UPDATE, json=body, timeout=60).status_code == 403
    assert (srv.models_dir / "db_source.json").read_text() == saved
    mine = [e for e in AuditLog(srv.models_dir).entries() if e["user"] == "vera" and e["action"] == "db_source"]
    assert mine and {e["outcome"] for e in mine} == {"refused"}
    assert [v["version"] for v in registry.versions()] == ["v0001", "v0002"]
