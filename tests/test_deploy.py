"""Deployment: the Procfile's gunicorn serves the app offline, with one model for all workers."""
import re
import urllib.request

import pytest

from core.versions.registry import Registry
from tests.conftest import ROOT, start_server


@pytest.fixture(scope="module")
def gunicorn_server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("gunicorn"), gunicorn=True)
    yield server
    server.stop()


def get(url):
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.status, resp.headers, resp.read().decode("utf-8", "replace")


def test_procfile_runs_gunicorn_on_port_with_workers():
    line = (ROOT / "Procfile").read_text().strip()
    assert line.startswith("web: gunicorn app:server")
    assert "$PORT" in line
    workers = int(re.search(r"--workers (\d+)", line).group(1))
    assert workers >= 2


def test_serves_pages_with_local_assets_only(gunicorn_server):
    status, _, html = get(gunicorn_server.url + "/")
    assert status == 200 and "<title>SegmentLens" in html
    # Offline first: every stylesheet and script comes from this server.
    refs = re.findall(r'(?:href|src)="([^"]+)"', html)
    assert refs and all(not r.startswith(("http:", "https:", "//")) for r in refs), refs
    css = [r for r in refs if "bootstrap" in r and r.endswith(".css")]
    assert css, refs
    status, headers, body = get(gunicorn_server.url + css[0])
    assert status == 200 and "Bootstrap" in body[:400] and "@import" not in body


def test_first_start_trained_exactly_one_model(gunicorn_server):
    versions = Registry(gunicorn_server.models_dir).versions()
    assert [v["version"] for v in versions] == ["v0001"] and versions[0]["active"]
    assert versions[0]["n_customers"] > 2000 and versions[0]["data_source"] == "synthetic_customers.tsv"


def test_layout_and_page_registry_served(gunicorn_server):
    status, _, layout = get(gunicorn_server.url + "/_dash-layout")
    assert status == 200 and "app-page-container" in layout
    for path in ("/", "/profiles", "/compare", "/explorer", "/diagnostics"):
        status, _, html = get(gunicorn_server.url + path)
        assert status == 200
