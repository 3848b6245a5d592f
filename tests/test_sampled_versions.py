"""A version larger than its stored sample is shown from the sample and its aggregates (issue 10, item 5).

The dashboard never needs the whole table: here the training file is moved away before the app
starts, and every page, every service a callback uses, the warm-up and the candidate comparison still
work, from the version's ``sample`` and ``aggregates`` artifacts. Counts, shares and averages per
segment equal the whole table's; the pages say they stand on a sample.
"""
from __future__ import annotations

import contextlib
import math

import dash
import numpy as np
import pandas as pd
import pytest

from core.cli import commands as cli
from core.insight import profiles
from core.versions.pipeline import prepare
from core.versions.registry import Registry
from core.versions.sample_basis import numbers_from_aggregates, sampled_customers, sizes_from_aggregates
from core.versions.views import score_frame, segment_numbers
from dashboard.factory import create_app

N_ROWS = 12_000
SAMPLE = 1_500


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """12,000 synthetic customers; v0001 streamed in chunks, v0002 (not active) fitted in memory; samples of 1,500."""
    tmp = tmp_path_factory.mktemp("sampled")
    data = tmp / "customers.csv"
    assert cli.main(["synth", "--n", str(N_ROWS), "--seed", "11", "--out", str(data)]) == 0
    models = tmp / "models"
    assert cli.main(["train", "--data", str(data), "--models", str(models), "--sample-size", str(SAMPLE),
                     "--chunk-rows", "4000", "--n-init", "2", "--quiet"]) == 0
    assert cli.main(["train", "--data", str(data), "--models", str(models), "--sample-size", str(SAMPLE),
                     "--seed", "5", "--n-init", "2", "--no-activate", "--quiet"]) == 0
    return tmp, data, models


@pytest.fixture(scope="module")
def whole(trained):
    """The whole table scored by the active model (what the pages would show if they read the file)."""
    _tmp, data, models = trained
    model, _meta = Registry(models).load("v0001")
    return score_frame(model, prepare(data).frame)


@contextlib.contextmanager
def _moved_away(path):
    """``path`` absent inside the block (moved beside itself and back; already absent: left so)."""
    hidden = path.with_name(path.name + ".elsewhere")
    moved = path.exists()
    if moved:
        path.rename(hidden)
    try:
        yield
    finally:
        if moved:
            hidden.rename(path)


@pytest.fixture(scope="module")
def app_without_file(trained, whole):  # whole: read before the file goes
    """The app started after the training file was moved away: only the registry is left."""
    tmp, data, models = trained
    with _moved_away(data):
        yield create_app(models_dir=models, data_path=data, cache_dir=tmp / "cache")


def test_numbers_from_aggregates_equal_the_numbers_of_every_row(trained, whole):
    _tmp, _data, models = trained
    registry = Registry(models)
    aggregates = registry.artifact_json("v0001", "aggregates")
    k = 6
    ours, theirs = numbers_from_aggregates(aggregates, k), segment_numbers(whole, k)
    assert list(ours.columns) == list(theirs.columns)
    assert ours["customers"].tolist() == theirs["customers"].tolist()
    assert int(ours["customers"].sum()) == len(whole)
    for column in ("share", "avg_spend", "avg_income", "response_rate", "spend_share"):
        assert np.allclose(ours[column].to_numpy(float), theirs[column].to_numpy(float), rtol=1e-9), column
    sizes = sizes_from_aggregates(aggregates, k)
    expected = profiles.sizes(whole["segment"].to_numpy(), k)
    assert sizes["n"].tolist() == expected["n"].tolist()


def test_the_basis_is_the_sample_only_when_the_table_is_larger(trained, tmp_path):
    _tmp, data, models = trained
    basis = sampled_customers(Registry(models), "v0001")
    assert basis is not None
    assert (basis.rows, basis.of_rows) == (SAMPLE, int(Registry(models).metadata("v0001")["n_customers"]))
    assert len(basis.prepared.frame) == SAMPLE and len(basis.labels) == SAMPLE
    assert basis.prepared.report.rows_read == N_ROWS  # the whole file's cleaning report, not the sample's
    # A sample that holds every customer: the file stays the basis.
    small = tmp_path / "models"
    assert cli.main(["train", "--data", str(data), "--models", str(small), "--sample-size", str(N_ROWS),
                     "--n-init", "1", "--quiet"]) == 0
    assert sampled_customers(Registry(small), "v0001") is None


def test_training_stores_views_of_the_sample_with_whole_table_counts(trained, whole):
    _tmp, _data, models = trained
    views = Registry(models).artifact_json("v0001", "views")
    analysis = views["views"]["analysis"]
    assert analysis["basis"] == {"kind": "sample", "rows": SAMPLE, "of_rows": len(whole), "seed": 42,
                                 "strata": "segment"}
    assert analysis["n_customers"] == len(whole)
    assert sum(analysis["sizes"]["data"][i][0] for i in range(6)) == len(whole)
    income = views["views"]["overview"]["income_mean"]
    assert math.isclose(income, float(whole["Income"].mean()), rel_tol=1e-9)


def _layouts(app) -> dict[str, str]:
    out = {}
    with app.server.test_request_context("/"):
        for page in dash.page_registry.values():
            layout = page["layout"]
            out[page["path"]] = str(getattr(layout, "__wrapped__", layout)())
    return out


def test_every_page_renders_without_the_training_file_and_says_it_samples(app_without_file, whole):
    layouts = _layouts(app_without_file)
    note = f"stratified sample of {SAMPLE:,} of the {len(whole):,} customers"
    for path in ("/", "/profiles", "/compare", "/explorer", "/diagnostics", "/stability", "/predict", "/campaigns"):
        assert note in layouts[path], path
        assert "cannot be read" not in layouts[path] and "is built for customer files" not in layouts[path], path
    assert f"a stratified sample of {SAMPLE:,} of the {len(whole):,} customers" in layouts["/eda"]
    # Whole-table figures on the overview: the customer count and each persona's size.
    assert f"{len(whole):,}" in layouts["/"]
    biggest = int(whole["segment"].value_counts().max())
    assert f"{biggest:,}" in layouts["/"]
    assert "Download the sample&#x27;s segment membership" in layouts["/"] or \
        "Download the sample's segment membership" in layouts["/"]
    client = app_without_file.server.test_client()
    for path in layouts:
        assert client.get(path).status_code == 200, path


def test_callbacks_services_work_on_the_sample(app_without_file, whole, trained):
    with app_without_file.server.test_request_context("/"):
        from dashboard.services import get_services

        services = get_services()
        a = services.analysis()
        assert a.sampled and a.n_customers == len(whole) and len(a.frame) == SAMPLE
        assert int(a.numbers["customers"].sum()) == len(whole)
        # Every sampled customer keeps the segment the version recorded for it.
        basis = services.analyses.sample_basis("v0001")
        assert np.array_equal(a.labels, basis.labels)
        assert len(services.membership_csv().splitlines()) == SAMPLE + 1
        sampled_ids = set(a.frame["ID"].astype(int))
        outside = next(int(i) for i in whole["ID"] if int(i) not in sampled_ids)
        with pytest.raises(ValueError, match=f"customer {outside} is not among the {SAMPLE:,} customers sampled"):
            services.customer_fields(outside)
        inside = int(a.frame["ID"].iloc[0])
        assert services.customer_fields(inside)["ID"] == inside
        assert set(services.stability(10, "quarter")) >= {"bootstrap", "temporal"}
        assert services.compare_segments(0, 1).shape[0] > 0
        assert services.sweep(2, 4) is not None
        comparison = services.comparison("v0002")  # the candidate's own sample, not its file
        assert comparison.get("reference_version") == "v0001" or "ari_common" in comparison
        assert len(services.segments_summary()) == 6
        assert sum(row["size"] for row in services.segments_summary()) == len(whole)


def test_warm_up_computes_missing_views_from_the_sample(trained, tmp_path):
    """A sampled version without views gets them at start-up, from its sample, with the file gone."""
    import shutil

    _tmp, data, models = trained
    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    registry = Registry(copy)
    entry = registry.metadata_entry("v0001")
    views_file = entry["artifacts"]["views"]["file"]
    manifest = registry.root / "manifest.json"
    import json

    doc = json.loads(manifest.read_text())
    doc["versions"]["v0001"]["artifacts"].pop("views")
    manifest.write_text(json.dumps(doc))
    (copy / views_file).unlink()
    assert "views" not in (Registry(copy).metadata_entry("v0001").get("artifacts") or {})
    with _moved_away(data):
        create_app(models_dir=copy, data_path=data, cache_dir=tmp_path / "cache")
    views = Registry(copy).artifact_json("v0001", "views")
    assert views["views"]["analysis"]["basis"]["rows"] == SAMPLE


def test_api_segments_sizes_cover_every_customer(app_without_file, whole):
    client = app_without_file.server.test_client()
    response = client.get("/api/v1/segments")
    assert response.status_code == 200
    body = response.get_json()
    segments = body["segments"] if isinstance(body, dict) else body
    assert sum(s["size"] for s in segments) == len(whole)
    pd.testing.assert_series_equal(
        pd.Series([s["size"] for s in segments]),
        pd.Series(whole["segment"].value_counts().reindex(range(6), fill_value=0).to_numpy()), check_names=False)


def test_first_overview_of_a_fresh_version_reads_neither_its_sample_rows_nor_its_customers(trained, whole, tmp_path):
    """Issue 29 (cold 1M version): / of a just-activated version is served from its stored views alone.

    The version's model file is verified (the serving rule) and its views, aggregates and sample
    parameters are read; its sampled rows are not, until a page that needs customers asks.
    """
    import json
    import shutil

    _tmp, data, models = trained
    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    with _moved_away(data):
        app = create_app(models_dir=copy, data_path=data, cache_dir=tmp_path / "cache")
        Registry(copy).activate("v0002")  # as `python -m core models activate v0002` while the server runs
        body = {"output": ".._pages_content.children..._pages_store.data..",
                "outputs": [{"id": "_pages_content", "property": "children"}, {"id": "_pages_store", "property": "data"}],
                "inputs": [{"id": "_pages_location", "property": "pathname", "value": "/"},
                           {"id": "_pages_location", "property": "search", "value": ""}],
                "changedPropIds": ["_pages_location.pathname", "_pages_location.search"]}
        response = app.server.test_client().post("/_dash-update-component", json=body)
        assert response.status_code == 200
        page = json.dumps(response.get_json())
        # The whole table's count (from the aggregates) on the Overview of v0002.
        assert "Personas" in page and f"{len(whole):,}" in page and "v0002, k=" in page
        with app.server.test_request_context("/"):
            from dashboard.services import get_services

            services = get_services()
            assert services.status()["serving"] == "v0002"
            basis = services.analyses.sample_basis("v0002")
            assert basis and basis.rows == SAMPLE and not basis.rows_read  # the Overview did not need the rows
            a = services.analysis()
            assert a.version == "v0002" and a.from_views and not a.frame_loaded
            assert len(a.frame) == SAMPLE and basis.rows_read  # a page that needs them reads them then
