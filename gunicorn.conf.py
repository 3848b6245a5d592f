"""gunicorn settings for the Procfile (`gunicorn app:server --config gunicorn.conf.py ...`).

Worker model: gevent. Each connection is a greenlet, so clients that send half a request and
stall (slow networks, or a slowloris attack) cost a few kilobytes each instead of holding one of a
handful of threads: with 64 such connections open, /api/v1/health still answers in milliseconds
(benchmarks/bench_http.py; tests/test_http_hardening.py). The dashboard's long work runs in
background-callback processes, not in the request greenlets, so cooperative scheduling loses little.
Measured with tests/test_http_hardening.py's slow-client test: the same two workers as gthread (4
threads each) let 64 stalled clients take every thread, and /api/v1/health probes timed out (5 s each).
"""
worker_class = "gevent"
worker_connections = 1000
timeout = 120             # a worker silent this long is restarted
graceful_timeout = 30
keepalive = 5             # idle keep-alive connections are closed after 5 s
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# Prometheus (/metrics, dashboard/monitoring.py): each worker writes its counters to files in
# PROMETHEUS_MULTIPROC_DIR and a scrape sums them, whichever worker answers. Set here, before any
# worker imports prometheus_client; emptied when the server starts (Prometheus counters restart at 0).
import os as _os
import shutil as _shutil
from pathlib import Path as _Path

_PROM_DIR = _os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(
    _Path(_os.environ.get("SEGMENTLENS_CACHE_DIR") or _Path(__file__).resolve().parent / ".cache") / "prometheus"))


def on_starting(server):
    # Setup problems as one line each in the log (a container's log), before any worker starts:
    # an unwritable volume stops the server here instead of as a traceback in every worker.
    from core.access.startup_checks import setup_warnings, volume_problem

    problem = volume_problem()
    if problem:
        raise SystemExit(problem)
    for warning in setup_warnings():
        server.log.warning("SegmentLens: %s", warning)
    _shutil.rmtree(_PROM_DIR, ignore_errors=True)
    _Path(_PROM_DIR).mkdir(parents=True, exist_ok=True)
    # Where the server listens decides whether a server with no accounts is open (loopback only) or
    # read-only: taken from gunicorn's own bind (a unix socket counts as remote), inherited by the
    # workers, so no request header can choose it (dashboard.security.listen_policy).
    _os.environ["SEGMENTLENS_LISTEN"] = ",".join(str(b) for b in server.cfg.bind)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
