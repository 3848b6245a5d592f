"""The engine interface (core.engines): selection by name, the numpy engine in memory, FitResult -> model."""
import dataclasses
import sys

import numpy as np
import pytest

from core.engines import ENGINES, EngineUnavailable, FitResult, get_engine
from core.fitting.model import SegmentationModel, kmeans, standardise
from core.versions.pipeline import fit_model, prepare
from core.reading.schema import DEFAULT_FEATURES


@pytest.fixture(scope="module")
def prepared(sample_path):
    return prepare(sample_path)


def test_engines_by_name(monkeypatch):
    assert set(ENGINES) == {"numpy", "spark"}
    assert get_engine("numpy").name == "numpy"
    with pytest.raises(ValueError, match="unknown engine 'gpu'; choose one of: numpy, spark"):
        get_engine("gpu")
    monkeypatch.setitem(sys.modules, "pyspark", None)  # as on a machine without the extra
    with pytest.raises(EngineUnavailable, match=r"pyspark.*pip install -r requirements-spark\.txt"):
        get_engine("spark")


def test_numpy_engine_in_memory_is_todays_model(prepared):
    frame = prepared.frame
    fit = get_engine("numpy").fit(frame, features=DEFAULT_FEATURES, k=6, seed=42, n_init=3, max_iter=300)
    assert isinstance(fit, FitResult) and fit.k == 6 and fit.rows == len(frame) and fit.info["engine"] == "numpy"
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.inertia = 0.0
    _, mean, scale = standardise(frame[DEFAULT_FEATURES].to_numpy(dtype=float))
    np.testing.assert_array_equal(fit.mean, mean)
    np.testing.assert_array_equal(fit.scale, scale)
    assert fit.sizes.sum() == len(frame)
    direct = SegmentationModel(k=6, features=DEFAULT_FEATURES, seed=42, n_init=3).fit(frame)
    via_engine = fit_model(prepared, k=6, seed=42, n_init=3)
    np.testing.assert_array_equal(via_engine.centroids_, direct.centroids_)
    np.testing.assert_array_equal(via_engine.labels_, direct.labels_)
    assert via_engine.inertia_ == pytest.approx(direct.inertia_, rel=1e-12)
    assert sorted(np.bincount(direct.labels_).tolist()) == sorted(fit.sizes.tolist())
    # assign() labels every customer with the fit's own centroid numbering, chunk by chunk.
    labels = np.concatenate(list(get_engine("numpy").assign(frame, fit, chunk_rows=500)))
    np.testing.assert_array_equal(np.bincount(labels, minlength=6), fit.sizes)


def test_cluster_is_kmeans_and_from_fit_renumbers(prepared):
    Z, _, _ = standardise(prepared.frame[DEFAULT_FEATURES].to_numpy(dtype=float))
    a = get_engine("numpy").cluster(Z, 4, seed=3, n_init=2)
    b = kmeans(Z, 4, seed=3, n_init=2)
    np.testing.assert_array_equal(a.labels, b.labels)
    fit = FitResult(features=["x", "y"], mean=np.zeros(2), scale=np.ones(2),
                    centroids=np.array([[-1.0, 0.0], [2.0, 0.0], [0.5, 1.0]]), sizes=np.array([1, 1, 1]),
                    inertia=1.5, n_iter=2, rows=3, seconds=0.0, info={})
    model = SegmentationModel.from_fit(fit, np.array([[-1.0, 0.1], [2.0, 0.0], [0.4, 1.0]]))
    # Segments are numbered by descending first feature, whatever order the engine used.
    np.testing.assert_array_equal(model.centroids_[:, 0], [2.0, 0.5, -1.0])
    np.testing.assert_array_equal(model.labels_, [2, 0, 1])
    assert model.predict(np.array([[1.9, 0.0]]))[0] == 0 and model.n_samples_ == 3
