"""The k-transition tree (as R's clustree draws it): how segments split as k grows.

For each k in a range (default 2..8) k-means is fitted on the same customers
(a seeded sample of at most :data:`MAX_ROWS`). Every cluster of every k is a
node; an edge joins a cluster at k to a cluster at k+1 with the number of
customers in both. A cluster whose customers go mostly into two or more
clusters at k+1 splits; the split is labelled by the feature whose means
differ most (in the model's scaled units, i.e. standard deviations) between
its two largest children. Cluster numbers follow each other between levels
(Hungarian matching of centroids, :func:`core.fitting.matching.match_centroids`), and
at the model's own k the model's segments are used, so numbers there are the
model's segment numbers.
"""
from __future__ import annotations

import numpy as np

from core.fitting.matching import match_centroids, numbers_from_match
from core.fitting.model import DEFAULT_SEED
from core.reading.schema import unit_field, unit_label

__all__ = ["k_transition_tree", "MAX_ROWS", "MIN_SPLIT_SHARE"]

MAX_ROWS = 5_000
# A child takes at least this share of a parent's customers to count as a branch of a split.
MIN_SPLIT_SHARE = 0.1


def _renumber(labels: np.ndarray, Z: np.ndarray, k: int, ref_centres: np.ndarray) -> np.ndarray:
    centres = np.vstack([Z[labels == c].mean(axis=0) if (labels == c).any() else np.full(Z.shape[1], np.inf)
                         for c in range(k)])
    centres[~np.isfinite(centres)] = 1e6
    numbers = numbers_from_match(match_centroids(ref_centres, centres), len(ref_centres))
    return numbers[labels]


def _centres(labels: np.ndarray, Z: np.ndarray, k: int) -> np.ndarray:
    return np.vstack([Z[labels == c].mean(axis=0) if (labels == c).any() else np.zeros(Z.shape[1])
                      for c in range(k)])


def k_transition_tree(Z: np.ndarray, features: list[str], *, X=None, k_values=range(2, 9), n_init: int = 3,
                      seed: int = DEFAULT_SEED, reference_labels=None, max_rows: int = MAX_ROWS) -> dict:
    """Clusters for every k as nodes, customers moving between consecutive k as edges.

    Parameters
    ----------
    Z : ndarray of shape (n, d)
        Scaled customers (the model's units).
    features : list of str
    X : ndarray of shape (n, d), optional
        The same customers in the data's own units (a feature clustered on a log scale as its
        column), for the nodes' profiles (default: ``Z``).
    k_values : iterable of int, default 2..8
    n_init : int, default 3
    seed : int
    reference_labels : array-like of int, optional
        The model's segments of these customers: used as the level of their own k.
    max_rows : int, default 5000
        Above it the tree is computed on a seeded sample.

    Returns
    -------
    dict
        ``levels`` (the ks), ``nodes`` (``id``, ``k``, ``cluster``, ``size``, ``share``,
        ``means`` {field: mean in the data's own units}, ``z`` {field: mean in sd}, keyed by the
        column a person reads (``Frequency`` for ``Frequency_log``),
        ``split`` (None or ``{"feature", "label", "children", "difference"}``)),
        ``edges`` (``source``, ``target``, ``n``, ``out_share`` of the parent, ``in_share``
        of the child), ``n_customers``, ``sampled``.
    """
    from core.fitting.selection import fit_kmeans  # the sweep's single k-means call site

    Z = np.ascontiguousarray(Z, dtype=np.float64)
    X = Z if X is None else np.asarray(X, dtype=np.float64)
    n = len(Z)
    ks = sorted({int(k) for k in k_values})
    if not ks or ks[0] < 1 or ks[-1] >= n:
        raise ValueError(f"k values must be between 1 and {n - 1}, got {ks}")
    ref = None if reference_labels is None else np.asarray(reference_labels, dtype=int)
    rows = np.arange(n)
    sampled = n > max_rows
    if sampled:
        rows = np.sort(np.random.default_rng(seed).choice(n, max_rows, replace=False))
        Z, X, n = Z[rows], X[rows], max_rows
        ref = None if ref is None else ref[rows]
    ref_k = int(ref.max()) + 1 if ref is not None and len(ref) else None
    labels: dict[int, np.ndarray] = {}
    for k in ks:
        labels[k] = ref if k == ref_k else fit_kmeans(Z, k, n_init=n_init, seed=seed).labels
    # Numbers follow each other from the anchor level (the model's, else the smallest k, largest first) outwards.
    anchor = ref_k if ref_k in labels else ks[0]
    if anchor != ref_k:
        sizes = np.bincount(labels[anchor], minlength=anchor)
        order = np.empty(anchor, dtype=int)
        order[np.argsort(-sizes, kind="stable")] = np.arange(anchor)
        labels[anchor] = order[labels[anchor]]
    i0 = ks.index(anchor)
    for i in range(i0 + 1, len(ks)):
        labels[ks[i]] = _renumber(labels[ks[i]], Z, ks[i], _centres(labels[ks[i - 1]], Z, ks[i - 1]))
    for i in range(i0 - 1, -1, -1):
        labels[ks[i]] = _renumber(labels[ks[i]], Z, ks[i], _centres(labels[ks[i + 1]], Z, ks[i + 1]))
    fields = [unit_field(f) for f in features]
    nodes, edges = [], []
    for k in ks:
        lab = labels[k]
        for c in range(k):
            members = lab == c
            size = int(members.sum())
            means = X[members].mean(axis=0) if size else np.full(len(features), np.nan)
            zs = Z[members].mean(axis=0) if size else np.full(len(features), np.nan)
            nodes.append({"id": f"k{k}c{c}", "k": k, "cluster": c, "size": size, "share": round(size / n, 6),
                          "means": {f: _num(v) for f, v in zip(fields, means)},
                          "z": {f: _num(v) for f, v in zip(fields, zs)}, "split": None})
    by_id = {node["id"]: node for node in nodes}
    for a, b in zip(ks, ks[1:]):
        table = np.zeros((a, b), dtype=np.int64)
        np.add.at(table, (labels[a], labels[b]), 1)
        for p in range(a):
            parent_size = max(int(table[p].sum()), 1)
            for c in range(b):
                if table[p, c]:
                    edges.append({"source": f"k{a}c{p}", "target": f"k{b}c{c}", "n": int(table[p, c]),
                                  "out_share": round(table[p, c] / parent_size, 6),
                                  "in_share": round(table[p, c] / max(int(table[:, c].sum()), 1), 6)})
            children = [c for c in np.argsort(-table[p]) if table[p, c] / parent_size >= MIN_SPLIT_SHARE]
            if len(children) >= 2:
                c1, c2 = int(children[0]), int(children[1])
                diff = Z[labels[b] == c1].mean(axis=0) - Z[labels[b] == c2].mean(axis=0)
                j = int(np.argmax(np.abs(diff)))
                by_id[f"k{a}c{p}"]["split"] = {
                    "feature": fields[j], "label": unit_label(features[j]),
                    "children": [f"k{b}c{c}" for c in children], "difference": round(float(diff[j]), 4)}
    return {"levels": ks, "nodes": nodes, "edges": edges, "n_customers": int(n), "sampled": bool(sampled)}


def _num(v) -> float | None:
    v = float(v)
    return round(v, 4) if np.isfinite(v) else None
