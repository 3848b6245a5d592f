"""Rules people can read: an explainable k-means threshold tree with one leaf per segment.

The tree is built as IMM does it (Iterative Mistake Minimization; Dasgupta,
Frost, Moshkovitz & Rashtchian, "Explainable k-Means and k-Medians
Clustering", ICML 2020). Start with every customer and every segment centroid
at the root. At a node holding two or more centroids, try every feature and
every threshold that leaves at least one centroid on each side, and keep the
cut that separates the fewest customers from their own segment's centroid
(the "mistakes"). Customers separated from their centroid drop out of the
construction below that node (they still get a leaf when the rules are
applied); the node's customers and centroids go left (``feature <= threshold``)
or right (``feature > threshold``). A node with one centroid is that segment's
leaf, so the tree has exactly k leaves and every segment one rule: the
conditions on the path from the root to its leaf.

Thresholds are in feature units. Any threshold between two neighbouring
values (of the customers and the centroids) makes the same cut, so the
roundest number in that gap is used ("Income > 68,400" rather than
"Income > 68,391.5"): the rule reads well and is exact.

Reported with the rules:

fidelity
    The share of customers whose rule gives their segment, overall and per
    segment (per segment also ``precision``: of the customers the rule
    selects, the share in the segment).
price
    The price of explainability: the within-leaf sum of squares of the rules'
    partition (in the model's scaled units, around each leaf's mean) divided by
    the k-means inertia of the model's segments. 1 means the rules lose nothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.reading.schema import LOG_SUFFIX, from_units, is_logged, to_units, unit_field, unit_label

__all__ = ["Condition", "SegmentRule", "RuleSet", "threshold_tree", "explain", "explain_model", "nice_threshold",
           "format_number", "MAX_ROWS"]

# The tree is grown on a seeded sample of at most this many customers (fidelity and price use all of them).
MAX_ROWS = 50_000
# Any logged feature name: the signed log transform of a column by index (threshold_tree knows no names).
_LOGGED = "x" + LOG_SUFFIX


@dataclass
class Condition:
    """One merged condition of a rule: ``low < feature <= high`` (either end may be open).

    Parameters
    ----------
    feature : str
    low : float or None
        Exclusive lower bound (``feature > low``).
    high : float or None
        Inclusive upper bound (``feature <= high``).
    """

    feature: str
    low: float | None = None
    high: float | None = None

    def text(self) -> str:
        """The condition for people, in feature units with thousands separators.

        A feature clustered on a log scale (``<column>_log``, a signed ``log1p``; see
        :mod:`core.reading.mapping`) is stated in the column's own units: the transform is monotonic, so
        the condition selects the same customers.
        """
        low, high = self.unit_bounds()
        label = unit_label(self.feature)
        if low is not None and high is not None:
            return f"{format_number(low)} < {label} ≤ {format_number(high)}"
        if low is not None:
            return f"{label} > {format_number(low)}"
        return f"{label} ≤ {format_number(high)}"

    def unit_bounds(self) -> tuple:
        """The bounds in the data's own units (the inverse transform of a logged feature's bounds)."""
        return tuple(None if b is None else float(to_units(self.feature, b)) for b in (self.low, self.high))

    def sql(self) -> str:
        """The condition as SQL on the user's column, in its own units (double-quoted column name)."""
        col = '"' + unit_field(self.feature).replace('"', '""') + '"'
        low, high = self.unit_bounds()
        parts = ([f"{col} > {_plain_units(low)}"] if low is not None else []) + \
                ([f"{col} <= {_plain_units(high)}"] if high is not None else [])
        return " AND ".join(parts)

    def pandas(self) -> str:
        """The condition as a ``DataFrame.query`` expression on the user's column in its own units."""
        col = f"`{unit_field(self.feature)}`"
        low, high = self.unit_bounds()
        parts = ([f"{col} > {_plain_units(low)}"] if low is not None else []) + \
                ([f"{col} <= {_plain_units(high)}"] if high is not None else [])
        return " and ".join(parts)

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        low, high = self.unit_bounds()
        return {"feature": unit_field(self.feature), "label": unit_label(self.feature),
                "greater_than": low, "at_most": high}


@dataclass
class SegmentRule:
    """The rule of one segment and how faithful it is.

    Parameters
    ----------
    segment : int
    conditions : list of Condition
        Merged per feature, in the order the tree first tests each feature.
    fidelity : float
        Share of the segment's customers the rule selects (NaN for an empty segment).
    precision : float
        Share of the customers the rule selects that are in the segment (NaN when it selects nobody).
    n_segment, n_rule : int
        Customers in the segment; customers the rule selects.
    """

    segment: int
    conditions: list
    fidelity: float
    precision: float
    n_segment: int
    n_rule: int

    @property
    def text(self) -> str:
        """The rule for people: ``"Income > 68,400 and Web visits / month ≤ 4"``."""
        return " and ".join(c.text() for c in self.conditions) or "every customer"

    @property
    def sql(self) -> str:
        """The rule as an SQL ``WHERE`` clause (without the keyword)."""
        return " AND ".join(c.sql() for c in self.conditions) or "TRUE"

    @property
    def pandas(self) -> str:
        """The rule as a pandas ``DataFrame.query`` string."""
        return " and ".join(c.pandas() for c in self.conditions) or "index == index"

    def to_dict(self, name: str | None = None) -> dict:
        """JSON-serialisable form (with the segment's name when given)."""
        out = {"segment": self.segment}
        if name is not None:
            out["name"] = name
        out.update({"rule": self.text, "sql": self.sql, "pandas": self.pandas,
                    "fidelity": _round(self.fidelity), "precision": _round(self.precision),
                    "n_segment": int(self.n_segment), "n_rule": int(self.n_rule),
                    "conditions": [c.to_dict() for c in self.conditions]})
        return out


@dataclass
class RuleSet:
    """Rules of every segment from one threshold tree.

    Parameters
    ----------
    k : int
    features : list of str
    segments : list of SegmentRule
    fidelity : float
        Share of all customers whose rule gives their segment.
    price : float
        Rule-partition inertia / k-means inertia (scaled units); >= about 1.
    inertia_rules, inertia_kmeans : float
    n_customers : int
    fitted_on : int
        Customers the tree was grown on (a sample above :data:`MAX_ROWS`).
    nodes : list of dict
        The tree: ``{"id", "feature", "threshold", "left", "right", "segment", "n", "mistakes"}``
        (``segment`` set on leaves only).
    """

    k: int
    features: list
    segments: list
    fidelity: float
    price: float
    inertia_rules: float
    inertia_kmeans: float
    n_customers: int
    fitted_on: int
    nodes: list = field(default_factory=list)

    def assign(self, data) -> np.ndarray:
        """The segment each customer's rule gives (the leaf it falls in).

        Parameters
        ----------
        data : DataFrame or ndarray
            Customers with the features (columns in :attr:`features` order for an array).

        Returns
        -------
        ndarray of int
        """
        X = data[self.features].to_numpy(dtype=float) if isinstance(data, pd.DataFrame) else np.asarray(data, float)
        return _apply(self.nodes, self.features, X)

    def to_dict(self, names: list[str] | None = None) -> dict:
        """JSON-serialisable form.

        Parameters
        ----------
        names : list of str, optional
            Segment names.

        Returns
        -------
        dict
            ``fidelity``, ``price``, ``method``, ``segments`` (``segment``, ``name``, ``rule``,
            ``sql``, ``pandas``, ``fidelity``, ...), ``tree`` and the counts.
        """
        return {
            "method": "IMM threshold tree (Dasgupta et al. 2020): k leaves, one per segment",
            "k": self.k, "features": list(self.features), "fidelity": _round(self.fidelity),
            "price": _round(self.price), "inertia_rules": _round(self.inertia_rules),
            "inertia_kmeans": _round(self.inertia_kmeans), "n_customers": int(self.n_customers),
            "fitted_on": int(self.fitted_on),
            "segments": [r.to_dict(names[r.segment] if names and r.segment < len(names) else None)
                         for r in self.segments],
            "tree": self.nodes,
        }


def _round(v, digits: int = 4):
    v = float(v)
    return round(v, digits) if math.isfinite(v) else None


def _plain(v: float) -> str:
    """A threshold for code: no separators, no needless decimals."""
    return str(int(v)) if float(v).is_integer() else repr(round(float(v), 6))


def _plain_units(v: float) -> str:
    """A threshold in units for code: plain when a round number, else every digit (so the cut is exact)."""
    r = round(float(v), 6)
    return _plain(r) if abs(r - v) <= 1e-9 * max(1.0, abs(v)) else repr(float(v))


def format_number(v: float) -> str:
    """A threshold for people: thousands separators, at most two decimals, no trailing zeros.

    Parameters
    ----------
    v : float

    Returns
    -------
    str
    """
    v = float(v)
    if v.is_integer():
        return f"{int(v):,}"
    return f"{v:,.2f}".rstrip("0").rstrip(".")


def nice_threshold(low: float, high: float) -> float:
    """The roundest number ``t`` with ``low <= t < high``.

    Every ``t`` in that range cuts the same customers (``x <= t``), so the one with
    the fewest significant digits reads best.

    Parameters
    ----------
    low : float
        The largest value that must stay on the left (``<= t``).
    high : float
        The smallest value that must go right (``> t``).

    Returns
    -------
    float
    """
    if not high > low:
        return float(low)
    top = max(abs(low), abs(high), 1e-12)
    for exponent in range(int(math.floor(math.log10(top))) + 1, -3, -1):
        for mult in (10.0, 5.0, 2.0, 1.0) if exponent > -2 else (1.0,):
            step = mult * 10.0 ** (exponent - 1)
            t = math.ceil(low / step - 1e-9) * step
            t = round(t, max(0, 2 - exponent))
            if low <= t < high:
                return float(t)
    return float(low)


def _best_cut(X: np.ndarray, y: np.ndarray, centers: np.ndarray, rows: np.ndarray, present: np.ndarray):
    """The (feature, low, high, mistakes) of IMM's cut at a node; the threshold lies in [low, high)."""
    best = None
    for j in range(X.shape[1]):
        cvals = centers[present, j]
        c_lo, c_hi = cvals.min(), cvals.max()
        if c_lo == c_hi:
            continue
        x = X[rows, j]
        c = centers[y[rows], j]
        values = np.unique(np.concatenate([x, cvals]))
        cand = values[(values >= c_lo) & (values < c_hi)]
        # mistakes(t) = #{x <= t} + #{c <= t} - 2 #{max(x, c) <= t}: the customers on the other side of t
        # from their own centroid.
        mistakes = (np.searchsorted(np.sort(x), cand, side="right")
                    + np.searchsorted(np.sort(c), cand, side="right")
                    - 2 * np.searchsorted(np.sort(np.maximum(x, c)), cand, side="right"))
        i = int(np.argmin(mistakes))
        m = int(mistakes[i])
        if best is None or m < best[3]:
            nxt = values[np.searchsorted(values, cand[i], side="right")]
            best = (j, float(cand[i]), float(nxt), m)
    return best


def _cut_threshold(low: float, high: float, logged: bool) -> float:
    """The roundest threshold in [low, high); for a logged feature the roundest in the data's own units.

    People and SQL read a logged feature's cut on the column itself (``Frequency <= 7``), so the
    log-space threshold is the transform of a round number of units when one fits the gap.
    """
    if logged and high > low:
        t = float(from_units(_LOGGED, nice_threshold(float(to_units(_LOGGED, low)), float(to_units(_LOGGED, high)))))
        if low <= t < high:
            return t
    return nice_threshold(low, high)


def threshold_tree(X: np.ndarray, labels: np.ndarray, centers: np.ndarray, logged=None) -> list[dict]:
    """Grow IMM's threshold tree: k leaves, one per centroid.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Customers in feature units.
    labels : ndarray of shape (n,)
        Segment of each customer (0..k-1).
    centers : ndarray of shape (k, d)
        Segment centroids in the same units.
    logged : sequence of bool, optional
        Which columns are a feature clustered on its signed log (their cuts are round in units).

    Returns
    -------
    list of dict
        Nodes, root first: ``{"id", "feature", "threshold", "left", "right", "segment", "n",
        "mistakes"}`` with feature as a column index; leaves have ``segment``.
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(labels, dtype=int)
    centers = np.asarray(centers, dtype=float)
    logged = [False] * X.shape[1] if logged is None else [bool(v) for v in logged]
    nodes: list[dict] = []

    def grow(rows: np.ndarray, present: np.ndarray) -> int:
        node = {"id": len(nodes), "feature": None, "threshold": None, "left": None, "right": None,
                "segment": None, "n": int(len(rows)), "mistakes": 0}
        nodes.append(node)
        if len(present) == 1:
            node["segment"] = int(present[0])
            return node["id"]
        cut = _best_cut(X, y, centers, rows, present)
        if cut is None:  # centroids identical on every feature: cannot be told apart by any rule
            raise ValueError("two segments have the same centroid; no threshold separates them")
        j, low, high, mistakes = cut
        t = _cut_threshold(low, high, logged[j])
        go_left_c = centers[present, j] <= t
        x_left = X[rows, j] <= t
        c_left = centers[y[rows], j] <= t
        kept = x_left == c_left
        node.update(feature=int(j), threshold=t, mistakes=int(mistakes))
        node["left"] = grow(rows[kept & x_left], present[go_left_c])
        node["right"] = grow(rows[kept & ~x_left], present[~go_left_c])
        return node["id"]

    grow(np.arange(len(X)), np.unique(np.arange(len(centers))))
    return nodes


def _apply(nodes: list[dict], features: list[str], X: np.ndarray) -> np.ndarray:
    index = {f: i for i, f in enumerate(features)}
    out = np.full(len(X), -1, dtype=int)

    def walk(node_id: int, rows: np.ndarray) -> None:
        node = nodes[node_id]
        if node["segment"] is not None:
            out[rows] = node["segment"]
            return
        j = node["feature"] if isinstance(node["feature"], int) else index[node["feature"]]
        left = X[rows, j] <= node["threshold"]
        walk(node["left"], rows[left])
        walk(node["right"], rows[~left])

    if nodes:
        walk(0, np.arange(len(X)))
    return out


def _paths(nodes: list[dict]) -> dict[int, list[tuple[int, str, float]]]:
    """Segment -> the (feature, "<=" or ">", threshold) tests from the root to its leaf."""
    out: dict[int, list] = {}

    def walk(node_id: int, path: list) -> None:
        node = nodes[node_id]
        if node["segment"] is not None:
            out[node["segment"]] = path
            return
        walk(node["left"], path + [(node["feature"], "<=", node["threshold"])])
        walk(node["right"], path + [(node["feature"], ">", node["threshold"])])

    walk(0, [])
    return out


def _merge(path: list, features: list[str]) -> list[Condition]:
    merged: dict[str, Condition] = {}
    for j, op, t in path:
        cond = merged.setdefault(features[j], Condition(features[j]))
        if op == "<=":
            cond.high = t if cond.high is None else min(cond.high, t)
        else:
            cond.low = t if cond.low is None else max(cond.low, t)
    return list(merged.values())


def explain(X, labels, centers, features: list[str], *, scale=None, max_rows: int = MAX_ROWS,
            seed: int = 42) -> RuleSet:
    """Rules for every segment from IMM's threshold tree, with fidelity and the price of explainability.

    Parameters
    ----------
    X : DataFrame or ndarray of shape (n, d)
        Customers in feature units (a frame is read in ``features`` order).
    labels : array-like of int, shape (n,)
        The model's segment of each customer.
    centers : ndarray of shape (k, d)
        Centroids in feature units (row i = segment i).
    features : list of str
    scale : array-like of shape (d,), optional
        Per-feature scale of the model (inertia is measured in ``X / scale`` units,
        as k-means measured it); default 1.
    max_rows : int, default 50000
        The tree is grown on a seeded sample of this many customers above it.
    seed : int, default 42

    Returns
    -------
    RuleSet

    Raises
    ------
    ValueError
        Shapes that do not fit together, fewer than two segments.
    """
    X = X[list(features)].to_numpy(dtype=float) if isinstance(X, pd.DataFrame) else np.asarray(X, dtype=float)
    labels = np.asarray(labels, dtype=int)
    centers = np.asarray(centers, dtype=float)
    n, d = X.shape
    k = len(centers)
    if labels.shape != (n,) or centers.shape[1] != d or len(features) != d:
        raise ValueError(f"need one label per customer and centroids over the {len(features)} features")
    if k < 1 or (n and labels.max() >= k):
        raise ValueError(f"labels must be segments 0..{k - 1}")
    rows = np.arange(n)
    if n > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(n, max_rows, replace=False))
    nodes = threshold_tree(X[rows], labels[rows], centers, [is_logged(f) for f in features])
    for node in nodes:
        if node["feature"] is not None:
            node["feature"] = features[node["feature"]]
    assigned = _apply(nodes, list(features), X)
    scale = np.ones(d) if scale is None else np.asarray(scale, dtype=float)
    Z = X / scale
    inertia_kmeans = float(((Z - centers[labels] / scale) ** 2).sum())
    inertia_rules = 0.0
    for s in range(k):
        members = Z[assigned == s]
        if len(members):
            inertia_rules += float(((members - members.mean(axis=0)) ** 2).sum())
    index = {f: i for i, f in enumerate(features)}
    paths = {s: [(index[f], op, t) for f, op, t in p] for s, p in _paths(nodes).items()}
    segments = []
    for s in range(k):
        in_seg, in_rule = labels == s, assigned == s
        both = int((in_seg & in_rule).sum())
        segments.append(SegmentRule(
            segment=s, conditions=_merge(paths.get(s, []), list(features)),
            fidelity=both / in_seg.sum() if in_seg.any() else float("nan"),
            precision=both / in_rule.sum() if in_rule.any() else float("nan"),
            n_segment=int(in_seg.sum()), n_rule=int(in_rule.sum())))
    return RuleSet(k=k, features=list(features), segments=segments,
                   fidelity=float((assigned == labels).mean()) if n else float("nan"),
                   price=inertia_rules / inertia_kmeans if inertia_kmeans > 0 else float("nan"),
                   inertia_rules=inertia_rules, inertia_kmeans=inertia_kmeans, n_customers=n,
                   fitted_on=len(rows), nodes=nodes)


def explain_model(model, frame: pd.DataFrame, labels=None, *, max_rows: int = MAX_ROWS) -> RuleSet:
    """Rules for a fitted :class:`core.fitting.model.SegmentationModel` on its customers.

    Parameters
    ----------
    model : SegmentationModel
    frame : pandas.DataFrame
        Customers with the model's features.
    labels : array-like of int, optional
        Their segments (default: the model's prediction).
    max_rows : int, default 50000

    Returns
    -------
    RuleSet
    """
    labels = model.predict(frame) if labels is None else np.asarray(labels, dtype=int)
    centers = model.centroids_original().to_numpy(dtype=float)
    return explain(frame, labels, centers, list(model.features), scale=model.scale_, max_rows=max_rows,
                   seed=int(getattr(model, "seed", 42)))
