"""SegmentationModel: standard scaling + k-means, with confidence and typicality.

The k-means engine is plain numpy (k-means++ seeding, Lloyd iterations, best of
``n_init`` starts), for two measured reasons: importing scikit-learn costs about
1.1 s, more than a whole ``python -m core sweep`` may take, and scoring one
customer through a scikit-learn Pipeline costs ~750 us where the numpy path
costs a few. :meth:`SegmentationModel.to_sklearn` exports an equivalent
scikit-learn Pipeline, and the tests check that it gives the same labels on
every row.

The engine fits on a frame, an array, or an iterator of chunks (a uniform
sample is kept while the chunks stream by), and scores in chunks, so a
distributed engine can later stand behind the same two calls.
"""
from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from operator import mul, sub, truediv
from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd

from core.reading.schema import DEFAULT_FEATURES

__all__ = ["KMeansResult", "kmeans", "standardise", "SegmentationModel", "NotFittedError", "DEFAULT_SEED",
           "STATE_FORMAT"]

DEFAULT_SEED = 42
# Beyond this many rows the starts run on a uniform sample and only the best one is refined on
# all rows: n_init full-data fits of 1M customers would take most of a minute.
SAMPLE_FIT_ROWS = 100_000
_SCORE_CHUNK = 100_000
# Version of the array layout written by SegmentationModel.to_arrays (stored with the arrays).
STATE_FORMAT = 1
# Scalar parameters and fitted scalars carried as JSON beside the arrays.
_STATE_PARAMS = ("k", "features", "seed", "n_init", "max_iter", "inertia_", "n_iter_", "n_samples_")
# Written only by a model of another algorithm than k-means (an older file without them is k-means).
_ALGORITHM_PARAMS = ("algorithm", "options", "categorical", "categories", "unassigned")
_STATE_ARRAYS = {"mean_", "scale_", "centroids_", "member_distances", "member_counts", "labels_", "order",
                 "algo_order"}
# Prefix of the model-file entries that hold an algorithm's own params (core.algorithms.base.Partition.params).
_PARAM_PREFIX = "algo__"


class NotFittedError(RuntimeError):
    """Raised when a model is used before :meth:`SegmentationModel.fit`."""


class KMeansResult:
    """Centroids, labels and inertia of one k-means fit.

    Parameters
    ----------
    centers : ndarray of shape (k, d)
    labels : ndarray of shape (n,)
    inertia : float
        Sum of squared distances of every row to its centre.
    n_iter : int
        Lloyd iterations of the kept start.
    """

    __slots__ = ("centers", "labels", "inertia", "n_iter")

    def __init__(self, centers, labels, inertia, n_iter):
        self.centers, self.labels, self.inertia, self.n_iter = centers, labels, inertia, n_iter


def _sq_distances(X: np.ndarray, x_sq: np.ndarray, centers: np.ndarray) -> np.ndarray:
    d2 = x_sq[:, None] - 2.0 * (X @ centers.T) + np.einsum("ij,ij->i", centers, centers)[None, :]
    np.maximum(d2, 0.0, out=d2)  # rounding can make tiny distances negative
    return d2


def kmeans_plus_plus(X, x_sq, k, rng):
    """Greedy k-means++ seeding (as scikit-learn: 2 + log k candidates per step)."""
    n = X.shape[0]
    trials = 2 + int(math.log(k))
    centers = np.empty((k, X.shape[1]), dtype=X.dtype)
    centers[0] = X[rng.integers(n)]
    closest = _sq_distances(X, x_sq, centers[:1])[:, 0]
    for c in range(1, k):
        total = closest.sum()
        if total <= 0:  # fewer distinct points than k: any point will do
            centers[c] = X[rng.integers(n)]
            continue
        candidates = np.searchsorted(np.cumsum(closest), rng.random(trials) * total)
        candidates = np.minimum(candidates, n - 1)
        d_cand = _sq_distances(X, x_sq, X[candidates])
        pot = np.minimum(closest[:, None], d_cand).sum(axis=0)
        best = int(np.argmin(pot))
        centers[c] = X[candidates[best]]
        closest = np.minimum(closest, d_cand[:, best])
    return centers


def assign_labels(X, x_sq, centers, block: int = 65_536):
    """Nearest centre and squared distance to it, in cache-sized row blocks.

    Blocks matter: on 1M x 7 rows one full-size pass allocates several 1M x k
    temporaries and runs ~9x slower than 64K-row blocks.
    """
    c_sq = np.einsum("ij,ij->i", centers, centers)
    labels = np.empty(len(X), dtype=np.intp)
    mind2 = np.empty(len(X))
    for start in range(0, len(X), block):
        stop = start + block
        d = X[start:stop] @ centers.T
        d *= -2.0
        d += c_sq
        lab = d.argmin(axis=1)
        labels[start:stop] = lab
        mind2[start:stop] = d[np.arange(len(lab)), lab] + x_sq[start:stop]
    np.maximum(mind2, 0.0, out=mind2)  # rounding can make tiny distances negative
    return labels, mind2


def lloyd(X, x_sq, centers, max_iter, tol):
    k, d = centers.shape
    labels = None
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        new_labels, mind2 = assign_labels(X, x_sq, centers)
        if labels is not None and np.array_equal(new_labels, labels):
            break
        labels = new_labels
        counts = np.bincount(labels, minlength=k)
        sums = np.empty((k, d))
        for j in range(d):
            sums[:, j] = np.bincount(labels, weights=X[:, j], minlength=k)
        empty = counts == 0
        if empty.any():
            # Re-seed an empty cluster at the points farthest from their centres.
            far = np.argsort(mind2)[::-1][: int(empty.sum())]
            sums[empty], counts[empty] = X[far], 1
        new_centers = sums / counts[:, None]
        shift = float(((new_centers - centers) ** 2).sum())
        centers = new_centers.astype(X.dtype, copy=False)
        if shift <= tol:
            break
    labels, mind2 = assign_labels(X, x_sq, centers)
    return centers, labels, float(mind2.sum()), n_iter


def kmeans(X: np.ndarray, k: int, *, n_init: int = 10, max_iter: int = 300, tol: float = 1e-4,
           seed: int = DEFAULT_SEED, sample_rows: int = SAMPLE_FIT_ROWS) -> KMeansResult:
    """Fit k-means: best of ``n_init`` k-means++ starts, by inertia.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Data, already scaled.
    k : int
        Number of clusters, 1 <= k <= n.
    n_init : int, default 10
        Independent starts; the one with the lowest inertia is kept.
    max_iter : int, default 300
    tol : float, default 1e-4
        Convergence threshold on the squared centre shift, relative to the
        mean per-feature variance (as scikit-learn).
    seed : int, default 42
        Same data and seed give the same result.
    sample_rows : int, default 100000
        Above this many rows the starts run on a uniform sample and the best is
        refined on all rows.

    Returns
    -------
    KMeansResult
    """
    X = np.ascontiguousarray(X)
    n = X.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of customers ({n}), got {k}")
    rng = np.random.default_rng(seed)
    abs_tol = tol * float(np.mean(np.var(X, axis=0))) if n > 1 else 0.0
    fit_X = X if n <= sample_rows else X[np.sort(rng.choice(n, sample_rows, replace=False))]
    fit_sq = np.einsum("ij,ij->i", fit_X, fit_X)
    best = None
    for _ in range(max(1, n_init)):
        start = kmeans_plus_plus(fit_X, fit_sq, k, rng)
        result = lloyd(fit_X, fit_sq, start, max_iter, abs_tol)
        if best is None or result[2] < best[2]:
            best = result
    if fit_X is not X:
        best = lloyd(X, np.einsum("ij,ij->i", X, X), best[0], max_iter, abs_tol)
    return KMeansResult(*best)


class SegmentationModel:
    """Standard scaling + k-means over chosen customer features.

    Follows scikit-learn's estimator conventions: ``__init__`` only stores
    parameters, :meth:`fit` sets the trailing-underscore attributes.

    Parameters
    ----------
    k : int, default 6
        Number of segments.
    features : sequence of str, default schema.DEFAULT_FEATURES
        Columns clustered on (after feature engineering).
    seed : int, default 42
    n_init : int, default 10
    max_iter : int, default 300
    algorithm : str, default "kmeans"
        A name of :data:`core.algorithms.ALGORITHMS`; another than k-means is fitted by
        :meth:`from_partition` and places customers through its module's ``predict``.
    options : dict, optional
        The algorithm's options (JSON-able), as the recipe gave them.
    categorical : sequence of str, default ()
        Categorical feature columns (k-prototypes), beside the numeric ``features``.

    Attributes
    ----------
    mean_, scale_ : ndarray of shape (d,)
        Scaler parameters (population standard deviation, as StandardScaler).
    centroids_ : ndarray of shape (k, d)
        Centroids in scaled units; segment ``i`` is row ``i``.
    labels_ : ndarray of shape (n,) or None
        Training labels (None after a fit on chunks).
    inertia_ : float
    n_iter_ : int
    member_distances_ : list of ndarray
        Sorted distances of each segment's training members to its centroid,
        the reference for typicality.
    algo_params_ : dict
        The algorithm's params (arrays and scalars; empty for k-means).
    algo_order_ : ndarray of shape (k_algorithm + 1,)
        Segment number of each of the algorithm's labels; the last entry is the Unassigned label's.
    categories_ : dict of str to list of str
        The categories of each categorical feature, in code order.
    unassigned_ : bool
        Whether the last segment is the "Unassigned" group (customers no segment claims).
    """

    def __init__(self, k: int = 6, features=DEFAULT_FEATURES, seed: int = DEFAULT_SEED,
                 n_init: int = 10, max_iter: int = 300, algorithm: str = "kmeans", options=None,
                 categorical=()):
        self.k = k
        self.features = list(features)
        self.seed = seed
        self.n_init = n_init
        self.max_iter = max_iter
        self.algorithm = algorithm
        self.options = dict(options or {})
        self.categorical = list(categorical)

    # ------------------------------------------------------------------ fitting
    def _matrix(self, data) -> np.ndarray:
        if isinstance(data, pd.DataFrame):
            missing = [f for f in self.features if f not in data]
            if missing:
                raise KeyError(f"missing feature column(s): {', '.join(missing)}")
            return data[self.features].to_numpy(dtype=np.float64)
        X = np.asarray(data, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.features):
            raise ValueError(f"expected an array of shape (n, {len(self.features)}), got {X.shape}")
        return X

    def fit(self, data) -> "SegmentationModel":
        """Fit the scaler and k-means.

        Parameters
        ----------
        data : DataFrame, ndarray, or iterator of DataFrames
            Customers with the feature columns. An iterator is streamed once:
            scaler statistics use every row, k-means a uniform sample.

        Returns
        -------
        SegmentationModel
            ``self``.
        """
        if self.algorithm != "kmeans":
            raise ValueError(f"{self.algorithm} models are made by from_partition (core.versions.pipeline.fit_model)")
        if isinstance(data, (pd.DataFrame, np.ndarray)):
            X = self._matrix(data)
            if not np.isfinite(X).all():
                raise ValueError("feature values must be finite numbers (clean the data first)")
            Z, self.mean_, self.scale_ = standardise(X)
            result = kmeans(Z, self.k, n_init=self.n_init, max_iter=self.max_iter, seed=self.seed)
            self._set_centroids(result.centers, Z, result.labels)
            self.labels_ = self._order[result.labels]
            self.inertia_, self.n_iter_ = result.inertia, result.n_iter
            self.n_samples_ = len(X)
        else:
            self._fit_chunks(data)
        return self

    def _fit_chunks(self, chunks: Iterable) -> None:
        rng = np.random.default_rng(self.seed)
        count, total, total_sq = 0, 0.0, 0.0
        keys = np.empty(0)
        sample = np.empty((0, len(self.features)))
        for chunk in chunks:
            X = self._matrix(chunk)
            count += len(X)
            total = total + X.sum(axis=0)
            total_sq = total_sq + (X ** 2).sum(axis=0)
            # Keep the rows with the smallest random keys: a uniform sample of everything seen.
            keys = np.concatenate([keys, rng.random(len(X))])
            sample = np.concatenate([sample, X])
            if len(keys) > SAMPLE_FIT_ROWS:
                keep = np.argpartition(keys, SAMPLE_FIT_ROWS)[:SAMPLE_FIT_ROWS]
                keys, sample = keys[keep], sample[keep]
        if count == 0:
            raise ValueError("no customers to fit on")
        self.mean_ = total / count
        self.scale_ = safe_scale(np.sqrt(np.maximum(total_sq / count - self.mean_ ** 2, 0.0)))
        Z = (sample - self.mean_) / self.scale_
        result = kmeans(Z, self.k, n_init=self.n_init, max_iter=self.max_iter, seed=self.seed)
        self._set_centroids(result.centers, Z, result.labels)
        self.labels_ = None
        self.inertia_, self.n_iter_, self.n_samples_ = result.inertia, result.n_iter, count

    @classmethod
    def from_fit(cls, fit, Z: np.ndarray | None = None, labels: np.ndarray | None = None, *, seed: int = DEFAULT_SEED,
                 n_init: int = 10, max_iter: int = 300) -> "SegmentationModel":
        """Build a fitted model from an engine's :class:`core.engines.FitResult`.

        Segments are numbered as :meth:`fit` numbers them (descending centroid of the first
        feature), whatever order the engine returned its centroids in.

        Parameters
        ----------
        fit : FitResult
        Z : ndarray of shape (n, d), optional
            Scaled customers whose distances are the typicality reference: every training
            customer (``labels_`` is then set) or a sample of them. Without it, see
            :meth:`set_typicality_reference`.
        labels : ndarray of shape (n,), optional
            Their nearest centroid, as indices into ``fit.centroids`` (computed when omitted).
        seed, n_init, max_iter : int
            Recorded as the model's parameters.

        Returns
        -------
        SegmentationModel
        """
        model = cls(k=fit.k, features=fit.features, seed=seed, n_init=n_init, max_iter=max_iter)
        model.mean_ = np.asarray(fit.mean, dtype=np.float64)
        model.scale_ = np.asarray(fit.scale, dtype=np.float64)
        centers = np.asarray(fit.centroids, dtype=np.float64)
        if Z is not None and labels is None:
            labels, _ = assign_labels(Z, np.einsum("ij,ij->i", Z, Z), centers)
        if Z is None:
            Z, labels = np.empty((0, len(model.features))), np.empty(0, dtype=int)
        model._set_centroids(centers, Z, np.asarray(labels, dtype=int))
        model.labels_ = model._order[labels] if len(labels) == fit.rows and len(labels) else None
        model.inertia_, model.n_iter_, model.n_samples_ = float(fit.inertia), int(fit.n_iter), int(fit.rows)
        return model

    @classmethod
    def from_partition(cls, partition, Z: np.ndarray, mean, scale, *, features, algorithm: str,
                       seed: int = DEFAULT_SEED, n_init: int = 10, options=None, categorical=(),
                       categories=None, rows: int | None = None) -> "SegmentationModel":
        """Build a fitted model from an algorithm's :class:`core.algorithms.base.Partition`.

        Segments are numbered as :meth:`fit` numbers them (descending centre of the first feature);
        customers the algorithm left unassigned become one more segment, the last, with the mean of
        its members as centre (so every page shows it with its share).

        Parameters
        ----------
        partition : core.algorithms.base.Partition
        Z : ndarray of shape (n, d)
            The scaled customers the partition labels (in order).
        mean, scale : ndarray of shape (d,)
            The scaler that made ``Z``.
        features : list of str
            Numeric features.
        algorithm : str
        seed, n_init : int
        options : dict, optional
        categorical : sequence of str
        categories : dict of str to list of str, optional
        rows : int, optional
            Customers the version covers (default ``len(Z)``).

        Returns
        -------
        SegmentationModel
            With ``labels_`` of the ``Z`` customers.

        Raises
        ------
        ValueError
            The algorithm left every customer unassigned.
        """
        from core.algorithms.base import UNASSIGNED

        labels = np.asarray(partition.labels, dtype=int)
        centers = np.asarray(partition.centers, dtype=np.float64)
        k_algo = centers.shape[0]
        if k_algo == 0:
            raise ValueError(f"{algorithm} left every customer unassigned (no dense group was found): "
                             "try other features or another algorithm")
        noise = labels == UNASSIGNED
        unassigned = bool(noise.any())
        index = labels.copy()
        if unassigned:
            centers = np.vstack([centers, Z[noise].mean(axis=0)])
            index[noise] = k_algo
        model = cls(k=centers.shape[0], features=features, seed=seed, n_init=n_init, algorithm=algorithm,
                    options=options, categorical=categorical)
        model.mean_ = np.asarray(mean, dtype=np.float64)
        model.scale_ = np.asarray(scale, dtype=np.float64)
        model.unassigned_ = unassigned
        model._set_centroids(centers, Z, index, keep_last=unassigned)
        model.algo_order_ = np.append(model._order[:k_algo], model.k - 1).astype(int)
        model.algo_params_ = dict(partition.params)
        model.categories_ = {name: [str(c) for c in cats] for name, cats in (categories or {}).items()}
        model.labels_ = model._order[index]
        model.inertia_ = float(((Z - centers[index]) ** 2).sum())
        model.n_iter_ = int(partition.info.get("n_iter", 0) or 0)
        model.n_samples_ = int(rows if rows is not None else len(Z))
        return model

    def set_typicality_reference(self, Z: np.ndarray, segments: np.ndarray) -> None:
        """Use these customers' distances to their centroid as the typicality reference (e.g. a sample).

        Parameters
        ----------
        Z : ndarray of shape (n, d)
            Scaled customers.
        segments : ndarray of shape (n,)
            Their segments (this model's numbering).
        """
        self._check()
        segments = np.asarray(segments, dtype=int)
        dist = np.sqrt(((Z - self.centroids_[segments]) ** 2).sum(axis=1))
        self.member_distances_ = [np.sort(dist[segments == s]) for s in range(self.k)]
        self.__dict__.pop("_fast", None)

    def _set_centroids(self, centers, Z, labels, keep_last: bool = False) -> None:
        # Number segments by descending centroid of the first feature, so label numbers do not
        # depend on which random start happened to find a cluster first (the Unassigned group,
        # when there is one, stays last).
        order = np.argsort(-centers[:, 0], kind="stable")
        if keep_last:
            order = np.append(order[order != len(centers) - 1], len(centers) - 1)
        self._order = np.empty(self.k, dtype=int)
        self._order[order] = np.arange(self.k)
        self.centroids_ = np.ascontiguousarray(centers[order], dtype=np.float64)
        dist = np.sqrt(((Z - centers[labels]) ** 2).sum(axis=1))
        ordered = self._order[labels]
        self.member_distances_ = [np.sort(dist[ordered == s]) for s in range(self.k)]
        self.feature_names_in_ = np.array(self.features, dtype=object)
        self.n_features_in_ = len(self.features)
        self.unassigned_ = keep_last
        self.__dict__.setdefault("categories_", {})
        self.__dict__.setdefault("algo_params_", {})

    # ------------------------------------------------------------------ scoring
    def _check(self) -> None:
        if not hasattr(self, "centroids_"):
            raise NotFittedError("this SegmentationModel is not fitted yet; call fit() first")

    def transform(self, data) -> np.ndarray:
        """Scale customers' features.

        Parameters
        ----------
        data : DataFrame or ndarray

        Returns
        -------
        ndarray of shape (n, d)
        """
        self._check()
        return (self._matrix(data) - self.mean_) / self.scale_

    def distances(self, data) -> np.ndarray:
        """Euclidean distance of each customer to each centroid, in scaled units.

        Parameters
        ----------
        data : DataFrame or ndarray

        Returns
        -------
        ndarray of shape (n, k)
        """
        Z = self.transform(data)
        # Direct differences, not the Gram-matrix shortcut: typicality compares these with the
        # members' distances, and both must round the same way (and match score_one).
        return np.sqrt(((Z[:, None, :] - self.centroids_[None, :, :]) ** 2).sum(axis=2))

    def predict(self, data) -> np.ndarray:
        """Nearest segment of each customer.

        Parameters
        ----------
        data : DataFrame or ndarray

        Returns
        -------
        ndarray of int, shape (n,)
        """
        if self.algorithm != "kmeans":
            return self.placement(data).labels
        return self.distances(data).argmin(axis=1)

    @property
    def soft(self) -> bool:
        """Whether the model gives membership probabilities (:meth:`predict_proba`)."""
        from core.algorithms import get_algorithm

        return get_algorithm(self.algorithm).soft

    def categorical_codes(self, data) -> np.ndarray | None:
        """The categorical features as codes of the training categories (-1: missing or unseen).

        Parameters
        ----------
        data : DataFrame or ndarray

        Returns
        -------
        ndarray of shape (n, c) or None
            None for a model without categorical features.
        """
        if not self.categorical:
            return None
        if not isinstance(data, pd.DataFrame):
            raise ValueError(f"this {self.algorithm} model also needs the categorical column(s) "
                             f"{', '.join(self.categorical)}: pass a table, not an array")
        from core.algorithms.categorical import encode_categories

        return encode_categories(data, self.categorical, [self.categories_[c] for c in self.categorical])[0]

    def placement(self, data):
        """Customers placed by the model's algorithm, in this model's segment numbers.

        Parameters
        ----------
        data : DataFrame or ndarray

        Returns
        -------
        core.algorithms.base.Placement
            ``labels`` are segment numbers (the Unassigned group is the last segment); ``proba``
            has one column per segment (0 for the Unassigned group) for soft models, else None.
        """
        from core.algorithms import get_algorithm
        from core.algorithms.base import Placement

        self._check()
        module = get_algorithm(self.algorithm).load()
        placed = module.predict(self.algo_params_, self.transform(data), self.categorical_codes(data))
        raw = np.asarray(placed.labels, dtype=int)
        segments = self.algo_order_[raw]  # -1 picks the last entry: the Unassigned group's number
        if not self.unassigned_ and (raw < 0).any():  # no Unassigned group: the nearest centre takes them
            segments[raw < 0] = self.distances(data)[raw < 0].argmin(axis=1)
        proba = None
        if placed.proba is not None:
            proba = np.zeros((len(raw), self.k))
            proba[:, self.algo_order_[:placed.proba.shape[1]]] = placed.proba
        return Placement(segments, np.clip(np.asarray(placed.confidence, dtype=float), 0.0, 1.0), proba)

    def predict_proba(self, data) -> np.ndarray:
        """Membership probabilities of each customer (soft models: Gaussian mixtures).

        Parameters
        ----------
        data : DataFrame or ndarray

        Returns
        -------
        ndarray of shape (n, k)
            Rows sum to 1; column ``i`` is segment ``i``.

        Raises
        ------
        ValueError
            The model's algorithm gives no probabilities.
        """
        if not self.soft:
            raise ValueError(f"a {self.algorithm} model gives no membership probabilities")
        return self.placement(data).proba

    def score(self, data, chunk_size: int = _SCORE_CHUNK) -> pd.DataFrame:
        """Segment, confidence and typicality of each customer, computed in chunks.

        Parameters
        ----------
        data : DataFrame or ndarray
        chunk_size : int, default 100000

        Returns
        -------
        pandas.DataFrame
            Columns ``segment`` (int), ``confidence`` (0-1: 1 - d1/d2, where d1
            and d2 are the distances to the nearest and second-nearest
            centroids; 0 means exactly between two segments) and
            ``typicality`` (0-1: share of the segment's other training members
            strictly farther from the centroid; the customer itself is not counted). Index follows ``data``.
        """
        self._check()
        n = len(data)
        parts = []
        for start in range(0, max(n, 1), chunk_size):
            part = data.iloc[start:start + chunk_size] if isinstance(data, pd.DataFrame) else data[start:start + chunk_size]
            parts.append(self._score_block(self.distances(part)) if self.algorithm == "kmeans"
                         else self._score_placed(part))
        seg = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, int)
        out = pd.DataFrame({
            "segment": seg,
            "confidence": np.concatenate([p[1] for p in parts]),
            "typicality": np.concatenate([p[2] for p in parts]),
        })
        if isinstance(data, pd.DataFrame):
            out.index = data.index
        return out

    def _score_block(self, dist: np.ndarray):
        seg = dist.argmin(axis=1)
        d1 = dist[np.arange(len(dist)), seg]
        if self.k > 1:
            d2 = np.partition(dist, 1, axis=1)[:, 1]
            with np.errstate(invalid="ignore", divide="ignore"):
                conf = np.where(d2 > 0, 1.0 - d1 / d2, 0.0)
        else:
            conf = np.ones(len(dist))
        typ = np.empty(len(dist))
        for s in range(self.k):
            mask = seg == s
            typ[mask] = typicality(self.member_distances_[s], d1[mask])
        return seg, np.clip(conf, 0.0, 1.0), typ

    def _score_placed(self, part):
        placed = self.placement(part)
        dist = self.distances(part)
        seg = placed.labels
        d1 = dist[np.arange(len(dist)), seg]
        typ = np.empty(len(dist))
        for s in range(self.k):
            mask = seg == s
            typ[mask] = typicality(self.member_distances_[s], d1[mask])
        return seg, placed.confidence, typ

    def score_one(self, values) -> tuple[int, float, float, list[float]]:
        """Score one customer on the fast path (plain Python floats, no arrays).

        Parameters
        ----------
        values : sequence of float
            The feature values in ``self.features`` order.

        Returns
        -------
        segment : int
        confidence : float
        typicality : float
        distances : list of float
            Distance to every centroid, in scaled units.
        """
        if self.algorithm != "kmeans":  # the algorithm's own placement (no per-customer fast path)
            row = pd.DataFrame([list(values)], columns=self.features, dtype=np.float64)
            for name in self.categorical:  # not given: a missing category (it adds no cost to any segment)
                row[name] = None
            scored = self.score(row)
            return (int(scored["segment"].iloc[0]), float(scored["confidence"].iloc[0]),
                    float(scored["typicality"].iloc[0]), self.distances(row)[0].tolist())
        fast = self.__dict__.get("_fast")
        if fast is None:
            self._check()
            fast = (self.mean_.tolist(), self.scale_.tolist(), self.centroids_.tolist(),
                    [m.tolist() for m in self.member_distances_])
            self._fast = fast
        mean, scale, cents, members = fast
        # map() with operator functions instead of generators (a third faster, issue 29); the same operations in
        # the same order, so the distances are bit for bit those of before (and of member_distances_).
        z = list(map(truediv, map(sub, values, mean), scale))
        dists = []
        for c in cents:
            d = list(map(sub, z, c))
            dists.append(math.sqrt(sum(map(mul, d, d))))
        d1 = min(dists)
        seg = dists.index(d1)  # the first nearest, as before
        if len(dists) > 1:
            d2 = min(dists[:seg] + dists[seg + 1:])
            conf = 1.0 - d1 / d2 if d2 > 0 else 0.0
        else:
            conf = 1.0
        ref = members[seg]
        m, left, right = len(ref), bisect_left(ref, d1), bisect_right(ref, d1)
        # Share of the segment's OTHER members strictly farther (a member at exactly d1 is the customer itself).
        others = m - 1 if right > left else m
        typ = (m - right) / others if others > 0 else 1.0
        return seg, conf, typ, dists

    def score_chunks(self, chunks: Iterable) -> Iterator[pd.DataFrame]:
        """Score an iterator of frames, yielding one result frame per chunk.

        Parameters
        ----------
        chunks : iterable of DataFrame

        Yields
        ------
        pandas.DataFrame
            As :meth:`score`.
        """
        for chunk in chunks:
            yield self.score(chunk)

    # ------------------------------------------------------------------ views
    def centroids_original(self) -> pd.DataFrame:
        """Centroids in the features' own units (one row per segment).

        Returns
        -------
        pandas.DataFrame
        """
        self._check()
        return pd.DataFrame(self.centroids_ * self.scale_ + self.mean_, columns=self.features)

    def to_sklearn(self):
        """Return an equivalent fitted scikit-learn Pipeline (StandardScaler + KMeans).

        Returns
        -------
        sklearn.pipeline.Pipeline
            Its ``predict`` gives the same labels as :meth:`predict`.
        """
        from sklearn.cluster import KMeans  # only here: the import costs ~1 s
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        self._check()
        if self.algorithm != "kmeans":
            raise ValueError(f"only k-means models have a scikit-learn equivalent, not {self.algorithm}")
        scaler = StandardScaler()
        scaler.mean_, scaler.scale_ = self.mean_.copy(), self.scale_.copy()
        scaler.var_ = self.scale_ ** 2
        scaler.n_features_in_ = self.n_features_in_
        scaler.n_samples_seen_ = self.n_samples_
        scaler.feature_names_in_ = self.feature_names_in_
        km = KMeans(n_clusters=self.k, n_init=1, random_state=self.seed)
        km.cluster_centers_ = self.centroids_.copy()
        km.labels_ = self.labels_ if self.labels_ is not None else np.empty(0, int)
        km.inertia_, km.n_iter_ = self.inertia_, self.n_iter_
        km.n_features_in_ = self.n_features_in_
        km._n_threads = 1
        km._n_features_out = self.k
        return Pipeline([("scaler", scaler), ("kmeans", km)])

    # ------------------------------------------------------------------ serialisation
    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted model as plain numeric arrays, for ``numpy.savez`` (no pickle needed to read it back).

        Scalar parameters (k, features, seed, ...) travel as one JSON text in the ``params``
        entry, a 0-d unicode array, so the whole model is one mapping of non-object arrays.

        Returns
        -------
        dict of str to ndarray
            ``params`` (JSON text), ``mean_``, ``scale_`` (d,), ``centroids_`` (k, d),
            ``member_distances`` (all segments' sorted member distances, concatenated),
            ``member_counts`` (k,), ``order`` (k,) and ``labels_`` (n,) when the model has
            training labels.
        """
        import json

        self._check()
        params = {"format": STATE_FORMAT}
        for name in _STATE_PARAMS:
            value = getattr(self, name, None)
            if isinstance(value, np.generic):
                value = value.item()
            params[name] = list(value) if name == "features" else value
        arrays = {
            "params": np.array(json.dumps(params, allow_nan=False)),
            "mean_": np.asarray(self.mean_, dtype=np.float64),
            "scale_": np.asarray(self.scale_, dtype=np.float64),
            "centroids_": np.asarray(self.centroids_, dtype=np.float64),
            "member_distances": (np.concatenate([np.asarray(m, dtype=np.float64) for m in self.member_distances_])
                                 if self.member_distances_ else np.empty(0)),
            "member_counts": np.array([len(m) for m in self.member_distances_], dtype=np.int64),
        }
        if getattr(self, "_order", None) is not None:
            arrays["order"] = np.asarray(self._order, dtype=np.int64)
        if getattr(self, "labels_", None) is not None:
            arrays["labels_"] = np.asarray(self.labels_)
        if self.algorithm != "kmeans":
            params.update(algorithm=self.algorithm, options=self.options, categorical=list(self.categorical),
                          categories=self.categories_, unassigned=bool(self.unassigned_))
            arrays["params"] = np.array(json.dumps(params, allow_nan=False))
            arrays["algo_order"] = np.asarray(self.algo_order_, dtype=np.int64)
            for name, value in self.algo_params_.items():
                value = np.asarray(value)
                if value.dtype.kind not in "biufU":
                    raise ValueError(f"the {self.algorithm} parameter {name!r} is not numbers or text "
                                     f"({value.dtype}); a model file holds plain arrays only")
                arrays[_PARAM_PREFIX + name] = value
        return arrays

    @classmethod
    def from_arrays(cls, arrays) -> "SegmentationModel":
        """Rebuild a fitted model from :meth:`to_arrays` output, checking every shape and type.

        Parameters
        ----------
        arrays : mapping of str to ndarray
            E.g. ``numpy.load(file, allow_pickle=False)``.

        Returns
        -------
        SegmentationModel
            Scores exactly as the model that wrote the arrays.

        Raises
        ------
        ValueError
            A missing or unexpected entry, a wrong shape or type, or values that are not finite;
            the message names the entry.
        """
        import json

        names = set(arrays.keys())
        missing = sorted({"params", "mean_", "scale_", "centroids_", "member_distances", "member_counts"} - names)
        if missing:
            raise ValueError(f"missing array(s) {', '.join(missing)}")
        unexpected = sorted(n for n in names - _STATE_ARRAYS - {"params"} if not n.startswith(_PARAM_PREFIX))
        if unexpected:
            raise ValueError(f"unexpected array(s) {', '.join(unexpected)}")
        raw = np.asarray(arrays["params"])
        if raw.shape != () or raw.dtype.kind != "U":
            raise ValueError("params must be one JSON text")
        try:
            params = json.loads(str(raw))
        except ValueError as exc:
            raise ValueError(f"params is not valid JSON ({exc})") from None
        if not isinstance(params, dict):
            raise ValueError("params must be a JSON object")
        if params.get("format") != STATE_FORMAT:
            raise ValueError(f"unknown model format {params.get('format')!r} (this version reads {STATE_FORMAT})")
        unknown = sorted(set(params) - set(_STATE_PARAMS) - set(_ALGORITHM_PARAMS) - {"format"})
        if unknown:
            raise ValueError(f"unexpected parameter(s) {', '.join(unknown)}")
        k, features = params.get("k"), params.get("features")
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a whole number of at least 1, got {k!r}")
        if (not isinstance(features, list) or not features or not all(isinstance(f, str) for f in features)
                or len(set(features)) != len(features)):
            raise ValueError("features must be a non-empty list of distinct names")
        for name in ("seed", "n_init", "max_iter", "n_iter_", "n_samples_"):
            value = params.get(name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{name} must be a whole number, got {value!r}")
        if not isinstance(params.get("inertia_"), (int, float)) or isinstance(params.get("inertia_"), bool):
            raise ValueError(f"inertia_ must be a number, got {params.get('inertia_')!r}")
        d = len(features)

        def numeric(name, shape, kind="f"):
            value = np.asarray(arrays[name])
            if value.dtype.kind not in (("f",) if kind == "f" else ("i", "u")):
                raise ValueError(f"{name} must hold {'numbers' if kind == 'f' else 'whole numbers'}, "
                                 f"not {value.dtype}")
            if value.shape != shape:
                raise ValueError(f"{name} has shape {value.shape}, expected {shape} for k={k} and {d} features")
            if kind == "f" and not np.isfinite(value).all():
                raise ValueError(f"{name} holds values that are not finite numbers")
            return value

        algorithm = _algorithm_state(params, names, k)
        model = cls(k=k, features=features, seed=params["seed"], n_init=params["n_init"],
                    max_iter=params["max_iter"], algorithm=algorithm["algorithm"], options=algorithm["options"],
                    categorical=algorithm["categorical"])
        model.categories_, model.unassigned_ = algorithm["categories"], algorithm["unassigned"]
        model.algo_params_ = {}
        if model.algorithm != "kmeans":
            model.algo_order_ = numeric("algo_order", (np.asarray(arrays["algo_order"]).shape[0],), "i").astype(int)
            if model.algo_order_.size < 2 or model.algo_order_.min() < 0 or model.algo_order_.max() >= k:
                raise ValueError(f"algo_order must hold segment numbers 0-{k - 1}")
            for name in sorted(names):
                if name.startswith(_PARAM_PREFIX):
                    value = np.asarray(arrays[name])
                    if value.dtype.kind not in "biufU":
                        raise ValueError(f"{name} must hold numbers or text, not {value.dtype}")
                    model.algo_params_[name[len(_PARAM_PREFIX):]] = value.item() if value.ndim == 0 else value
        model.mean_ = numeric("mean_", (d,))
        model.scale_ = numeric("scale_", (d,))
        if (model.scale_ <= 0).any():
            raise ValueError("scale_ must be positive")
        model.centroids_ = np.ascontiguousarray(numeric("centroids_", (k, d)))
        counts = numeric("member_counts", (k,), "i")
        if (counts < 0).any():
            raise ValueError("member_counts must not be negative")
        flat = numeric("member_distances", (int(counts.sum()),))
        bounds = np.concatenate([[0], np.cumsum(counts)])
        model.member_distances_ = [flat[bounds[s]:bounds[s + 1]].copy() for s in range(k)]
        if any((np.diff(m) < 0).any() for m in model.member_distances_):
            raise ValueError("member_distances must be sorted within each segment")
        if "order" in names:
            model._order = numeric("order", (k,), "i").astype(int)
            if sorted(model._order.tolist()) != list(range(k)):
                raise ValueError("order must be a permutation of the segments")
        if "labels_" in names:
            labels = np.asarray(arrays["labels_"])
            if labels.ndim != 1 or labels.dtype.kind not in "iu":
                raise ValueError(f"labels_ must be one row of whole numbers, got {labels.dtype} {labels.shape}")
            if labels.size and (labels.min() < 0 or labels.max() >= k):
                raise ValueError(f"labels_ must be segment numbers 0-{k - 1}")
            # A file may hold them in a small unsigned type (core.versions.registry_format.model_to_bytes).
            model.labels_ = labels.astype(np.intp, copy=False)
        else:
            model.labels_ = None
        model.inertia_ = float(params["inertia_"])
        model.n_iter_ = params["n_iter_"]
        model.n_samples_ = params["n_samples_"]
        model.feature_names_in_ = np.array(features, dtype=object)
        model.n_features_in_ = d
        return model

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_fast", None)  # rebuilt on first use; keeps saved files lean
        return state


def _algorithm_state(params: dict, names: set, k: int) -> dict:
    """The algorithm fields of a model file's params, checked (a file without them is k-means)."""
    from core.algorithms import get_algorithm

    algorithm = get_algorithm(params.get("algorithm")).name
    options = params.get("options") or {}
    categorical = params.get("categorical") or []
    categories = params.get("categories") or {}
    unassigned = params.get("unassigned", False)
    if not isinstance(options, dict):
        raise ValueError("options must be a JSON object")
    if not isinstance(categorical, list) or not all(isinstance(c, str) for c in categorical):
        raise ValueError("categorical must be a list of column names")
    if (not isinstance(categories, dict) or set(categories) != set(categorical)
            or not all(isinstance(v, list) and all(isinstance(c, str) for c in v) for v in categories.values())):
        raise ValueError("categories must list the categories (texts) of each categorical feature")
    if not isinstance(unassigned, bool):
        raise ValueError("unassigned must be true or false")
    if algorithm != "kmeans" and "algo_order" not in names:
        raise ValueError(f"a {algorithm} model needs its algo_order array")
    if algorithm == "kmeans" and ("algo_order" in names or any(n.startswith(_PARAM_PREFIX) for n in names)):
        raise ValueError("a k-means model holds no algorithm parameters")
    if unassigned and k < 2:
        raise ValueError("a model with an Unassigned group needs at least one other segment")
    return {"algorithm": algorithm, "options": options, "categorical": categorical, "categories": categories,
            "unassigned": unassigned}


def typicality(member_distances: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Share of a segment's other members strictly farther from its centre than each distance in ``d``.

    A member at exactly the customer's distance is taken to be the customer (not counted, and not in
    the denominator); a twin record at the same distance is not "farther" either.

    Parameters
    ----------
    member_distances : ndarray
        Sorted distances of the segment's training members to its centroid.
    d : ndarray
        Distances of the customers scored.

    Returns
    -------
    ndarray
        0..1; 1 for a segment with no other member.
    """
    m = len(member_distances)
    d = np.asarray(d, dtype=float)
    if m == 0:
        return np.zeros(len(d))
    left = np.searchsorted(member_distances, d, side="left")
    right = np.searchsorted(member_distances, d, side="right")
    others = np.where(right > left, m - 1, m)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(others > 0, (m - right) / np.maximum(others, 1), 1.0)


def safe_scale(std: np.ndarray) -> np.ndarray:
    # A constant feature would divide by zero; scikit-learn's StandardScaler uses 1 there too.
    return np.where(std > 0, std, 1.0)


def standardise(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardise columns as scikit-learn's StandardScaler does (population std, 1 if constant).

    Parameters
    ----------
    X : ndarray of shape (n, d)

    Returns
    -------
    Z : ndarray of shape (n, d)
    mean : ndarray of shape (d,)
    scale : ndarray of shape (d,)
    """
    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(axis=0)
    scale = safe_scale(X.std(axis=0))
    return (X - mean) / scale, mean, scale
