"""The dashboard's database source and sync (issue 27) through the services, against a real PostgreSQL server.

The server is the one tests/test_postgres.py starts (initdb + pg_ctl in a temporary folder). Roles are
checked by the services themselves: a viewer or an analyst cannot save, copy or retrain from the source.
"""
from __future__ import annotations

import pytest

from core.access.accounts import Caller, Forbidden
from core.access.audit import AuditLog
from core.versions.pipeline import prepare, train
from core.reading.postgres import PostgresError
from core.versions.registry import Registry
from tests.test_postgres import PASSWORD, SAMPLE, USER, conn, load_sample, server, url  # noqa: F401  (fixtures)

from dashboard.services import Services

ADA, ANN, VIC = Caller("ada", "admin"), Caller("ann", "analyst"), Caller("vic", "viewer")


@pytest.fixture
def services(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGMENTLENS_CACHE_DIR", str(tmp_path / "cache"))
    registry = Registry(tmp_path / "models")
    train(SAMPLE, registry=registry, k=3)
    return Services(registry, None, SAMPLE)


def test_admin_saves_previews_and_retrains_from_a_table(url, conn, services):  # noqa: F811
    load_sample(conn, "public.dash_customers")
    source = f"{url}?table=public.dash_customers"
    # A password typed into the form is refused, never kept.
    with pytest.raises(PostgresError, match="leave the password out"):
        services.save_db_source(source.replace(f"{USER}@", f"{USER}:{PASSWORD}@"), caller=ADA)
    assert services.db_source() is None
    saved = services.save_db_source(source, caller=ADA)
    assert saved["url"] == source and services.db_source()["saved_by"] == "ada"
    report = services.preview_db_source(caller=ADA)
    used = prepare(SAMPLE).report.rows_used  # the file's own cleaning: the same rows are used
    assert report["rows_copied"] == 2240 and report["rows_used"] == used and report["input"] == "canonical"
    # Viewers and analysts: refused by the services whatever called them; nothing changes.
    for who in (VIC, ANN):
        with pytest.raises(Forbidden):
            services.save_db_source(f"{url}?table=public.other", caller=who)
        with pytest.raises(Forbidden):
            services.preview_db_source(caller=who)
    with pytest.raises(Forbidden):
        services.retrain_upload(report["token"], report["name"], 4, None, caller=ANN)
    assert services.db_source()["url"] == source
    before = {v["version"] for v in services.registry.versions()}
    result = services.retrain_upload(report["token"], report["name"], 4, None, caller=ADA)
    assert result["version"] not in before and result["k"] == 4 and result["rows_used"] == used
    meta = services.registry.metadata(result["version"])
    assert meta["data_url"] == source and meta["data_source"] == source and meta["data_query"] is None
    assert PASSWORD not in (services.registry.root / "db_source.json").read_text()
    refused = [e for e in AuditLog(services.registry.root).entries() if e["outcome"] == "refused"]
    assert {e["user"] for e in refused} == {"vic", "ann"}


def test_a_query_source_and_bad_sources_say_one_line(url, conn, services):  # noqa: F811
    load_sample(conn, "public.dash_q")
    saved = services.save_db_source(url, 'SELECT * FROM public.dash_q WHERE "ID" % 2 = 0', caller=ADA)
    assert "(query: SELECT" in saved["display"]
    report = services.preview_db_source(caller=ADA)
    even = conn.execute('SELECT count(*) FROM public.dash_q WHERE "ID" % 2 = 0').fetchone()[0]
    assert 0 < even < 2240 and report["rows_copied"] == even
    services.save_db_source(f"{url}?table=public.nothing_here", caller=ADA)
    with pytest.raises(PostgresError, match='relation "public.nothing_here" does not exist'):
        services.preview_db_source(caller=ADA)
    with pytest.raises(PostgresError, match="name a table"):
        services.save_db_source(url, caller=ADA)
    with pytest.raises(PostgresError, match="expected postgresql://"):
        services.save_db_source("mysql://x@y/z?table=a", caller=ADA)


def test_dashboard_activate_and_rollback_rewrite_the_sync_table(url, conn, services, monkeypatch):  # noqa: F811
    from core.cli.postgres import last_sync

    registry = services.registry
    v1 = registry.active_version()
    v2, _, _ = train(SAMPLE, registry=registry, k=4, activate=False)
    target = f"{url}?table=public.dash_synced"
    assert services.last_sync() is None  # no SEGMENTLENS_SYNC_URL: nothing to show
    monkeypatch.setenv("SEGMENTLENS_SYNC_URL", target)
    services.activate_version(v2, caller=ADA)
    n = registry.metadata(v2)["n_customers"]
    assert conn.execute("SELECT count(*), min(model_version), max(model_version), max(segment) "
                        "FROM public.dash_synced").fetchone() == (n, v2, v2, 3)
    entry = services.last_sync()
    assert entry == last_sync(registry.root)
    assert (entry["user"], entry["target"], entry["outcome"]) == ("ada", target, "ok")
    assert entry["detail"] == f"{v2} after activate: {n} rows"
    assert services.rollback_version(caller=ADA) == v1
    assert conn.execute("SELECT min(model_version), max(segment) FROM public.dash_synced").fetchone() == (v1, 2)
    assert services.last_sync()["detail"].startswith(f"{v1} after rollback")
    # A viewer's activation is refused before anything is synced.
    with pytest.raises(Forbidden):
        services.activate_version(v2, caller=VIC)
    syncs = [e for e in AuditLog(registry.root).entries() if e["action"] == "db-sync"]
    assert [e["outcome"] for e in syncs] == ["ok", "ok"]
