"""k-prototypes (Huang 1997, 1998): k-means for customers described by numbers and categories.

The cost of a customer to a prototype is the squared Euclidean distance on the (standardised)
numeric columns plus ``gamma`` times the number of categorical columns where the customer's
category differs from the prototype's mode. Fitting is batch (Lloyd-style): assign every
customer to its cheapest prototype, then set each prototype to its members' numeric means and
per-column modes, until no label changes. Both steps never raise the cost, so it converges.

Decisions
---------
- ``gamma`` defaults to the *balanced* rule: every column, numeric or categorical, weighs the
  same on average in the cost between two random customers. A numeric column adds on average
  ``2 x variance`` (2 when standardised); a categorical column mismatches with probability
  ``1 - sum p_i^2`` (p_i its category shares), so
  ``gamma = 2 x mean numeric variance / mean categorical mismatch probability``.
  Huang's rule (0.5 x mean numeric standard deviation, ``gamma="huang"``) was made for raw
  units; on standardised columns it is always 0.5, so a 4-category column weighs a fifth of a
  numeric one (0.5 x 0.75 against 2), and on customers whose groups are in their categories
  and whose numbers are noise it splits the noise instead (adjusted Rand near 0 on the planted
  data of the tests; the balanced rule recovers the groups). ``gamma`` may also be a number.
  The value and the rule's text are recorded in ``info``.
- A missing category (code -1) is ignored: it adds no cost against any prototype (so it does not
  move the customer) and it is not counted when a mode is chosen. The customer is placed by its
  other columns. An unseen category met at prediction is encoded as -1 too
  (:func:`core.algorithms.categorical.encode_categories`), so it is treated the same way.
- Starts: greedy k-means++ seeding on the mixed cost (2 + log k candidates per step, as
  scikit-learn), ``n_init`` starts, the cheapest kept. Unlike the ``kmodes`` package's Cao and
  Huang initialisations it never fails for k >= 7: any k up to the number of customers seeds.
  Above ``sample_rows`` customers the starts run on a seeded sample and the best is refined on
  every customer (as :func:`core.fitting.model.kmeans`).
- Confidence: ``1 - sqrt(c1 / c2)`` where ``c1`` and ``c2`` are the costs to the cheapest and the
  second-cheapest prototype; the square root puts costs in distance units, so without
  categorical columns it is exactly k-means' ``1 - d1 / d2``. 0 means half-way between two
  segments, 1 means on the prototype.
"""
from __future__ import annotations

import math
import time

import numpy as np

from core.engines.numpy_engine import one_blas_thread
from core.algorithms.base import Partition, Placement

__all__ = ["fit", "predict", "assign", "mixed_costs", "confidence_from_costs", "balanced_gamma", "huang_gamma",
           "BALANCED_RULE", "GAMMA_RULE", "GAMMA_GIVEN", "MISSING_RULE", "CONFIDENCE_RULE", "SAMPLE_ROWS"]

GAMMA_RULE = "Huang (1997): gamma = 0.5 x mean standard deviation of the numeric columns"
BALANCED_RULE = ("balanced: gamma = 2 x mean numeric variance / mean categorical mismatch probability "
                 "(every column weighs the same on average)")
GAMMA_GIVEN = "given by the caller"
MISSING_RULE = "a missing or unseen category adds no cost and is not counted in modes"
CONFIDENCE_RULE = "1 - sqrt(c1/c2): costs to the cheapest and second-cheapest prototype"

_BLOCK = 65_536
_TABLE_MAX = 4096  # packed category codes per lookup table
SAMPLE_ROWS = 100_000


def huang_gamma(X: np.ndarray) -> float:
    """Huang's weight of one category mismatch: half the mean standard deviation of the numeric columns.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Numeric features.

    Returns
    -------
    float
        ``0.5 * mean(std(X, axis=0))`` (population std); 0.5 for standardised columns. 1.0 when there
        are no numeric columns (then gamma only scales the cost).
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] == 0 or X.shape[0] == 0:
        return 1.0
    return float(0.5 * np.mean(X.std(axis=0)))


def balanced_gamma(X: np.ndarray, categorical: np.ndarray) -> float:
    """Weight of one category mismatch that makes every column count the same on average.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Numeric features.
    categorical : ndarray of shape (n, c)
        Category codes, -1 missing (left out of the shares).

    Returns
    -------
    float
        ``2 * mean(var(X)) / mean_j(1 - sum_i p_ij^2)``: the mean squared difference of two random
        customers on a numeric column over their mean mismatch probability on a categorical one.
        Huang's rule when no categorical column varies; 1.0 without numeric columns.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] == 0 or X.shape[0] == 0:
        return 1.0
    mismatch = []
    for j in range(categorical.shape[1]):
        col = categorical[:, j]
        col = col[col >= 0]
        if len(col):
            share = np.bincount(col) / len(col)
            mismatch.append(1.0 - float((share ** 2).sum()))
    spread = float(np.mean(mismatch)) if mismatch else 0.0
    if spread <= 0:
        return huang_gamma(X)
    return float(2.0 * np.mean(X.var(axis=0)) / spread)


def mixed_costs(X: np.ndarray, categorical: np.ndarray, centroids: np.ndarray, modes: np.ndarray,
                gamma: float) -> np.ndarray:
    """Cost of each customer to each prototype, straight from the definition (one block).

    Parameters
    ----------
    X : ndarray of shape (b, d)
    categorical : ndarray of shape (b, c)
        Category codes, -1 missing.
    centroids : ndarray of shape (k, d)
    modes : ndarray of shape (k, c)
    gamma : float

    Returns
    -------
    ndarray of shape (b, k)
        Squared Euclidean distance on the numeric columns plus ``gamma`` x mismatches (a missing
        category is no mismatch).
    """
    cost = ((X[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    for j in range(categorical.shape[1]):
        col = categorical[:, j]
        cost += gamma * ((col[:, None] != modes[None, :, j]) & (col[:, None] >= 0))
    return cost


class _Coded:
    """Customers prepared for fast costs: squared norms and the categories packed into a few codes.

    Mismatch costs are looked up, not compared: the codes of several columns are packed into one
    mixed-radix code (0 = missing or unseen) while the product of their cardinalities stays small,
    and a (codes, k) table holds ``gamma`` x mismatches of every packed code against every prototype.
    One gather per packed group replaces a comparison per column and prototype.
    """

    def __init__(self, X, categorical, n_cats):
        self.X = X
        self.cat = categorical
        self.n_cats = np.asarray(n_cats, dtype=np.int64)
        self.x_sq = np.einsum("ij,ij->i", X, X)
        self.groups, group, size = [], [], 1
        for j, m in enumerate(self.n_cats):
            radix = int(m) + 1
            if group and size * radix > _TABLE_MAX:
                self.groups.append(group)
                group, size = [], 1
            group.append(j)
            size *= radix
        if group:
            self.groups.append(group)
        self.packed = np.zeros((len(X), len(self.groups)), dtype=np.int64)
        for g, cols in enumerate(self.groups):
            acc = np.zeros(len(X), dtype=np.int64)
            for j in cols:
                radix = int(self.n_cats[j]) + 1
                shifted = categorical[:, j] + 1
                acc = acc * radix + np.where(shifted < radix, shifted, 0)  # unseen code: as missing
            self.packed[:, g] = acc

    def __len__(self):
        return len(self.X)

    def subset(self, rows):
        """The same preparation for ``rows`` (a sorted index array)."""
        out = object.__new__(_Coded)
        out.X, out.cat, out.n_cats, out.x_sq = self.X[rows], self.cat[rows], self.n_cats, self.x_sq[rows]
        out.groups, out.packed = self.groups, self.packed[rows]
        return out

    def tables(self, modes, gamma):
        """Per packed group, the (codes, k) table of ``gamma`` x mismatches against ``modes``."""
        out = []
        for cols in self.groups:
            radices = [int(self.n_cats[j]) + 1 for j in cols]
            digits = np.unravel_index(np.arange(int(np.prod(radices))), radices)
            count = np.zeros((len(digits[0]), len(modes)))
            for digit, j in zip(digits, cols):
                code = digit - 1
                count += (code[:, None] != modes[None, :, j]) & (code[:, None] >= 0)
            out.append(gamma * count)
        return out

    def costs(self, start, stop, centroids, tables, with_norms=True):
        """Costs of rows ``start:stop`` to the prototypes (without the rows' squared norms if asked)."""
        cost = self.X[start:stop] @ centroids.T
        cost *= -2.0
        cost += np.einsum("ij,ij->i", centroids, centroids)[None, :]
        for g, table in enumerate(tables):
            cost += table[self.packed[start:stop, g]]
        if with_norms:
            cost += self.x_sq[start:stop, None]
            np.maximum(cost, 0.0, out=cost)  # rounding can make tiny distances negative
        return cost

    def assign(self, centroids, modes, gamma, second=False):
        """Cheapest prototype, its cost and (if ``second``) the second-cheapest cost, in row blocks."""
        n, k = len(self.X), len(centroids)
        tables = self.tables(modes, gamma)
        labels = np.empty(n, dtype=np.intp)
        c1 = np.empty(n)
        c2 = np.full(n, np.inf) if second else None
        for start in range(0, n, _BLOCK):
            stop = min(start + _BLOCK, n)
            cost = self.costs(start, stop, centroids, tables, with_norms=False)
            lab = cost.argmin(axis=1)
            labels[start:stop] = lab
            x_sq = self.x_sq[start:stop]
            c1[start:stop] = cost[np.arange(stop - start), lab] + x_sq
            if second and k > 1:
                c2[start:stop] = np.partition(cost, 1, axis=1)[:, 1] + x_sq
        np.maximum(c1, 0.0, out=c1)
        if second:
            np.maximum(c2, 0.0, out=c2)
        return labels, c1, c2


def assign(X: np.ndarray, categorical: np.ndarray, centroids: np.ndarray, modes: np.ndarray, gamma: float,
           n_categories=None):
    """Cheapest prototype of each customer, in row blocks (bounded memory).

    Parameters
    ----------
    X, categorical, centroids, modes, gamma
        As :func:`mixed_costs`.
    n_categories : array of int, optional
        Categories per column at fit; a larger code is unseen and treated as missing. Default: the
        largest code in ``categorical`` or ``modes``, plus one.

    Returns
    -------
    labels : ndarray of int, shape (n,)
    c1 : ndarray of shape (n,)
        Cost to the cheapest prototype.
    c2 : ndarray of shape (n,)
        Cost to the second-cheapest prototype (``inf`` when k == 1).
    """
    X, cat = _check_inputs(X, categorical)
    modes = np.asarray(modes, dtype=np.int64).reshape(len(centroids), cat.shape[1])
    if n_categories is None:
        high = np.maximum(cat.max(axis=0, initial=-1), modes.max(axis=0, initial=-1)) if cat.shape[1] else []
        n_categories = np.asarray(high, dtype=np.int64) + 1
    with one_blas_thread():
        return _Coded(X, cat, n_categories).assign(np.asarray(centroids, dtype=np.float64), modes, float(gamma),
                                                   second=True)


def confidence_from_costs(c1: np.ndarray, c2: np.ndarray) -> np.ndarray:
    """Placement confidence ``1 - sqrt(c1 / c2)`` (see the module notes).

    Parameters
    ----------
    c1, c2 : ndarray of shape (n,)
        Costs to the cheapest and second-cheapest prototype (``c2`` infinite when k == 1).

    Returns
    -------
    ndarray of shape (n,)
        In [0, 1]; 0 half-way between two prototypes, 1 on a prototype (or when there is one segment).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        conf = np.where(c2 > 0, 1.0 - np.sqrt(c1 / c2), 0.0)
    conf = np.where(np.isinf(c2), 1.0, conf)
    return np.clip(conf, 0.0, 1.0)


def _column_modes(categorical: np.ndarray, n_cats: np.ndarray) -> np.ndarray:
    """Most frequent known code of each column (-1 for a column with none)."""
    out = np.full(categorical.shape[1], -1, dtype=np.int64)
    for j, m in enumerate(n_cats):
        col = categorical[:, j]
        col = col[col >= 0]
        if len(col):
            out[j] = int(np.bincount(col, minlength=int(m)).argmax())
    return out


def _update(data: _Coded, labels, k, old_modes):
    """Numeric means and per-column modes of each cluster (an empty cluster: ``nan`` means, old modes)."""
    X, categorical = data.X, data.cat
    counts = np.bincount(labels, minlength=k)
    d = X.shape[1]
    sums = np.empty((k, d))
    for j in range(d):
        sums[:, j] = np.bincount(labels, weights=X[:, j], minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        centroids = sums / counts[:, None]
    modes = old_modes.copy()
    for j, m in enumerate(data.n_cats):
        m = int(m)
        col = categorical[:, j]
        known = col >= 0
        if m == 0 or not known.any():
            continue
        freq = np.bincount(labels[known] * m + col[known], minlength=k * m).reshape(k, m)
        has = freq.sum(axis=1) > 0
        # argmax keeps the lowest code among tied modes (as kmodes does), so results are deterministic.
        modes[has, j] = freq[has].argmax(axis=1)
    return centroids, modes, counts


def _seed(data: _Coded, k, gamma, rng, fill):
    """Greedy k-means++ seeding on the mixed cost; a seed customer's missing codes take the column mode."""
    n = len(data)
    trials = 2 + int(math.log(k))

    def prototype(rows):
        codes = data.cat[rows]
        return data.X[rows].copy(), np.where(codes >= 0, codes, fill[None, :])

    def costs_to(rows):
        cents, modes = prototype(rows)
        tables = data.tables(modes, gamma)
        out = np.empty((n, len(rows)))
        for start in range(0, n, _BLOCK):
            stop = min(start + _BLOCK, n)
            out[start:stop] = data.costs(start, stop, cents, tables)
        return out

    picked = [int(rng.integers(n))]
    closest = costs_to(np.array(picked))[:, 0]
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:  # fewer distinct customers than k: any customer will do
            picked.append(int(rng.integers(n)))
            continue
        cand = np.minimum(np.searchsorted(np.cumsum(closest), rng.random(trials) * total), n - 1)
        cost_c = costs_to(cand)
        best = int(np.argmin(np.minimum(closest[:, None], cost_c).sum(axis=0)))
        picked.append(int(cand[best]))
        closest = np.minimum(closest, cost_c[:, best])
    return prototype(np.array(picked))


def _lloyd(data: _Coded, centroids, modes, gamma, max_iter, abs_tol):
    """Batch iterations from the given prototypes until no label changes (or the tolerance / max_iter)."""
    k = len(centroids)
    centroids = np.array(centroids, dtype=np.float64)
    modes = np.array(modes, dtype=np.int64)
    labels = None
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        new_labels, c1, _ = data.assign(centroids, modes, gamma)
        if labels is not None and np.array_equal(new_labels, labels):
            break
        labels = new_labels
        new_centroids, new_modes, counts = _update(data, labels, k, modes)
        empty = counts == 0
        if empty.any():
            # Re-seed an empty cluster at the customers farthest from their prototypes.
            far = np.argsort(c1, kind="stable")[::-1][: int(empty.sum())]
            new_centroids[empty] = data.X[far]
            new_modes[empty] = np.where(data.cat[far] >= 0, data.cat[far], modes[empty])
        shift = float(((new_centroids - centroids) ** 2).sum())
        same_modes = np.array_equal(new_modes, modes)
        centroids, modes = new_centroids, new_modes
        if same_modes and shift <= abs_tol:
            break
    labels, c1, c2 = data.assign(centroids, modes, gamma, second=True)
    return centroids, modes, labels, c1, c2, n_iter


def _check_inputs(X, categorical):
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D matrix of numeric features, got {X.ndim} dimension(s)")
    if not np.isfinite(X).all():
        raise ValueError("numeric feature values must be finite numbers (clean the data first)")
    if categorical is None:
        cat = np.empty((len(X), 0), dtype=np.int64)
    else:
        cat = np.asarray(categorical)
        if cat.ndim == 1:
            cat = cat[:, None]
        if cat.ndim != 2 or len(cat) != len(X):
            raise ValueError(f"categorical must be an (n, c) matrix of codes with n = {len(X)} rows, "
                             f"got shape {cat.shape}")
        if cat.size and not np.issubdtype(cat.dtype, np.integer):
            raise ValueError("categorical must hold integer category codes (0, 1, ...; -1 for missing)")
        cat = np.ascontiguousarray(cat, dtype=np.int64)
        if cat.size and cat.min() < -1:
            raise ValueError("categorical codes must be 0 or more (-1 for missing), "
                             f"got {int(cat.min())}")
    return X, cat


def _fit_coded(data, k, gamma, rng, fill, init, n_init, max_iter, abs_tol, sample_rows):
    """The kept run: from ``init``, or the cheapest of ``n_init`` seeded starts (on a sample above
    ``sample_rows`` customers, then refined on all)."""
    if init is not None:
        centroids = np.asarray(init[0], dtype=np.float64).reshape(k, data.X.shape[1])
        modes = np.asarray(init[1], dtype=np.int64).reshape(k, data.cat.shape[1])
        return 1, _lloyd(data, centroids, modes, gamma, max_iter, abs_tol)
    n = len(data)
    starts = max(1, int(n_init))
    sampled = n > sample_rows
    fit_on = data.subset(np.sort(rng.choice(n, int(sample_rows), replace=False))) if sampled else data
    best = None
    for _ in range(starts):
        c0, m0 = _seed(fit_on, k, gamma, rng, fill)
        result = _lloyd(fit_on, c0, m0, gamma, max_iter, abs_tol)
        cost = float(result[3].sum())
        if best is None or cost < best[0]:
            best = (cost, result)
    if not sampled:
        return starts, best[1]
    return starts, _lloyd(data, best[1][0], best[1][1], gamma, max_iter, abs_tol)


def fit(X, *, k, seed, categorical=None, gamma="balanced", n_init: int = 10, max_iter: int = 100, tol: float = 1e-4,
        sample_rows: int = SAMPLE_ROWS, init=None) -> Partition:
    """Fit k-prototypes.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Standardised numeric features (d may be 0).
    k : int
        Segments, 1 <= k <= n.
    seed : int
        Same data and seed give the same result.
    categorical : ndarray of shape (n, c), optional
        Category codes 0..m-1, -1 for missing. Without it this is k-means on ``X``.
    gamma : float or {"balanced", "huang"}, default "balanced"
        Weight of one category mismatch: a number, or the rule choosing it (:func:`balanced_gamma`,
        :func:`huang_gamma`).
    n_init : int, default 10
        k-means++ starts on the mixed cost; the cheapest is kept.
    max_iter : int, default 100
    tol : float, default 1e-4
        Also stop when the modes are unchanged and the squared centroid shift is at most ``tol`` x the
        mean numeric variance; 0 means run until no label changes.
    sample_rows : int, default 100000
        Above this many customers the starts run on a seeded sample, the best refined on all.
    init : tuple (centroids (k, d), modes (k, c)), optional
        Explicit starting prototypes (one start; ``n_init`` ignored) — for comparisons with a reference.

    Returns
    -------
    Partition
        ``params``: ``centroids``, ``modes``, ``gamma``, ``n_categories``; ``info``: ``gamma``,
        ``gamma_rule``, ``cost``, ``n_iter``, ``n_init``, ``missing_rule``, ``confidence_rule``, ``seconds``.

    Raises
    ------
    ValueError
        k out of range, non-finite values, malformed category codes or ``gamma``.
    """
    start_time = time.perf_counter()
    X, cat = _check_inputs(X, categorical)
    n = len(X)
    try:
        k = int(k)
    except (TypeError, ValueError):
        raise ValueError(f"k must be a whole number of segments such as 6, got {k!r}") from None
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of customers ({n}), got {k}")
    if gamma is None or (isinstance(gamma, str) and gamma == "balanced"):
        gamma_value, rule = balanced_gamma(X, cat), BALANCED_RULE
    elif isinstance(gamma, str) and gamma == "huang":
        gamma_value, rule = huang_gamma(X), GAMMA_RULE
    elif isinstance(gamma, str):
        raise ValueError(f"gamma must be a number, 'balanced' or 'huang', got {gamma!r}")
    else:
        gamma_value, rule = float(gamma), GAMMA_GIVEN
        if not (math.isfinite(gamma_value) and gamma_value >= 0):
            raise ValueError(f"gamma must be a number 0 or more, got {gamma!r}")
    n_cats = (cat.max(axis=0) + 1).clip(min=0) if cat.shape[1] else np.zeros(0, dtype=np.int64)
    fill = _column_modes(cat, n_cats)
    abs_tol = float(tol) * float(np.mean(np.var(X, axis=0))) if (n > 1 and X.shape[1]) else 0.0
    rng = np.random.default_rng(seed)
    data = _Coded(X, cat, n_cats)
    with one_blas_thread():
        starts, final = _fit_coded(data, k, gamma_value, rng, fill, init, n_init, max_iter, abs_tol, sample_rows)
    centroids, modes, labels, c1, c2, n_iter = final
    counts = np.bincount(labels, minlength=k)
    centers = centroids.copy()
    for j in range(X.shape[1]):
        sums = np.bincount(labels, weights=X[:, j], minlength=k)
        centers[counts > 0, j] = sums[counts > 0] / counts[counts > 0]
    info = {
        "algorithm": "kprototypes", "gamma": gamma_value, "gamma_rule": rule, "cost": float(c1.sum()),
        "n_iter": int(n_iter), "n_init": starts, "starts_on_rows": int(min(n, sample_rows)) if init is None else n,
        "packed_groups": len(data.groups),
        "categorical_columns": int(cat.shape[1]), "missing_rule": MISSING_RULE,
        "confidence_rule": CONFIDENCE_RULE, "seconds": time.perf_counter() - start_time,
    }
    params = {"centroids": np.ascontiguousarray(centroids), "modes": np.ascontiguousarray(modes, dtype=np.int64),
              "gamma": gamma_value, "n_categories": np.asarray(n_cats, dtype=np.int64)}
    return Partition(labels=labels, confidence=confidence_from_costs(c1, c2), centers=centers, params=params, info=info)


def predict(params, X, categorical=None) -> Placement:
    """Place customers on stored prototypes (the cheapest one), block by block.

    Parameters
    ----------
    params : mapping
        ``centroids``, ``modes``, ``gamma`` as returned in :attr:`Partition.params` (or read back
        from an npz).
    X : ndarray of shape (n, d)
        Standardised numeric features, same columns as at fit.
    categorical : ndarray of shape (n, c), optional
        Codes from the same encoding as at fit (unseen categories -1). Required when the model has
        categorical columns.

    Returns
    -------
    Placement
    """
    centroids = np.asarray(params["centroids"], dtype=np.float64)
    modes = np.asarray(params["modes"], dtype=np.int64)
    gamma = float(np.asarray(params["gamma"]))
    X, cat = _check_inputs(X, categorical)
    if X.shape[1] != centroids.shape[1]:
        raise ValueError(f"expected {centroids.shape[1]} numeric feature column(s), got {X.shape[1]}")
    if cat.shape[1] != modes.shape[1]:
        raise ValueError(f"expected {modes.shape[1]} categorical column(s), got {cat.shape[1]}")
    n_cats = params.get("n_categories")
    labels, c1, c2 = assign(X, cat, centroids, modes, gamma, n_categories=n_cats)
    return Placement(labels=labels, confidence=confidence_from_costs(c1, c2))
