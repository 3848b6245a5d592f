"""Facts on the real public file (skipped when ../shared/data/marketing_campaign.csv is absent)."""
import numpy as np
import pytest

from core.fitting.model import SegmentationModel
from core.versions.pipeline import fit_model, prepare
from core.reading.schema import DEFAULT_FEATURES
from core.fitting.selection import sweep

pytestmark = pytest.mark.real_data


@pytest.fixture(scope="module")
def prepared(real_data_path):
    return prepare(real_data_path)


def test_load_and_cleaning_counts(prepared):
    report = prepared.report
    assert report.rows_read == 2240
    assert prepared.info.delimiter == "\t" and prepared.info.date_order == "day-first"
    assert report.dropped == {"unreadable_values": 0, "duplicate_id": 0, "missing_required": 0,
                              "missing_income": 24, "implausible_birth_year": 3, "out_of_range": 0,
                              "extreme_income": 1}
    assert report.changed == {"odd_marital_status": 7}
    assert report.flagged == {"duplicate_record": 183}
    assert report.rows_used == 2240 - 28 == len(prepared.frame)
    assert prepared.frame["Income"].max() < 200_000 and prepared.frame["Age"].max() <= 100


def test_seven_features_present(prepared):
    f = prepared.frame
    assert set(DEFAULT_FEATURES) <= set(f.columns)
    assert f["Total_Spending"].iloc[0] == f.loc[f.index[0], [c for c in f if c.startswith("Mnt")]].sum()
    assert f["Customer_since"].min() == 0 and f["Customer_since"].max() == 699  # 2012-07-30 .. 2014-06-29


def test_k6_same_seed_identical_labels_and_numpy_equals_sklearn(prepared):
    a = fit_model(prepared, k=6, seed=42)
    b = fit_model(prepared, k=6, seed=42)
    assert a.k == 6 and len(np.unique(a.labels_)) == 6
    assert np.array_equal(a.labels_, b.labels_)
    pipe = a.to_sklearn()
    assert np.array_equal(pipe.predict(prepared.frame[DEFAULT_FEATURES]), a.predict(prepared.frame))


def test_diagnostics_facts(prepared):
    """Silhouette peaks at k=2; the elbow is near k=3; k=6 is not what the metrics pick."""
    model = SegmentationModel().fit(prepared.frame)
    result = sweep(model.transform(prepared.frame), 2, 10, current_k=6)
    sil = {r.k: r.silhouette for r in result.results}
    assert max(sil, key=sil.get) == 2
    assert result.votes["elbow"] in (3, 4)
    assert result.recommended_k != 6 and "current k=6" in result.reason
