"""The numpy engine: k-means in memory, or streamed over chunks for files larger than memory.

In memory (a DataFrame or an array) it is :func:`core.fitting.model.kmeans` on standardised
features. On a :class:`core.reading.sources.DataSource` it runs the same algorithm from chunked
sufficient statistics, so on data that fits it gives the same labels:

1. the scaler's mean and standard deviation from per-chunk means and sums of squared
   deviations (Chan's pairwise merge), while the rows of a seeded uniform sample are kept;
2. ``n_init`` k-means++ starts with Lloyd iterations on that sample (as ``kmeans`` does
   above 100,000 rows, with the same random stream);
3. Lloyd passes over every customer from the best start: each pass assigns chunk by chunk
   and adds up per-centroid counts and sums, until no label changes or the centres move
   less than the tolerance; the previous pass's labels are kept as 2 bytes per customer.

Feature values come from the source's temporary feature file (written while the source's
first pass computed them), so a Lloyd pass reads numbers, not the customer file.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd

from core.fitting.model import (DEFAULT_SEED, KMeansResult, SAMPLE_FIT_ROWS, assign_labels, kmeans_plus_plus, lloyd, safe_scale,
                     kmeans, standardise)
from core.engines.base import EngineError, FitResult

__all__ = ["NumpyEngine", "one_blas_thread"]

_DEFAULT_CHUNK = 100_000


@contextmanager
def one_blas_thread():
    """Distances to k centroids over 7 features are a skinny matrix product: BLAS threads only add
    synchronisation (measured 5x slower with two threads on a loaded 2-core machine)."""
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn
    except ImportError:  # pragma: no cover
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


class NumpyEngine:
    """k-means with numpy, in memory or over chunks.

    Parameters
    ----------
    chunk_rows : int, default 100000
        Rows per chunk when streaming a source.
    sample_rows : int, default 100000
        Rows the k-means++ starts run on (as :func:`core.fitting.model.kmeans`).
    tol : float, default 1e-4
        Convergence threshold, relative to the mean feature variance.
    """

    name = "numpy"

    def __init__(self, chunk_rows: int = _DEFAULT_CHUNK, sample_rows: int = SAMPLE_FIT_ROWS, tol: float = 1e-4):
        self.chunk_rows = int(chunk_rows)
        self.sample_rows = int(sample_rows)
        self.tol = float(tol)

    # ------------------------------------------------------------------ in memory
    def cluster(self, Z: np.ndarray, k: int, *, seed: int = DEFAULT_SEED, n_init: int = 10,
                max_iter: int = 300) -> KMeansResult:
        """k-means on an already scaled matrix held in memory (selection, stability).

        Parameters
        ----------
        Z : ndarray of shape (n, d)
        k, seed, n_init, max_iter
            As :func:`core.fitting.model.kmeans`.

        Returns
        -------
        KMeansResult
            Centres, labels, inertia and iterations.
        """
        return kmeans(Z, k, n_init=n_init, max_iter=max_iter, tol=self.tol, seed=seed, sample_rows=self.sample_rows)

    def _fit_matrix(self, X: np.ndarray, features, k, seed, n_init, max_iter, start) -> FitResult:
        if not np.isfinite(X).all():
            raise ValueError("feature values must be finite numbers (clean the data first)")
        Z, mean, scale = standardise(X)
        result = self.cluster(Z, k, seed=seed, n_init=n_init, max_iter=max_iter)
        return FitResult(features=list(features), mean=mean, scale=scale, centroids=result.centers,
                         sizes=np.bincount(result.labels, minlength=k), inertia=float(result.inertia),
                         n_iter=int(result.n_iter), rows=len(X), seconds=time.perf_counter() - start,
                         info={"engine": self.name, "mode": "in-memory"})

    # ------------------------------------------------------------------ the interface
    def fit(self, source, *, features, k: int, seed: int = DEFAULT_SEED, n_init: int = 10,
            max_iter: int = 300) -> FitResult:
        """Fit the scaler and k-means on every customer of ``source``.

        Parameters
        ----------
        source : DataSource, DataFrame or ndarray
            A DataSource is streamed; a frame (prepared customers) or an array of feature
            values is fitted in memory.
        features : list of str
        k, seed, n_init, max_iter : int

        Returns
        -------
        FitResult
        """
        start = time.perf_counter()
        features = list(features)
        with one_blas_thread():
            return self._fit(source, features, k, seed, n_init, max_iter, start)

    def _fit(self, source, features, k, seed, n_init, max_iter, start) -> FitResult:
        if isinstance(source, pd.DataFrame):
            missing = [f for f in features if f not in source]
            if missing:
                raise KeyError(f"missing feature column(s): {', '.join(missing)}")
            return self._fit_matrix(source[features].to_numpy(dtype=np.float64), features, k, seed, n_init,
                                    max_iter, start)
        if isinstance(source, np.ndarray):
            return self._fit_matrix(np.asarray(source, dtype=np.float64), features, k, seed, n_init, max_iter, start)
        return self._fit_stream(source, features, k, seed, n_init, max_iter, start)

    def assign(self, source, fit: FitResult, *, chunk_rows: int | None = None) -> Iterator[np.ndarray]:
        """Nearest centroid (index into ``fit.centroids``) of each customer, chunk by chunk.

        Parameters
        ----------
        source : DataSource, DataFrame or ndarray
        fit : FitResult
        chunk_rows : int, optional

        Yields
        ------
        ndarray of int
        """
        chunk_rows = int(chunk_rows or self.chunk_rows)
        centers = np.ascontiguousarray(fit.centroids, dtype=np.float64)
        for X in self._matrices(source, fit.features, chunk_rows):
            Z = (X - fit.mean) / fit.scale
            with one_blas_thread():
                labels, _ = assign_labels(Z, np.einsum("ij,ij->i", Z, Z), centers)
            yield labels

    # ------------------------------------------------------------------ streaming
    def _matrices(self, source, features, chunk_rows) -> Iterator[np.ndarray]:
        if isinstance(source, pd.DataFrame):
            for begin in range(0, len(source), chunk_rows):
                yield source[list(features)].iloc[begin:begin + chunk_rows].to_numpy(dtype=np.float64)
        elif isinstance(source, np.ndarray):
            for begin in range(0, len(source), chunk_rows):
                yield np.asarray(source[begin:begin + chunk_rows], dtype=np.float64)
        else:
            yield from source.iter_features(list(features), chunk_rows)

    def _fit_stream(self, source, features, k, seed, n_init, max_iter, start) -> FitResult:
        scan = source.scan(self.chunk_rows, features=features)
        n = scan.report.rows_used
        if not 1 <= k <= n:
            raise ValueError(f"k must be between 1 and the number of customers ({n}), got {k}")
        rng = np.random.default_rng(seed)
        d = len(features)
        # The same draw as kmeans(): positions among the kept customers, sorted.
        picked = np.arange(n) if n <= self.sample_rows else np.sort(rng.choice(n, self.sample_rows, replace=False))
        sample = np.empty((len(picked), d))
        count, mean, m2 = 0, np.zeros(d), np.zeros(d)
        offset, taken = 0, 0
        for X in source.iter_features(features, self.chunk_rows):
            if not np.isfinite(X).all():
                raise EngineError("feature values must be finite numbers (clean the data first)")
            m = len(X)
            mean_b = X.mean(axis=0)
            m2_b = ((X - mean_b) ** 2).sum(axis=0)
            delta = mean_b - mean
            total = count + m
            m2 += m2_b + delta ** 2 * count * m / total
            mean += delta * m / total
            count = total
            stop = np.searchsorted(picked, offset + m)
            sample[taken:stop] = X[picked[taken:stop] - offset]
            taken, offset = stop, offset + m
        if count != n:
            raise EngineError(f"{source.name}: {count:,} customers read, {n:,} expected; was the file changed?")
        std = np.sqrt(m2 / n)
        scale = safe_scale(std)
        abs_tol = self.tol * float(np.mean((std / scale) ** 2)) if n > 1 else 0.0
        Zs = (sample - mean) / scale
        zs_sq = np.einsum("ij,ij->i", Zs, Zs)
        best = None
        for _ in range(max(1, n_init)):
            begin = kmeans_plus_plus(Zs, zs_sq, k, rng)
            result = lloyd(Zs, zs_sq, begin, max_iter, abs_tol)
            if best is None or result[2] < best[2]:
                best = result
        if n <= self.sample_rows:
            centers, labels, inertia, n_iter = best
            sizes = np.bincount(labels, minlength=k)
            passes = 0
        else:
            centers, sizes, inertia, n_iter, passes = self._lloyd_stream(source, features, mean, scale, best[0],
                                                                         max_iter, abs_tol, n)
        return FitResult(features=list(features), mean=mean, scale=scale, centroids=np.asarray(centers, float),
                         sizes=np.asarray(sizes, dtype=np.int64), inertia=float(inertia), n_iter=int(n_iter), rows=n,
                         seconds=time.perf_counter() - start,
                         info={"engine": self.name, "mode": "streaming", "chunk_rows": self.chunk_rows,
                               "full_passes": passes, "start_sample_rows": int(len(picked))})

    def _lloyd_stream(self, source, features, mean, scale, centers, max_iter, tol, n):
        """Lloyd iterations over every customer, chunk by chunk (the full-data refinement of kmeans())."""
        k, d = centers.shape
        dtype = np.int16 if k < 32_000 else np.int32
        previous = np.full(n, -1, dtype=dtype)
        current = np.empty(n, dtype=dtype)
        n_iter, passes = 0, 0
        for n_iter in range(1, max_iter + 1):
            counts = np.zeros(k, dtype=np.int64)
            sums = np.zeros((k, d))
            far_d, far_z = np.empty(0), np.empty((0, d))
            offset = 0
            for X in source.iter_features(features, self.chunk_rows):
                Z = (X - mean) / scale
                labels, mind2 = assign_labels(Z, np.einsum("ij,ij->i", Z, Z), centers)
                current[offset:offset + len(Z)] = labels
                offset += len(Z)
                counts += np.bincount(labels, minlength=k)
                for j in range(d):
                    sums[:, j] += np.bincount(labels, weights=Z[:, j], minlength=k)
                # The k farthest rows so far, for re-seeding an empty cluster as kmeans() does.
                top = np.argsort(mind2)[::-1][:k]
                far_d = np.concatenate([far_d, mind2[top]])
                far_z = np.concatenate([far_z, Z[top]])
                keep = np.argsort(far_d, kind="stable")[::-1][:k]
                far_d, far_z = far_d[keep], far_z[keep]
            passes += 1
            if n_iter > 1 and np.array_equal(current, previous):
                break
            previous, current = current, previous
            empty = counts == 0
            if empty.any():
                sums[empty], counts[empty] = far_z[: int(empty.sum())], 1
            new_centers = sums / counts[:, None]
            shift = float(((new_centers - centers) ** 2).sum())
            centers = new_centers
            if shift <= tol:
                break
        # Final assignment: sizes and inertia of the centres returned.
        sizes = np.zeros(k, dtype=np.int64)
        inertia = 0.0
        for X in source.iter_features(features, self.chunk_rows):
            Z = (X - mean) / scale
            labels, mind2 = assign_labels(Z, np.einsum("ij,ij->i", Z, Z), centers)
            sizes += np.bincount(labels, minlength=k)
            inertia += float(mind2.sum())
        return centers, sizes, inertia, n_iter, passes + 1
