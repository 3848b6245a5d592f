"""Issue 30: a version's data in its own terms.

Item 1: every field a person types or reads is in the data's own units (orders, money, days); a feature
clustered on a log scale is transformed behind the scenes and said once. Item 2: a section exists only
when the version's data has its inputs. Checked on the CDNOW order log (skipped when absent) through
the services and the page layouts of a real app, and the what-if answer against ``POST /api/v1/predict``.
"""
from __future__ import annotations

import re
from pathlib import Path

import dash
import numpy as np
import pytest

from dashboard.factory import create_app

CDNOW = Path("../shared/data/cdnow_transactions.txt")
LOG_WORDS = re.compile(r"\(log scale\)|log units|Frequency_log|Monetary_log")


@pytest.fixture(scope="module")
def cdnow_app(tmp_path_factory):
    if not CDNOW.is_file():
        pytest.skip("CDNOW order log not present (../shared/data)")
    from core.versions.pipeline import train
    from core.versions.registry import Registry

    tmp = tmp_path_factory.mktemp("cdnow-terms")
    _version, model, _meta = train(CDNOW, k=6, n_init=2, registry=Registry(tmp / "models"))
    assert {"Frequency_log", "Monetary_log"} <= set(model.features)  # the premise: logged features
    return create_app(models_dir=tmp / "models", data_path=CDNOW.resolve(), cache_dir=tmp / "cache")


def _services(app):
    from dashboard.services import get_services

    return get_services()


def _layouts(app, paths, as_text: bool = True) -> dict:
    out = {}
    with app.server.test_request_context("/"):
        for page in dash.page_registry.values():
            if page["path"] in paths:
                layout = getattr(page["layout"], "__wrapped__", page["layout"])
                out[page["path"]] = str(layout()) if as_text else layout()
    return out


def _columns_with(component, title: str) -> list:
    """The innermost dbc.Col components whose text holds ``title``."""
    import dash_bootstrap_components as dbc

    found = []
    for child in _children(component):
        found += _columns_with(child, title)
    if not found and isinstance(component, dbc.Col) and title in str(component):
        found.append(component)
    return found


def _children(component) -> list:
    children = getattr(component, "children", None)
    if children is None:
        return []
    return [c for c in (children if isinstance(children, (list, tuple)) else [children]) if hasattr(c, "to_plotly_json")]


def test_the_what_if_form_is_in_orders_and_money(cdnow_app):
    with cdnow_app.server.test_request_context("/"):
        form = _services(cdnow_app).predict_form()
    fields = {f["name"]: f for f in form["features"]}
    assert list(fields) == ["Recency", "Frequency", "Monetary", "Tenure"]
    assert fields["Frequency"]["feature"] == "Frequency_log" and fields["Frequency"]["logged"]
    assert fields["Frequency"]["label"] == "Orders" and fields["Monetary"]["label"] == "Total spend"
    # Typical ranges in orders: the CDNOW median customer placed one order; the busiest one 217.
    assert (fields["Frequency"]["min"], fields["Frequency"]["median"], fields["Frequency"]["max"]) == (1, 1, 217)
    assert fields["Frequency"]["integer"] and not fields["Monetary"]["integer"]
    assert fields["Monetary"]["max"] == pytest.approx(13990.93)
    assert form["raw"] == []  # no birth year, no spend per category in an order log


def test_the_form_and_the_api_give_the_same_answer_in_units(cdnow_app):
    customer = {"Recency": 200, "Frequency": 3, "Monetary": 120, "Tenure": 500}
    with cdnow_app.server.test_request_context("/"):
        r = _services(cdnow_app).what_if({k: str(v) for k, v in customer.items()})
    assert not r["errors"]
    response = cdnow_app.server.test_client().post("/api/v1/predict", json=customer)
    assert response.status_code == 200, response.get_json()
    api = response.get_json()["predictions"][0]
    assert r["segment"] == api["segment"]
    assert round(r["confidence"], 6) == pytest.approx(api["confidence"], abs=1e-6)
    # The answer speaks units too: the values typed and the "what would change" points.
    assert r["values"] == {"Recency": 200.0, "Frequency": 3.0, "Monetary": 120.0, "Tenure": 500.0}
    flips = {f["feature"]: f for f in r["flips"]}
    assert set(flips) == set(customer)
    orders = flips["Frequency"]
    assert orders["value"] == 3.0 and orders["whole"]
    for side in ("down", "up"):
        if orders[side] is not None:
            assert orders[side] == int(orders[side]), "orders are whole numbers"
            # The segment there, scored by the API in units, is the one the answer names.
            moved = cdnow_app.server.test_client().post("/api/v1/predict",
                                                        json={**customer, "Frequency": orders[side]})
            assert moved.get_json()["predictions"][0]["segment"] == orders[f"{side}_segment"]


def test_typical_member_and_customer_fill_the_form_in_units(cdnow_app):
    with cdnow_app.server.test_request_context("/"):
        services = _services(cdnow_app)
        fields = services.typical_member(0)
        frame = services.analysis().frame
    row = frame.loc[frame["ID"] == fields["ID"]].iloc[0]
    assert fields["Frequency"] == row["Frequency"] and "Frequency_log" not in fields
    assert fields["Monetary"] == pytest.approx(row["Monetary"], abs=0.01)


def test_no_page_speaks_log_units_or_shows_sections_without_inputs(cdnow_app):
    layouts = _layouts(cdnow_app, {"/predict", "/profiles", "/compare", "/explorer"})
    for path, text in layouts.items():
        # The rules' SQL and pandas query too: they cut the user's columns in units.
        assert not LOG_WORDS.search(text), f"{path}: {LOG_WORDS.search(text).group(0)}"
    predict = layouts["/predict"]
    assert "From raw fields" not in predict and "birth year" not in predict
    assert "Campaigns and products" not in predict  # no campaign responses, no product spend
    assert predict.count("clustered on a log scale") == 1  # said once
    assert "Orders and Total spend are clustered on a log scale" in predict
    assert "clustered on a log scale" in layouts["/explorer"]
    profiles = _layouts(cdnow_app, {"/profiles"}, as_text=False)["/profiles"]
    # Campaign acceptance, product and channel mix, economics, products to feature: kept hidden for callbacks.
    for title in ("Campaign acceptance", "Product mix", "Channel mix", "Campaign economics", "Products to feature"):
        (column,) = _columns_with(profiles, title)
        assert column.className == "d-none", title
    for title in ("Distribution by segment", "How each segment differs"):
        assert all(getattr(c, "className", None) != "d-none" for c in _columns_with(profiles, title)), title


def test_canonical_data_keeps_its_raw_fields_and_campaign_sections(trained, tmp_path):
    """The raw-fields helper and the campaign card stay where the data has their inputs."""
    import importlib

    from dashboard.services import Services
    from tests.conftest import SAMPLE

    # The page modules as Dash imports them (``pages.<name>``): importing ``dashboard.pages.<name>`` again would
    # register each page twice in the process-wide page registry and break every app made after this test.
    create_app(models_dir=trained[0].root, data_path=SAMPLE, cache_dir=tmp_path / "cache")
    has_campaigns_or_products = importlib.import_module("pages.predict").has_campaigns_or_products
    raw_title = importlib.import_module("pages.predict").raw_title
    sections = importlib.import_module("pages.profiles").sections

    services = Services(trained[0], None, SAMPLE)
    form = services.predict_form()
    assert raw_title(form["raw"]) == "birth year, spend per category"
    a = services.analysis()
    assert has_campaigns_or_products(a)
    assert sections(a) == {"campaigns": True, "products": True, "channels": True, "economics": True}
    assert not any(f["logged"] for f in form["features"])


def test_flip_points_in_units_match_the_model_scale():
    """A logged feature's turning points, searched on the model's scale, reported in units."""
    from core.versions import scoring

    centroids = [[-1.0], [1.0]]
    mean, scale = [np.log1p(5.0)], [1.0]
    # Segment 1 starts where the scaled log passes 0: at log1p(x) = log1p(5), i.e. x = 5 orders.
    values = [float(np.log1p(2.0))]
    flips = scoring.flip_points(values, mean, scale, centroids, ["Frequency_log"], {"Frequency": (0, 50)},
                                {"Frequency"}, in_units=True)
    (flip,) = flips
    assert (flip.feature, flip.value) == ("Frequency", 2.0)
    assert (flip.up, flip.up_segment, flip.down) == (6.0, 1, None)  # first whole number of orders past 5
    exact = scoring.flip_points(values, mean, scale, centroids, ["Frequency_log"], {"Frequency": (0, 50)},
                                in_units=True)[0]
    assert exact.up == pytest.approx(5.0)


def test_the_api_segment_means_are_in_units(cdnow_app):
    with cdnow_app.server.test_request_context("/"):
        a = _services(cdnow_app).analysis()
        orders = a.frame.groupby("segment")["Frequency"].mean()
    response = cdnow_app.server.test_client().get("/api/v1/segments")
    assert response.status_code == 200
    rows = response.get_json()["segments"]
    for row in rows:
        assert set(row["means"]) == {"Recency", "Frequency", "Monetary", "Tenure"}
        assert row["means"]["Frequency"] == pytest.approx(orders.loc[row["segment"]])


def test_diagnostics_stability_and_monitoring_speak_units_and_say_the_scale_once(cdnow_app):
    layouts = _layouts(cdnow_app, {"/diagnostics", "/stability", "/monitoring"})
    for path, text in layouts.items():
        assert not LOG_WORDS.search(text), f"{path}: {LOG_WORDS.search(text).group(0)}"
    assert layouts["/diagnostics"].count("clustered on a log scale") == 1
    assert "Orders and Total spend are clustered on a log scale" in layouts["/diagnostics"]
    with cdnow_app.server.test_request_context("/"):
        services = _services(cdnow_app)
        a = services.analysis()
        tree = services.analyses.ktree()
    # The k-transition tree's profiles are in orders and money: the columns, not their logs.
    level = [n for n in tree["nodes"] if n["k"] == 2]
    assert set(level[0]["means"]) == set(level[0]["z"]) == {"Recency", "Frequency", "Monetary", "Tenure"}
    mean_orders = sum(n["size"] * n["means"]["Frequency"] for n in level) / sum(n["size"] for n in level)
    assert mean_orders == pytest.approx(a.frame["Frequency"].mean(), rel=0.1)
    assert mean_orders > 1.5 * a.frame["Frequency_log"].mean()  # not the mean of the log
    assert all(n["split"]["label"] in {"Days since last purchase", "Orders", "Total spend",
                                       "Days since first purchase"} for n in tree["nodes"] if n["split"])
    from dashboard.figures.ktree import node_profile_rows

    _heading, rows = node_profile_rows(tree, level[0]["id"])
    assert {r["Feature"] for r in rows} == {"Days since last purchase", "Orders", "Total spend",
                                            "Days since first purchase"}


def test_psi_charts_name_logged_features_by_their_columns():
    from core.reading.schema import FEATURE_LABELS, log_scale_note
    from dashboard.figures.monitoring import drift_figure
    from dashboard.figures.stability import psi_figure

    assert not [v for v in FEATURE_LABELS.values() if "log scale" in v.lower()]
    rows = [{"feature": "Frequency_log", "psi": 0.05, "band": "stable"},
            {"feature": "Recency", "psi": 0.2, "band": "moderate"}]
    assert list(psi_figure(rows, FEATURE_LABELS).data[0].y) == ["Orders", "Days since last purchase"]
    assert list(drift_figure(rows, 0.25, 0.1, 0.5).data[0].y) == ["Orders", "Days since last purchase"]
    assert log_scale_note(["Recency", "Frequency_log"]) == "Orders is clustered on a log scale."
    assert log_scale_note(["visits", "income"]) == ""


def test_rules_cut_the_users_columns_in_units_and_select_the_same_customers(cdnow_app):
    import sqlite3

    with cdnow_app.server.test_request_context("/"):
        services = _services(cdnow_app)
        a = services.analysis()
        rules = services.analyses.rules()
    frame = a.frame.reset_index(drop=True)
    assigned = rules.assign(frame)
    con = sqlite3.connect(":memory:")
    frame[["Recency", "Frequency", "Monetary", "Tenure"]].assign(row=np.arange(len(frame))).to_sql(
        "customers", con, index=False)
    for seg in rules.segments:
        assert not LOG_WORDS.search(seg.sql + seg.pandas + seg.text), seg.sql
        expected = np.flatnonzero(assigned == seg.segment).tolist()
        assert frame.query(seg.pandas).index.tolist() == expected
        assert [r[0] for r in con.execute(f"SELECT row FROM customers WHERE {seg.sql} ORDER BY row")] == expected
