"""Issue 22's attacks, replayed as a real client against the Procfile server (gunicorn, gevent, 2 workers).

Each attack is sent the way the security review sent it; each test then checks that nothing on disk
changed (the registry folder's files, the audit log's "ok" entries), not only the status code.
"""
from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from core.access.accounts import AccountStore
from core.access.audit import AuditLog
from core.versions.pipeline import train
from core.versions.registry import Registry
from dashboard import ids
from tests.conftest import ROOT, SAMPLE, procfile_command, start_server

PASSWORDS = {"vera": "viewer-pass-1", "anna": "analyst-pass-1", "adam": "admin-pass-12"}
UPDATE = "/_dash-update-component"


@pytest.fixture(scope="module")
def server(tmp_path_factory, warm_models):
    tmp = tmp_path_factory.mktemp("attacks")
    shutil.copytree(warm_models, tmp / "models")  # v0001, active, as a first start leaves it
    train(SAMPLE, registry=Registry(tmp / "models"), k=3, activate=False)  # v0002, a candidate
    store = AccountStore(tmp / "models")
    for name, role in (("vera", "viewer"), ("anna", "analyst"), ("adam", "admin")):
        store.add_user(name, role, PASSWORDS[name])
    srv = start_server(tmp, gunicorn=True, wait_path="/login",
                       env={"SEGMENTLENS_LOGIN_RATE_LIMIT": "1000/minute", "SEGMENTLENS_ACTION_RATE_LIMIT": "1000/minute"})
    yield srv
    srv.stop()


def sign_in(server, name, password=None) -> requests.Session:
    session = requests.Session()
    page = session.get(server.url + "/login", timeout=30)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    resp = session.post(server.url + "/login", data={"username": name, "password": password or PASSWORDS[name],
                                                     "csrf": csrf, "next": "/"}, allow_redirects=False, timeout=30)
    assert resp.status_code == 302, f"{name} could not sign in ({resp.status_code})"
    # The signed-in session's form token (a new session on sign-in has a new one), for signing out.
    session.csrf = re.search(r'name="csrf" value="([^"]+)"', session.get(server.url + "/login", timeout=30).text).group(1)
    return session


def deps(server, session) -> list[dict]:
    return session.get(server.url + "/_dash-dependencies", timeout=30).json()


def body_for(spec: dict, trigger: dict | None = None, state: dict | None = None) -> dict:
    """A genuine callback request for ``spec`` (from /_dash-dependencies): ``trigger`` maps an input id (a
    pattern's ``type``) to (concrete id, value); ``state`` maps a state id to its value."""
    trigger, state = trigger or {}, state or {}
    outputs = []
    for part in spec["output"][2:-2].split("...") if spec["output"].startswith("..") else [spec["output"]]:
        cid, prop = part.rsplit(".", 1)
        outputs.append({"id": json.loads(cid) if cid.startswith("{") else cid, "property": prop.split("@")[0]})
    inputs, changed = [], []
    for dep in spec["inputs"]:
        key, pattern = dep["id"], dep["id"].startswith("{")
        name = json.loads(key)["type"] if pattern else key
        if name in trigger:
            concrete, value = trigger[name]
            item = {"id": concrete, "property": dep["property"], "value": value}
            cid = json.dumps(concrete, sort_keys=True, separators=(",", ":")) if pattern else concrete
            changed.append(f"{cid}.{dep['property']}")
            inputs.append([item] if pattern else item)
        else:
            inputs.append([] if pattern else {"id": key, "property": dep["property"], "value": None})
    states = [[] if s["id"].startswith("{") else {"id": s["id"], "property": s["property"], "value": state.get(s["id"])}
              for s in spec.get("state", [])]
    return {"output": spec["output"], "outputs": outputs if len(outputs) > 1 else outputs[0], "inputs": inputs,
            "changedPropIds": changed, "state": states}


def spec_writing(server, session, output_id: str) -> dict:
    return next(d for d in deps(server, session) if output_id in d["output"] and "@" not in
                next(p for p in d["output"].split("...") if output_id in p))


def disk_state(models: Path) -> dict:
    """Every file of the registry folder with its SHA-256 (the audit log and lock files aside)."""
    out = {}
    for path in sorted(models.rglob("*")):
        if path.is_file() and path.name not in ("audit.log", ".lock", ".accounts.lock") \
                and not path.name.endswith(".tmp"):
            out[str(path.relative_to(models))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def ok_entries(models: Path, user: str) -> list[dict]:
    return [e for e in AuditLog(models).entries() if e["user"] == user and e["outcome"] in ("ok", "started")
            and e["action"] not in ("sign-in", "sign-out")]


CSV = base64.b64encode(SAMPLE.read_bytes()).decode()

# The protected callbacks as the review attacked them: (protected output, trigger, state).
ATTACKS = {
    "activate": (ids.DATA_ACTION_STORE,
                 {ids.DATA_ACTIVATE: ({"type": ids.DATA_ACTIVATE, "version": "v0002", "where": "table"}, 1)}, {}),
    "rollback": (ids.DATA_ACTION_STORE, {ids.DATA_ROLLBACK_CONFIRM: (ids.DATA_ROLLBACK_CONFIRM, 1)}, {}),
    "delete": (ids.DATA_ACTION_STORE, {ids.DATA_DELETE: ({"type": ids.DATA_DELETE, "version": "v0002"}, 1)}, {}),
    "rename": (ids.PROFILES_NAMES, {ids.PROFILES_RENAME_BTN: (ids.PROFILES_RENAME_BTN, 1)},
               {ids.PROFILES_SEGMENT: "0", ids.PROFILES_RENAME_INPUT: "Pwned"}),
    "upload": (ids.DATA_UPLOAD_STORE, {ids.DATA_UPLOAD: (ids.DATA_UPLOAD, f"data:text/csv;base64,{CSV}")},
               {ids.DATA_UPLOAD: "customers.csv"}),
    "reset_monitoring": (ids.MONITORING_RESET_STORE, {ids.MONITORING_RESET: (ids.MONITORING_RESET, 1)}, {}),
    "campaign": (ids.CAMPAIGNS_SAVED, {ids.CAMPAIGNS_SAVE_BTN: (ids.CAMPAIGNS_SAVE_BTN, 1)}, {}),
}


def forgeries(body: dict, protected: str) -> list[dict]:
    """The review's forged variants of a genuine request: the protected output given as ``[]``, left out,
    or replaced by another callback's output; and a request naming no outputs at all."""
    outputs = body["outputs"] if isinstance(body["outputs"], list) else [body["outputs"]]
    where = next(i for i, o in enumerate(outputs) if isinstance(o, dict) and o.get("id") == protected)
    as_empty = [o if i != where else [] for i, o in enumerate(outputs)]
    left_out = [o for i, o in enumerate(outputs) if i != where]
    other = [o if i != where else {"id": ids.NAV_STATUS, "property": "children"} for i, o in enumerate(outputs)]
    variants = [as_empty, other, []]
    if left_out:
        variants.append(left_out if len(left_out) > 1 else left_out[0])
    return [dict(body, outputs=v if isinstance(body["outputs"], list) or v == [] else v[0]) for v in variants]


@pytest.mark.parametrize("action", sorted(ATTACKS))
def test_attack_1_forged_outputs_never_run_a_protected_callback(server, action):
    """Critical: the guard took the protected outputs from the request; Dash dispatches on ``output``."""
    protected, trigger, state = ATTACKS[action]
    viewer = sign_in(server, "vera")
    spec = spec_writing(server, viewer, protected)
    genuine = body_for(spec, trigger, state)
    before = disk_state(server.models_dir)
    statuses = []
    for forged in forgeries(genuine, protected):
        for _ in range(2):  # both workers
            statuses.append(viewer.post(server.url + UPDATE, json=forged, timeout=60).status_code)
    # The genuine request from the viewer is refused by role.
    statuses.append(viewer.post(server.url + UPDATE, json=genuine, timeout=60).status_code)
    assert all(s in (400, 403) for s in statuses), statuses
    assert statuses[-1] == 403
    assert disk_state(server.models_dir) == before
    assert ok_entries(server.models_dir, "vera") == []
    assert Registry(server.models_dir).active_version() == "v0001"


def test_attack_1_forged_outputs_are_refused_for_admins_too(server):
    """A request whose outputs disagree with the server's callback map is malformed, whoever sends it."""
    admin = sign_in(server, "adam")
    protected, trigger, state = ATTACKS["activate"]
    genuine = body_for(spec_writing(server, admin, protected), trigger, state)
    before = disk_state(server.models_dir)
    for forged in forgeries(genuine, protected):
        resp = admin.post(server.url + UPDATE, json=forged, timeout=60)
        assert resp.status_code == 400 and resp.json()["error"] == "bad_request"
    assert disk_state(server.models_dir) == before


def test_attack_1_refusals_are_audited_under_their_own_name(server):
    viewer = sign_in(server, "vera")
    for action in ("delete", "rollback"):
        protected, trigger, state = ATTACKS[action]
        resp = viewer.post(server.url + UPDATE, json=body_for(spec_writing(server, viewer, protected), trigger, state),
                           timeout=60)
        assert resp.status_code == 403
        last = [e for e in AuditLog(server.models_dir).entries() if e["user"] == "vera"][-1]
        assert (last["action"], last["outcome"]) == (action, "refused")


def test_attack_7_no_app_shell_without_a_session(server):
    """Low: /logout (GET) and paths that only begin like a static prefix served the app shell."""
    for path in ("/logout", "/assets//x", "/_favicon.ico.html", "/_favicon.icox", "/vendor/bootstrap//x",
                 "/assets/../data", "/favicon.ico"):
        resp = requests.get(server.url + path, allow_redirects=False, timeout=30)
        assert resp.status_code in (302, 308, 404), (path, resp.status_code)
        assert "_dash-config" not in resp.text and "react-entry-point" not in resp.text, path
        if resp.status_code == 308:  # a merged-slashes redirect: follow it once, it must still hold
            again = requests.get(server.url + resp.headers["Location"], allow_redirects=False, timeout=30)
            assert again.status_code in (302, 404) and "react-entry-point" not in again.text, path
    # Real static files stay public; the sign-in page too.
    assert requests.get(server.url + "/assets/segmentlens.css", timeout=30).status_code == 200
    assert requests.get(server.url + "/_favicon.ico", timeout=30).status_code == 200
    assert requests.get(server.url + "/login", timeout=30).status_code == 200


def test_attack_8_viewers_get_aggregate_exports_only(server):
    viewer = sign_in(server, "vera")
    before = disk_state(server.models_dir)
    membership = body_for(spec_writing(server, viewer, ids.DATA_DOWNLOAD),
                          {ids.DATA_EXPORT_MEMBERSHIP_BTN: (ids.DATA_EXPORT_MEMBERSHIP_BTN, 1)})
    resp = viewer.post(server.url + UPDATE, json=membership, timeout=60)
    assert resp.status_code == 403 and "ID" not in resp.text
    overview = body_for(spec_writing(server, viewer, ids.OVERVIEW_DOWNLOAD),
                        {ids.OVERVIEW_DOWNLOAD_BTN: (ids.OVERVIEW_DOWNLOAD_BTN, 1)})
    assert viewer.post(server.url + UPDATE, json=overview, timeout=60).status_code == 403
    profiles = body_for(spec_writing(server, viewer, ids.DATA_DOWNLOAD),
                        {ids.DATA_EXPORT_PROFILES_BTN: (ids.DATA_EXPORT_PROFILES_BTN, 1)})
    resp = viewer.post(server.url + UPDATE, json=profiles, timeout=60)
    assert resp.status_code == 200 and resp.json()["response"][ids.DATA_DOWNLOAD]["data"]["filename"].startswith(
        "segment_profiles_")
    analyst = sign_in(server, "anna")
    resp = analyst.post(server.url + UPDATE, json=membership, timeout=60)
    assert resp.status_code == 200
    assert resp.json()["response"][ids.DATA_DOWNLOAD]["data"]["content"].startswith("ID,segment")
    assert disk_state(server.models_dir) == before


def test_seed_export_is_audited(server):
    analyst = sign_in(server, "anna")
    body = body_for(spec_writing(server, analyst, ids.DATA_SEED_DOWNLOAD),
                    {ids.DATA_SEED_EXPORT_BTN: (ids.DATA_SEED_EXPORT_BTN, 1)})
    assert analyst.post(server.url + UPDATE, json=body, timeout=60).status_code == 200
    entry = [e for e in AuditLog(server.models_dir).entries() if e["user"] == "anna"][-1]
    assert (entry["action"], entry["outcome"]) == ("export_model", "ok") and entry["target"].endswith("_sklearn.zip")


# ---------------------------------------------------------------------------- attack 3: unix socket
class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self.path)


def _unix_request(path: str, method: str, url: str, body: dict | None = None, host: str = "localhost"):
    conn = _UnixConnection(path)
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, url, body=data, headers={"Host": host, "Content-Type": "application/json"})
    resp = conn.getresponse()
    out = resp.status, resp.read()
    conn.close()
    return out


def test_attack_3_host_header_never_makes_an_anonymous_caller_admin(tmp_path, warm_models):
    """Medium/high: behind a reverse proxy on a unix socket, ``Host: localhost`` chose the open (admin) mode."""
    shutil.copytree(warm_models, tmp_path / "models")
    train(SAMPLE, registry=Registry(tmp_path / "models"), k=3, activate=False)  # v0002 to activate
    sock = tmp_path / "gunicorn.sock"
    command = procfile_command().replace("0.0.0.0:$PORT", f"unix:{sock}")
    env = dict(os.environ, SEGMENTLENS_MODELS=str(tmp_path / "models"), SEGMENTLENS_CACHE_DIR=str(tmp_path / "cache"),
               SEGMENTLENS_DATA=str(SAMPLE), PYTHONUNBUFFERED="1")
    for name in ("SEGMENTLENS_ADMIN_PASSWORD", "SEGMENTLENS_LISTEN", "SEGMENTLENS_TRUSTED_PROXIES"):
        env.pop(name, None)
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if _unix_request(str(sock), "GET", "/api/v1/health")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()[-2000:]
            time.sleep(0.3)
        before = disk_state(tmp_path / "models")
        status, raw = _unix_request(str(sock), "GET", "/_dash-dependencies")
        spec = next(d for d in json.loads(raw) if ids.DATA_ACTION_STORE in d["output"])
        body = body_for(spec, *ATTACKS["activate"][1:])
        for host in ("localhost", "127.0.0.1", "[::1]", "localhost:8050"):
            status, raw = _unix_request(str(sock), "POST", UPDATE, body, host=host)
            assert status == 403 and b"read-only" in raw, (host, status, raw[:200])
            status, raw = _unix_request(str(sock), "POST", "/api/v1/models/v0002/activate", {}, host=host)
            assert status in (401, 403), (host, status)
        assert disk_state(tmp_path / "models") == before
        assert Registry(tmp_path / "models").active_version() == "v0001"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_attack_3_a_loopback_tcp_bind_is_still_the_open_quick_start(tmp_path, warm_models):
    srv = start_server(tmp_path, gunicorn=True, host="127.0.0.1", models_from=warm_models,
                       env={"SEGMENTLENS_LISTEN": "0.0.0.0:1"})  # a stale value: gunicorn's own bind wins
    try:
        assert requests.get(srv.url + "/_dash-layout", timeout=30).status_code == 200  # no sign-in needed
        session = requests.Session()
        spec = next(d for d in deps(srv, session) if ids.PROFILES_NAMES in d["output"])
        body = body_for(spec, *ATTACKS["rename"][1:])
        resp = session.post(srv.url + UPDATE, json=body, timeout=60)
        assert resp.status_code == 200, resp.text[:300]
    finally:
        srv.stop()
    renamed = [e for e in AuditLog(tmp_path / "models").entries() if e["action"] == "rename"]
    assert renamed and renamed[-1]["user"] == "local" and renamed[-1]["outcome"] == "ok"


# ---------------------------------------------------------------------------- attack 6: bodies
def raw_post(server, path: str, total: int, *, cookie: str | None = None, chunked: bool = True,
             prefix: bytes = b'{"output": "x", "pad": "', chunk: int = 65536) -> tuple[int, int]:
    """POST ``total`` bytes over a raw socket (chunked, or with a declared length), stopping when the server
    answers or closes: (status, bytes sent)."""
    import select

    host, port = server.url.split("//", 1)[1].split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json"]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}")
    if cookie:
        head.append(f"Cookie: {cookie}")
    sent = 0
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        while sent < total:
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered (or closed): stop sending, as a browser would
            piece = (prefix if sent == 0 else b"") + b"a" * min(chunk, total - sent - (len(prefix) if sent == 0 else 0))
            sock.sendall((f"{len(piece):x}\r\n".encode() + piece + b"\r\n") if chunked else piece)
            sent += len(piece)
        if chunked and sent >= total:
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass
    data = b""
    try:
        while b"\r\n" not in data:
            more = sock.recv(4096)
            if not more:
                break
            data += more
    except OSError:
        pass
    sock.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, sent


def worker_rss(server) -> int:
    import psutil

    workers = [p for p in psutil.Process(server.proc.pid).children() if "gunicorn" in " ".join(p.cmdline())]
    return sum(p.memory_info().rss for p in workers)


def session_cookie(session: requests.Session) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in session.cookies)


def test_attack_6_anonymous_chunked_bodies_are_not_read(server):
    """Medium: anonymous chunked bodies were buffered up to ~68 MB each before the sign-in check."""
    import threading

    big = 68 * 1024 * 1024
    start = worker_rss(server)
    peak = [start]
    done = threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], worker_rss(server))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    results = []
    threads = [threading.Thread(target=lambda: results.append(raw_post(server, UPDATE, big))) for _ in range(8)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    done.set()
    watcher.join()
    assert [status for status, _ in results] == [401] * 8, results
    assert max(sent for _, sent in results) < 16 * 1024 * 1024  # refused long before the body was sent
    assert time.monotonic() - t0 < 60
    assert peak[0] - start < 24 * 1024 * 1024, f"workers grew by {(peak[0] - start) / 2**20:.1f} MB"
    # A declared length is refused at once too.
    assert raw_post(server, UPDATE, big, chunked=False)[0] in (401, 413)


def test_attack_6_body_limits_follow_the_role_and_the_callback(server):
    three_mb = 3 * 1024 * 1024
    viewer, analyst = sign_in(server, "vera"), sign_in(server, "anna")
    for chunked in (False, True):
        # Viewers: the small callback limit, declared or chunked.
        assert raw_post(server, UPDATE, three_mb, cookie=session_cookie(viewer), chunked=chunked)[0] == 413
    # Analysts: the upload limit, but only for an upload callback.
    spec = spec_writing(server, analyst, ids.DATA_UPLOAD_STORE)
    upload = body_for(spec, {ids.DATA_UPLOAD: (ids.DATA_UPLOAD, "data:text/csv;base64," + "QUJD" * (three_mb // 4))},
                      {ids.DATA_UPLOAD: "big.csv"})
    resp = analyst.post(server.url + UPDATE, json=upload, timeout=120)
    assert resp.status_code == 200 and "error" in json.dumps(resp.json())  # read and judged: not a customer file
    other = body_for(spec_writing(server, analyst, ids.PROFILES_NAMES), ATTACKS["rename"][1],
                     {ids.PROFILES_SEGMENT: "0", ids.PROFILES_RENAME_INPUT: "x" * three_mb})
    resp = analyst.post(server.url + UPDATE, json=other, timeout=120)
    assert resp.status_code == 413 and resp.json()["error"] == "payload_too_large"
    # The same upload from a viewer is cut off at the small limit before the callback runs.
    assert viewer.post(server.url + UPDATE, json=upload, timeout=120).status_code == 413


# ---------------------------------------------------------------------------- attack 5: sessions
def _alive(server, session) -> bool:
    return session.get(server.url + "/_dash-layout", allow_redirects=False, timeout=30).status_code == 200


def _copy(server, session) -> requests.Session:
    thief = requests.Session()
    for c in session.cookies:
        thief.cookies.set(c.name, c.value)
    return thief


@pytest.mark.parametrize("event", ["logout", "password", "role", "remove-and-add"])
def test_attack_5_sessions_end_for_every_copy(server, event):
    """Medium: a cookie copied before sign-out kept working for 31 days; re-adding a user revived it."""
    name = f"sam-{event}"
    store = AccountStore(server.models_dir)
    store.add_user(name, "analyst", "sam-password-1")
    victim = sign_in(server, name, "sam-password-1")
    stolen = _copy(server, victim)
    assert _alive(server, stolen)
    if event == "logout":
        resp = victim.post(server.url + "/logout", data={"csrf": victim.csrf}, allow_redirects=False, timeout=30)
        assert resp.status_code == 302
    elif event == "password":
        store.set_password(name, "sam-password-2")
    elif event == "role":
        store.set_role(name, "viewer")
    else:
        store.remove_user(name)
        store.add_user(name, "analyst", "sam-password-3")
    for _ in range(4):  # both workers
        assert not _alive(server, stolen)
    resp = stolen.post(server.url + UPDATE, json=body_for(spec_writing(server, sign_in(server, "vera"),
                                                                       ids.PROFILES_NAMES), *ATTACKS["rename"][1:]),
                       timeout=30)
    assert resp.status_code == 401
    if event != "logout":  # signing in again works
        password = {"password": "sam-password-2", "role": "sam-password-1"}.get(event, "sam-password-3")
        assert _alive(server, sign_in(server, name, password))


def test_session_cookie_lifetime_is_short_and_configurable():
    from dashboard.auth import session_lifetime

    assert session_lifetime(None).total_seconds() == 8 * 3600
    assert session_lifetime("0.5").total_seconds() == 1800
    for bad in ("0", "-1", "forever", "1000"):
        with pytest.raises(ValueError, match="SEGMENTLENS_SESSION_HOURS"):
            session_lifetime(bad)


# ---------------------------------------------------------------------------- attack 4: the retrain's actor
def _run_background(session, server, body: dict, timeout: float = 180) -> dict:
    resp = session.post(server.url + UPDATE, json=body, timeout=60)
    assert resp.status_code == 200, resp.text[:300]
    handles = resp.json()
    assert "cacheKey" in handles and "job" in handles, handles
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        poll = session.post(server.url + UPDATE, params={"cacheKey": handles["cacheKey"], "job": handles["job"]},
                            json=body, timeout=60)
        if poll.status_code == 200 and "response" in poll.json():
            return poll.json()
        time.sleep(0.5)
    raise AssertionError("the background job did not finish")


def test_attack_4_the_retrain_is_audited_as_the_signed_in_user(server):
    """Medium: the retrain job's actor came from a browser store: an analyst's retrain was audited as "admin"."""
    analyst = sign_in(server, "anna")
    spec = spec_writing(server, analyst, ids.DATA_UPLOAD_STORE)
    upload = body_for(spec, {ids.DATA_UPLOAD: (ids.DATA_UPLOAD, f"data:text/csv;base64,{CSV}")},
                      {ids.DATA_UPLOAD: "customers.tsv"})
    resp = analyst.post(server.url + UPDATE, json=upload, timeout=120)
    assert resp.status_code == 200, resp.text[:300]
    stored = resp.json()["response"][ids.DATA_UPLOAD_STORE]["data"]
    assert stored.get("token"), stored
    retrain_spec = spec_writing(server, analyst, ids.DATA_RETRAIN_STORE)
    body = body_for(retrain_spec, {ids.DATA_RETRAIN_BTN: (ids.DATA_RETRAIN_BTN, 1)},
                    {ids.DATA_UPLOAD_STORE: stored, ids.DATA_K: 3, ids.DATA_FEATURES: None})
    # The old attack: a forged actor sent along with the job's arguments is refused outright.
    forged = dict(body, state=body["state"] + [{"id": "data-actor-store", "property": "data", "value": "admin"}])
    assert analyst.post(server.url + UPDATE, json=forged, timeout=60).status_code == 400
    result = _run_background(analyst, server, body)
    version = result["response"][ids.DATA_RETRAIN_STORE]["data"].get("version")
    assert version, result
    retrains = [e for e in AuditLog(server.models_dir).entries() if e["action"] == "retrain"]
    assert retrains and {e["user"] for e in retrains} == {"anna"}
    assert [e["outcome"] for e in retrains][-2:] == ["started", "ok"]


# ---------------------------------------------------------------------------- attack 2: reused numbers
def test_attack_2_a_deleted_versions_analysis_is_never_served_for_a_new_model(server):
    """High: after delete + retrain the new model got the deleted one's number, and its cached analysis."""
    admin = sign_in(server, "adam")
    headers = {"Content-Type": "application/json"}
    assert admin.post(server.url + "/api/v1/models/v0002/activate", json={}, headers=headers,
                      timeout=60).status_code == 200
    old = admin.get(server.url + "/api/v1/segments", timeout=120).json()
    assert old["model_version"] == "v0002" and len(old["segments"]) == 3  # cached now, on disk, for every worker
    assert admin.post(server.url + "/api/v1/models/v0001/activate", json={}, headers=headers,
                      timeout=60).status_code == 200
    delete = body_for(spec_writing(server, admin, ids.DATA_ACTION_STORE), *ATTACKS["delete"][1:])
    assert admin.post(server.url + UPDATE, json=delete, timeout=60).status_code == 200
    assert "v0002" not in [v["version"] for v in Registry(server.models_dir).versions()]
    new_version = train(SAMPLE, registry=Registry(server.models_dir), k=5).version  # as `python -m core train` does
    assert new_version not in ("v0002",) and int(new_version[1:]) > 2
    for _ in range(4):  # both workers
        resp = admin.get(server.url + "/api/v1/segments", timeout=120)
        assert resp.status_code == 200
        assert resp.json()["model_version"] == new_version and len(resp.json()["segments"]) == 5
