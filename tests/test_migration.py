"""Segments over time on an order log (core.insight.migration): as-of features, transitions, movers, bad input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.campaigns.campaign import read_audience
from core.reading.mapping import Mapping, prepare_input
from core.versions.pipeline import train
from core.insight.migration import (
    NEW, MigrationError, migration, movers, movers_audience, movers_csv, parse_segment_pair, snapshot_dates,
)
from core.versions.registry import Registry
from tests.conftest import copy_registry

CDNOW = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cdnow_transactions.txt"
needs_cdnow = pytest.mark.skipif(not CDNOW.is_file(), reason="CDNOW order log not present")


@pytest.fixture(scope="module")
def cdnow(tmp_path_factory, cdnow_trained_models):
    """A copy of the registry trained once on the CDNOW log (tests/conftest.py ``cdnow_trained_models``)."""
    reg = Registry(copy_registry(cdnow_trained_models, tmp_path_factory.mktemp("reg")))
    version = reg.active_version()
    model, meta = reg.load(version)
    mapping = Mapping.from_dict(reg.artifact_json(version, "mapping"))
    return {"registry": reg, "version": version, "model": model, "meta": meta, "mapping": mapping}


def _run(c, **kwargs):
    t = c["meta"]["transactions"]
    return migration(str(CDNOW), c["mapping"], c["model"], c["meta"]["segment_names"],
                     first_date=t["first_date"], latest_date=t["latest_date"], **kwargs)


def _raw_features(cut: str, transforms: dict) -> pd.DataFrame:
    """Each customer's features at ``cut``, recomputed from the raw rows (independently of core)."""
    raw = pd.read_csv(CDNOW, sep=r"\s+", dtype={"customer_id": str, "date": str})
    raw["ID"] = raw["customer_id"].astype(int)
    raw["day"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    day = pd.Timestamp(cut)
    rows = raw[raw["day"] <= day]
    g = rows.groupby("ID")
    out = pd.DataFrame({"Recency": (day - g["day"].max()).dt.days.astype(float),
                        "Frequency": g.size(), "Monetary": g["dollar_value"].sum(),
                        "Tenure": (day - g["day"].min()).dt.days.astype(float)})
    for column in transforms:
        if column in out:
            v = out[column].to_numpy(dtype=float)
            out[f"{column}_log"] = np.sign(v) * np.log1p(np.abs(v))
    return out.sort_index()


@needs_cdnow
def test_features_at_two_dates_equal_a_recomputation_from_the_raw_rows(cdnow):
    dates = ["1997-02-15", "1997-09-30", "1998-06-30"]
    result = _run(cdnow, dates=dates, keep=dates[:2])
    for cut in dates[:2]:
        ours = result.features[cut].set_index("ID").sort_index()
        theirs = _raw_features(cut, cdnow["mapping"].transforms)
        assert ours.index.equals(theirs.index)  # customers who had not bought yet are absent
        assert (ours["Frequency"] == theirs["Frequency"]).all()
        for column in ("Recency", "Tenure"):
            assert (ours[column] == theirs[column]).all(), column
        for column in ("Monetary", *[f for f in cdnow["model"].features if f.endswith("_log")]):
            np.testing.assert_allclose(ours[column], theirs[column], rtol=1e-9, atol=1e-6, err_msg=column)
        assert result.snapshots[dates.index(cut)]["customers"] == len(theirs)
    # On 15 Feb 1997 only part of CDNOW's first-quarter cohort had bought.
    assert result.snapshots[0]["customers"] < result.snapshots[1]["customers"] == 23570


@needs_cdnow
def test_transition_counts_equal_a_crosstab_of_two_independent_scorings(cdnow):
    dates = ["1997-02-15", "1997-09-30", "1998-06-30"]
    result = _run(cdnow, dates=dates)
    model, transforms = cdnow["model"], cdnow["mapping"].transforms
    a = pd.Series(model.predict(_raw_features(dates[0], transforms)), index=_raw_features(dates[0], transforms).index)
    after = _raw_features(dates[1], transforms)
    b = pd.Series(model.predict(after), index=after.index)
    before = a.reindex(b.index).fillna(-1).astype(int)
    expected = pd.crosstab(before, b)
    got = {(t["from"], t["to"]): t["customers"] for t in result.transitions
           if (t["from_date"], t["to_date"]) == (dates[0], dates[1])}
    want = {(NEW if i == -1 else int(i), int(j)): int(expected.loc[i, j])
            for i in expected.index for j in expected.columns if expected.loc[i, j]}
    assert got == want
    assert sum(v for (f, _), v in got.items() if f == NEW) == int((before == -1).sum()) > 0
    names = cdnow["meta"]["segment_names"]
    for t in result.transitions:
        assert t["to_name"] == names[t["to"]]
        assert t["from_name"] == (NEW if t["from"] == NEW else names[t["from"]])
    # Sizes of each snapshot are the column sums of the transitions into it.
    sizes = result.snapshots[1]["sizes"]
    for j in range(model.k):
        assert sizes[str(j)] == sum(v for (_, to), v in got.items() if to == j)


@needs_cdnow
def test_last_snapshot_is_the_versions_own_segmentation(cdnow):
    result = _run(cdnow, every="month", keep=["1998-06-30"])
    assert result.dates[-1] == "1998-06-30" and len(result.dates) == 18
    assert result.dates[:2] == ["1997-01-31", "1997-02-28"]
    last = result.features["1998-06-30"]
    prepared, _ = prepare_input(str(CDNOW), mapping=Mapping.from_dict(cdnow["mapping"].to_dict()))
    assert last["ID"].tolist() == prepared.frame["ID"].tolist()
    assert (last["segment"].to_numpy() == cdnow["model"].labels_).all()
    for f in cdnow["model"].features:
        np.testing.assert_array_equal(last[f].to_numpy(), prepared.frame[f].to_numpy(), err_msg=f)
    sizes = np.bincount(cdnow["model"].labels_, minlength=cdnow["model"].k)
    assert [result.snapshots[-1]["sizes"][str(i)] for i in range(cdnow["model"].k)] == sizes.tolist()
    # Value to date of the last snapshot is the log's total.
    assert sum(result.snapshots[-1]["value"].values()) == pytest.approx(cdnow["meta"]["transactions"]["total_amount"],
                                                                     abs=1.0)
    # Flows: in - out per period and segment equals the change in size.
    for f in result.flows:
        i = result.dates.index(f["to_date"])
        change = result.snapshots[i]["sizes"][str(f["segment"])] - result.snapshots[i - 1]["sizes"][str(f["segment"])]
        assert f["net"] == change
    assert result.headlines and all(" went from " in h and " to " in h for h in result.headlines)


@needs_cdnow
def test_movers_filter_features_csv_and_audience(cdnow):
    a, b = "1997-09-30", "1998-06-30"
    result = _run(cdnow, every="quarter", keep=[a, b])
    names = cdnow["meta"]["segment_names"]
    counts = {(t["from"], t["to"]): t["customers"] for t in result.transitions if (t["from_date"], t["to_date"]) ==
              ("1998-03-31", "1998-06-30")}
    (fr, to), n = max(((k, v) for k, v in counts.items() if k[0] != k[1] and k[0] != NEW), key=lambda kv: kv[1])
    frame = movers(_run(cdnow, dates=["1998-03-31", b], keep=["1998-03-31", b]), "1998-03-31", b,
                   from_segment=fr, to_segment=to)
    assert len(frame) == n
    assert set(frame["from_name"]) == {names[fr]} and set(frame["to_name"]) == {names[to]}
    raw_before, raw_after = _raw_features("1998-03-31", {}), _raw_features(b, {})
    row = frame.iloc[0]
    assert row["Monetary_before"] == pytest.approx(raw_before.loc[row["ID"], "Monetary"])
    assert row["Recency_after"] == raw_after.loc[row["ID"], "Recency"]
    everyone = movers(result, a, b)
    assert (everyone["from_segment"] != everyone["to_segment"]).all() and len(everyone) > len(frame)
    csv = movers_csv(frame)
    assert csv.splitlines()[0].startswith("ID,from_segment,from_name,to_segment,to_name,Recency_before")
    audience = read_audience(movers_audience(frame, holdout=0.2, seed=7))
    assert len(audience) == n and set(audience["segment"]) == {to}
    assert (audience["group"] == "holdout").sum() == int(0.2 * n + 0.5)
    with pytest.raises(MigrationError, match="not a computed snapshot"):
        movers(result, "1997-08-31", b)


def test_formula_cells_in_movers_csv_are_neutralised():
    frame = pd.DataFrame({"ID": [1], "from_segment": [0], "from_name": ["=HYPERLINK(1)"], "to_segment": [1],
                          "to_name": ["+cmd"]})
    lines = movers_csv(frame).splitlines()
    assert lines[1] == "1,0,'=HYPERLINK(1),1,'+cmd"


# ------------------------------------------------------------------------------ a small log with order IDs
_LOG = """customer,order,day,amount
A,o1,2024-01-05,10
A,o1,2024-01-05,5
A,o2,2024-02-10,20
B,o3,2024-02-01,7
B,o4,2024-03-20,-3
C,o5,2024-03-30,40
A,o2,2024-03-31,1
D,o6,2024-01-20,12
D,o7,2024-03-01,9
E,o8,2024-02-29,30
"""


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    path = folder / "log.csv"
    path.write_text(_LOG)
    reg = Registry(folder / "reg")
    mapping = Mapping("transactions", {"customer": "customer_id", "order": "order_id", "day": "date",
                                       "amount": "amount"})
    version, model, meta = train(str(path), mapping=mapping, registry=reg, k=2, n_init=2)
    return {"path": str(path), "model": model, "meta": meta,
            "mapping": Mapping.from_dict(reg.artifact_json(version, "mapping"))}


def test_orders_count_once_from_their_first_row_and_nobody_yet_is_a_note(small):
    result = migration(small["path"], small["mapping"], small["model"], small["meta"]["segment_names"],
                       start="2023-12-31", keep=["2024-01-31", "2024-02-29", "2024-03-31"])
    assert result.dates == ["2023-12-31", "2024-01-31", "2024-02-29", "2024-03-31"]
    assert result.snapshots[0]["customers"] == 0 and "nobody had bought" in result.snapshots[0]["note"]
    assert any("nobody had bought yet" in n for n in result.notes)
    jan = result.features["2024-01-31"].set_index("ID")
    assert list(jan.index) == ["A", "D"]
    assert jan.loc["A", "Frequency"] == 1 and jan.loc["A", "Monetary"] == 15 and jan.loc["A", "Recency"] == 26
    mar = result.features["2024-03-31"].set_index("ID")
    # o2's late row (31 Mar) adds money, not an order; B's return counts as an order and a return.
    assert mar.loc["A", "Frequency"] == 2 and mar.loc["A", "Monetary"] == 36 and mar.loc["A", "Recency"] == 0
    assert mar.loc["B", "Returns_or_free"] == 1 and mar.loc["B", "Monetary"] == 4
    assert mar.loc["A", "Interpurchase_days"] == pytest.approx(86 / 1)
    first = [t for t in result.transitions if t["from_date"] == "2023-12-31"]
    assert {t["from"] for t in first} == {NEW} and sum(t["customers"] for t in first) == 2
    # The last snapshot equals the version's own features.
    prepared, _ = prepare_input(small["path"], mapping=Mapping.from_dict(small["mapping"].to_dict()))
    for f in small["model"].features:
        np.testing.assert_allclose(mar[f].to_numpy(), prepared.frame.set_index("ID")[f].to_numpy(), err_msg=f)


@pytest.mark.parametrize("kwargs, message", [
    ({"end": "2025-01-01"}, "to: 2025-01-01 is after the log's latest date"),
    ({"start": "2024-04-01"}, "from: 2024-04-01 is after the log's latest date"),
    ({"end": "2023-06-30"}, "before the log's first purchase"),
    ({"start": "2024-03-01", "end": "2024-02-01"}, "must be before to"),
    ({"every": "week"}, "every: expected month or quarter"),
    ({"dates": ["2024-02-01"]}, "at least two"),
    ({"dates": ["2024-02-01", "2024-13-01"]}, "expected a date such as"),
    ({"start": "1900-01-01"}, "at most 240"),
])
def test_bad_dates_get_one_clear_line(kwargs, message):
    with pytest.raises(MigrationError, match=message) as info:
        snapshot_dates("2024-01-05", "2024-03-31", **kwargs)
    assert "\n" not in str(info.value)


def test_a_customer_table_version_is_refused(small):
    with pytest.raises(MigrationError, match="no purchase dates; segments over time need a transaction log"):
        migration(small["path"], Mapping("customers", {}), small["model"], ["a", "b"])
    with pytest.raises(MigrationError, match="canonical customer file"):
        migration(small["path"], None, small["model"], ["a", "b"])


def test_segment_pairs_are_read_by_number_name_or_any():
    names = ["Champions", "At risk"]
    assert parse_segment_pair("0:1", names) == (0, 1)
    assert parse_segment_pair("new:at risk", names) == (NEW, 1)
    assert parse_segment_pair("*:0", names) == (None, 0)
    for bad, message in (("3:1", "from segment 3 does not exist"), ("0", "expected FROM:TO"),
                         ("0:Loyal", "to segment 'Loyal' is neither")):
        with pytest.raises(MigrationError, match=message):
            parse_segment_pair(bad, names)
