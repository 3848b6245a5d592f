"""k sweep metrics against scikit-learn, recommendations, profiles, personas, PCA, exports."""
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics

from core.insight import profiles
from core.fitting import selection
from core.versions.exports import escape_formula, to_safe_csv
from core.reading.features import add_features
from core.fitting.model import SegmentationModel, kmeans, standardise
from core.fitting.projection import pca
from tests.helpers import planted_frame, raw_frame


@pytest.fixture(scope="module")
def blobs():
    frame, truth = planted_frame(n_per=120, spread=0.6, seed=2)
    Z, _, _ = standardise(frame.to_numpy())
    return Z, truth


def test_metrics_equal_sklearn(blobs):
    Z, _ = blobs
    fit = kmeans(Z, 4, seed=0)
    values, rows = selection.silhouette_samples(Z, fit.labels)
    assert len(rows) == len(Z)
    np.testing.assert_allclose(values, metrics.silhouette_samples(Z, fit.labels), atol=1e-9)
    assert selection.calinski_harabasz(Z, fit.labels, fit.centers, fit.inertia) == pytest.approx(
        metrics.calinski_harabasz_score(Z, fit.labels))
    assert selection.davies_bouldin(Z, fit.labels, fit.centers) == pytest.approx(
        metrics.davies_bouldin_score(Z, fit.labels))


def test_sampled_silhouette_is_bounded_and_close(blobs):
    Z, truth = blobs
    exact, _ = selection.silhouette_samples(Z, truth)
    sampled, rows = selection.silhouette_samples(Z, truth, exact_max=100, sample_size=150, seed=1)
    assert len(sampled) == len(rows) == 150
    assert abs(sampled.mean() - exact.mean()) < 0.05
    np.testing.assert_allclose(sampled, metrics.silhouette_samples(Z[rows], truth[rows]), atol=1e-9)


def test_sweep_finds_planted_k_and_explains(blobs):
    Z, _ = blobs
    calls = []
    result = selection.sweep(Z, 2, 6, current_k=6, progress=lambda d, t, m: calls.append((d, t)))
    assert [r.k for r in result.results] == [2, 3, 4, 5, 6]
    assert result.recommended_k == 3
    assert result.votes["silhouette"] == 3 and result.votes["elbow"] == 3
    assert "k=3" in result.reason and "current k=6" in result.reason
    assert calls[-1] == (5, 5)
    assert result.silhouette_method == "exact"
    inertias = [r.inertia for r in result.results]
    assert all(a >= b for a, b in zip(inertias, inertias[1:]))
    assert result.to_dict()["results"][0]["k"] == 2


def test_sweep_rejects_bad_ranges(blobs):
    Z, _ = blobs
    with pytest.raises(ValueError, match="k-min"):
        selection.sweep(Z, 1, 4)
    with pytest.raises(ValueError, match="needs more than"):
        selection.sweep(Z[:5], 2, 5)


def test_elbow_on_a_textbook_curve():
    assert selection.elbow_k([1, 2, 3, 4, 5, 6], [100, 40, 12, 10, 9, 8]) == 3


@pytest.fixture(scope="module")
def profiled():
    frame = add_features(raw_frame(300, seed=3))
    model = SegmentationModel(k=4).fit(frame)
    return frame, model.labels_


def test_sizes_and_stats(profiled):
    frame, labels = profiled
    sizes = profiles.sizes(labels, 4)
    assert sizes["n"].sum() == 300 and sizes["share"].sum() == pytest.approx(1)
    stats = profiles.summary_stats(frame, labels, ["Income"])
    assert stats.loc[0, ("Income", "mean")] == pytest.approx(frame["Income"][labels == 0].mean())
    z = profiles.zscores(frame, labels)
    expected = (frame["Income"][labels == 1].mean() - frame["Income"].mean()) / frame["Income"].std(ddof=0)
    assert z.loc[1, "Income"] == pytest.approx(expected)


def test_mixes_sum_to_one_and_lift(profiled):
    frame, labels = profiled
    pm = profiles.product_mix(frame, labels)
    assert np.allclose(pm.sum(axis=1), 1)
    cm = profiles.channel_mix(frame, labels)
    assert list(cm.columns) == ["Web", "Catalog", "Store"] and np.allclose(cm.sum(axis=1), 1)
    lift = profiles.product_lift(frame, labels)
    overall_wine = frame["MntWines"].sum() / frame[[c for c in frame if c.startswith("Mnt")]].sum().sum()
    assert lift.loc[2, "Wines"] == pytest.approx(pm.loc[2, "Wines"] / overall_wine)


def test_campaign_rates_with_wilson_intervals(profiled):
    frame, labels = profiled
    rates = profiles.campaign_rates(frame, labels)
    row = rates[(rates.segment == 0) & (rates.campaign == "Response")].iloc[0]
    n = (labels == 0).sum()
    accepted = frame["Response"][labels == 0].sum()
    assert row["n"] == n and row["accepted"] == accepted and row["rate"] == pytest.approx(accepted / n)
    assert row["low"] <= row["rate"] <= row["high"]
    low, high = profiles.wilson_interval([0], [10])
    assert low[0] == 0 and high[0] == pytest.approx(0.2775, abs=1e-3)  # Wilson, 0 of 10


def test_economics_from_file_constants(profiled):
    frame, labels = profiled
    eco = profiles.economics(frame, labels)
    seg = labels == 1
    responders = frame["Response"][seg].mean() * seg.sum()
    assert eco.loc[1, "cost"] == pytest.approx(3 * seg.sum())
    assert eco.loc[1, "revenue"] == pytest.approx(11 * responders)
    assert eco.loc[1, "profit"] == pytest.approx(11 * responders - 3 * seg.sum())


def test_personas_unique_and_descriptive(profiled):
    frame, labels = profiled
    people = profiles.personas(frame, labels, 4)
    names = [p.name for p in people]
    assert len(set(names)) == 4 and all(n.strip() for n in names)
    assert all("% of customers" in p.description for p in people)


def test_personas_name_obvious_segments():
    frame = add_features(raw_frame(400, seed=9))
    labels = np.where(frame["Income"] > frame["Income"].quantile(0.75), 1, 0)
    frame.loc[labels == 1, "Income"] *= 3
    people = profiles.personas(frame, labels, 2)
    assert people[1].name.startswith("Affluent")
    assert "high income" in people[1].traits


def test_pca_matches_sklearn(blobs):
    from sklearn.decomposition import PCA
    Z, _ = blobs
    ours = pca(Z, 3)
    ref = PCA(3).fit(Z)
    np.testing.assert_allclose(ours.explained_variance_ratio, ref.explained_variance_ratio_, rtol=1e-9)
    np.testing.assert_allclose(np.abs(ours.transform(Z)), np.abs(ref.transform(Z)), atol=1e-9)
    # Loadings on standardised data are correlations of features with axes.
    corr = np.corrcoef(Z[:, 0], ours.transform(Z)[:, 0])[0, 1]
    assert ours.loadings[0, 0] == pytest.approx(corr * Z[:, 0].std(ddof=1), rel=1e-6)


def test_safe_csv_escapes_formulas():
    df = pd.DataFrame({"ID": [1, 2], "name": ["=HYPERLINK(\"x\")", "+1"], "v": [-3.5, 2.0], "=bad": ["@x", "ok"]})
    text = to_safe_csv(df)
    assert "'=HYPERLINK" in text and "'+1" in text and "'@x" in text and ",'=bad" in text.splitlines()[0] + ","
    assert "-3.5" in text and "'-3.5" not in text
    assert escape_formula("-x") == "'-x" and escape_formula(5) == 5


def test_sweep_on_large_data_fits_a_sample_and_says_so(blobs):
    Z, _ = blobs
    result = selection.sweep(Z, 2, 4, fit_max=200, exact_max=100, sample_size=120)
    assert result.fit_sample == 200 and result.n_customers == len(Z)
    assert result.silhouette_method == "sampled (n=120)"
    assert sum(result.results[0].sizes) == 200
    assert result.recommended_k == 3


def test_stability_per_k_is_a_criterion(blobs):
    Z, _ = blobs
    result = selection.sweep(Z, 2, 5, stability_resamples=5)
    stab = {r.k: r.stability for r in result.results}
    assert stab[3] > 0.95 and all(0 <= v <= 1 for v in stab.values())
    assert "stability" in result.votes and result.recommended_k == 3
    assert "bootstrap ARI" in result.reason


def test_an_unstable_k_is_not_recommended_when_a_stable_one_exists():
    rs = [selection.KResult(2, 100.0, 0.30, 500.0, 1.0, [50, 50], stability=0.55),
          selection.KResult(3, 60.0, 0.28, 400.0, 1.2, [30, 30, 40], stability=0.95),
          selection.KResult(4, 50.0, 0.20, 300.0, 1.4, [25] * 4, stability=0.80)]
    best, reason, votes = selection.recommend_k(rs, total_ss=200.0)
    assert votes["silhouette"] == 2 and votes["stability"] == 3
    assert best == 3 and "highest silhouette at k=2" in reason
