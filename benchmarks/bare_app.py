"""The peer of the prediction benchmark: a bare Flask JSON endpoint, nothing else (no Dash, no hooks).

Served by benchmarks/bench_api.py with the Procfile's gunicorn command and gunicorn.conf.py (same worker class,
workers and settings as the app), so the difference to ``POST /api/v1/predict`` is what the app adds.
"""
import flask

app = flask.Flask(__name__)


@app.post("/bare")
def bare():
    """Parse the JSON body and answer a small JSON object, as a prediction does (without scoring)."""
    body = flask.request.get_json()
    return flask.jsonify({"ok": True, "fields": len(body)})
