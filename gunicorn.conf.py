"""gunicorn settings for the Procfile (`gunicorn app:server --config gunicorn.conf.py ...`).

Worker model: gevent. Each connection is a greenlet, so clients that send half a request and
stall (slow networks, or a slowloris attack) cost a few kilobytes each instead of holding one of a
handful of threads: with 64 such connections open, /api/v1/health still answers in milliseconds
(benchmarks/bench_http.py; tests/test_http_hardening.py). The dashboard's long work runs in
background-callback processes, not in the request greenlets, so cooperative scheduling loses little.
"""
worker_class = "gevent"
worker_connections = 1000
timeout = 120             # a worker silent this long is restarted
graceful_timeout = 30
keepalive = 5             # idle keep-alive connections are closed after 5 s
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
