"""Every page adapts to whatever the data has (issue 18): a transaction log's RFM customers, a customer
table under other column names.

The pages' layouts are built with the Flask test client's request context on a model trained in the test
(no real file): none may raise, none may need the last-resort note of dashboard.factory._guard_page_layouts,
sections whose inputs are absent say so in one line, and every callback's ids stay in the layout.
"""
from __future__ import annotations

import dash
import numpy as np
import pandas as pd
import pytest

from dashboard.factory import create_app
from tests.helpers import transaction_log

FALLBACK = "is built for customer files with a"


def _customer_table(folder) -> "Path":  # noqa: F821
    """One row per customer, other column names, no income, dates or campaign responses."""
    rng = np.random.default_rng(7)
    n = 400
    frame = pd.DataFrame({"client": np.arange(1000, 1000 + n), "orders_last_year": rng.poisson(6, n),
                          "revenue_eur": rng.gamma(2.0, 80.0, n).round(2),
                          "days_since_visit": rng.integers(0, 365, n), "support_tickets": rng.poisson(1.5, n)})
    path = folder / "clients.csv"
    path.write_text(frame.to_csv(index=False))
    return path


@pytest.fixture(scope="module", params=["transactions", "customers"])
def app_on(request, tmp_path_factory):
    from core.versions.pipeline import train
    from core.versions.registry import Registry

    tmp = tmp_path_factory.mktemp(f"any-{request.param}")
    data = (transaction_log(tmp, customer_column="customer_id", quantity=True) if request.param == "transactions"
            else _customer_table(tmp))
    train(data, k=3, n_init=2, registry=Registry(tmp / "models"))
    app = create_app(models_dir=tmp / "models", data_path=data, cache_dir=tmp / "cache")
    return request.param, app


def _layouts(app) -> dict[str, str]:
    """Each page's layout (the page's own function, not the guard) as text."""
    out = {}
    with app.server.test_request_context("/"):
        for page in dash.page_registry.values():
            layout = page["layout"]
            layout = getattr(layout, "__wrapped__", layout)
            out[page["path"]] = str(layout())
    return out


def test_every_page_layout_renders_on_the_data_it_has(app_on):
    kind, app = app_on
    layouts = _layouts(app)
    assert {"/", "/profiles", "/compare", "/explorer", "/diagnostics", "/stability", "/predict", "/eda",
            "/campaigns", "/monitoring", "/data"} <= set(layouts)
    for path, text in layouts.items():
        assert FALLBACK not in text, f"{path} needed the fallback note on a {kind} model"
        assert "Traceback" not in text
    client = app.server.test_client()
    for path in layouts:
        assert client.get(path).status_code == 200, path
    # Absent inputs: one line each, never "nan" figures.
    assert "No campaign responses in this data: the campaign planner is not shown." in layouts["/campaigns"]
    assert "No income or campaign response in this data" in layouts["/"]
    assert "Average income" not in layouts["/"]
    assert "No education or marital status in this data" in layouts["/explorer"]
    assert "No product categories or purchase channels in this data" in layouts["/compare"]
    assert "Mean income" not in layouts["/compare"]
    assert "cannot be read" not in layouts["/eda"]
    if kind == "transactions":
        # RFM: the explorer filters on recency and spend; spend is over the log's dates, not "2 years".
        assert "Days since last purchase" in layouts["/explorer"] and "Total spend" in layouts["/explorer"]
        assert "2023-01-" in layouts["/"] and "last 2 years" not in layouts["/"]
        assert "customers derived from them" in layouts["/eda"]
        assert "Typical total spend" in layouts["/profiles"] and "Typical spend, 2 years" not in layouts["/profiles"]
        assert "Stability cannot be measured" not in layouts["/stability"]  # first purchase = enrolment
        # The standard RFM groups beside the k-means segments, with how many of each segment fall in each.
        assert "Segments and RFM groups" in layouts["/profiles"] and "Mostly" in layouts["/profiles"]
    else:
        assert "Segments and RFM groups" not in layouts["/profiles"]
        assert "No enrolment date in this data" in layouts["/stability"]


def test_every_callback_id_is_in_the_layouts(app_on):
    _kind, app = app_on
    app.server.test_client().get("/")  # builds the validation layout from every page's layout
    text = str(app.validation_layout) + "".join(_layouts(app).values())
    missing = set()
    for callback in app.callback_map.values():
        for item in [*callback.get("inputs", []), *callback.get("state", [])]:
            if isinstance(item.get("id"), str) and "{" not in item["id"] and f"'{item['id']}'" not in text:
                missing.add(item["id"])
    assert missing == set()


@pytest.mark.parametrize("app_on", ["transactions"], indirect=True)  # RFM columns: the transaction log's model
def test_explorer_filters_and_summarises_rfm_customers(app_on):
    import sys

    kind, app = app_on
    assert kind == "transactions"
    explorer = sys.modules["pages.explorer"]
    with app.server.test_request_context("/"):
        summary, disabled = explorer.summarise_selection({"points": [{"customdata": [i]} for i in range(20)]}, 2)
        _fig, caption, _ = explorer.update_map.__wrapped__(2, ["show"], [], [], [0, 100], None)
        everyone = explorer.update_map.__wrapped__(2, [], [], [], None, None)[1]
    assert "20" in str(summary) and "Mean total spend" in str(summary) and "Mean income" not in str(summary)
    assert disabled is False
    # The first range filter is recency: customers who bought in the last 100 days, fewer than all 300.
    assert "matching the filters" in caption and "Showing 300 of 300 customers" in everyone
