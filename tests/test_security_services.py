"""Issue 22 below the web layer: the services' own role checks, version numbers never reused, results keyed
by the model's checksum, and `python -m core models delete`."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from core.access.accounts import LOCAL, NOBODY, Caller, Forbidden, require
from core.access.audit import AuditLog
from core.versions.pipeline import train
from core.versions.registry import Registry
from dashboard.services import Services
from dashboard.services.results import ResultCache
from tests.conftest import ROOT, SAMPLE


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    """v0001 active (k=3), v0002 a candidate (k=4)."""
    root = tmp_path_factory.mktemp("reg") / "models"
    registry = Registry(root)
    train(SAMPLE, registry=registry, k=3)
    train(SAMPLE, registry=registry, k=4, activate=False)
    return root


@pytest.fixture
def registry(two_versions, tmp_path):
    shutil.copytree(two_versions, tmp_path / "models")
    return Registry(tmp_path / "models")


def services_as(registry, caller: Caller) -> Services:
    return Services(Registry(registry.root), None, SAMPLE, identify=lambda: caller)


def manifest_bytes(registry) -> bytes:
    return (registry.root / "manifest.json").read_bytes()


# ---------------------------------------------------------------------------- roles in the services
@pytest.mark.parametrize("role", [None, "viewer", "analyst"])
def test_only_admins_activate_roll_back_or_delete_whatever_calls_the_service(registry, role):
    services = services_as(registry, Caller("mallory", role))
    before = manifest_bytes(registry)
    for action, call in (("activate", lambda: services.activate_version("v0002")),
                         ("delete", lambda: services.delete_version("v0002")),
                         ("rollback", lambda: services.rollback_version())):
        with pytest.raises(Forbidden, match="Only admins"):
            call()
        last = AuditLog(registry.root).entries()[-1]
        assert (last["user"], last["action"], last["outcome"]) == ("mallory", action, "refused")
    assert manifest_bytes(registry) == before
    assert Registry(registry.root).active_version() == "v0001"


def test_an_admin_caller_activates_and_is_audited_by_name(registry):
    services = services_as(registry, Caller("adam", "admin"))
    assert services.activate_version("v0002") == "v0002"
    assert Registry(registry.root).active_version() == "v0002"
    last = AuditLog(registry.root).entries()[-1]
    assert (last["user"], last["action"], last["outcome"]) == ("adam", "activate", "ok")


def test_viewers_cannot_rename_upload_retrain_export_customers_or_plan(registry):
    services = services_as(registry, Caller("vera", "viewer"))
    names = services.segment_names()
    calls = {
        "rename": lambda: services.rename_segment(0, "Pwned"),
        "upload": lambda: services.accept_upload("data:text/csv;base64,SUQK", "x.csv"),
        "retrain": lambda: services.retrain_upload("0" * 32, "x.csv", 3, None),
        "export_customers": lambda: services.membership_csv(),
        "export_model": lambda: services.seed_export_zip(),
    }
    for action, call in calls.items():
        with pytest.raises(Forbidden) as info:
            call()
        assert info.value.action == action
    from core.campaigns.campaign import Economics

    with pytest.raises(Forbidden):
        services.campaigns.save_plan(Economics.checked(2.0, 10.0, None, None, None, None))
    assert services_as(registry, Caller("x", "viewer")).segment_names() == names
    refused = [e for e in AuditLog(registry.root).entries() if e["outcome"] == "refused"]
    assert {e["action"] for e in refused} >= set(calls) | {"campaign"}
    assert all(e["user"] == "vera" for e in refused)
    assert not (registry.root / "campaigns").exists() or not any((registry.root / "campaigns").iterdir())


def test_analysts_rename_and_export_customers(registry):
    services = services_as(registry, Caller("anna", "analyst"))
    assert services.rename_segment(0, "Loyal families") == "Loyal families"
    assert services.membership_csv().startswith("ID,segment")
    with pytest.raises(Forbidden):
        services.activate_version("v0002")


def test_a_background_job_without_its_caller_changes_nothing(registry, monkeypatch):
    """Services.from_env (a background job) has no request: nobody, unless the job passes its caller."""
    monkeypatch.setenv("SEGMENTLENS_MODELS", str(registry.root))
    services = Services.from_env()
    assert services.access.caller() == NOBODY
    with pytest.raises(Forbidden, match="sign in first"):
        services.activate_version("v0002")
    assert services.activate_version("v0002", caller=Caller("adam", "admin")) == "v0002"


def test_require_and_the_local_caller():
    assert require(LOCAL, "activate") is LOCAL
    with pytest.raises(Forbidden):
        require(Caller("x", "superuser"), "rename")
    with pytest.raises(Forbidden):
        require("admin", "rename")  # a bare string is not a caller


# ---------------------------------------------------------------------------- version numbers
def test_a_deleted_versions_number_is_never_given_again(registry):
    registry.delete("v0002")
    assert json.loads(manifest_bytes(registry))["last_version"] == 2
    again = Registry(registry.root)  # a restart
    version = train(SAMPLE, registry=again, k=5, activate=False).version
    assert version == "v0003"
    again.delete("v0003")
    assert train(SAMPLE, registry=Registry(registry.root), k=5, activate=False).version == "v0004"


def test_the_high_water_mark_survives_a_damaged_manifest(registry):
    registry.delete("v0002")
    (registry.root / "manifest.json").write_text("{ damaged")
    recovered = Registry(registry.root)
    assert [v["version"] for v in recovered.versions()] == ["v0001"] and recovered.recovered
    assert train(SAMPLE, registry=recovered, k=5, activate=False).version == "v0003"


def test_a_registry_from_before_the_mark_gets_it_on_delete(registry):
    manifest = json.loads(manifest_bytes(registry))
    manifest.pop("last_version", None)
    for name in ("manifest.json", "manifest.json.bak"):
        (registry.root / name).write_text(json.dumps(manifest))
    Registry(registry.root).delete("v0002")
    assert json.loads(manifest_bytes(registry))["last_version"] == 2
    assert train(SAMPLE, registry=Registry(registry.root), k=5, activate=False).version == "v0003"


def test_cli_models_delete_refuses_the_active_version_and_audits(registry):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "core", "models", *args, "--models", str(registry.root)],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)

    refused = cli("delete", "v0001")
    assert refused.returncode == 2 and "active model" in refused.stderr and "Traceback" not in refused.stderr
    done = cli("delete", "v0002")
    assert done.returncode == 0 and "deleted v0002" in done.stdout
    assert [v["version"] for v in Registry(registry.root).versions()] == ["v0001"]
    entries = [e for e in AuditLog(registry.root).entries() if e["action"] == "delete"]
    assert [(e["target"], e["outcome"]) for e in entries] == [("v0001", "failed"), ("v0002", "ok")]
    assert entries[0]["user"].startswith("cli:")


# ---------------------------------------------------------------------------- results keyed by checksum
def test_results_are_keyed_by_the_models_checksum_not_its_number(registry, tmp_path):
    from cachelib import FileSystemCache

    shared = FileSystemCache(str(tmp_path / "results"), threshold=200, default_timeout=0)
    cache = ResultCache(shared, registry=Registry(registry.root))
    sha = Registry(registry.root).metadata_entry("v0002")["sha256"]
    assert cache.full_key(("analysis", "v0002", 7)) == ("analysis", f"v0002@{sha[:16]}", 7)
    assert cache.cached(("analysis", "v0002"), lambda: "k=4 result") == "k=4 result"
    # The same number naming another model (as a registry from before the high-water mark could):
    manifest = json.loads(manifest_bytes(registry))
    manifest["versions"]["v0002"]["sha256"] = "0" * 64
    (registry.root / "manifest.json").write_text(json.dumps(manifest))
    fresh = ResultCache(shared, registry=Registry(registry.root))  # another worker, or after a restart
    assert fresh.cached(("analysis", "v0002"), lambda: "other model") == "other model"
    cache.registry = Registry(registry.root)
    assert cache.cached(("analysis", "v0002"), lambda: "other model") == "other model"
