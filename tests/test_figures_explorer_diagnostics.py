"""Explorer and diagnostics without a browser: per-segment downsampling, filters, figures, advice, services."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from core.fitting.projection import downsample_per_segment
from dashboard.figures import diagnostics as fd
from dashboard.figures import explorer as fe
from dashboard.theme import segment_colour


# ---------------------------------------------------------------- downsample_per_segment
def _labels(sizes, seed=0):
    labels = np.concatenate([np.full(n, s) for s, n in enumerate(sizes)])
    return np.random.default_rng(seed).permutation(labels)


def test_downsample_returns_every_row_when_small_enough():
    labels = _labels([30, 20])
    assert np.array_equal(downsample_per_segment(labels, 50, 0), np.arange(50))
    assert np.array_equal(downsample_per_segment(labels, 1000, 0), np.arange(50))


def test_downsample_bound_every_segment_and_floor():
    sizes = [60_000, 30_000, 9_000, 900, 95, 5]
    labels = _labels(sizes)
    pos = downsample_per_segment(labels, 20_000, 3, min_per_segment=200)
    assert len(pos) == 20_000
    assert len(np.unique(pos)) == len(pos) and np.all(np.diff(pos) > 0)  # sorted, unique
    assert pos.min() >= 0 and pos.max() < len(labels)
    got = np.bincount(labels[pos], minlength=len(sizes))
    # Small segments keep min_per_segment or all of themselves; nothing vanishes.
    assert got[3] == 200 and got[4] == 95 and got[5] == 5
    assert (got > 0).all()


def test_downsample_is_proportional_above_the_floor():
    sizes = [50_000, 30_000, 15_000, 5_000]
    labels = _labels(sizes, seed=1)
    pos = downsample_per_segment(labels, 10_000, 0, min_per_segment=200)
    got = np.bincount(labels[pos])
    # No floor binds here (5,000 * 0.1 = 500 > 200): exactly a tenth of each, to rounding.
    assert np.abs(got - np.array(sizes) / 10).max() <= 1
    # With a binding floor the others share what is left in proportion to their sizes.
    sizes = [80_000, 19_900, 100]
    labels = _labels(sizes, seed=2)
    got = np.bincount(labels[downsample_per_segment(labels, 5_000, 0, min_per_segment=200)])
    assert got[2] == 100
    assert got.sum() == 5_000
    assert got[0] / got[1] == pytest.approx(80_000 / 19_900, rel=0.01)


def test_downsample_is_seeded():
    labels = _labels([5_000, 3_000, 50])
    a = downsample_per_segment(labels, 2_000, 11)
    assert np.array_equal(a, downsample_per_segment(labels, 2_000, 11))
    assert not np.array_equal(a, downsample_per_segment(labels, 2_000, 12))


def test_downsample_floor_shrinks_to_fit_many_segments_and_accepts_any_labels():
    labels = np.array(["a"] * 5_000 + ["b"] * 500 + ["c"] * 500 + ["d"] * 500)
    pos = downsample_per_segment(labels, 400, 0, min_per_segment=200)
    assert len(pos) == 400
    assert set(labels[pos]) == {"a", "b", "c", "d"}
    assert min(np.unique(labels[pos], return_counts=True)[1]) == 100
    with pytest.raises(ValueError):
        downsample_per_segment(np.arange(10), 5, 0)  # 10 segments cannot all show in 5 points
    with pytest.raises(ValueError):
        downsample_per_segment(labels, 0, 0)


# ---------------------------------------------------------------- explorer helpers
def _frame(n=3_000, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "ID": np.arange(10_000, 10_000 + n),
        "Education": rng.choice(["Basic", "Graduation", "PhD"], n),
        "Marital_Status": rng.choice(["Married", "Single"], n),
        "Age": rng.integers(20, 80, n).astype(float),
        "Income": rng.normal(50_000, 15_000, n).round(),
        "Total_Spending": rng.integers(5, 2_500, n).astype(float),
        "NumWebPurchases": rng.integers(0, 12, n).astype(float),
        "NumStorePurchases": rng.integers(0, 12, n).astype(float),
        "Recency": rng.integers(0, 99, n).astype(float),
        "confidence": rng.random(n),
    })
    labels = rng.integers(0, 3, n)
    # Segment 3 lives only among PhDs: a sample drawn before filtering would lose most of it.
    phd = np.flatnonzero(frame["Education"].to_numpy() == "PhD")
    labels[phd[:30]] = 3
    frame["segment"] = labels
    coords = rng.standard_normal((n, 3))
    return frame, labels, coords


def test_filters_apply_before_downsampling():
    frame, labels, _ = _frame(n=6_000)
    phd = frame["Education"].to_numpy() == "PhD"
    view = fe.map_view(frame, labels, dims=2, max_points=1_000, education=["PhD"])
    assert view.matching == phd.sum() and view.total == 6_000
    # The whole budget goes to matching customers, and the rare segment of the filtered rows is shown.
    assert len(view.positions) == 1_000
    assert phd[view.positions].all()
    assert set(labels[view.positions]) == {0, 1, 2, 3}
    assert (labels[view.positions] == 3).sum() == 30
    assert view.sampled
    assert view.caption().startswith(f"Showing 1,000 of {phd.sum():,} customers matching the filters (6,000 in all)")


def test_filter_ranges_and_full_range_means_no_filter():
    frame, labels, _ = _frame()
    bounds = {"age_bounds": fe.range_bounds(frame["Age"], 1), "income_bounds": fe.range_bounds(frame["Income"], 1000)}
    everyone = fe.filter_positions(frame, age=list(bounds["age_bounds"]), income=list(bounds["income_bounds"]),
                                   **bounds)
    assert len(everyone) == len(frame)
    pos = fe.filter_positions(frame, age=[30, 40], marital=["Single"], **bounds)
    sub = frame.iloc[pos]
    assert sub["Age"].between(30, 40).all() and (sub["Marital_Status"] == "Single").all()
    expected = (frame["Age"].between(30, 40) & (frame["Marital_Status"] == "Single")).sum()
    assert len(pos) == expected > 0
    lo, hi = fe.range_bounds(pd.Series([1234.0, 98_765.0]), 1000)
    assert (lo, hi) == (1000.0, 99_000.0)
    view = fe.map_view(frame, labels, education=["Nobody"])
    assert len(view.positions) == 0 and view.caption().startswith("No customer matches")


def test_map_view_returns_all_when_under_the_limit():
    frame, labels, _ = _frame(n=500)
    view = fe.map_view(frame, labels, dims=3)
    assert np.array_equal(view.positions, np.arange(500)) and not view.sampled
    assert view.caption() == "Showing 500 of 500 customers."


def _map(dims=2, loadings=True, positions=None):
    frame, labels, coords = _frame(n=800)
    names = ["Alpha", "Beta", "Gamma", "Delta"]
    positions = np.arange(0, 800, 2) if positions is None else positions
    load = np.array([[0.8, 0.1, 0.0], [0.1, -0.9, 0.2], [-0.5, 0.5, 0.7]])
    fig = fe.pca_map_figure(coords, labels, frame, positions, names, np.zeros((4, 3)) + 0.1,
                            np.array([0.314, 0.2, 0.1]), loadings=load if loadings else None,
                            features=["Income", "Recency", "Age"], dims=dims)
    return fig, frame, labels, positions


def test_pca_map_2d_traces_axes_hover_and_arrows():
    fig, frame, labels, positions = _map()
    segs = sorted(set(labels[positions]))
    assert [type(t) for t in fig.data] == [go.Scattergl] * len(segs) + [go.Scatter]
    assert fig.layout.xaxis.title.text == "PC1 (31% of variance)"
    assert fig.layout.yaxis.title.text == "PC2 (20% of variance)"
    first = fig.data[0]
    assert first.name == "0 · Alpha" and first.marker.color == segment_colour(0)
    custom = np.asarray(first.customdata)
    # customdata[0] is the customer's position; the rest follow HOVER_COLUMNS.
    expected = positions[labels[positions] == 0]
    assert np.array_equal(custom[:, 0].astype(int), expected)
    assert np.array_equal(custom[:, 1], frame["ID"].to_numpy()[expected])
    assert list(first.ids) == [str(p) for p in expected]  # what a selection carries back
    assert sum(len(t.x) for t in fig.data[:-1]) == len(positions)
    centres = fig.data[-1]
    assert centres.customdata is None and len(centres.x) == 4
    texts = [a.text for a in fig.layout.annotations]
    # Two annotations per feature (arrow + label), one label per segment centre.
    assert len(texts) == 3 * 2 + 4
    # Feature labels (core.reading.schema.FEATURE_LABELS), never raw column names; long ones on two lines.
    assert {"Yearly household<br>income", "Days since last<br>purchase", "Age (years)"} <= set(texts)
    assert "<b>3</b> · Delta" in texts
    arrow = next(a for a in fig.layout.annotations if a.showarrow and a.text == "")
    assert arrow.ax == 0 and arrow.ay == 0 and arrow.axref == "x"
    # Arrows are stretched to the data: the longest reaches well past a unit correlation.
    assert max(np.hypot(a.x, a.y) for a in fig.layout.annotations if a.text == "") > 1.0
    no_arrows, *_ = _map(loadings=False)
    assert len(no_arrows.layout.annotations) == 4


def test_pca_map_3d_and_empty():
    fig, _, labels, positions = _map(dims=3)
    segs = sorted(set(labels[positions]))
    assert all(isinstance(t, go.Scatter3d) for t in fig.data)
    assert len(fig.data) == len(segs) + 1 + 2  # segments, centres, arrow lines + their labels
    assert fig.layout.scene.zaxis.title.text == "PC3 (10% of variance)"
    empty, *_ = _map(positions=np.array([], dtype=int))
    assert len(empty.data) == 0
    assert "No customer matches" in empty.layout.annotations[0].text


def test_selected_positions_and_summary():
    frame, labels, _ = _frame(n=400)
    selected = {"points": [
        {"curveNumber": 0, "id": "5", "x": 0.2}, {"curveNumber": 0, "customdata": [7.0, 1]},
        {"curveNumber": 0, "id": "-3"}, {"curveNumber": 0, "id": "12abc"},
        {"curveNumber": 0, "customdata": {"0": 5, "1": 1}},  # a typed-array row as the browser sends it
        {"curveNumber": 0, "customdata": [True, 1]},
        {"curveNumber": 4, "x": 0.1, "y": 0.1},            # a segment centre: no customdata
        {"curveNumber": 1, "customdata": [9_999, 0]},      # not a customer of this frame
        {"curveNumber": 1, "customdata": ["=cmd()", 0]},  # junk from a forged request
    ]}
    pos = fe.selected_positions(selected, len(frame))
    assert pos.tolist() == [5, 7]
    assert fe.selected_positions(None, 10).size == 0
    pick = np.arange(0, 400, 4)
    s = fe.selection_summary(frame, labels, pick, ["A", "B", "C", "D"])
    assert s["count"] == 100
    assert s["per_segment"]["customers"].sum() == 100
    assert s["per_segment"]["share"].sum() == pytest.approx(1.0)
    assert s["means"]["Income"] == pytest.approx(frame["Income"].iloc[pick].mean())
    assert s["means"]["Age"] == pytest.approx(frame["Age"].iloc[pick].mean())


# ---------------------------------------------------------------- diagnostics
def _sweep(k_min=2, k_max=8, rec=2, sampled=False):
    results = []
    for k in range(k_min, k_max + 1):
        results.append({"k": k, "inertia": 10_000 / k, "silhouette": 0.4 - 0.02 * k,
                        "calinski_harabasz": 1_500 / k, "davies_bouldin": 1.0 + 0.05 * k,
                        "sizes": [100] * (k - 1) + [50]})
    return {"results": results, "recommended_k": rec,
            "reason": f"k={rec}: highest silhouette, highest Calinski-Harabasz (silhouette 0.360); elbow of the "
                      f"inertia curve at k=3. The current k=6 has silhouette 0.280; it can still be ...",
            "votes": {"silhouette": rec, "elbow": 3, "calinski_harabasz": rec, "davies_bouldin": rec},
            "silhouette_method": "sampled (n=10,000)" if sampled else "exact",
            "n_customers": 20_000 if sampled else 750}


def test_metrics_figure_marks_recommended_and_current_k():
    fig = fd.metrics_figure(_sweep(), current_k=6)
    # Per subplot: the metric line, the recommended star, the current ring.
    assert len(fig.data) == 12
    stars = [t for t in fig.data if t.marker.symbol == "star"]
    rings = [t for t in fig.data if t.marker.symbol == "circle-open"]
    assert len(stars) == 4 and len(rings) == 4
    assert all(list(t.x) == [2] for t in stars) and all(list(t.x) == [6] for t in rings)
    sil_star = next(t for t in stars if t.xaxis == "x2")
    assert sil_star.y[0] == pytest.approx(0.36)
    assert [t.showlegend for t in stars] == [True, False, False, False]
    assert stars[0].name == "Recommended k=2" and rings[0].name == "Current model k=6"
    assert list(fig.layout.xaxis.range) == [1.5, 8.5]
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0] == "<b>Inertia</b><br><span style='font-size:11px'>look for the bend; best k=3</span>"
    assert "<b>Silhouette</b>" in titles[1] and "higher is better; best k=2<" in titles[1]
    assert "lower is better; best k=2<" in titles[3]
    assert fig.layout.xaxis3.title.text == "k (number of segments)"


def test_metrics_figure_without_current_k_in_range_and_empty():
    fig = fd.metrics_figure(_sweep(k_min=7, k_max=12, rec=7), current_k=6)
    assert len(fig.data) == 8
    assert list(fig.layout.xaxis4.range) == [6.5, 12.5]
    empty = fd.metrics_figure(None)
    assert len(empty.data) == 0 and "press Run" in empty.layout.annotations[0].text


def test_silhouette_knife_plot():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [300, 150, 50])
    values = np.clip(rng.normal(0.3, 0.2, 500), -1, 1)
    fig = fd.silhouette_figure(values, labels, ["A", "B", "C"])
    assert len(fig.data) == 3
    assert [t.fillcolor for t in fig.data] == [segment_colour(i) for i in range(3)]
    for t, seg in zip(fig.data, range(3)):
        assert t.fill == "tozerox"
        assert np.array_equal(np.asarray(t.x), np.sort(values[labels == seg])[::-1])  # sorted, all kept
    mean_line = [s for s in fig.layout.shapes if s.line.dash == "dash"]
    assert len(mean_line) == 1 and mean_line[0].x0 == pytest.approx(values.mean())
    assert list(fig.layout.yaxis.ticktext) == ["0 · A", "1 · B", "2 · C"]
    # Big n: thinned per segment, heights (y extents) still true to the segment sizes.
    labels = np.repeat([0, 1], [60_000, 20_000])
    values = rng.uniform(-0.2, 0.8, 80_000)
    big = fd.silhouette_figure(values, labels, ["A", "B"], max_points=2_000)
    assert sum(len(t.x) for t in big.data) <= 2_000 + 4
    assert big.data[0].y[-1] - big.data[0].y[0] == 59_999
    assert big.data[0].x[0] == pytest.approx(values[labels == 0].max())
    assert big.data[0].x[-1] == pytest.approx(values[labels == 0].min())


def test_metrics_table_rows_and_marks():
    table = fd.metrics_table(_sweep(), current_k=6)
    assert table["k"].tolist() == [str(k) for k in range(2, 9)]
    marks = dict(zip(table["k"], table[""]))
    assert marks["2"] == "recommended" and marks["6"] == "current model" and marks["3"] == ""
    assert table.loc[0, "Silhouette"] == "0.360"
    assert table.loc[0, "Smallest segment"] == f"{50 / 150:.1%}"
    both = fd.metrics_table(_sweep(rec=6), current_k=6)
    assert dict(zip(both["k"], both[""]))["6"] == "recommended · current model"


def test_recommendation_text_explains_disagreement_and_method():
    text = fd.recommendation_text(_sweep(), current_k=6)
    assert text[0].startswith("Recommended k=2: highest silhouette")
    assert "The current k=6 has" not in text[0]  # said once, in the page's own words
    assert "k=6 is the current business choice" in text[1]
    assert "3 of 4 criteria favour k=2" in text[1] and "0.360 against 0.280 at k=6" in text[1]
    assert text[2] == "Silhouette was computed exactly, on all 750 customers."
    sampled = fd.recommendation_text(_sweep(sampled=True), current_k=6)
    assert "random sample (n=10,000) of the 20,000 customers" in sampled[-1]
    agree = fd.recommendation_text(_sweep(rec=6), current_k=6)
    assert "agrees with the current business choice, k=6" in agree[1]
    outside = fd.recommendation_text(_sweep(k_min=7, k_max=12, rec=7), current_k=6)
    assert "outside the range swept (k=7 to 12)" in outside[1]
    assert fd.recommendation_text(None, 6) == ["No sweep yet: choose a range of k and press Run."]


# ---------------------------------------------------------------- services used by the pages
def test_services_from_env_shares_the_app_cache_and_selection_csv(trained, tmp_path, monkeypatch):
    from cachelib import FileSystemCache

    from dashboard.services import Services

    registry, version, _model, _meta = trained
    monkeypatch.setenv("SEGMENTLENS_MODELS", str(registry.root))
    monkeypatch.setenv("SEGMENTLENS_CACHE_DIR", str(tmp_path))
    app_side = Services(registry, FileSystemCache(str(tmp_path / "results"), threshold=200, default_timeout=0))
    first = app_side.sweep(2, 4)
    background = Services.from_env()
    assert background.registry.active_version() == version
    calls = []
    again = background.sweep(2, 4, progress=lambda *a: calls.append(a))
    assert calls == []  # read from the shared on-disk cache, not recomputed
    assert again.to_dict() == first.to_dict()

    a = background.analysis()
    from core.access.accounts import Caller

    # Outside a request a background Services has no signed-in caller: the job passes the one it started for.
    csv = background.selection_csv([3, 1, 1, -5, 10**9], caller=Caller("analyst-1", "analyst"))
    out = pd.read_csv(io.StringIO(csv))
    # No personal field beyond the customer's ID leaves the app.
    assert out.columns.tolist() == ["ID", "segment", "segment_name", "confidence"]
    assert out["ID"].tolist() == a.frame["ID"].iloc[[1, 3]].tolist()
    assert out["segment_name"].tolist() == [background.segment_names()[s] for s in a.labels[[1, 3]]]


def test_metrics_figure_adds_stability_when_measured():
    sweep = _sweep()
    for r in sweep["results"]:
        r["stability"] = 1.0 - 0.05 * r["k"]
    sweep["votes"]["stability"] = 2
    fig = fd.metrics_figure(sweep, current_k=6)
    # Five criteria plus the smallest segment's share, so the 3x2 grid has no blank slot (issue 14):
    # line, star, ring each.
    assert len(fig.data) == 18
    smallest = next(t for t in fig.data if t.name == "Smallest segment (share)")
    assert list(smallest.y) == pytest.approx([50 / (100 * (k - 1) + 50) for k in range(2, 9)])
    stab_line = next(t for t in fig.data if t.name == "Stability (bootstrap ARI)")
    assert list(stab_line.y) == pytest.approx([1.0 - 0.05 * k for k in range(2, 9)])
    titles = [a.text for a in fig.layout.annotations]
    assert "<b>Stability (bootstrap ARI)</b>" in titles[4] and "best k=2<" in titles[4]
