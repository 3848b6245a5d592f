"""Customer value below the web layer: the value service checks the caller's role itself (defence in depth),
and the page's state-changing callbacks write outputs the server guards (dashboard.auth.PROTECTED_OUTPUTS)."""
from __future__ import annotations

import io

import pandas as pd
import pytest

from core.access.accounts import Caller, Forbidden
from core.access.audit import AuditLog
from core.versions.pipeline import train
from core.versions.registry import Registry
from core.value.simulate import simulate_log
from dashboard import ids
from dashboard.services import Services
from tests.conftest import SAMPLE


@pytest.fixture(scope="module")
def log_registry(tmp_path_factory):
    """One active version trained on a simulated transaction log (customer, date, amount)."""
    tmp = tmp_path_factory.mktemp("value-sec")
    log = tmp / "orders.csv"
    frame = simulate_log(1500, seed=5)
    frame["date"] = frame["date"].dt.strftime("%Y-%m-%d")
    frame.to_csv(log, index=False)
    registry = Registry(tmp / "models")
    train(log, registry=registry, k=3)
    return registry.root, log


def services_as(root, log, caller: Caller) -> Services:
    return Services(Registry(root), None, log, identify=lambda: caller)


def last_audit(root) -> tuple:
    entry = AuditLog(root).entries()[-1]
    return entry["user"], entry["action"], entry["outcome"]


@pytest.mark.parametrize("role", [None, "viewer"])
def test_viewers_cannot_recompute_or_take_customer_lists_whatever_calls_the_service(log_registry, role):
    root, log = log_registry
    services = services_as(root, log, Caller("mallory", role))
    version = Registry(root).active_version()
    before = Registry(root).artifact(version, "value")
    with pytest.raises(Forbidden, match="analysts and admins"):
        services.values.compute(time_unit="day", role="admin")  # a role argument cannot override the caller's
    assert last_audit(root) == ("mallory", "retrain", "refused")
    assert Registry(root).artifact(version, "value") == before  # nothing stored
    for call in (lambda: services.values.slipping_csv(role="admin"),
                 lambda: services.values.audience_csv("winback", role="admin")):
        with pytest.raises(Forbidden, match="analysts and admins"):
            call()
        assert last_audit(root) == ("mallory", "campaign", "refused")
    # reading is open: the defaults are computed once, by the system, not with the viewer's settings
    report = services.values.report()
    assert report["time_unit"] == "week" and Registry(root).artifact(version, "value") is not None


def test_analysts_recompute_and_download_under_their_own_name(log_registry):
    root, log = log_registry
    services = services_as(root, log, Caller("ada", "analyst"))
    report = services.values.compute(time_unit="day", horizon=30, actor="someone-else")
    assert report["time_unit"] == "day" and report["horizon"] == 30
    assert Registry(root).artifact_json(report["version"], "value")["time_unit"] == "day"
    assert last_audit(root) == ("ada", "value", "ok")  # the server's caller, not the actor argument
    text, name = services.values.slipping_csv()
    assert name == f"valuable-but-slipping-{report['version']}.csv"
    slipping = pd.read_csv(io.StringIO(text))
    assert len(slipping) == len(report["slipping"]["customers"]) and "ID" in slipping
    assert last_audit(root) == ("ada", "campaign", "ok")
    audience, summary = services.values.audience_csv("winback")
    frame = pd.read_csv(io.StringIO(audience))
    assert len(frame) and (frame["p_alive"] < 0.5).all() and "held out" in summary
    assert last_audit(root) == ("ada", "campaign", "ok")


def test_value_callbacks_write_protected_outputs(tmp_path):
    from dashboard.auth import PROTECTED_OUTPUTS, CallbackSpec
    from dashboard.factory import create_app

    app = create_app(models_dir=tmp_path / "models", data_path=SAMPLE, cache_dir=tmp_path / "cache")
    expected = {ids.VALUE_COMPUTE_BTN: "retrain", ids.VALUE_DOWNLOAD_BTN: "campaign",
                ids.CAMPAIGNS_VALUE_BTN: "campaign"}
    found = {}
    for key, entry in app.callback_map.items():
        for dep in entry.get("inputs") or []:
            if isinstance(dep, dict) and dep.get("id") in expected:
                found[dep["id"]] = CallbackSpec(key, entry).action
    assert found == expected
    # the results themselves are not protected: viewers see them
    assert ids.VALUE_CONTENT not in PROTECTED_OUTPUTS
