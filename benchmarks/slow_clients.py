"""Slow clients against a running server: N connections that send headers and one byte, then stall.

Used by benchmarks/bench_http.py and tests/test_http_hardening.py:
``python benchmarks/slow_clients.py URL [--clients 64] [--probes 40]`` prints /api/v1/health p50/p95 (ms)
while the stalled connections are held open.
"""
from __future__ import annotations

import argparse
import socket
import statistics
import time
import urllib.request
from urllib.parse import urlsplit

__all__ = ["hold_slow_clients", "health_latencies"]


_PARTIAL = {
    # The headers and one byte of a 1,000-byte body.
    "body": b"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{",
    # Headers that never end (slowloris).
    "headers": b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: 1",
}


def hold_slow_clients(url: str, clients: int, partial: str = "body") -> list[socket.socket]:
    """Open ``clients`` connections, each sending half a request (``partial``: "body" or "headers") and stalling."""
    parts = urlsplit(url)
    socks = []
    for _ in range(clients):
        s = socket.create_connection((parts.hostname, parts.port), timeout=5)
        s.sendall(_PARTIAL[partial])
        socks.append(s)
    return socks


def health_latencies(url: str, probes: int, timeout: float = 10.0) -> list[float]:
    """Milliseconds of ``probes`` sequential GET /api/v1/health requests (timeout counts as ``timeout``)."""
    out = []
    for _ in range(probes):
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(url + "/api/v1/health", timeout=timeout) as resp:
                resp.read()
        except Exception:
            pass
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--partial", choices=sorted(_PARTIAL), default="body")
    args = parser.parse_args()
    socks = hold_slow_clients(args.url, args.clients, args.partial)
    time.sleep(0.5)
    try:
        ms = sorted(health_latencies(args.url, args.probes))
    finally:
        for s in socks:
            s.close()
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    print(f"{args.clients} slow clients ({args.partial}): /api/v1/health p50 {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, "
          f"max {ms[-1]:.1f} ms over {len(ms)} probes")


if __name__ == "__main__":
    main()
