"""SegmentLens: `python app.py` serves the dashboard and API on HOST:PORT (default 127.0.0.1:8050).

gunicorn imports `server` from here (see the Procfile).
"""
import os

from dashboard.factory import create_app

app = create_app()
server = app.server

if __name__ == "__main__":
    app.run(host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8050")), debug=False)
