"""Text in charts: user-typed names stay plain text, feature labels come from one place, no raw column
names, readable labels on faded bars, one font, and the chart config (no cloud button) (issues 9 and 14)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from core.reading import schema
from core.versions.pipeline import prepare
from core.insight.profiles import compare_segments
from core.fitting.stability import bootstrap_stability, temporal_stability
from dashboard.components import GRAPH_CONFIG, graph_card
from dashboard.figures import common
from dashboard.figures import compare as fc
from dashboard.figures import diagnostics as fd
from dashboard.figures import explorer as fe
from dashboard.figures import profiles as fp
from dashboard.figures import stability as fs
from dashboard.services import build_analysis
from dashboard.services.analysis import scaled
from dashboard.theme import FONT_FAMILY

ROOT = Path(__file__).resolve().parents[1]
MARKUP = '<a href="x">y</a>'
ESCAPED = "&lt;a href=\"x\"&gt;y&lt;/a&gt;"
# Raw column names that must never reach a chart's visible text.
RAW = ["NumWebPurchases", "NumStorePurchases", "NumCatalogPurchases", "NumDealsPurchases", "NumWebVisitsMonth",
       "Total_Spending", "Total_Children", "Total_Purchases", "Customer_since", "Campaigns_Accepted", "MntWines",
       "MntFruits", "MntMeatProducts", "MntFishProducts", "MntSweetProducts", "MntGoldProds", "Z_CostContact",
       "Z_Revenue", "Kidhome", "Teenhome", "Year_Birth", "Dt_Customer", "Marital_Status"]
# Keys whose strings plotly never draws as such (customdata only through a hover template).
_HIDDEN = {"ids", "meta", "uid", "type", "uirevision", "bdata", "dtype"}


@pytest.fixture(scope="module")
def analysis(trained, sample_path):
    registry, version, model, _ = trained
    return build_analysis(model, registry.metadata(version), prepare(sample_path))


@pytest.fixture(scope="module")
def names(analysis):
    """Segment names with one typed as markup."""
    out = [p.name for p in analysis.personas]
    out[1] = MARKUP
    return out


@pytest.fixture(scope="module")
def temporal(trained, sample_path):
    registry, version, model, _ = trained
    return temporal_stability(prepare(sample_path).frame, model, window="quarter").to_dict()


def _strings(obj, key=None, hidden=_HIDDEN):
    """Every string plotly may draw in a figure dict (titles, ticks, names, text, hover, annotations)."""
    if key in hidden:
        return
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(v, k, hidden)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _strings(v, key, hidden)
    elif isinstance(obj, np.ndarray) and obj.dtype.kind in "OUS":
        for v in obj.ravel():
            yield from _strings(v, key, hidden)


def _text(fig, hidden=_HIDDEN) -> str:
    return "\n".join(_strings(fig.to_plotly_json(), hidden=hidden))


def _figures(analysis, names, temporal):
    """Every figure of the pages owned here that shows segment names, built on the sample."""
    a = analysis
    comparison = compare_segments(a.frame, a.labels, 1, 4)
    boot = bootstrap_stability(scaled(a), a.labels, resamples=3, seed=1, n_init=1).to_dict()
    snaps = temporal["snapshots"]
    positions = np.arange(len(a.frame))
    segments = [{"segment": i, "reference_share": 1 / a.k, "new_share": 1 / a.k} for i in range(a.k)]
    return {
        "zscore_heatmap": fp.zscore_heatmap(a.zscores, names, highlight=1),
        "distribution": fp.distribution_figure(a.frame, "Income", names, highlight=1),
        "mix": fp.mix_figure(a.product_mix, names, highlight=1),
        "campaigns": fp.campaigns_figure(a.campaigns, names, highlight=1),
        "effect_size": fc.effect_size_figure(comparison, 1, 4, names),
        "overlay": fc.overlay_distribution(a.frame, "Income", 1, 4, names),
        "mix_pair": fc.mix_pair_figure(a.channel_mix, 1, 4, names),
        "jaccard": fs.jaccard_figure(boot["jaccard"], names, boot["jaccard_quantiles"], boot["verdict"]),
        "shares": fs.shares_figure(snaps, names),
        "drift": fs.drift_heatmap(snaps, names),
        "sankey": fs.sankey_figure(temporal["flows"], snaps, names),
        "cohorts": fs.cohort_figure(temporal["cohorts"], names),
        "share_shift": fs.share_shift_figure(segments, names),
        "map_2d": fe.pca_map_figure(a.coords, a.labels, a.frame, positions, names, a.centroid_coords,
                                    a.projection.explained_variance_ratio, loadings=a.projection.loadings,
                                    features=a.features, dims=2),
        "map_3d": fe.pca_map_figure(a.coords, a.labels, a.frame, positions, names, a.centroid_coords,
                                    a.projection.explained_variance_ratio, loadings=a.projection.loadings,
                                    features=a.features, dims=3),
        "silhouette": fd.silhouette_figure(a.silhouette, a.labels[a.silhouette_rows], names),
    }


def test_plain_escapes_markup_and_template_fields():
    assert common.plain(MARKUP) == ESCAPED
    assert common.plain("Fish & chips <3") == "Fish &amp; chips &lt;3"
    assert common.plain("%{customdata[0]} fans") == "&#37;{customdata[0]} fans"
    assert common.plain("Budget browsers") == "Budget browsers"


def test_markup_in_a_segment_name_is_escaped_in_every_figure(analysis, names, temporal):
    for name, fig in _figures(analysis, names, temporal).items():
        text = _text(fig)
        assert "<a " not in text and "</a>" not in text, name
        # 3D scenes show segment numbers only; the name is in the legend (escaped) or nowhere.
        assert ESCAPED in text or "&lt;a" in text, name


def test_no_raw_column_names_in_chart_text(analysis, names, temporal):
    for name, fig in _figures(analysis, names, temporal).items():
        # The heatmap carries column keys in customdata that no template shows.
        text = _text(fig, hidden=_HIDDEN | {"customdata"} if name == "zscore_heatmap" else _HIDDEN)
        found = [raw for raw in RAW if re.search(rf"\b{raw}\b", text)]
        assert found == [], f"{name} shows {found}"


def test_one_source_of_feature_labels():
    assert fp.FEATURE_LABELS is schema.FEATURE_LABELS
    assert fp.feature_label is common.feature_label
    missing = [c for c in schema.CANONICAL_COLUMNS + schema.MODEL_FEATURES + schema.ENGINEERED_FEATURES
               if c not in schema.FEATURE_LABELS]
    assert missing == []
    assert common.feature_label("NumWebPurchases") == "Web purchases"
    assert common.feature_label("Some_New_Column") == "Some New Column"
    # PSI bars name features even when the page passes no labels.
    psi = fs.psi_figure([{"feature": "MntWines", "psi": 0.02, "band": "no significant shift"}])
    assert list(psi.data[0].y) == ["Spend on wine"]


def test_faded_mix_bars_get_dark_labels(analysis):
    names = [p.name for p in analysis.personas]
    fig = fp.mix_figure(analysis.product_mix, names, highlight=2)
    for trace in fig.data:
        colours = list(trace.insidetextfont.color)
        opacities = list(trace.marker.opacity)
        for colour, opacity in zip(colours, opacities):
            if opacity < 1:
                assert colour == "#212529", trace.name  # a faded bar is light: dark text
    # Full-strength dark wine bars keep white text; light ones dark.
    assert fp.text_colour("#8E3B46") == "#ffffff"
    assert fp.text_colour("#E9C46A") == "#212529"
    assert fp.text_colour("#8E3B46", 0.35) == "#212529"


def test_graph_config_has_no_cloud_button_and_hover_mode_bar():
    assert GRAPH_CONFIG["displaylogo"] is False
    assert GRAPH_CONFIG["displayModeBar"] == "hover"
    assert GRAPH_CONFIG["showSendToCloud"] is False and GRAPH_CONFIG["showEditInChartStudio"] is False
    assert {"sendChartToCloud", "sendDataToCloud"} <= set(GRAPH_CONFIG["modeBarButtonsToRemove"])
    assert "plotlyServerURL" not in GRAPH_CONFIG
    card = graph_card("t", "some-graph", config={"scrollZoom": True}, min_width=500)
    graph = card.children[1].children.children[0].children.children  # CardBody > Figure > scroll div > Loading > Graph
    assert graph.config == {**GRAPH_CONFIG, "scrollZoom": True}
    assert graph.style["minWidth"] == "500px"


def test_one_font_for_page_and_charts():
    css = (ROOT / "assets" / "segmentlens.css").read_text()
    assert f"--bs-font-sans-serif: {FONT_FAMILY};" in css
    assert fp.mix_figure(None, []).layout.font.family == FONT_FAMILY


def test_diagnostics_grid_has_no_blank_slot():
    results = [{"k": k, "inertia": 1.0 / k, "silhouette": 0.3, "calinski_harabasz": 1.0, "davies_bouldin": 1.0,
                "stability": 0.9, "sizes": [10] * k} for k in range(2, 6)]
    fig = fd.metrics_figure({"results": results, "recommended_k": 2, "votes": {}})
    axes = {t.xaxis for t in fig.data}
    assert len(axes) == 6  # 3 x 2 panels, every one used
    no_stability = [{key: v for key, v in r.items() if key != "stability"} for r in results]
    fig = fd.metrics_figure({"results": no_stability, "recommended_k": 2, "votes": {}})
    assert len({t.xaxis for t in fig.data}) == 4  # 2 x 2


def test_explorer_labels_do_not_overlap_at_laptop_size(analysis):
    """Segment and arrow labels, laid out at the assumed plot size, overlap nothing (the greedy layout)."""
    boxes = [[(0, 0, 50, 20), (100, 100, 150, 120)], [(10, 5, 60, 25), (200, 0, 250, 20)],
             [(0, 0, 10, 10), (300, 300, 310, 310)]]
    assert fe.place_labels(boxes, fixed=[(95, 95, 160, 125)], bounds=(0, 0, 400, 400)) == [0, 1, 1]
    # Out of bounds counts as overlapping.
    assert fe.place_labels([[(-30, 0, 10, 10), (0, 0, 40, 10)]], [], (0, 0, 100, 100)) == [1]
