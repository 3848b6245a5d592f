"""Setup problems as one line each (issue 28): core.access.startup_checks, gunicorn's log and /api/v1/health.

The container image relies on these (scripts/container_test.sh checks them in a container); here
they run against the real gunicorn of the Procfile.
"""
import json
import os
import socket
import subprocess
import urllib.request

import pytest
from conftest import ROOT, free_port, procfile_command, start_server

from core.access.accounts import AccountStore
from core.access.startup_checks import no_user_warning, setup_warnings, spark_master_warning, volume_problem


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("SEGMENTLENS_ADMIN_PASSWORD", "SEGMENTLENS_SPARK_MASTER"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_volume_problem_names_the_folder(tmp_path):
    assert volume_problem([tmp_path / "models", tmp_path / "cache"]) is None
    assert (tmp_path / "models").is_dir() and (tmp_path / "cache").is_dir()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    line = volume_problem([tmp_path / "ok", blocker / "models"])
    assert line.startswith(f"SegmentLens cannot start: {blocker / 'models'} is not writable by user id {os.getuid()}")
    assert "\n" not in line


def test_no_user_warning_until_a_user_or_the_bootstrap_password(tmp_path, clean_env):
    assert "no user yet" in no_user_warning(tmp_path)
    assert "python -m core users add NAME --role admin" in no_user_warning(tmp_path)
    clean_env.setenv("SEGMENTLENS_ADMIN_PASSWORD", "a-long-password")
    assert no_user_warning(tmp_path) is None
    clean_env.delenv("SEGMENTLENS_ADMIN_PASSWORD")
    AccountStore(tmp_path).add_user("alice", "admin", "a-long-password")
    assert no_user_warning(tmp_path) is None and setup_warnings(tmp_path) == []


def test_spark_master_warning(clean_env):
    pytest.importorskip("pyspark")
    assert spark_master_warning() is None
    clean_env.setenv("SEGMENTLENS_SPARK_MASTER", "nonsense")
    assert spark_master_warning().startswith("SEGMENTLENS_SPARK_MASTER='nonsense' is not a Spark master")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clean_env.setenv("SEGMENTLENS_SPARK_MASTER", f"spark://127.0.0.1:{port}")
    assert spark_master_warning().startswith(f"Spark master spark://127.0.0.1:{port} is not reachable")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        clean_env.setenv("SEGMENTLENS_SPARK_MASTER", f"spark://127.0.0.1:{s.getsockname()[1]}")
        assert spark_master_warning() is None
    clean_env.setenv("SEGMENTLENS_SPARK_MASTER", "local[2]")
    assert spark_master_warning() is None


def test_gunicorn_logs_the_warnings_once_and_health_lists_them(tmp_path, warm_models):
    env = {"SEGMENTLENS_SPARK_MASTER": "nonsense", "SEGMENTLENS_ADMIN_PASSWORD": ""}
    server = start_server(tmp_path, gunicorn=True, models_from=warm_models, env=env, wait_path="/api/v1/health")
    try:
        with urllib.request.urlopen(server.url + "/api/v1/health", timeout=10) as r:
            status, body = r.status, json.loads(r.read())
        log = (tmp_path / "server.log").read_text()
    finally:
        server.stop()
    assert status == 200 and body["status"] == "ok"
    assert len(body["setup_warnings"]) == 2
    assert body["setup_warnings"][0].startswith("no user yet")
    assert body["setup_warnings"][1].startswith("SEGMENTLENS_SPARK_MASTER='nonsense' is not a Spark master")
    # Once, by gunicorn's master, not once per worker.
    assert log.count("SegmentLens: no user yet") == 1
    assert log.count("SEGMENTLENS_SPARK_MASTER='nonsense'") == 1


def test_gunicorn_stops_with_one_line_on_an_unwritable_volume(tmp_path):
    blocker = tmp_path / "volume"
    blocker.write_text("a file where the volume should be")
    env = dict(os.environ, SEGMENTLENS_MODELS=str(blocker / "models"), SEGMENTLENS_CACHE_DIR=str(blocker / "cache"),
               PORT=str(free_port()))
    done = subprocess.run(["bash", "-c", f"exec {procfile_command(host='127.0.0.1')}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"SegmentLens cannot start: {blocker / 'models'} is not writable" in done.stderr
    assert "Traceback" not in done.stderr and "Booting worker" not in done.stderr
