"""SegmentLens: `python app.py` serves the dashboard and API on HOST:PORT (default 127.0.0.1:8050).

gunicorn imports `server` from here (see the Procfile).
"""
import os

from dashboard.factory import create_app

if __name__ == "__main__":
    # Where this server listens (not a request's Host header) decides whether no-accounts mode is open.
    os.environ["SEGMENTLENS_LISTEN"] = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8050')}"
app = create_app()
server = app.server

if __name__ == "__main__":
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8050"))
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    print(f"SegmentLens: serving the dashboard at http://{shown}:{port}/ (API under /api/v1/); Ctrl+C stops it.",
          flush=True)
    app.run(host=host, port=port, debug=False)
