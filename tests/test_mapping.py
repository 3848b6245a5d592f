"""Column mappings (core.reading.mapping): kinds recognised, roles suggested, checked, saved, trained on."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.cli.commands import main
from core.reading.loading import DataFileError
from core.reading.mapping import Mapping, detect_kind, parse_features, prepare_input, read_head, sniff, suggest, validate
from core.versions.pipeline import prepare, train
from core.versions.registry import Registry


def crm_table(n: int = 300, seed: int = 3) -> pd.DataFrame:
    """A CRM export with none of the canonical names."""
    rng = np.random.default_rng(seed)
    joined = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D")
    return pd.DataFrame({
        "client_ref": np.arange(5000, 5000 + n),
        "region": rng.choice(["North", "South"], n),
        "age_years": rng.integers(20, 80, n),
        "yearly_salary": rng.lognormal(10.8, 0.4, n).round(2),
        "wine_spend": rng.gamma(1.0, 200, n).round(2),
        "meat_spend": rng.gamma(1.0, 120, n).round(2),
        "web_orders": rng.integers(0, 12, n),
        "store_orders": rng.integers(0, 15, n),
        "site_visits": rng.integers(0, 20, n),
        "days_since_last_order": rng.integers(0, 100, n),
        "joined": joined.strftime("%Y-%m-%d"),
        "promo_response": rng.integers(0, 2, n),
        "loyalty_points": rng.integers(0, 5000, n),
    })


def _bytes(frame: pd.DataFrame, sep: str = ",") -> bytes:
    return frame.to_csv(index=False, sep=sep).encode()


def test_customer_table_roles_suggested_from_names_and_values():
    data = _bytes(crm_table())
    head = read_head(data, sniff(data, "crm.csv"))
    assert detect_kind(list(head.columns), head) == "customers"
    m = suggest(head)
    assert m.columns == {
        "client_ref": "id", "region": "ignore", "age_years": "age", "yearly_salary": "income",
        "wine_spend": "spend", "meat_spend": "spend", "web_orders": "purchases", "store_orders": "purchases",
        "site_visits": "web_visits", "days_since_last_order": "recency", "joined": "enrolment_date",
        "promo_response": "campaign", "loyalty_points": "feature"}
    assert any("region" in note for note in m.notes)


def test_customer_table_trains_through_the_suggested_mapping(tmp_path):
    table = crm_table()
    registry = Registry(tmp_path / "models")
    version, model, meta = train(_bytes(table, ";"), name="crm.csv", k=3, registry=registry)
    assert meta["input"] == "customers" and meta["n_customers"] == 300
    # The user's own column names (issue 30); derived facts (total spend, days as a customer) keep theirs.
    expected = ["age_years", "yearly_salary", "Total_Spending", "web_orders", "store_orders", "site_visits",
                "days_since_last_order", "Customer_since", "loyalty_points"]
    logged = {f"{c}_log" if c in meta["transforms"] else c for c in expected}
    assert set(model.features) == logged and len(model.features) == len(expected)
    saved = registry.artifact_json(version, "mapping")
    assert saved["input"] == "customers" and saved["features"] == list(model.features)
    assert saved["columns"]["yearly_salary"] == "income"
    lo, hi = saved["ranges"]["days_since_last_order"]
    assert lo == table["days_since_last_order"].min() and hi == table["days_since_last_order"].max()
    prepared, _ = prepare_input(_bytes(table, ";"), name="crm.csv")
    frame = prepared.frame.set_index("ID")
    row = table.set_index("client_ref").loc[5007]
    assert frame.loc[5007, "Total_Spending"] == pytest.approx(row["wine_spend"] + row["meat_spend"])
    assert frame.loc[5007, "age_years"] == row["age_years"]
    # Canonical aliases (for personas) are hidden copies of the user's columns, never offered as choices.
    assert frame.loc[5007, "Age"] == row["age_years"] and meta["aliases"]["Income"] == "yearly_salary"
    with pytest.raises(ValueError, match="unknown feature.*Income; choose from .*yearly_salary"):
        parse_features("Income", prepared, _)


def test_unmappable_files_get_a_message_naming_the_column():
    text = pd.DataFrame({"name": ["Ann", "Bob", "Cy"], "city": ["Oslo", "Rome", "Lima"]})
    with pytest.raises(DataFileError, match="no column holds a number to segment on"):
        prepare_input(_bytes(text), name="people.csv")
    table = crm_table(20)
    data = _bytes(table)
    bad = Mapping("customers", {"client_ref": "id", "region": "income"})
    with pytest.raises(DataFileError, match=r"column 'region' is mapped to income, but 20 of 20 values are not "
                                            r"numbers.*expected yearly income"):
        prepare_input(data, name="crm.csv", mapping=bad)
    with pytest.raises(DataFileError, match=r"names column\(s\) 'nope'"):
        prepare_input(data, name="crm.csv", mapping=Mapping("customers", {"client_ref": "id", "nope": "income"}))
    log = "cust,day,amount\n1,2024-01-01,3\n1,2024-01-02,4\n"
    with pytest.raises(DataFileError, match="no column is the amount"):
        validate(Mapping("transactions", {"cust": "customer_id", "day": "date"}),
                 read_head(log.encode(), sniff(log.encode())), "log.csv")


def test_mapping_json_round_trip_and_bad_maps():
    m = Mapping("transactions", {"c": "customer_id", "d": "date", "a": "amount"}, ["Recency", "Monetary_log"],
                {"Monetary": "log1p"}, {"Recency": (0.0, 10.0)})
    again = Mapping.from_json(m.to_json())
    assert again.to_dict() == m.to_dict() == json.loads(m.to_json())
    assert again.to_dict()["schema"] == 1
    with pytest.raises(ValueError, match="not valid JSON"):
        Mapping.from_json(b"{oops")
    with pytest.raises(ValueError, match="column 'c' has role 'price'"):
        Mapping.from_dict({"input": "transactions", "columns": {"c": "price"}})
    with pytest.raises(ValueError, match="\"input\" is 'orders'"):
        Mapping.from_dict({"input": "orders", "columns": {}})


def test_canonical_file_is_unchanged(sample_path):
    prepared, mapping = prepare_input(sample_path)
    assert mapping.kind == "canonical"
    pd.testing.assert_frame_equal(prepared.frame, prepare(sample_path).frame)


def test_cli_train_with_input_and_map(tmp_path, capsys):
    path = tmp_path / "crm.tsv"
    path.write_bytes(_bytes(crm_table(), "\t"))
    mapping = {"input": "customers", "columns": {"client_ref": "id", "yearly_salary": "income",
                                                 "wine_spend": "spend", "days_since_last_order": "recency"}}
    (tmp_path / "m.json").write_text(json.dumps(mapping))
    assert main(["train", "--data", str(path), "--models", str(tmp_path / "models"), "--k", "3", "--json",
                 "--quiet", "--map", str(tmp_path / "m.json")]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [f.removesuffix("_log") for f in payload["features"]] == ["yearly_salary", "Total_Spending",
                                                                      "days_since_last_order"]
    (tmp_path / "bad.json").write_text('{"input": "customers", "columns": {"client_ref": "price"}}')
    assert main(["train", "--data", str(path), "--models", str(tmp_path / "models"), "--quiet",
                 "--map", str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "client_ref" in err and "price" in err


def test_mapped_model_fields_requests_and_schema():
    from core.reading.mapping import accepted_fields, mapped_request, mapped_schema
    from core.versions.scoring import ValidationFailed

    saved = {"input": "transactions", "ranges": {"Recency": [0, 545], "Monetary_log": [0.0, 8.0]}}
    features = ["Recency", "Monetary_log"]
    fields = accepted_fields(saved, features)
    assert fields["Recency"] == (0.0, 1090.0)
    assert fields["Monetary"][0] == 0.0 and fields["Monetary"][1] == pytest.approx(2 * np.expm1(8.0))
    assert accepted_fields({"input": "canonical"}, features) is None
    rows, ids, batch = mapped_request({"Recency": 10, "Monetary": 99.0, "ID": 7}, features, fields)
    assert rows == [[10.0, pytest.approx(np.log1p(99.0))]] and ids == [7] and not batch
    rows, _, batch = mapped_request({"customers": [{"Recency": 1, "Monetary_log": 2.0}]}, features, fields)
    assert rows == [[1.0, 2.0]] and batch
    with pytest.raises(ValidationFailed) as info:
        mapped_request({"customers": [{"Recency": -1}, {"Recency": "x", "Monetary": 1}]}, features, fields)
    assert [(e["index"], e["field"]) for e in info.value.errors] == [(0, "Recency"), (0, "Monetary_log"),
                                                                     (1, "Recency")]
    assert "is required (or Monetary)" in info.value.errors[1]["message"]
    doc = mapped_schema(features, fields)
    assert doc["properties"]["Recency"]["maximum"] == 1090.0
    assert doc["allOf"] == [{"required": ["Recency"]},
                            {"anyOf": [{"required": ["Monetary_log"]}, {"required": ["Monetary"]}]}]


def test_data_page_services_upload_confirm_mapping_and_retrain(tmp_path, monkeypatch, sample_path):
    """/data's path for a customer table: suggested mapping in the report, changed, trained with it, saved with it."""
    import base64

    from core.versions.pipeline import train
    from dashboard.services import Services

    monkeypatch.setenv("SEGMENTLENS_CACHE_DIR", str(tmp_path / "cache"))
    registry = Registry(tmp_path / "models")
    active, _, _ = train(sample_path, registry=registry)
    services = Services(registry, None, sample_path)
    contents = "data:text/csv;base64," + base64.b64encode(_bytes(crm_table())).decode()
    report = services.accept_upload(contents, "crm.csv")
    assert report["input"] == "customers" and report["rows_used"] == 300
    assert report["mapping"]["columns"]["yearly_salary"] == "income"
    assert "loyalty_points" in report["feature_choices"] and "loyalty_points" in report["features"]
    # The user maps loyalty points to "not used": the report is read again through that mapping.
    changed = dict(report["mapping"], columns=dict(report["mapping"]["columns"], loyalty_points="ignore"))
    again = services.remap_upload(report["token"], "crm.csv", changed)
    assert "loyalty_points" not in again["features"] and again["mapping"]["columns"]["loyalty_points"] == "ignore"
    with pytest.raises(DataFileError, match="column 'region' is mapped to income"):
        services.remap_upload(report["token"], "crm.csv",
                              dict(changed, columns=dict(changed["columns"], region="income", yearly_salary="ignore")))
    result = services.retrain_upload(report["token"], "crm.csv", 3, None, mapping=again["mapping"])
    saved = registry.artifact_json(result["version"], "mapping")
    assert saved["input"] == "customers" and saved["columns"]["loyalty_points"] == "ignore"
    assert saved["features"] == result["features"] and "loyalty_points" not in result["features"]
    assert registry.active_version() == active  # a candidate is never activated
    with pytest.raises(ValueError, match="no features in common"):
        services.comparison(result["version"])
