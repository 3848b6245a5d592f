"""Hardened HTTP under the Procfile's gunicorn: headers, body limits, slow clients, quiet 404s, no PIDs."""
from __future__ import annotations

import http.client
import json
import re
import socket
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest

from benchmarks.slow_clients import health_latencies, hold_slow_clients
from tests.conftest import start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory, warm_models):
    tmp = tmp_path_factory.mktemp("hardened")
    srv = start_server(tmp, gunicorn=True, env={"SEGMENTLENS_MAX_UPLOAD_MB": "1", "SEGMENTLENS_RATE_LIMIT": "off"},
                       models_from=warm_models)
    yield srv
    srv.stop()


def request(url, method="GET", body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_security_headers_on_pages_api_and_assets(server):
    for path in ("/", "/api/v1/health", "/_dash-layout", "/login"):
        status, headers, _ = request(server.url + path)
        assert status == 200, path
        csp = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp and "object-src 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"


def test_dash_inline_scripts_are_allowed_by_hash_not_unsafe_inline(server):
    _, headers, body = request(server.url + "/")
    csp = headers["Content-Security-Policy"]
    script_src = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src
    body = re.sub(rb"<!--\[if IE\]>.*?<!\[endif\]-->", b"", body, flags=re.S)  # never run by current browsers
    inline = re.findall(rb"<script(?: id=\"[^\"]*\")?(?: type=\"application/javascript\")?>(.*?)</script>", body, re.S)
    assert inline, "Dash's index has inline start-up scripts"
    import base64
    import hashlib
    for script in inline:
        digest = base64.b64encode(hashlib.sha256(script).digest()).decode()
        assert f"'sha256-{digest}'" in script_src


def test_declared_body_over_the_api_limit_is_refused_before_reading(server):
    parts = urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
        # Declares 300 MB and sends none of it: the answer must come at once, from the headers alone.
        s.sendall(b"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 314572800\r\n\r\n")
        start = time.monotonic()
        answer = b""
        while b"payload_too_large" not in answer and time.monotonic() - start < 5:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
        assert time.monotonic() - start < 5
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"payload_too_large" in answer


def send_raw(server, path: str, body: bytes, declared: int | None = None) -> bytes:
    """POST ``body`` on a raw socket (the server may refuse and close before it is all sent); the answer."""
    parts = urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {declared if declared is not None else len(body)}\r\n\r\n".encode())
        try:
            s.sendall(body)
        except OSError:
            pass  # refused and closed early: the answer is already waiting
        answer = b""
        while True:
            try:
                chunk = s.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            answer += chunk
            if b"\r\n\r\n" in answer and answer.split(b"\r\n\r\n", 1)[1].rstrip().endswith(b"}"):
                break
    return answer


def test_dash_route_takes_uploads_up_to_the_upload_limit_and_no_more(server):
    # SEGMENTLENS_MAX_UPLOAD_MB=1: the Dash route takes 1 MB base64-encoded (4/3) plus 1 MB of other inputs.
    big = send_raw(server, "/_dash-update-component", b"a" * (3 * 1024 * 1024))
    assert big.startswith(b"HTTP/1.1 413") and b"payload_too_large" in big
    under = send_raw(server, "/_dash-update-component", b'{"output": "x.children"}' + b" " * (2 * 1024 * 1024))
    assert not under.startswith(b"HTTP/1.1 413"), under[:100]  # within the limit: reaches Dash (which refuses it)


def test_chunked_body_over_the_limit_is_refused(server):
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)

    def chunks():
        for _ in range(64):  # 64 x 64 KiB = 4 MiB, over the 1 MiB API limit, no Content-Length
            yield b"a" * 65536

    conn.request("POST", "/api/v1/predict", body=chunks(), headers={"Content-Type": "application/json"},
                 encode_chunked=True)
    resp = conn.getresponse()
    assert resp.status == 413
    assert json.loads(resp.read())["error"] == "payload_too_large"
    conn.close()


def test_sixty_four_slow_clients_do_not_stall_health(server):
    socks = hold_slow_clients(server.url, 64)
    try:
        time.sleep(0.5)
        ms = sorted(health_latencies(server.url, 30, timeout=5))
    finally:
        for s in socks:
            s.close()
    p95 = ms[int(round(0.95 * (len(ms) - 1)))]
    assert p95 < 500, ms


def test_unknown_static_paths_answer_404(server):
    for path in ("/assets/nope.css", "/_dash-component-suites/nope/nope.js", "/vendor/bootstrap/nope.css",
                 "/_dash-component-suites/dash/nope.js"):
        status, _, body = request(server.url + path)
        assert status == 404, (path, status)
        assert b"Traceback" not in body
    log = (server.models_dir.parent / "server.log").read_text()
    assert "Traceback" not in log


def test_background_job_handles_carry_no_pid(server):
    """Dash's background-job handle names the job's process; the browser gets an opaque token."""
    from dashboard.security import _OpaqueJobs

    jobs = _OpaqueJobs(None, b"k" * 32)
    sig = "0123456789abcdef0123456789abcdef"
    token = jobs.hide("4242", sig)
    assert "4242" not in token.split(".")[0] and jobs.reveal(token) == f"4242.{sig}"
    assert jobs.reveal("garbage") == "garbage"


def test_no_absolute_paths_in_error_answers(server):
    status, _, body = request(server.url + "/api/v1/predict", "POST", b'{"Age": "x"}',
                              {"Content-Type": "application/json"})
    assert status == 422
    assert str(server.models_dir.parent) not in body.decode()
