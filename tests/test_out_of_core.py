"""Out-of-core numpy engine: chunked k-means, one-pass aggregates, the stratified sample, the artifacts."""
import io
import json

import numpy as np
import pandas as pd
import pytest

from core.versions.aggregates import ProfileAggregator, aggregate_frame, calinski_harabasz_from_aggregates
from core.engines import get_engine
from core.versions.pipeline import prepare, train
from core.versions.registry import Registry
from core.reading.sampling import StratifiedSampler, quotas, sample_from_arrays, stratified_sample
from core.reading.schema import DEFAULT_FEATURES
from core.fitting.selection import calinski_harabasz
from core.reading.sources import DataSource


@pytest.fixture(scope="module")
def prepared(sample_path):
    return prepare(sample_path)


def test_streamed_kmeans_gives_the_in_memory_labels(sample_path, prepared):
    """Small chunks and a 500-row start sample force full Lloyd passes over chunks, as kmeans() runs them."""
    engine = get_engine("numpy", chunk_rows=300, sample_rows=500)
    with DataSource(sample_path) as src:
        streamed = engine.fit(src, features=DEFAULT_FEATURES, k=6, seed=42, n_init=3, max_iter=300)
        labels = np.concatenate(list(engine.assign(src, streamed, chunk_rows=250)))
    memory = engine.fit(prepared.frame, features=DEFAULT_FEATURES, k=6, seed=42, n_init=3, max_iter=300)
    assert streamed.info["mode"] == "streaming" and streamed.info["full_passes"] >= 2
    np.testing.assert_allclose(streamed.mean, memory.mean, rtol=1e-12)
    np.testing.assert_allclose(streamed.scale, memory.scale, rtol=1e-12)
    np.testing.assert_allclose(streamed.centroids, memory.centroids, atol=1e-9)
    assert streamed.inertia == pytest.approx(memory.inertia, rel=1e-9)
    assert streamed.n_iter == memory.n_iter and streamed.rows == memory.rows == len(prepared.frame)
    np.testing.assert_array_equal(labels, np.concatenate(list(engine.assign(prepared.frame, memory))))
    np.testing.assert_array_equal(streamed.sizes, np.bincount(labels, minlength=6))


def test_aggregates_in_chunks_equal_pandas(prepared):
    frame = prepared.frame
    labels = np.arange(len(frame)) % 4
    agg = ProfileAggregator(4)
    for part in np.array_split(np.arange(len(frame)), 7):
        agg.update(frame.iloc[part], labels[part])
    out = agg.result()
    columns = out["columns"]
    assert "ID" not in columns and {"Income", "Age", "Share_Wines"} <= set(columns)
    grouped = frame[columns].groupby(labels)
    for name in ("mean", "std", "min", "max", "sum"):
        expected = getattr(grouped, name)()
        got = pd.DataFrame([s[name] for s in out["segments"]], columns=columns).astype(float)
        np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-9, atol=1e-6)
    assert [s["count"] for s in out["segments"]] == np.bincount(labels).tolist() and out["rows"] == len(frame)
    assert out["overall"]["mean"]["Income"] == pytest.approx(frame["Income"].mean(), rel=1e-12)
    assert out["overall"]["std"]["Income"] == pytest.approx(frame["Income"].std(), rel=1e-9)
    whole = json.loads(json.dumps(aggregate_frame(frame, labels, 4), allow_nan=False))  # JSON-ready
    for a, b in zip(out["segments"], whole["segments"]):
        assert a["count"] == b["count"] and a["min"] == b["min"] and a["max"] == b["max"]
        assert a["mean"] == pytest.approx(b["mean"], rel=1e-12) and a["std"] == pytest.approx(b["std"], rel=1e-9)
    # Calinski-Harabasz from the aggregates alone equals the row-by-row figure.
    X = frame[DEFAULT_FEATURES].to_numpy(dtype=float)
    mean, scale = X.mean(axis=0), X.std(axis=0)
    assert calinski_harabasz_from_aggregates(out, DEFAULT_FEATURES, mean, scale) == pytest.approx(
        calinski_harabasz((X - mean) / scale, labels), rel=1e-9)


def test_stratified_sample_is_proportional_and_chunking_independent(prepared):
    frame = prepared.frame
    labels = (frame["Income"].rank(method="first").to_numpy() * 3 // (len(frame) + 1)).astype(int)  # 3 strata
    whole, whole_labels = stratified_sample(frame, labels, size=300, seed=5)
    sampler = StratifiedSampler(np.bincount(labels), size=300, seed=5)
    for part in np.array_split(np.arange(len(frame)), 9):
        sampler.update(frame.iloc[part], labels[part])
    chunked, chunked_labels = sampler.result()
    pd.testing.assert_frame_equal(chunked, whole)
    np.testing.assert_array_equal(chunked_labels, whole_labels)
    assert len(whole) == 300 and np.bincount(whole_labels).tolist() == quotas(np.bincount(labels), 300).tolist()
    assert whole.index.is_monotonic_increasing and set(whole.index) <= set(frame.index)
    other, _ = stratified_sample(frame, labels, size=300, seed=6)
    assert not other.index.equals(whole.index)  # the seed matters
    assert quotas([5, 3, 2], 100).tolist() == [5, 3, 2] and quotas([50, 30, 20], 7).sum() == 7


def test_streamed_training_stores_the_same_version_as_in_memory(sample_path, tmp_path):
    memory_reg, stream_reg = Registry(tmp_path / "memory"), Registry(tmp_path / "stream")
    v1, m1, meta1 = train(sample_path, registry=memory_reg, n_init=3, sample_size=1000)
    v2, m2, meta2 = train(sample_path, registry=stream_reg, n_init=3, sample_size=1000, chunk_rows=1000)
    assert meta1["engine"]["mode"] == "in-memory" and meta2["engine"]["mode"] == "streaming"
    assert m2.labels_ is None and m2.n_samples_ == m1.n_samples_
    np.testing.assert_allclose(m2.centroids_, m1.centroids_, atol=1e-9)
    assert meta2["segment_sizes"] == meta1["segment_sizes"] and meta2["cleaning"] == meta1["cleaning"]
    assert meta2["metrics"]["calinski_harabasz"] == pytest.approx(meta1["metrics"]["calinski_harabasz"], rel=1e-6)
    for registry, version in ((memory_reg, v1), (stream_reg, v2)):
        aggregates = registry.artifact_json(version, "aggregates")
        assert [s["count"] for s in aggregates["segments"]] == meta1["segment_sizes"]
        sample, segments, params = sample_from_arrays(np.load(io.BytesIO(registry.artifact(version, "sample")),
                                                              allow_pickle=False))
        assert len(sample) == 1000 and params["of_rows"] == meta1["n_customers"] and params["strata"] == "segment"
        np.testing.assert_array_equal(segments, m1.predict(sample))
    assert memory_reg.artifact(v1, "sample") == stream_reg.artifact(v2, "sample")  # the same customers, bit for bit
    # Typicality is referenced to the sample's distances when streaming: close to all customers' figures.
    scores = m1.score(prepare(sample_path).frame)["typicality"] - m2.score(prepare(sample_path).frame)["typicality"]
    assert scores.abs().mean() < 0.05
