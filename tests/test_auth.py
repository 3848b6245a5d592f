"""Sign-in and roles, enforced on the server, under the Procfile's gunicorn (real HTTP, real sessions)."""
from __future__ import annotations

import json
import re
import shutil

import pytest
import requests

from core.access.accounts import AccountStore
from core.access.audit import AuditLog
from core.versions.pipeline import train
from core.versions.registry import Registry
from dashboard import ids
from tests.conftest import SAMPLE, start_server

PASSWORDS = {"vera": "viewer-pass-1", "anna": "analyst-pass-1", "adam": "admin-pass-12"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, warm_models):
    tmp = tmp_path_factory.mktemp("auth")
    shutil.copytree(warm_models, tmp / "models")      # v0001, active: train(SAMPLE) as a first start makes it
    registry = Registry(tmp / "models")
    train(SAMPLE, registry=registry, k=3, activate=False)  # v0002, a candidate
    store = AccountStore(tmp / "models")
    for name, role in (("vera", "viewer"), ("anna", "analyst"), ("adam", "admin")):
        store.add_user(name, role, PASSWORDS[name])
    srv = start_server(tmp, gunicorn=True, env={"SEGMENTLENS_LOGIN_RATE_LIMIT": "100/minute"}, wait_path="/login")
    yield srv
    srv.stop()


def sign_in(server, name, password=None) -> requests.Session:
    session = requests.Session()
    page = session.get(server.url + "/login", timeout=30)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    resp = session.post(server.url + "/login", data={"username": name, "password": password or PASSWORDS[name],
                                                     "csrf": csrf, "next": "/data"}, allow_redirects=False, timeout=30)
    session.last_status = resp.status_code
    session.last_location = resp.headers.get("Location")
    return session


def callback_body(server, session, output_id: str, trigger: dict) -> dict:
    """A callback request for the callback writing ``output_id``, built from /_dash-dependencies.

    ``trigger`` maps an input id (a string, or a pattern-matching id's ``type``) to the concrete
    id and value that fired it; every other input is sent with no value.
    """
    deps = session.get(server.url + "/_dash-dependencies", timeout=30).json()
    spec = next(d for d in deps if output_id in d["output"])
    outputs = []
    for part in spec["output"].strip(".").split("..."):
        cid, prop = part.rsplit(".", 1)
        outputs.append({"id": json.loads(cid) if cid.startswith("{") else cid, "property": prop})
    inputs, changed = [], []
    for dep in spec["inputs"]:
        key = dep["id"]
        pattern = key.startswith("{")
        name = json.loads(key)["type"] if pattern else key
        if name in trigger:
            concrete_id, value = trigger[name]
            item = {"id": concrete_id, "property": dep["property"], "value": value}
            cid = json.dumps(concrete_id, sort_keys=True, separators=(",", ":")) if pattern else concrete_id
            changed.append(f"{cid}.{dep['property']}")
            inputs.append([item] if pattern else item)
        else:
            inputs.append([] if pattern else {"id": key, "property": dep["property"], "value": None})
    state = [{"id": s["id"], "property": s["property"], "value": None} for s in spec.get("state", [])
             if not s["id"].startswith("{")]
    return {"output": spec["output"], "outputs": outputs if len(outputs) > 1 else outputs[0],
            "inputs": inputs, "changedPropIds": changed, "state": state}


def delete_body(server, session, version):
    return callback_body(server, session, ids.DATA_ACTION_STORE,
                         {ids.DATA_DELETE: ({"type": ids.DATA_DELETE, "version": version}, 1)})


def test_pages_redirect_to_sign_in_and_callbacks_need_a_session(server):
    resp = requests.get(server.url + "/profiles?segment=2", allow_redirects=False, timeout=30)
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/login?next=/profiles")
    resp = requests.post(server.url + "/_dash-update-component", json={"output": "x.children"}, timeout=30)
    assert resp.status_code == 401 and resp.json()["error"] == "unauthorized"
    assert requests.get(server.url + "/_dash-layout", timeout=30).status_code == 401
    # Static files and the sign-in page itself stay reachable.
    assert requests.get(server.url + "/login", timeout=30).status_code == 200


def test_wrong_password_is_refused_and_audited(server):
    session = sign_in(server, "vera", "not-her-password")
    assert session.last_status == 401
    assert session.get(server.url + "/", allow_redirects=False, timeout=30).status_code == 302
    entries = AuditLog(server.models_dir).entries()
    assert any(e["action"] == "sign-in" and e["user"] == "vera" and e["outcome"] == "failed" for e in entries)


def test_sign_in_without_the_form_token_is_refused(server):
    resp = requests.post(server.url + "/login", data={"username": "adam", "password": PASSWORDS["adam"]},
                         allow_redirects=False, timeout=30)
    assert resp.status_code == 400


def test_sign_in_redirects_only_to_this_site(server):
    session = requests.Session()
    page = session.get(server.url + "/login", timeout=30)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    resp = session.post(server.url + "/login", data={"username": "vera", "password": PASSWORDS["vera"], "csrf": csrf,
                                                     "next": "//evil.example/x"}, allow_redirects=False, timeout=30)
    assert resp.status_code == 302 and resp.headers["Location"] == "/"


def test_viewer_can_read_but_a_crafted_delete_gets_403_and_the_version_stays(server):
    viewer = sign_in(server, "vera")
    assert viewer.last_status == 302 and viewer.last_location == "/data"
    assert viewer.get(server.url + "/data", timeout=30).status_code == 200
    resp = viewer.post(server.url + "/_dash-update-component", json=delete_body(server, viewer, "v0002"), timeout=30)
    assert resp.status_code == 403
    assert "admins" in resp.json()["message"] and "viewer" in resp.json()["message"]
    assert [v["version"] for v in Registry(server.models_dir).versions()] == ["v0001", "v0002"]
    assert any(e["user"] == "vera" and e["outcome"] == "refused" for e in AuditLog(server.models_dir).entries())


def test_analyst_cannot_delete_either(server):
    analyst = sign_in(server, "anna")
    resp = analyst.post(server.url + "/_dash-update-component", json=delete_body(server, analyst, "v0002"), timeout=30)
    assert resp.status_code == 403
    assert "v0002" in [v["version"] for v in Registry(server.models_dir).versions()]


def test_viewer_cannot_rename_but_analyst_can(server):
    body_for = lambda s: callback_body(server, s, ids.PROFILES_NAMES,  # noqa: E731
                                       {ids.PROFILES_RENAME_BTN: (ids.PROFILES_RENAME_BTN, 1)})
    viewer = sign_in(server, "vera")
    assert viewer.post(server.url + "/_dash-update-component", json=body_for(viewer), timeout=30).status_code == 403
    analyst = sign_in(server, "anna")
    resp = analyst.post(server.url + "/_dash-update-component", json=body_for(analyst), timeout=30)
    assert resp.status_code in (200, 204)  # allowed through the guard (the page then asks for a name)


def test_admin_delete_goes_through_with_the_same_request(server):
    """The crafted request is a real one: from an admin it deletes the version (so the 403s above mean something)."""
    admin = sign_in(server, "adam")
    resp = admin.post(server.url + "/_dash-update-component", json=delete_body(server, admin, "v0002"), timeout=30)
    assert resp.status_code == 200, resp.text[:300]
    assert [v["version"] for v in Registry(server.models_dir).versions()] == ["v0001"]
    assert any(e["action"] == "delete" and e["user"] == "adam" for e in AuditLog(server.models_dir).entries())


def test_sign_out_ends_the_session(server):
    admin = sign_in(server, "adam")
    page = admin.get(server.url + "/_dash-layout", timeout=30)
    assert page.status_code == 200
    csrf = re.search(r'"name":\s*"csrf",\s*"value":\s*"([^"]+)"', admin.get(server.url + "/login", timeout=30).text)
    token = csrf.group(1) if csrf else re.search(r'name="csrf" value="([^"]+)"',
                                                 admin.get(server.url + "/login", timeout=30).text).group(1)
    resp = admin.post(server.url + "/logout", data={"csrf": token}, allow_redirects=False, timeout=30)
    assert resp.status_code == 302 and resp.headers["Location"] == "/login"
    assert admin.get(server.url + "/", allow_redirects=False, timeout=30).status_code == 302


def test_sign_in_attempts_are_rate_limited(tmp_path, warm_models):
    AccountStore(tmp_path / "models").add_user("adam", "admin", PASSWORDS["adam"])
    srv = start_server(tmp_path, gunicorn=True, env={"SEGMENTLENS_LOGIN_RATE_LIMIT": "3/minute"}, wait_path="/login",
                       models_from=warm_models)
    try:
        statuses = [sign_in(srv, "adam", "wrong-password").last_status for _ in range(5)]
    finally:
        srv.stop()
    assert statuses[:3] == [401, 401, 401] and statuses[3:] == [429, 429]


def test_no_accounts_on_a_network_address_is_read_only(tmp_path, warm_models):
    srv = start_server(tmp_path, gunicorn=True, host="0.0.0.0", models_from=warm_models)
    try:
        session = requests.Session()
        assert session.get(srv.url + "/data", timeout=30).status_code == 200  # pages stay viewable
        resp = session.post(srv.url + "/_dash-update-component", json=callback_body(
            srv, session, ids.PROFILES_NAMES, {ids.PROFILES_RENAME_BTN: (ids.PROFILES_RENAME_BTN, 1)}),
            timeout=30)
    finally:
        srv.stop()
    assert resp.status_code == 403
    assert "read-only" in resp.json()["message"] and "users add" in resp.json()["message"]


def test_admin_password_from_the_environment_creates_the_first_admin(tmp_path, warm_models):
    srv = start_server(tmp_path, gunicorn=True, env={"SEGMENTLENS_ADMIN_PASSWORD": "first-admin-pw"},
                       wait_path="/login", models_from=warm_models)
    try:
        admin = sign_in(srv, "admin", "first-admin-pw")
        assert admin.last_status == 302
        assert admin.get(srv.url + "/_dash-layout", timeout=30).status_code == 200
    finally:
        srv.stop()
    assert [u["role"] for u in AccountStore(tmp_path / "models").users()] == ["admin"]


def test_seed_export_download_needs_an_analyst_and_holds_the_three_files(server):
    import base64
    import io
    import zipfile

    def body_for(session):
        return callback_body(server, session, ids.DATA_SEED_DOWNLOAD,
                             {ids.DATA_SEED_EXPORT_BTN: (ids.DATA_SEED_EXPORT_BTN, 1)})

    viewer = sign_in(server, "vera")
    assert viewer.post(server.url + "/_dash-update-component", json=body_for(viewer), timeout=60).status_code == 403
    analyst = sign_in(server, "anna")
    resp = analyst.post(server.url + "/_dash-update-component", json=body_for(analyst), timeout=60)
    assert resp.status_code == 200, resp.text[:300]
    download = resp.json()["response"][ids.DATA_SEED_DOWNLOAD]["data"]
    assert download["filename"] == "segmentlens_v0001_sklearn.zip" and download["base64"]
    archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(download["content"])))
    assert sorted(archive.namelist()) == ["features.json", "kmeans_model.pkl", "scaler.pkl"]
    features = json.loads(archive.read("features.json"))
    assert features["features"] == Registry(server.models_dir).metadata("v0001")["features"]


def test_key_authenticated_api_calls_leave_the_session_alone_and_session_callers_still_work(server):
    """Issue 29: an API call with Authorization is decided by the key alone; its cookie is neither read nor
    written. A signed-in browser calling the API without a key is still served by its session."""
    admin = sign_in(server, "adam")
    assert admin.last_status == 302
    store = AccountStore(server.models_dir)
    key = store.create_key("latency-test", "viewer")
    try:
        customer = {"Age": 52, "Income": 58000, "Total_Spending": 640, "NumWebPurchases": 4,
                    "NumStorePurchases": 6, "NumWebVisitsMonth": 5, "Recency": 41}
        keyed = admin.post(server.url + "/api/v1/predict", json=customer,
                           headers={"Authorization": f"Bearer {key}"}, timeout=60)
        assert keyed.status_code == 200, keyed.text
        assert "Set-Cookie" not in keyed.headers
        assert "cookie" not in keyed.headers.get("Vary", "").lower()
        assert keyed.json()["predictions"][0]["segment"] >= 0
        # A wrong key is refused even though the admin's session cookie rides along: no fallback to it.
        wrong = admin.post(server.url + "/api/v1/predict", json=customer,
                           headers={"Authorization": "Bearer not-a-key"}, timeout=60)
        assert wrong.status_code == 401
        # The same cookie without a key: the session's role decides (an admin may roll back; a viewer key may not).
        by_session = admin.get(server.url + "/api/v1/model", timeout=60)
        assert by_session.status_code == 200
        assert "cookie" in by_session.headers.get("Vary", "").lower()
        viewer_key = admin.post(server.url + "/api/v1/models/rollback", json={},
                                headers={"Authorization": f"Bearer {key}"}, timeout=60)
        assert viewer_key.status_code == 403
        anonymous = requests.get(server.url + "/api/v1/model", timeout=60)
        assert anonymous.status_code == 401
    finally:
        store.revoke_key("latency-test")
