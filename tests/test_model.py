"""SegmentationModel and the numpy k-means engine."""
import pickle

import numpy as np
import pandas as pd
import pytest

from core.fitting.model import NotFittedError, SegmentationModel, kmeans, standardise
from core.reading.schema import DEFAULT_FEATURES
from tests.helpers import planted_frame


def ari(a, b):
    from sklearn.metrics import adjusted_rand_score
    return adjusted_rand_score(a, b)


def test_recovers_planted_segments():
    frame, truth = planted_frame()
    model = SegmentationModel(k=3, seed=1).fit(frame)
    assert ari(truth, model.labels_) == 1.0
    assert model.centroids_.shape == (3, 7)
    assert sorted(np.bincount(model.labels_)) == [150, 150, 150]


def test_same_seed_same_labels_and_order_is_canonical():
    frame, _ = planted_frame(seed=3)
    a = SegmentationModel(k=3, seed=7).fit(frame)
    b = SegmentationModel(k=3, seed=7).fit(frame)
    c = SegmentationModel(k=3, seed=8).fit(frame)
    assert np.array_equal(a.labels_, b.labels_)
    # Segment numbers follow the first feature's centroid (descending), not the random start.
    assert np.array_equal(a.labels_, c.labels_)
    assert np.all(np.diff(a.centroids_[:, 0]) < 0)


def test_numpy_labels_equal_sklearn_pipeline():
    frame, _ = planted_frame(spread=1.5, seed=4)
    model = SegmentationModel(k=5).fit(frame)
    pipe = model.to_sklearn()
    assert np.array_equal(pipe.predict(frame[DEFAULT_FEATURES]), model.predict(frame))
    assert np.array_equal(model.predict(frame), model.labels_)


def test_inertia_no_worse_than_sklearn():
    from sklearn.cluster import KMeans
    frame, _ = planted_frame(spread=2.0, seed=5)
    Z, _, _ = standardise(frame.to_numpy())
    ours = kmeans(Z, 6, n_init=10, seed=0)
    theirs = KMeans(6, n_init=10, random_state=0).fit(Z)
    assert ours.inertia <= theirs.inertia_ * 1.01


def test_scaler_matches_standard_scaler():
    from sklearn.preprocessing import StandardScaler
    frame, _ = planted_frame()
    model = SegmentationModel(k=3).fit(frame)
    ref = StandardScaler().fit(frame[DEFAULT_FEATURES])
    np.testing.assert_allclose(model.mean_, ref.mean_)
    np.testing.assert_allclose(model.scale_, ref.scale_)


def test_confidence_and_typicality():
    frame, _ = planted_frame()
    model = SegmentationModel(k=3).fit(frame)
    scores = model.score(frame)
    assert scores["confidence"].between(0, 1).all() and scores["typicality"].between(0, 1).all()
    assert scores["confidence"].median() > 0.7          # well separated: confident
    centre = model.centroids_original().iloc[[0]]
    at_centre = model.score(centre).iloc[0]
    assert at_centre["segment"] == 0 and at_centre["confidence"] == pytest.approx(1.0)
    assert at_centre["typicality"] == pytest.approx(1.0)
    # Exactly between two centroids: confidence 0.
    mid = (model.centroids_original().iloc[[0]].to_numpy() + model.centroids_original().iloc[[1]].to_numpy()) / 2
    d = model.distances(mid)[0]
    if abs(d[0] - d[1]) < 1e-9 and d[:2].min() <= d.min() + 1e-12:
        assert model.score(mid).iloc[0]["confidence"] == pytest.approx(0.0, abs=1e-9)
    far = centre.copy()
    far.iloc[0] = far.iloc[0] + 50 * model.scale_
    assert model.score(far).iloc[0]["typicality"] == 0.0


def test_score_one_equals_score():
    frame, _ = planted_frame(spread=1.5)
    model = SegmentationModel(k=4).fit(frame)
    batch = model.score(frame)
    for i in [0, 17, 200, 449]:
        seg, conf, typ, dists = model.score_one(frame[DEFAULT_FEATURES].iloc[i].tolist())
        assert seg == batch["segment"].iloc[i]
        assert conf == pytest.approx(batch["confidence"].iloc[i], abs=1e-12)
        assert typ == pytest.approx(batch["typicality"].iloc[i], abs=1e-12)
        np.testing.assert_allclose(dists, model.distances(frame.iloc[[i]])[0], atol=1e-12)


def test_score_in_chunks_equals_one_pass():
    frame, _ = planted_frame()
    model = SegmentationModel(k=3).fit(frame)
    pd.testing.assert_frame_equal(model.score(frame, chunk_size=7), model.score(frame))
    parts = list(model.score_chunks(frame.iloc[i:i + 120] for i in range(0, len(frame), 120)))
    pd.testing.assert_frame_equal(pd.concat(parts), model.score(frame))


def test_fit_on_chunks_matches_fit_on_frame():
    frame, truth = planted_frame()
    whole = SegmentationModel(k=3).fit(frame)
    streamed = SegmentationModel(k=3).fit(frame.iloc[i:i + 100] for i in range(0, len(frame), 100))
    np.testing.assert_allclose(streamed.mean_, whole.mean_)
    np.testing.assert_allclose(streamed.scale_, whole.scale_)
    assert streamed.labels_ is None and streamed.n_samples_ == len(frame)
    assert ari(streamed.predict(frame), truth) == 1.0


def test_large_data_uses_sample_then_refines():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(c, 0.5, (3000, 2)) for c in (-4, 0, 4)])
    full = kmeans(X, 3, n_init=2, seed=0)
    sampled = kmeans(X, 3, n_init=2, seed=0, sample_rows=500)
    assert ari(full.labels, sampled.labels) == 1.0
    assert sampled.inertia == pytest.approx(full.inertia, rel=1e-6)


def test_errors_are_clear():
    frame, _ = planted_frame()
    with pytest.raises(NotFittedError):
        SegmentationModel().predict(frame)
    with pytest.raises(KeyError, match="missing feature column"):
        SegmentationModel(k=2).fit(frame.drop(columns=["Income"]))
    with pytest.raises(ValueError, match="finite"):
        bad = frame.copy()
        bad.loc[0, "Income"] = np.nan
        SegmentationModel(k=2).fit(bad)
    with pytest.raises(ValueError, match="k must be between"):
        kmeans(np.zeros((3, 2)), 5)


def test_constant_feature_and_duplicate_points():
    X = np.zeros((10, 2))
    X[5:, 0] = 1.0
    res = kmeans(X, 3, seed=0)  # only two distinct points: still k centroids, no crash
    assert res.centers.shape == (3, 2) and np.isfinite(res.inertia)
    frame = pd.DataFrame({f: 1.0 for f in DEFAULT_FEATURES}, index=range(5))
    model = SegmentationModel(k=2).fit(frame)
    assert np.isfinite(model.centroids_).all()


def test_pickles_without_fast_cache():
    frame, _ = planted_frame()
    model = SegmentationModel(k=3).fit(frame)
    model.score_one(frame[DEFAULT_FEATURES].iloc[0].tolist())
    again = pickle.loads(pickle.dumps(model))
    assert "_fast" not in again.__dict__
    assert np.array_equal(again.predict(frame), model.predict(frame))
