"""Issue 30, item 3: a customer table keeps the user's column names everywhere.

A generated customer table whose columns are named like roles (``visits``, ``income``, ``age``) trains
through the real CLI with ``--features visits,income``; the pages, the what-if form and the API schema
show those names, never the canonical ones the roles stand for.
"""
from __future__ import annotations

import io
import json
import subprocess
import sys

import dash
import numpy as np
import pandas as pd
import pytest

from dashboard.factory import create_app

CANONICAL = ("NumWebVisitsMonth", "Web visits / month", "Yearly household income", "Age (years)")


def own_table(folder):
    """Three planted groups of customers; columns named like roles, plus a free one (basket)."""
    rng = np.random.default_rng(3)
    n = 600
    group = rng.integers(0, 3, n)
    frame = pd.DataFrame({
        "customer_id": np.arange(1, n + 1),
        "visits": np.array([2, 6, 12])[group] + rng.poisson(1, n),
        "income": (np.array([25000, 55000, 90000])[group] * rng.lognormal(0, 0.15, n)).round(0),
        "age": np.array([25, 45, 65])[group] + rng.integers(-5, 6, n),
        "basket": rng.gamma(2.0, 40.0, n).round(2)})
    path = folder / "own.csv"
    path.write_text(frame.to_csv(index=False))
    return path


@pytest.fixture(scope="module")
def trained_own(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("own-names")
    data = own_table(tmp)
    proc = subprocess.run([sys.executable, "-m", "core", "train", "--data", str(data), "--models", str(tmp / "models"),
                           "--k", "3", "--features", "visits,income", "--json", "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    app = create_app(models_dir=tmp / "models", data_path=data, cache_dir=tmp / "cache")
    return tmp, data, out, app


def test_cli_takes_the_users_names_and_refuses_the_canonical_ones(trained_own):
    tmp, data, out, _app = trained_own
    assert out["features"] == ["visits", "income"]
    proc = subprocess.run([sys.executable, "-m", "core", "train", "--data", str(data), "--models", str(tmp / "other"),
                           "--features", "visits,NumWebVisitsMonth", "--quiet"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("unknown feature(s) NumWebVisitsMonth; choose from visits, income, age, "
                                        "basket")
    saved = json.loads(next((tmp / "models").glob("v0001.mapping.*.json")).read_text())
    assert saved["features"] == ["visits", "income"] and set(saved["ranges"]) == {"visits", "income"}
    assert saved["columns"]["visits"] == "web_visits"  # the role: what the column means, not its name


def test_every_page_and_the_api_schema_show_the_users_names(trained_own):
    _tmp, _data, _out, app = trained_own
    with app.server.test_request_context("/"):
        from dashboard.services import get_services

        services = get_services()
        form = services.predict_form()
        assert [f["name"] for f in form["features"]] == ["visits", "income"]
        assert [f["label"] for f in form["features"]] == ["visits", "income"]
        r = services.what_if({"visits": "6", "income": "55000"})
        assert [f["feature"] for f in r["flips"]] == ["visits", "income"]
        persona_words = " ".join(p.description for p in services.analysis().personas)
        tree = services.analyses.ktree()
        assert all(set(n["means"]) == {"visits", "income"} for n in tree["nodes"])
        assert {n["split"]["label"] for n in tree["nodes"] if n["split"]} <= {"visits", "income"}
        layouts = {}
        for page in dash.page_registry.values():
            if page["path"] in ("/", "/profiles", "/compare", "/explorer", "/predict", "/diagnostics", "/stability",
                                "/monitoring"):
                layout = getattr(page["layout"], "__wrapped__", page["layout"])
                layouts[page["path"]] = str(layout())
    assert "income" in persona_words or "visit" in persona_words  # roles still feed the personas
    for path in ("/profiles", "/compare", "/predict"):
        assert "visits" in layouts[path] and "income" in layouts[path], path
    for path, text in layouts.items():
        for word in CANONICAL:
            assert word not in text, f"{path} shows {word!r}"
    client = app.server.test_client()
    doc = client.get("/api/v1/openapi.json").get_json()
    text = json.dumps(doc)
    assert '"visits"' in text and '"income"' in text and "NumWebVisitsMonth" not in text
    answer = client.post("/api/v1/predict", json={"visits": 6, "income": 55000})
    assert answer.status_code == 200 and answer.get_json()["predictions"][0]["segment"] == r["segment"]
    refused = client.post("/api/v1/predict", json={"NumWebVisitsMonth": 6, "Income": 55000})
    assert refused.status_code == 422
    assert [e["field"] for e in refused.get_json()["errors"]] == ["visits", "income"]


def test_profiles_csv_and_the_upload_preview_use_the_users_names(trained_own):
    _tmp, data, _out, app = trained_own
    from core.versions import training
    from core.reading.mapping import prepare_input
    from dashboard.services.uploads import upload_report

    with app.server.test_request_context("/"):
        from dashboard.services import get_services

        csv = get_services().profiles_csv()
    measures = set(pd.read_csv(io.StringIO(csv))["measure"])
    assert {"visits", "income", "age"} <= measures
    assert not measures & {"NumWebVisitsMonth", "Income", "Age"}
    report = upload_report(data.read_bytes(), "own.csv")  # what the /data page shows of an upload
    assert report["input"] == "customers"
    assert [list(row) for row in report["preview"]] == [["ID", "visits"]] * 5
    assert [row["visits"] for row in report["preview"]] == \
        pd.read_csv(data)["visits"].head(5).astype(float).tolist()
    assert report["feature_choices"] == ["visits", "income", "age", "basket"]
    frame, _used = prepare_input(data)
    assert "NumWebVisitsMonth" in frame.frame  # the premise: the canonical hidden copy exists
    shown = training.preview(frame.frame)
    assert "visits" in shown.columns and "NumWebVisitsMonth" not in shown.columns
