"""The k-transition tree: nodes per k, edges of customers moving, split features; its figure."""
import numpy as np

from core.insight.ktree import k_transition_tree
from core.fitting.model import kmeans


def _blobs():
    rng = np.random.default_rng(0)
    # Two far groups on feature 0; the right one is itself two groups apart on feature 1.
    centres = np.array([[-8.0, 0.0], [8.0, -3.0], [8.0, 3.0]])
    Z = np.vstack([c + rng.normal(0, 0.5, (100, 2)) for c in centres])
    return Z


def test_tree_nodes_edges_and_split_feature():
    Z = _blobs()
    tree = k_transition_tree(Z, ["Income", "Recency"], k_values=range(2, 5), seed=0)
    assert tree["levels"] == [2, 3, 4]
    assert [sum(n["size"] for n in tree["nodes"] if n["k"] == k) for k in (2, 3, 4)] == [300] * 3
    # Customers are conserved along the edges between consecutive k.
    for a in (2, 3):
        assert sum(e["n"] for e in tree["edges"] if e["source"].startswith(f"k{a}c")) == 300
    splits = [n for n in tree["nodes"] if n["k"] == 2 and n["split"]]
    assert len(splits) == 1 and splits[0]["split"]["feature"] == "Recency"
    assert splits[0]["split"]["label"] == "Days since last purchase" and splits[0]["size"] == 200
    # The other k=2 cluster goes whole into one k=3 cluster.
    whole = [n for n in tree["nodes"] if n["k"] == 2 and not n["split"]][0]
    out = [e for e in tree["edges"] if e["source"] == whole["id"]]
    assert len(out) == 1 and out[0]["out_share"] == 1.0


def test_model_segments_keep_their_numbers_at_the_models_k():
    Z = _blobs()
    ref = kmeans(Z, 3, seed=1).labels
    tree = k_transition_tree(Z, ["a", "b"], k_values=[2, 3, 4], reference_labels=ref, X=Z * 10)
    sizes = {n["cluster"]: n["size"] for n in tree["nodes"] if n["k"] == 3}
    assert sizes == {c: int((ref == c).sum()) for c in range(3)}
    node = next(n for n in tree["nodes"] if n["k"] == 3 and n["cluster"] == 0)
    assert node["means"]["a"] == round(float((Z[ref == 0] * 10).mean(axis=0)[0]), 4)


def test_figure_and_profile():
    from dashboard.figures.ktree import ktree_figure, node_profile_rows

    tree = k_transition_tree(_blobs(), ["Income", "Recency"], k_values=range(2, 5), seed=0)
    fig = ktree_figure(tree, current_k=3)
    markers = fig.data[-1]
    assert list(markers.customdata) == [n["id"] for n in tree["nodes"]]
    assert any(a.text == "Days since last purchase" for a in fig.layout.annotations)
    assert list(fig.layout.yaxis.ticktext) == ["k=2", "k=3", "k=4"]
    heading, rows = node_profile_rows(tree, "k2c0")
    assert heading.startswith("k=2 · cluster 0") and len(rows) == 2
    assert node_profile_rows(tree, None)[1] == []
    assert ktree_figure(None).layout.annotations
