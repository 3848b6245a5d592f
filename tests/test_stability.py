"""Segment stability: bootstrap (Hennig), enrolment-time snapshots, drift of new data; CLI, services, figures."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from core.cli.commands import main
from core.insight.drift import compare_new_data, feature_psi, psi, psi_band
from core.fitting.model import SegmentationModel, kmeans
from core.fitting.stability import (
    adjusted_rand, bootstrap_stability, cohort_mix, contingency, jaccard_matrix, match_centroids,
    monic_transitions, stability_per_k, temporal_stability, verdict,
)

FEATURES = ["f0", "f1", "f2"]


def planted(n: int, k: int = 4, d: int = 3, sep: float = 12.0, seed: int = 1):
    """Well-separated Gaussian blobs: (points, true labels, centres)."""
    rng = np.random.default_rng(seed)
    while True:  # every pair of centres at least ``sep`` apart (points have unit spread)
        centres = rng.uniform(-2 * sep, 2 * sep, (k, d))
        gaps = np.linalg.norm(centres[:, None] - centres[None], axis=2) + np.eye(k) * 1e9
        if gaps.min() >= sep:
            break
    labels = rng.integers(0, k, n)
    return centres[labels] + rng.normal(0, 1, (n, d)), labels, centres


def customers(points: np.ndarray, dates) -> pd.DataFrame:
    """A frame with feature columns f0.. and an enrolment date per customer."""
    frame = pd.DataFrame(points, columns=[f"f{j}" for j in range(points.shape[1])])
    frame["Dt_Customer"] = pd.to_datetime(dates)
    return frame


def spread_dates(n: int, seed: int = 3, start="2012-07-01", days: int = 720):
    rng = np.random.default_rng(seed)
    return pd.Timestamp(start) + pd.to_timedelta(np.sort(rng.integers(0, days, n)), unit="D")


# ---------------------------------------------------------------------------- agreement measures
def test_adjusted_rand_equals_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 80))
        a = rng.integers(0, int(rng.integers(1, 6)), n)
        b = rng.integers(0, int(rng.integers(1, 6)), n)
        assert adjusted_rand(a, b) == pytest.approx(adjusted_rand_score(a, b), abs=1e-12)
    # Label values do not matter, only the partition; strings work too.
    a = rng.integers(0, 4, 500)
    assert adjusted_rand(a, (a + 7) * 3) == 1.0
    assert adjusted_rand(a.astype(str), a) == 1.0
    assert adjusted_rand(np.zeros(5), np.arange(5)) == pytest.approx(adjusted_rand_score(np.zeros(5), np.arange(5)))


def test_adjusted_rand_large_counts_do_not_overflow():
    rng = np.random.default_rng(5)
    a = rng.integers(0, 6, 300_000)
    b = np.where(rng.random(300_000) < 0.8, a, rng.integers(0, 6, 300_000))
    assert adjusted_rand(a, b) == pytest.approx(adjusted_rand_score(a, b), abs=1e-9)


def test_contingency_and_jaccard():
    table = contingency([0, 0, 1, 1, 1], ["x", "y", "y", "y", "y"])
    assert table.tolist() == [[1, 1], [0, 3]]
    jac = jaccard_matrix(table)
    # class 1 of a = {2,3,4}; class y of b = {1,2,3,4}: 3 shared of 4.
    assert jac[1, 1] == pytest.approx(0.75)
    assert jac[0, 0] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        contingency([0, 1], [0, 1, 2])


def test_verdict_uses_hennigs_thresholds():
    assert verdict(0.3) == "dissolved"
    assert verdict(0.5) == "dissolved"
    assert verdict(0.55) == "unstable"
    assert verdict(0.6) == "doubtful"
    assert verdict(0.74) == "doubtful"
    assert verdict(0.75) == "stable"
    assert verdict(0.85) == "highly stable"
    assert verdict(float("nan")) == "not measured"


def test_hungarian_matching_recovers_a_permutation():
    rng = np.random.default_rng(2)
    reference = rng.normal(0, 5, (7, 4))
    perm = rng.permutation(7)
    candidate = reference[perm] + rng.normal(0, 0.05, (7, 4))
    assert match_centroids(reference, candidate).tolist() == perm.tolist()
    # One matching function for the whole project (core.fitting.matching): extra candidates are left
    # unmatched (-1) rather than refused; a different number of features is refused.
    import core.fitting.matching
    assert match_centroids is core.fitting.matching.match_centroids
    assert sorted(match_centroids(reference[:3], candidate).tolist()) == [-1, -1, -1, -1, 0, 1, 2]
    with pytest.raises(ValueError, match="features"):
        match_centroids(reference[:, :2], candidate)


# ---------------------------------------------------------------------------- bootstrap
def test_planted_segments_are_highly_stable():
    Z, _, _ = planted(600)
    ref = kmeans(Z, 4, seed=0)
    result = bootstrap_stability(Z, ref.labels, resamples=20, seed=0)
    assert result.jaccard.shape == (20, 4)
    assert (result.mean_jaccard >= 0.9).all()
    assert result.verdicts == ["highly stable"] * 4
    assert np.median(result.ari) >= 0.95
    assert (result.dissolved == 0).all() and (result.recovered == 20).all()
    out = result.to_dict()
    assert set(out["jaccard"]) == {"0", "1", "2", "3"} and len(out["ari"]) == 20
    assert "4 of 4 segments are stable" in result.summary()


def test_structureless_data_is_clearly_less_stable():
    rng = np.random.default_rng(4)
    Z = rng.normal(size=(600, 5))  # one Gaussian: any 6-way split is arbitrary
    ref = kmeans(Z, 6, seed=0)
    result = bootstrap_stability(Z, ref.labels, resamples=20, seed=0)
    assert result.mean_jaccard.mean() < 0.7
    assert np.median(result.ari) < 0.7
    assert any(v in ("dissolved", "unstable", "doubtful") for v in result.verdicts)
    assert "change a lot" in result.summary()


def test_bootstrap_is_seeded_and_thread_count_does_not_change_it():
    Z = np.random.default_rng(3).normal(size=(300, 3))  # unstable data, so resamples differ
    labels = kmeans(Z, 4, seed=0).labels
    a = bootstrap_stability(Z, labels, resamples=6, seed=7)
    b = bootstrap_stability(Z, labels, resamples=6, seed=7, n_jobs=2)
    c = bootstrap_stability(Z, labels, resamples=6, seed=8)
    np.testing.assert_array_equal(a.ari, b.ari)
    np.testing.assert_array_equal(a.jaccard, b.jaccard)
    assert not np.array_equal(a.ari, c.ari)


def test_bootstrap_reports_progress_and_rejects_bad_input():
    Z, _, _ = planted(200, k=3)
    labels = kmeans(Z, 3, seed=0).labels
    seen = []
    bootstrap_stability(Z, labels, resamples=4, progress=lambda d, t, m: seen.append((d, t)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    with pytest.raises(ValueError, match="one label per customer"):
        bootstrap_stability(Z, labels[:-1], resamples=2)
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_stability(Z, labels, resamples=0)


def test_stability_per_k_prefers_the_planted_k():
    Z, _, _ = planted(500, k=4, seed=11)
    result = stability_per_k(Z, [3, 4, 5], resamples=8, seed=0)
    assert list(result) == [3, 4, 5]
    assert result[4] >= 0.95
    assert result[4] >= max(result[3], result[5])


# ---------------------------------------------------------------------------- over enrolment time
def test_planted_segments_are_stable_over_enrolment_time():
    points, _, _ = planted(800, k=4)
    dates = spread_dates(800)
    # Three customers a month earlier: a snapshot too small to fit (and reported as such).
    dates = dates.append(pd.DatetimeIndex(["2012-05-03", "2012-05-10", "2012-05-20"]))
    points = np.vstack([points, points[:3]])
    frame = customers(points, dates)
    model = SegmentationModel(k=4, features=FEATURES, seed=0).fit(frame)
    result = temporal_stability(frame, model, window="quarter")
    assert result.skipped and result.skipped[0]["period"] == "2012Q2" and result.skipped[0]["n_customers"] == 3
    assert "fewer than 40 customers" in result.skipped[0]["reason"]
    assert len(result.snapshots) == 8
    assert all(s.ari >= 0.99 for s in result.snapshots)
    assert result.snapshots[-1].n_customers == len(frame)
    assert max(max(s.drift) for s in result.snapshots) < 0.5
    # Matched to the model's segments: shares line up with the model's own shares.
    final = np.bincount(model.labels_, minlength=4) / len(frame)
    np.testing.assert_allclose(result.snapshots[-1].shares, final, atol=1e-9)
    kinds = {e["type"] for t in result.transitions for e in t["events"]}
    assert kinds == {"survived"}
    assert sum(f["n"] for f in result.flows if f["to"] == result.snapshots[-1].period) == len(frame)
    out = result.to_dict()
    assert "enrolment cohort" in out["note"]
    assert set(out["snapshots"][0]) >= {"period", "n_customers", "ari", "shares", "drift"}


def test_monthly_window_and_bad_window():
    points, _, _ = planted(400, k=3)
    frame = customers(points, spread_dates(400, days=180))
    model = SegmentationModel(k=3, features=FEATURES, seed=0).fit(frame)
    result = temporal_stability(frame, model, window="month")
    assert [s.period for s in result.snapshots][-1] == "2012-12"
    with pytest.raises(ValueError, match="window"):
        temporal_stability(frame, model, window="year")
    with pytest.raises(ValueError, match="Dt_Customer"):
        temporal_stability(frame.drop(columns="Dt_Customer"), model)


def test_planted_shift_between_cohorts_is_reported_as_drift():
    rng = np.random.default_rng(9)
    n = 1200
    dates = spread_dates(n, seed=5)
    early = np.asarray(dates < pd.Timestamp("2013-07-01"))
    centres = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0]])
    # Early cohorts are mostly segment 0, late cohorts mostly segment 2; segment 1's centre moves
    # by 4 units for late enrolments.
    p_early, p_late = [0.7, 0.2, 0.1], [0.1, 0.2, 0.7]
    labels = np.where(early, rng.choice(3, n, p=p_early), rng.choice(3, n, p=p_late))
    points = centres[labels] + rng.normal(0, 1, (n, 3))
    points[(labels == 1) & ~early, 2] += 4.0
    frame = customers(points, dates)
    model = SegmentationModel(k=3, features=FEATURES, seed=0).fit(frame)
    result = temporal_stability(frame, model)
    seg0 = int(np.argmin(np.linalg.norm(np.asarray(model.centroids_original()) - centres[0], axis=1)))
    seg1 = int(np.argmin(np.linalg.norm(np.asarray(model.centroids_original()) - centres[1], axis=1)))
    first, last = result.snapshots[0], result.snapshots[-1]
    assert first.shares[seg0] > last.shares[seg0] + 0.2  # the share of segment 0 falls as cohorts change
    assert first.drift[seg1] > 1.0  # segment 1's centre seen on early customers is far from the model's
    cohorts = result.cohorts
    assert cohorts[0]["shares"][str(seg0)] > 0.6 and cohorts[-1]["shares"][str(seg0)] < 0.2

    # Against new data: late customers compared with the early ones is drift, the same data is not.
    early_frame, late_frame = frame[early], frame[~early]
    early_model = SegmentationModel(k=3, features=FEATURES, seed=0).fit(early_frame)
    report = compare_new_data(early_model, early_frame, late_frame, baseline_resamples=5)
    assert report.recommendation == "retrain"
    assert report.share_psi >= 0.25
    assert "segment mix shifted" in report.reason
    same = compare_new_data(early_model, early_frame, early_frame, baseline_resamples=5)
    assert same.recommendation == "keep"
    assert same.features["psi"].max() == pytest.approx(0.0, abs=1e-12)
    assert same.ari_refit == pytest.approx(1.0)
    assert json.dumps(same.to_dict())


def test_monic_events():
    # old cluster 0 survives into 0; 1 splits into 1 and 2; 2 and 3 are absorbed into 3; new 4 emerges.
    old = np.array([0] * 10 + [1] * 10 + [2] * 10 + [3] * 10)
    new = np.array([0] * 10 + [1] * 5 + [2] * 5 + [3] * 8 + [0] * 2 + [3] * 10)
    events = monic_transitions(old, new, 5)
    by_old = {tuple(e["old"]): e for e in events if e["old"]}
    assert by_old[(0,)]["type"] == "survived" and by_old[(0,)]["new"] == [0]
    assert by_old[(1,)]["type"] == "split" and by_old[(1,)]["new"] == [1, 2]
    assert by_old[(2,)]["type"] == "absorbed" and by_old[(3,)]["type"] == "absorbed"
    assert [e["new"] for e in events if e["type"] == "emerged"] == [[4]]
    # Scattered thinly over many clusters: disappeared.
    old = np.zeros(12, int)
    new = np.arange(12) % 6
    assert monic_transitions(old, new, 6)[0]["type"] == "disappeared"


def test_cohort_mix_counts_each_enrolment_period():
    frame = customers(np.zeros((4, 3)), ["2013-01-05", "2013-02-01", "2013-04-02", "2013-05-05"])
    mix = cohort_mix(frame, [0, 1, 1, 1], 2, "quarter")
    assert [(c["period"], c["n_customers"]) for c in mix] == [("2013Q1", 2), ("2013Q2", 2)]
    assert mix[0]["shares"] == {"0": 0.5, "1": 0.5} and mix[1]["shares"] == {"0": 0.0, "1": 1.0}


# ---------------------------------------------------------------------------- PSI
def test_psi_identical_is_zero_and_shift_is_significant():
    rng = np.random.default_rng(0)
    x = rng.normal(size=5000)
    assert psi(x, x) == pytest.approx(0.0, abs=1e-12)
    assert psi(x, rng.normal(size=5000)) < 0.1  # same distribution, other sample
    assert psi(x, rng.normal(0.8, 1, 5000)) >= 0.25
    # Counts with tied deciles still work (bins merge).
    kids = rng.integers(0, 3, 2000)
    assert psi(kids, kids) == pytest.approx(0.0, abs=1e-12)
    assert psi(kids, np.full(500, 2)) > 0.25
    assert psi_band(0.05) == "no significant shift" and psi_band(0.1) == "moderate shift"
    assert psi_band(0.25) == "significant shift"
    with pytest.raises(ValueError):
        psi([], x)
    table = feature_psi(pd.DataFrame({"a": x, "b": x}), pd.DataFrame({"a": x, "b": x + 2}), ["a", "b"])
    assert table["feature"].tolist() == ["b", "a"] and table.loc[0, "band"] == "significant shift"


# ---------------------------------------------------------------------------- CLI
def _run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_stability_json(capsys, sample_path):
    code, out, err = _run_cli(capsys, "stability", "--data", str(sample_path), "--resamples", "5", "--json")
    assert code == 0
    data = json.loads(out)
    boot = data["bootstrap"]
    assert set(boot) >= {"jaccard", "verdict", "ari"}
    assert set(boot["jaccard"]) == {str(i) for i in range(6)} and len(boot["ari"]) == 5
    assert all(0 <= v <= 1 for v in boot["jaccard"].values())
    assert isinstance(data["temporal"], list) and data["temporal"]
    assert set(data["temporal"][0]) >= {"period", "n_customers", "ari", "shares"}
    assert data["temporal"][-1]["n_customers"] == data["n_customers"]
    assert "enrolment cohort" in data["temporal_details"]["note"]
    assert "bootstrap refit 5/5" in err  # progress on stderr, not stdout


def test_cli_stability_text_and_bad_input(capsys, sample_path):
    code, out, _ = _run_cli(capsys, "stability", "--data", str(sample_path), "--resamples", "3", "--k", "3",
                            "--window", "month", "--quiet")
    assert code == 0 and "Jaccard" in out and "2014-06" in out
    code, _, err = _run_cli(capsys, "stability", "--data", "/no/such/file.csv", "--quiet")
    assert code == 2 and err.strip().count("\n") == 0 and "no such file" in err
    code, _, err = _run_cli(capsys, "stability", "--data", str(sample_path), "--features", "Nope", "--quiet")
    assert code == 2 and "unknown feature" in err


def test_cli_drift(capsys, trained, sample_path, tmp_path):
    registry = trained[0]
    code, out, _ = _run_cli(capsys, "drift", "--data", str(sample_path), "--models", str(registry.root),
                            "--baseline-resamples", "3", "--json", "--quiet")
    assert code == 0
    data = json.loads(out)
    assert data["recommendation"] == "keep"
    assert {f["feature"] for f in data["features"]} == set(trained[2].features)
    assert all(f["psi"] == pytest.approx(0, abs=1e-9) for f in data["features"])
    assert data["ari_refit"] == pytest.approx(1.0)
    # No model yet, and a model whose training file is gone: one line, exit 2.
    code, _, err = _run_cli(capsys, "drift", "--data", str(sample_path), "--models", str(tmp_path / "empty"))
    assert code == 2 and "no model" in err
    copy = tmp_path / "train.tsv"
    shutil.copy(sample_path, copy)
    assert main(["train", "--data", str(copy), "--models", str(tmp_path / "m"), "--quiet"]) == 0
    copy.unlink()
    capsys.readouterr()
    code, _, err = _run_cli(capsys, "drift", "--data", str(sample_path), "--models", str(tmp_path / "m"))
    assert code == 2 and "is gone" in err and err.count("\n") == 1


# ---------------------------------------------------------------------------- services
def test_services_stability_and_drift_are_cached(trained, sample_path):
    from dashboard.services import Services

    registry = trained[0]
    services = Services(registry, None)
    seen = []
    first = services.stability(5, "quarter", progress=lambda d, t, m: seen.append(d))
    assert first["bootstrap"].resamples == 5 and first["temporal"].snapshots
    assert seen[-1] == 100 and seen == sorted(seen)
    again = services.stability(5, "quarter")
    assert again["bootstrap"] is first["bootstrap"]  # served from the cache, not recomputed
    with pytest.raises(ValueError, match="resamples"):
        services.stability(0)
    result = services.drift(sample_path.read_bytes(), name="later.tsv")
    assert result["report"].recommendation == "keep" and result["new_source"] == "later.tsv"
    with pytest.raises(ValueError, match="no file to compare"):
        services.drift(None)


# ---------------------------------------------------------------------------- figures
def test_figures():
    from dashboard.figures.stability import (
        ari_distribution_figure, ari_time_figure, drift_heatmap, jaccard_figure, psi_figure, sankey_figure,
        share_shift_figure, shares_figure,
    )
    from dashboard.theme import segment_colour

    names = ["A", "B", "C"]
    fig = jaccard_figure({"0": 0.9, "1": 0.55, "2": 0.7}, names,
                         {str(i): {"p05": 0.4, "median": 0.6, "p95": 0.95} for i in range(3)})
    bar = fig.data[0]
    assert list(bar.x) == [0.9, 0.55, 0.7] and list(bar.marker.color) == [segment_colour(i) for i in range(3)]
    thresholds = sorted(s.x0 for s in fig.layout.shapes if s.type == "line")
    assert thresholds == [0.5, 0.6, 0.75, 0.85]
    # With the 95% interval of each mean (the verdict needs all of it in one band): a black bar per segment.
    with_ci = jaccard_figure({"0": 0.9, "1": 0.55}, names[:2], None, None, {"0": [0.86, 0.93], "1": [0.5, 0.62]})
    ci = with_ci.data[1]
    assert list(ci.x) == [0.9, 0.55] and list(ci.error_x.array) == pytest.approx([0.03, 0.07])
    assert list(ci.error_x.arrayminus) == pytest.approx([0.04, 0.05])
    assert fig.layout.xaxis.title.text.startswith("Mean Jaccard")
    hist = ari_distribution_figure([0.5, 0.6, 0.7])
    assert list(hist.data[0].x) == [0.5, 0.6, 0.7] and "median 0.60" in hist.layout.annotations[0].text
    snaps = [{"period": p, "end": "2013-01-01", "n_customers": n, "ari": a,
              "shares": {"0": 0.5, "1": 0.3, "2": 0.2}, "drift": {"0": 0.1, "1": 0.2, "2": 0.3}}
             for p, n, a in (("2012Q3", 100, 0.6), ("2012Q4", 200, 0.9))]
    line = ari_time_figure(snaps)
    assert list(line.data[0].y) == [0.6, 0.9] and line.layout.yaxis.title.text == "Adjusted Rand index"
    area = shares_figure(snaps, names)
    assert len(area.data) == 3 and {t.stackgroup for t in area.data} == {"shares"}
    heat = drift_heatmap(snaps, names)
    assert np.asarray(heat.data[0].z).shape == (3, 2)
    flows = [{"from": "2012Q3", "to": "2012Q4", "source": 0, "target": 0, "n": 40},
             {"from": "2012Q3", "to": "2012Q4", "source": 1, "target": 2, "n": 10},
             {"from": "2012Q3", "to": "2012Q4", "source": -1, "target": 1, "n": 100}]
    sankey = sankey_figure(flows, snaps, names)
    assert list(sankey.data[0].link.value) == [40, 10, 100] and len(sankey.data[0].node.color) == 6
    psi_fig = psi_figure([{"feature": "Income", "psi": 0.3, "band": "significant shift"},
                          {"feature": "Age", "psi": 0.01, "band": "no significant shift"}], {"Income": "Income"})
    assert list(psi_fig.data[0].y) == ["Age (years)", "Income"]  # unnamed features take the one set of labels
    shift = share_shift_figure([{"segment": 0, "reference_share": 0.6, "new_share": 0.4},
                                {"segment": 1, "reference_share": 0.4, "new_share": 0.6}], names)
    assert len(shift.data) == 2 and list(shift.data[1].y) == [0.4, 0.6]
    # Nothing to show: a message, never a silently empty chart.
    for empty in (ari_time_figure([]), shares_figure([], names), sankey_figure([], snaps[:1], names),
                  jaccard_figure({}, names)):
        assert empty.layout.annotations and not empty.data


@pytest.mark.real_data
def test_real_file_k6_is_not_fully_stable(real_data_path):
    from core.versions.pipeline import fit_model, prepare

    prepared = prepare(real_data_path)
    model = fit_model(prepared, k=6)
    result = bootstrap_stability(model.transform(prepared.frame), model.labels_, resamples=30)
    # The measured fact the product must say plainly: k=6 labels move between resamples, and
    # one segment (about 0.74 mean Jaccard over 30 resamples) is not clearly stable.
    assert np.median(result.ari) < 0.9
    assert min(result.mean_jaccard) < 0.8
    assert "highly stable" in result.verdicts  # others are solid: the verdict is per segment, not global


def test_large_data_is_measured_on_a_sample():
    from core.fitting.stability import bootstrap_stability
    rng = np.random.default_rng(0)
    Z = np.vstack([rng.normal(c, 0.3, (400, 2)) for c in (-3, 0, 3)])
    labels = np.repeat([0, 1, 2], 400)
    result = bootstrap_stability(Z, labels, resamples=5, max_rows=300)
    assert result.n_customers == 300
    assert (result.mean_jaccard > 0.9).all()


# ---------------------------------------------------------------------------- clusterboot's default scheme
def _clusterboot_direct(Z, labels, k, B, seed):
    """fpc::clusterboot's default algorithm as Hennig describes it (multipleboot=FALSE), written out plainly.

    For each of B bootstrap draws of n customers with replacement, the customers drawn (each once)
    are clustered anew; each original cluster, restricted to the drawn customers, gets the largest
    Jaccard similarity with any new cluster. Result: the mean over draws per original cluster.
    """
    rng = np.random.default_rng(seed)
    n = len(Z)
    values = np.zeros((B, k))
    for b in range(B):
        drawn = np.unique(rng.integers(0, n, n))
        new = kmeans(Z[drawn], k, n_init=10, seed=int(rng.integers(1 << 30))).labels
        for j in range(k):
            original = set(drawn[labels[drawn] == j].tolist())
            values[b, j] = max(len(original & set(drawn[new == m].tolist()))
                               / len(original | set(drawn[new == m].tolist())) for m in range(k))
    return values


def test_default_scheme_equals_clusterboot_within_sampling_noise():
    rng = np.random.default_rng(5)
    centres = np.array([[0, 0], [2.5, 0], [0, 2.5], [4, 4]])
    Z = np.vstack([c + rng.normal(0, 1.1, (50, 2)) for c in centres])  # overlapping: Jaccard below 1
    labels = kmeans(Z, 4, seed=0).labels
    B = 60
    direct = _clusterboot_direct(Z, labels, 4, B, seed=123)
    ours = bootstrap_stability(Z, labels, resamples=B, seed=7)
    assert ours.scheme == "clusterboot"
    se = np.sqrt(direct.var(axis=0, ddof=1) / B + np.nanvar(ours.jaccard, axis=0, ddof=1) / B)
    diff = np.abs(ours.mean_jaccard - direct.mean(axis=0))
    assert (diff <= np.maximum(4 * se, 0.02)).all(), (ours.mean_jaccard, direct.mean(axis=0))
    assert (ours.mean_jaccard < 0.99).any()  # the check is not vacuous


def test_scheme_is_named_and_multipleboot_is_kept_as_an_option():
    Z, _, _ = planted(200, k=3)
    labels = kmeans(Z, 3, seed=0).labels
    out = bootstrap_stability(Z, labels, resamples=3).to_dict()
    assert out["scheme"] == "clusterboot" and "multipleboot=FALSE" in out["scheme_description"]
    assert set(out["jaccard_interval"]) == {"0", "1", "2"}
    multi = bootstrap_stability(Z, labels, resamples=3, scheme="multipleboot")
    assert multi.scheme == "multipleboot" and multi.to_dict()["scheme_description"].endswith("multipleboot=TRUE)")
    with pytest.raises(ValueError, match="scheme"):
        bootstrap_stability(Z, labels, resamples=2, scheme="nope")


def test_verdict_only_when_the_interval_lies_in_one_band():
    from core.fitting.stability import BootstrapResult, verdict_interval

    assert verdict_interval(0.86, 0.95) == "highly stable"
    assert verdict_interval(0.70, 0.80) == "borderline between doubtful and stable"
    assert verdict_interval(0.45, 0.55) == "borderline between dissolved and unstable"
    # Two segments with mean 0.8: one measured tightly (stable), one spread across bands (borderline).
    jac = np.column_stack([np.full(20, 0.8) + np.linspace(-0.01, 0.01, 20),
                           np.tile([0.6, 1.0], 10)])
    result = BootstrapResult(k=2, resamples=20, seed=0, n_init=1, jaccard=jac, ari=np.ones(20), n_customers=10)
    low, high = result.jaccard_interval
    assert low[0] > 0.75 and high[0] < 0.85 and low[1] < 0.75 < 0.85 < high[1]
    assert result.verdicts == ["stable", "borderline between doubtful and highly stable"]
    assert "1 of 2 segments are stable" in result.summary()
