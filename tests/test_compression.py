"""Compression and cache lifetimes, negotiated by a real server (the shared `python app.py` live server)."""
import gzip
import http.client
import json
import re
from urllib.parse import urlparse

import brotli

from dashboard.security import IMMUTABLE


def _get(server, path: str, encoding: str | None = None):
    url = urlparse(server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        conn.request("GET", path, headers={"Accept-Encoding": encoding} if encoding else {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_compression_is_negotiated_and_assets_are_cached(live_server):
    # A page: gzip when asked, identity when not; both carry the security headers and are revalidated.
    status, plain_headers, plain = _get(live_server, "/")
    assert status == 200 and "content-encoding" not in plain_headers and plain.lstrip().startswith(b"<!DOCTYPE")
    status, headers, body = _get(live_server, "/", "gzip")
    assert status == 200 and headers["content-encoding"] == "gzip" and "accept-encoding" in headers["vary"].lower()
    page = gzip.decompress(body)
    assert b"_dash-config" in page and len(body) < len(plain) / 3
    for h in (headers, plain_headers):
        assert "script-src" in h["content-security-policy"] and h["cache-control"] == "no-cache"
    # Every page carries the validation layout's ids, not every page's figures.
    assert len(plain) < 150_000, len(plain)
    # A callback-side JSON response (the dependencies every page load fetches): compressed too.
    _, headers, body = _get(live_server, "/_dash-dependencies", "gzip, deflate, br")
    assert headers["content-encoding"] == "br" and json.loads(brotli.decompress(body))
    # Fingerprinted scripts: compressed with brotli when offered, cached for a year, same bytes.
    scripts = re.findall(rb'src="(/_dash-component-suites/[^"]+)"', plain)
    assert scripts
    renderer = next(s.decode() for s in scripts if b"dash_renderer" in s)
    _, plain_headers, script = _get(live_server, renderer)
    _, headers, body = _get(live_server, renderer, "gzip, deflate, br, zstd")
    assert headers["content-encoding"] == "br" and brotli.decompress(body) == script
    assert "content-encoding" not in plain_headers and len(body) < len(script) / 3
    assert headers["cache-control"] == plain_headers["cache-control"] == IMMUTABLE
    _, headers, body = _get(live_server, renderer, "gzip")
    assert headers["content-encoding"] == "gzip" and gzip.decompress(body) == script
    # The stylesheet (streamed from the Bootstrap-Flask wheel) is compressed as well.
    sheet = re.search(rb'href="(/vendor/bootstrap/[^"]+)"', plain).group(1).decode()
    _, headers, body = _get(live_server, sheet, "br")
    _, _, css = _get(live_server, sheet)
    assert headers["content-encoding"] == "br" and brotli.decompress(body) == css
    # Identity is allowed to be refused explicitly: a client saying identity gets it.
    _, headers, _ = _get(live_server, renderer, "identity")
    assert "content-encoding" not in headers


def test_pages_with_a_csrf_token_are_not_compressed():
    """BREACH: a no-store page (the sign-in form: CSRF token + text from the URL) is sent as is."""
    import flask

    from dashboard.security import install_delivery

    server = flask.Flask("t")
    install_delivery(server)
    body = "<p>" + "x" * 2000 + "</p>"

    @server.route("/form")
    def form():
        return flask.Response(body, mimetype="text/html", headers={"Cache-Control": "no-store"})

    @server.route("/page")
    def page():
        return flask.Response(body, mimetype="text/html")

    client = server.test_client()
    response = client.get("/form", headers={"Accept-Encoding": "gzip, br"})
    assert "Content-Encoding" not in response.headers and response.get_data(as_text=True) == body
    response = client.get("/page", headers={"Accept-Encoding": "gzip"})
    assert response.headers["Content-Encoding"] == "gzip" and response.headers["Cache-Control"] == "no-cache"
    assert gzip.decompress(response.get_data()).decode() == body


def test_plotly_comes_with_the_page_fingerprinted_and_cached_for_a_year(live_server):
    """Issue 29: plotly.js is a deferred script of every page, at a versioned address kept for a year."""
    from dashboard.security import plotly_script_url

    _, _, page = _get(live_server, "/")
    tags = re.findall(rb'<script defer data-plotly-early src="([^"]+)"></script>', page)
    assert [t.decode() for t in tags] == [plotly_script_url()]  # once, in the head, before Dash's scripts
    assert page.index(tags[0]) < page.index(b"dash_renderer") and page.index(tags[0]) < page.index(b"</head>")
    assert re.search(rb'src="/assets/segmentlens-plotly\.js\?m=[0-9.]+"', page)
    status, headers, body = _get(live_server, tags[0].decode(), "br")
    assert status == 200 and headers["cache-control"] == IMMUTABLE and headers["content-encoding"] == "br"
    assert brotli.decompress(body).lstrip().startswith(b"/**") and b"plotly.js v" in brotli.decompress(body)[:200]
