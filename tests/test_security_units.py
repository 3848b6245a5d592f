"""Issue 22's rules as functions: callback outputs against the server's map, the open-mode rule from the bind
address, the compression negotiation (issue 29: no private Flask-Compress name), a recovered manifest in health."""
from __future__ import annotations

import shutil
import socket

import pytest

from core.versions.pipeline import train
from core.versions.registry import Registry
from dashboard import ids
from dashboard.auth import PROTECTED_OUTPUTS, CallbackSpec
from dashboard.security import choose_encoding, listen_policy, local_only
from dashboard.services import Services
from tests.conftest import SAMPLE

ACTION_KEY = (f"..{ids.DATA_ACTION_MSG}.children...{ids.DATA_ACTION_STORE}.data..."
              '{"scope":"data","type":"app-model-changed"}.data..')
MSG = {"id": ids.DATA_ACTION_MSG, "property": "children"}
STORE = {"id": ids.DATA_ACTION_STORE, "property": "data"}
CHANGED = {"id": {"scope": "data", "type": ids.MODEL_CHANGED}, "property": "data"}


def test_a_callbacks_protection_comes_from_its_declared_outputs():
    spec = CallbackSpec(ACTION_KEY, {"inputs": [], "state": []})
    assert spec.action == PROTECTED_OUTPUTS[ids.DATA_ACTION_STORE] == "activate"
    assert spec.outputs_match([MSG, STORE, CHANGED])
    for forged in ([MSG, [], CHANGED], [MSG, CHANGED], [MSG, {"id": ids.NAV_STATUS, "property": "children"}, CHANGED],
                   [], None, MSG, [MSG, [STORE], CHANGED], [MSG, STORE, {"id": {"scope": "x", "type": "y"},
                                                                        "property": "data"}],
                   [MSG, {"id": ids.DATA_ACTION_STORE, "property": "children"}, CHANGED],
                   [MSG, STORE, {"id": {"scope": ["ALL"], "type": ids.MODEL_CHANGED}, "property": "data"}]):
        assert not spec.outputs_match(forged), forged


def test_single_pattern_and_duplicate_outputs():
    single = CallbackSpec(f"{ids.PROFILES_NAMES}.data", {})
    assert single.action == "rename" and not single.multi
    assert single.outputs_match({"id": ids.PROFILES_NAMES, "property": "data"})
    assert not single.outputs_match([{"id": ids.PROFILES_NAMES, "property": "data"}])
    everything = CallbackSpec('{"kind":["ALL"],"type":"t"}.value', {})
    assert everything.action is None
    assert everything.outputs_match([]) and everything.outputs_match(
        [{"id": {"kind": 1, "type": "t"}, "property": "value"}, {"id": {"kind": 2, "type": "t"}, "property": "value"}])
    assert not everything.outputs_match({"id": {"kind": 1, "type": "t"}, "property": "value"})
    duplicate = CallbackSpec(f"..{ids.DATA_ACTION_MSG}.children@abc123...{ids.DATA_ADOPT_STORE}.data..", {})
    assert duplicate.action == "rename"
    assert duplicate.outputs_match([MSG, {"id": ids.DATA_ADOPT_STORE, "property": "data"}])
    uploads = CallbackSpec(f"{ids.DATA_UPLOAD_STORE}.data", {"inputs": [{"id": ids.DATA_UPLOAD, "property": "contents"}]})
    assert uploads.uploads and not single.uploads


@pytest.mark.parametrize("listen, proxies, expected", [
    ("127.0.0.1:8050", None, True), ("localhost:8050", None, True), ("[::1]:8050", None, True),
    ("127.0.0.1:8050,[::1]:8050", None, True), ("0.0.0.0:8000", None, False), ("10.0.0.5:80", None, False),
    ("unix:/run/segmentlens.sock", None, False), ("127.0.0.1:8050,unix:/tmp/x", None, False),
    ("127.0.0.1:8050", "10.0.0.1", False), ("fd://3", None, False), (None, None, None), ("", None, None),
])
def test_open_mode_is_decided_by_how_the_server_was_started(listen, proxies, expected):
    assert listen_policy(listen, proxies) is expected


def test_without_a_setting_the_requests_own_server_socket_decides_never_a_header():
    with socket.socket(socket.AF_INET) as tcp, socket.socket(socket.AF_UNIX) as unix:
        tcp.bind(("127.0.0.1", 0))
        host_header = {"HTTP_HOST": "localhost", "SERVER_NAME": "localhost"}
        assert local_only({**host_header, "gunicorn.socket": tcp}, None) is True
        assert local_only({**host_header, "gunicorn.socket": unix}, None) is False
        assert local_only(host_header, None) is False  # unknown: remote
        assert local_only({**host_header, "gunicorn.socket": tcp}, False) is False


@pytest.mark.parametrize("header, expected", [
    ("gzip, deflate, br", "br"), ("gzip", "gzip"), ("br;q=0.5, gzip", "gzip"), ("br;q=0, gzip;q=0", None),
    ("", None), (None, None), ("identity", None), ("*", "br"), ("*;q=0, gzip", "gzip"), ("br;q=0, *", "gzip"),
    ("GZIP", "gzip"), ("gzip;q=abc, br;q=0.1", "br"), ("gzip;q=2", None), ("deflate", None),
    ("gzip ; q=0.8 , br ; q=0.9", "br"),
])
def test_compression_negotiation(header, expected):
    assert choose_encoding(("br", "gzip"), header) == expected


def test_no_private_flask_compress_name_is_imported():
    from pathlib import Path

    source = (Path(__file__).resolve().parents[1] / "dashboard" / "security.py").read_text()
    assert "_choose_algorithm" not in source and "flask_compress.flask_compress" not in source


def test_health_reports_a_recovered_manifest_as_a_warning(tmp_path):
    registry = Registry(tmp_path / "models")
    train(SAMPLE, registry=registry, k=3)
    services = Services(Registry(registry.root), None, SAMPLE)
    assert services.status()["status"] == "ok" and not services.status().get("warning")
    shutil.copy(registry.root / "manifest.json", tmp_path / "good.json")
    (registry.root / "manifest.json").write_text("{ damaged")
    status = Services(Registry(registry.root), None, SAMPLE).status()
    assert status["status"] == "ok" and status["manifest_recovered"] is True
    assert "manifest.json.bak" in status["warning"] and str(tmp_path) not in status["warning"]
