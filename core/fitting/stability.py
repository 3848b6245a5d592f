"""Is a segment real? Bootstrap stability, stability over enrolment time, stability per k.

Bootstrap (Hennig's ``clusterboot``)
    Draw ``B`` bootstrap resamples of the customers (``n`` draws with
    replacement). The default scheme is clusterboot's default
    (``multipleboot=FALSE``): each drawn customer is clustered once, so k-means
    is refitted on the *distinct* drawn customers, about 63 % of them. Every
    segment of the model is then matched to its most similar refit cluster by
    the Jaccard similarity of their members among those customers. The scheme
    ``"multipleboot"`` refits on the draw with its duplicates (clusterboot's
    ``multipleboot=TRUE``); duplicates pull centroids towards repeated
    customers and lower the Jaccard of small segments, so Hennig's thresholds
    below refer to the default. The mean Jaccard over resamples says how
    reliably a segment is found again; Hennig's reading (Hennig 2007, 2008):

    ========================  ==============
    mean Jaccard              verdict
    ========================  ==============
    <= 0.5                    dissolved
    0.5 - 0.6                 unstable
    0.6 - 0.75                doubtful
    0.75 - 0.85               stable
    >= 0.85                   highly stable
    ========================  ==============

    The mean of ``B`` resamples is itself uncertain (another seed gives
    another mean), so each mean carries a 95 % interval (normal approximation,
    mean +- 1.96 standard errors over the resamples); a segment gets a band's
    verdict only when the whole interval lies in that band, else it is
    "borderline between" the bands at its two ends.

    The adjusted Rand index between the model's labels and each refit (on that
    resample's customers) measures the partition as a whole; its whole
    distribution is kept, not only the mean. Refits run in the model's scaled
    space (the full data's scaler), so only the customers vary, not the units.

Over enrolment time
    Cumulative snapshots: the customers enrolled (``Dt_Customer``) up to the end
    of each quarter (or month). Each snapshot is fitted with the same pipeline
    (features, k, seed, starts) and its clusters are matched to the reference
    model's segments by Hungarian matching on centroids (in the reference
    model's scaled units), so segment ``i`` means the same segment in every
    snapshot. Per snapshot: adjusted Rand index against the reference labels of
    that snapshot's customers, segment shares, and each segment's centroid
    drift. Between consecutive snapshots the clusters' fates follow MONIC
    (Spiliopoulou et al. 2006), on the customers both snapshots hold (every
    customer of the older one, as snapshots are cumulative); with
    ``overlap(X, Y)`` = share of old cluster X's customers that are in new
    cluster Y:

    * *survived*: one new cluster Y (and only one) takes ``overlap >= 0.5`` of X
      and no other old cluster also has Y as its match;
    * *absorbed*: X's match Y (``overlap >= 0.5``) is also the match of another
      old cluster (two or more merged into one);
    * *split*: no new cluster takes half of X, but two or more each take
      ``>= 0.25`` of it and together ``>= 0.5``;
    * *disappeared*: none of the above;
    * *emerged*: a new cluster that no old cluster survived into, was absorbed
      into or split into.

    Spend, purchases and recency in the customer file come from one extraction,
    so a snapshot differs from the next only in who had enrolled by then: "time"
    here means enrolment cohort, not behaviour changing over time.

Every random step takes a seed: the same data and seed give the same results,
whatever the number of parallel jobs (each resample draws from its own seeded
stream).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.fitting.matching import match_centroids
from core.fitting.measures import fit_kmeans
from core.fitting.model import DEFAULT_SEED, SegmentationModel

__all__ = [
    "JACCARD_BANDS", "MONIC_MATCH", "MONIC_SPLIT", "COHORT_NOTE", "WINDOWS",
    "SCHEMES", "DEFAULT_SCHEME", "contingency", "adjusted_rand", "jaccard_matrix", "verdict", "verdict_interval",
    "match_centroids",
    "BootstrapResult", "bootstrap_stability", "stability_per_k",
    "Snapshot", "TemporalResult", "temporal_stability", "monic_transitions", "cohort_mix",
]

# Hennig's thresholds, highest first: a mean Jaccard >= the bound earns the verdict.
JACCARD_BANDS = ((0.85, "highly stable"), (0.75, "stable"), (0.6, "doubtful"), (0.5, "unstable"))
DISSOLVED = 0.5
MONIC_MATCH = 0.5
# Bootstrap schemes, named as fpc::clusterboot's argument names them.
SCHEMES = {
    "clusterboot": "clusterboot default: each drawn customer clustered once (multipleboot=FALSE)",
    "multipleboot": "refit on the draw with its duplicates (clusterboot's multipleboot=TRUE)",
}
DEFAULT_SCHEME = "clusterboot"
# Two-sided 95 % normal quantile of the interval around each segment's mean Jaccard.
_Z95 = 1.959964
MONIC_SPLIT = 0.25
WINDOWS = {"quarter": "Q", "month": "M"}
# A k-means fit on fewer customers than this per segment says little about the segments.
MIN_PER_SEGMENT = 10
# Larger data is measured on a seeded sample of this many customers (see bootstrap_stability).
MAX_ROWS = 10_000
COHORT_NOTE = ("Spend, purchases and recency in this file were measured at one extraction date, so the "
               "snapshots differ only in who had enrolled by then: time here means enrolment cohort, "
               "not behaviour changing over time.")

Progress = Callable[[int, int, str], None]


# ---------------------------------------------------------------------------- agreement measures
def contingency(a, b) -> np.ndarray:
    """Contingency table of two labelings: ``C[i, j]`` customers in class i of ``a`` and j of ``b``.

    Parameters
    ----------
    a, b : array-like of shape (n,)
        Labels (any hashable values); classes are sorted.

    Returns
    -------
    ndarray of int64, shape (classes of a, classes of b)
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"two labelings of the same customers are needed, got shapes {a.shape} and {b.shape}")
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    ka = int(ai.max()) + 1 if a.size else 0
    kb = int(bi.max()) + 1 if b.size else 0
    return np.bincount(ai * kb + bi, minlength=ka * kb).reshape(ka, kb).astype(np.int64)


def adjusted_rand(a, b) -> float:
    """Adjusted Rand index of two labelings of the same customers (as scikit-learn's).

    1 means identical partitions (whatever the label numbers), about 0 what
    chance gives, negative worse than chance. Computed from the pair confusion
    matrix of the contingency table, with scikit-learn's special cases.

    Parameters
    ----------
    a, b : array-like of shape (n,)

    Returns
    -------
    float
    """
    table = contingency(a, b)
    n = int(table.sum())
    # Python ints: products of pair counts overflow int64 beyond ~50,000 customers.
    sum_sq = int((table.astype(np.float64) ** 2).sum()) if n < 2 ** 26 else sum(int(v) ** 2 for v in table.ravel())
    rows = table.sum(axis=1)
    cols = table.sum(axis=0)
    tp = sum_sq - n
    fp = sum(int(v) for v in (table @ cols)) - sum_sq  # same class of b, different class of a
    fn = sum(int(v) for v in (table.T @ rows)) - sum_sq
    tn = n * n - fp - fn - sum_sq
    if fn == 0 and fp == 0:
        return 1.0
    return float(2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)))


def jaccard_matrix(table: np.ndarray) -> np.ndarray:
    """Jaccard similarity of every row class with every column class of a contingency table.

    Parameters
    ----------
    table : ndarray of shape (ka, kb)

    Returns
    -------
    ndarray of shape (ka, kb)
        ``|A and B| / |A or B|``; 0 where both are empty.
    """
    table = np.asarray(table, dtype=np.float64)
    union = table.sum(axis=1)[:, None] + table.sum(axis=0)[None, :] - table
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(union > 0, table / union, 0.0)
    return out


def verdict(mean_jaccard: float) -> str:
    """Hennig's verdict for a segment's mean bootstrap Jaccard.

    Parameters
    ----------
    mean_jaccard : float

    Returns
    -------
    str
        ``highly stable``, ``stable``, ``doubtful``, ``unstable`` or ``dissolved``
        (``not measured`` when the segment never appeared in a resample).
    """
    if mean_jaccard != mean_jaccard:  # NaN
        return "not measured"
    if mean_jaccard <= DISSOLVED:
        return "dissolved"
    return next((text for bound, text in JACCARD_BANDS if mean_jaccard >= bound), "unstable")


def verdict_interval(low: float, high: float) -> str:
    """Hennig's verdict for an interval of mean Jaccard: a band only when the interval lies in it.

    Parameters
    ----------
    low, high : float
        Ends of the interval around a segment's mean Jaccard.

    Returns
    -------
    str
        The band's verdict (as :func:`verdict`) when both ends fall in one band,
        else ``"borderline between X and Y"`` with the bands of the two ends.
    """
    a, b = verdict(low), verdict(high)
    if a == b or "not measured" in (a, b):
        return a if a != "not measured" else b
    return f"borderline between {a} and {b}"


# ---------------------------------------------------------------------------- bootstrap
@dataclass
class BootstrapResult:
    """Bootstrap stability of one segmentation.

    Parameters
    ----------
    k : int
    resamples : int
    seed : int
    n_init : int
        k-means starts of each refit.
    jaccard : ndarray of shape (resamples, k)
        Best Jaccard of each segment in each resample (NaN when the segment had
        no customer in the resample).
    ari : ndarray of shape (resamples,)
        Adjusted Rand index between the model and each refit.
    n_customers : int
    scheme : str
        ``"clusterboot"`` (default: each drawn customer clustered once) or ``"multipleboot"``; see :data:`SCHEMES`.
    """

    k: int
    resamples: int
    seed: int
    n_init: int
    jaccard: np.ndarray
    ari: np.ndarray
    n_customers: int
    scheme: str = DEFAULT_SCHEME

    @property
    def mean_jaccard(self) -> np.ndarray:
        """Mean Jaccard per segment over the resamples it appeared in."""
        with np.errstate(invalid="ignore"):
            counts = np.isfinite(self.jaccard).sum(axis=0)
            sums = np.nansum(self.jaccard, axis=0)
            return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    @property
    def jaccard_interval(self) -> tuple[np.ndarray, np.ndarray]:
        """95 % interval of each segment's mean Jaccard (mean +- 1.96 standard errors, clipped to 0..1)."""
        with np.errstate(invalid="ignore"):
            counts = np.isfinite(self.jaccard).sum(axis=0)
            sd = np.array([np.nanstd(col, ddof=1) if c > 1 else 0.0 for col, c in zip(self.jaccard.T, counts)])
            half = _Z95 * sd / np.sqrt(np.maximum(counts, 1))
        means = self.mean_jaccard
        return np.clip(means - half, 0.0, 1.0), np.clip(means + half, 0.0, 1.0)

    @property
    def verdicts(self) -> list[str]:
        """Hennig's verdict per segment: a band when the interval of its mean lies in it, else "borderline"."""
        low, high = self.jaccard_interval
        return [verdict_interval(float(a), float(b)) for a, b in zip(low, high)]

    @property
    def dissolved(self) -> np.ndarray:
        """Resamples in which each segment dissolved (Jaccard <= 0.5)."""
        return (np.nan_to_num(self.jaccard, nan=1.0) <= DISSOLVED).sum(axis=0)

    @property
    def recovered(self) -> np.ndarray:
        """Resamples in which each segment was recovered (Jaccard >= 0.75)."""
        return (np.nan_to_num(self.jaccard, nan=0.0) >= 0.75).sum(axis=0)

    def summary(self, names: list[str] | None = None) -> str:
        """The result in two plain sentences.

        Parameters
        ----------
        names : list of str, optional
            Segment names (default ``Segment i``).

        Returns
        -------
        str
        """
        names = names or [f"Segment {i}" for i in range(self.k)]
        means = self.mean_jaccard
        verdicts = self.verdicts
        solid = [i for i, v in enumerate(verdicts) if v in ("stable", "highly stable")]
        weak = [i for i in range(self.k) if i not in solid]
        parts = [f"{len(solid)} of {self.k} segments are stable (mean Jaccard >= 0.75, with its interval, over "
                 f"{self.resamples} resamples)"]
        if weak:
            parts.append("; " + ", ".join(f"{names[i]} is {verdicts[i]} ({means[i]:.2f})" for i in weak))
        ari = self.ari
        med = float(np.median(ari)) if len(ari) else float("nan")
        low = float(np.quantile(ari, 0.05)) if len(ari) else float("nan")
        if med >= 0.9:
            how = "the labels barely change between resamples"
        elif med >= 0.75:
            how = (f"the labels change noticeably between resamples (in one resample in twenty the agreement is "
                   f"{low:.2f} or less): build on the stable segments, not on the others")
        else:
            how = "the labels change a lot between resamples: do not build on a segment that is not stable"
        return (f"{''.join(parts)}. Adjusted Rand index between the model and the refits: median {med:.2f} "
                f"(5-95%: {low:.2f}-{np.quantile(ari, 0.95):.2f}); {how}.")

    def to_dict(self) -> dict:
        """Return a JSON-serialisable form (segment keys are strings).

        Returns
        -------
        dict
            ``jaccard`` {segment: mean}, ``verdict`` {segment: text}, ``ari``
            (one value per resample), its summary, the per-resample Jaccard
            quantiles and the dissolved / recovered counts.
        """
        means = self.mean_jaccard
        low, high = self.jaccard_interval
        ari = self.ari.astype(float)
        return {
            "k": self.k, "resamples": self.resamples, "seed": self.seed, "n_init": self.n_init,
            "n_customers": self.n_customers, "scheme": self.scheme, "scheme_description": SCHEMES[self.scheme],
            "jaccard": {str(i): _round(v) for i, v in enumerate(means)},
            "jaccard_interval": {str(i): [_round(a), _round(b)] for i, (a, b) in enumerate(zip(low, high))},
            "verdict": {str(i): t for i, t in enumerate(self.verdicts)},
            "jaccard_quantiles": {str(i): {q: _round(np.nanquantile(self.jaccard[:, i], p))
                                           if np.isfinite(self.jaccard[:, i]).any() else None
                                           for q, p in (("p05", 0.05), ("median", 0.5), ("p95", 0.95))}
                                  for i in range(self.k)},
            "dissolved": {str(i): int(v) for i, v in enumerate(self.dissolved)},
            "recovered": {str(i): int(v) for i, v in enumerate(self.recovered)},
            "ari": [_round(v) for v in ari],
            "ari_summary": {"mean": _round(ari.mean()), "median": _round(np.median(ari)),
                            "p05": _round(np.quantile(ari, 0.05)), "p95": _round(np.quantile(ari, 0.95)),
                            "min": _round(ari.min()), "max": _round(ari.max())},
            "thresholds": {"dissolved": DISSOLVED, **{t: b for b, t in JACCARD_BANDS}},
        }


def _round(v, digits: int = 4):
    v = float(v)
    return round(v, digits) if np.isfinite(v) else None


def _resample_rows(seed: int, b: int, n: int) -> np.ndarray:
    # One stream per resample: results do not depend on the order parallel jobs finish in.
    return np.random.default_rng([seed, b]).integers(0, n, n)


def _refit(Z: np.ndarray, k: int, n_init: int, seed: int, engine=None) -> np.ndarray:
    """Labels of a k-means refit: the one place this module fits k-means, through the engine given."""
    return fit_kmeans(Z, k, n_init=n_init, seed=seed, engine=engine).labels


def _one_resample(Z: np.ndarray, labels: np.ndarray, k_ref: int, k: int, seed: int, b: int,
                  n_init: int, scheme: str = DEFAULT_SCHEME, engine=None) -> tuple[np.ndarray, float]:
    rows = _resample_rows(seed, b, len(Z))
    unique, first = np.unique(rows, return_index=True)
    if scheme == "clusterboot":
        # clusterboot's default: the distinct drawn customers, each clustered once.
        new = _refit(Z[unique], k, n_init, seed + 1 + b, engine)
    else:
        # Refit on the draw with duplicates; identical points share a cluster, so the first copy speaks for all.
        new = _refit(Z[rows], k, n_init, seed + 1 + b, engine)[first]
    ref = labels[unique]
    table = np.zeros((k_ref, k), dtype=np.int64)
    np.add.at(table, (ref, new), 1)
    jac = jaccard_matrix(table).max(axis=1)
    jac[table.sum(axis=1) == 0] = np.nan
    return jac, adjusted_rand(ref, new)


def _run(tasks: list, n_jobs: int, progress: Progress | None, label: str) -> list:
    """Run zero-argument tasks, in threads when ``n_jobs > 1``, reporting progress in order."""
    total = len(tasks)
    out = []
    if n_jobs <= 1:
        for i, task in enumerate(tasks):
            out.append(task())
            if progress:
                progress(i + 1, total, label)
        return out
    from concurrent.futures import ThreadPoolExecutor

    # Threads, not processes: numpy's matrix products release the GIL and a process pool's start-up
    # (~0.5 s for joblib/loky) would cost as much as the whole job on the real file.
    with ThreadPoolExecutor(max_workers=n_jobs) as pool:
        for i, result in enumerate(pool.map(lambda t: t(), tasks)):
            out.append(result)
            if progress:
                progress(i + 1, total, label)
    return out


def bootstrap_stability(Z: np.ndarray, labels, k: int | None = None, *, resamples: int = 100,
                        seed: int = DEFAULT_SEED, n_init: int = 10, n_jobs: int = 1,
                        max_rows: int = MAX_ROWS, scheme: str = DEFAULT_SCHEME,
                        progress: Progress | None = None, engine=None) -> BootstrapResult:
    """Hennig's bootstrap stability of a segmentation: per-segment Jaccard and ARI per refit.

    Parameters
    ----------
    Z : ndarray of shape (n, d)
        Customers in the model's scaled units.
    labels : array-like of int, shape (n,)
        The model's segment of each customer (0..k-1).
    k : int, optional
        Clusters of each refit (default: the number of segments in ``labels``).
    resamples : int, default 100
        Bootstrap resamples B.
    seed : int, default 42
    n_init : int, default 10
        k-means starts per refit. Use the model's own: refits with fewer starts
        land in worse local optima and make segments look less stable than they
        are (on the real file at k=6, median ARI 0.73 with 3 starts, 0.83 with
        10, 0.84 with 20; see benchmarks/bench_stability.py).
    n_jobs : int, default 1
        Threads to run refits in (measured no faster on 2 cores: the refits are
        many small numpy calls that hold the GIL between them).
    max_rows : int, default 10000
        Above this many customers the resamples are drawn from a seeded uniform
        subsample of this size: B full refits of 100K customers would take minutes,
        and segment stability is a property of the segments, not of n.
    scheme : {"clusterboot", "multipleboot"}, default "clusterboot"
        ``"clusterboot"``: refit on the distinct drawn customers, each once (fpc's default,
        ``multipleboot=FALSE``, the scheme Hennig's thresholds refer to); ``"multipleboot"``:
        refit on the draw with its duplicates.
    progress : callable, optional
        ``progress(done, total, message)`` after each refit.
    engine : InMemoryClustering, optional
        The engine every refit goes through (:class:`core.engines.InMemoryClustering`); numpy by default.

    Returns
    -------
    BootstrapResult
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    labels = np.asarray(labels, dtype=int)
    n = len(Z)
    if labels.shape != (n,):
        raise ValueError(f"need one label per customer: {n} customers, {labels.shape[0]} labels")
    if n > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(n, max_rows, replace=False))
        Z, labels, n = Z[rows], labels[rows], max_rows
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    k_ref = int(labels.max()) + 1 if n else 0
    k = int(k or k_ref)
    if not 2 <= k < n:
        raise ValueError(f"k must be between 2 and {n - 1} for {n} customers, got {k}")
    tasks = [lambda b=b: _one_resample(Z, labels, k_ref, k, seed, b, n_init, scheme, engine) for b in range(resamples)]
    results = _run(tasks, n_jobs, progress, "bootstrap refit")
    jaccard = np.vstack([r[0] for r in results])
    ari = np.array([r[1] for r in results])
    return BootstrapResult(k=k_ref, resamples=resamples, seed=seed, n_init=n_init, jaccard=jaccard, ari=ari,
                           n_customers=n, scheme=scheme)


def stability_per_k(Z: np.ndarray, k_values, resamples: int = 20, seed: int = DEFAULT_SEED, *,
                    n_init: int = 10, reference_n_init: int = 10, n_jobs: int = 1,
                    progress: Progress | None = None, engine=None) -> dict[int, float]:
    """Mean adjusted Rand index between a full-data fit and bootstrap refits, for each k.

    Parameters
    ----------
    Z : ndarray of shape (n, d)
        Scaled customers.
    k_values : iterable of int
    resamples : int, default 20
        Bootstrap refits per k.
    seed : int, default 42
    n_init : int, default 10
        Starts per refit (fewer starts lower the index more for larger k, where
        k-means has more local optima, which would bias the comparison).
    reference_n_init : int, default 10
        Starts of the full-data fit each k is compared with.
    n_jobs : int, default 1
    progress : callable, optional
        ``progress(done, total, message)`` after each k.
    engine : InMemoryClustering, optional
        The engine every refit goes through (:class:`core.engines.InMemoryClustering`); numpy by default.

    Returns
    -------
    dict
        ``{k: mean ARI}``; higher means the partition with that k is found
        again more reliably.
    """
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    ks = [int(k) for k in k_values]
    out = {}
    for i, k in enumerate(ks):
        ref = _refit(Z, k, reference_n_init, seed, engine)
        result = bootstrap_stability(Z, ref, k, resamples=resamples, seed=seed, n_init=n_init, n_jobs=n_jobs,
                                     engine=engine)
        out[k] = float(result.ari.mean())
        if progress:
            progress(i + 1, len(ks), f"k={k}")
    return out


# ---------------------------------------------------------------------------- over enrolment time
@dataclass
class Snapshot:
    """One cumulative enrolment snapshot, its clusters matched to the reference segments.

    Parameters
    ----------
    period : str
        Last enrolment period included, e.g. ``2013Q2`` or ``2013-04``.
    end : str
        Last day of that period (ISO date).
    n_customers : int
    ari : float
        Adjusted Rand index between the snapshot's fit and the reference labels of its customers.
    shares : list of float
        Share of the snapshot's customers in each (matched) segment.
    drift : list of float
        Distance of each matched centroid from the reference centroid, in scaled units.
    centroids : ndarray of shape (k, d)
        Matched centroids in the reference model's scaled units (row i = segment i).
    """

    period: str
    end: str
    n_customers: int
    ari: float
    shares: list
    drift: list
    centroids: np.ndarray

    def to_dict(self) -> dict:
        """Return a JSON-serialisable form (segment keys are strings)."""
        return {"period": self.period, "end": self.end, "n_customers": self.n_customers,
                "ari": _round(self.ari), "shares": {str(i): _round(s) for i, s in enumerate(self.shares)},
                "drift": {str(i): _round(d) for i, d in enumerate(self.drift)}}


@dataclass
class TemporalResult:
    """Stability over enrolment time.

    Parameters
    ----------
    window : str
        ``quarter`` or ``month``.
    k : int
    features : list of str
    snapshots : list of Snapshot
    skipped : list of dict
        Snapshots not fitted (too few customers), with the reason.
    transitions : list of dict
        MONIC events between consecutive snapshots.
    flows : list of dict
        Customers moving from a segment of one snapshot to a segment of the
        next (``source`` -1: enrolled in between).
    cohorts : list of dict
        The reference model's segment mix per enrolment cohort (not cumulative).
    note : str
    """

    window: str
    k: int
    features: list
    snapshots: list
    skipped: list
    transitions: list
    flows: list
    cohorts: list
    note: str = COHORT_NOTE
    thresholds: dict = field(default_factory=lambda: {
        "survived": f"one new cluster takes >= {MONIC_MATCH} of the old cluster's customers",
        "absorbed": f"two or more old clusters each have >= {MONIC_MATCH} in the same new cluster",
        "split": f"no new cluster takes {MONIC_MATCH}; two or more take >= {MONIC_SPLIT} each, "
                 f">= {MONIC_MATCH} together",
        "disappeared": "none of the above", "emerged": "a new cluster no old cluster went into",
        "min_customers": f"{MIN_PER_SEGMENT} x k",
    })

    def summary(self) -> str:
        """The result in one or two plain sentences."""
        if not self.snapshots:
            return (f"No enrolment snapshot had the {MIN_PER_SEGMENT * self.k} customers needed to fit "
                    f"{self.k} segments.")
        aris = [s.ari for s in self.snapshots]
        worst = min(self.snapshots, key=lambda s: s.ari)
        text = (f"{len(self.snapshots)} cumulative {self.window}ly snapshots: adjusted Rand index against the model "
                f"from {min(aris):.2f} ({worst.period}, {worst.n_customers:,} customers) to {max(aris):.2f}.")
        if self.skipped:
            text += (f" {len(self.skipped)} earlier snapshot(s) skipped: fewer than {MIN_PER_SEGMENT * self.k} "
                     "customers.")
        return text

    def to_dict(self) -> dict:
        """Return a JSON-serialisable form."""
        return {
            "window": self.window, "k": self.k, "features": list(self.features), "note": self.note,
            "snapshots": [s.to_dict() for s in self.snapshots], "skipped": self.skipped,
            "transitions": self.transitions, "flows": self.flows, "cohorts": self.cohorts,
            "thresholds": self.thresholds, "summary": self.summary(),
        }


def _periods(dates: pd.Series, window: str) -> pd.Series:
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}, got {window!r}")
    dates = pd.to_datetime(dates, errors="coerce")
    if dates.isna().all():
        raise ValueError("Dt_Customer has no readable enrolment date")
    return dates.dt.to_period(WINDOWS[window])


def monic_transitions(old: np.ndarray, new: np.ndarray, k: int, *, match: float = MONIC_MATCH,
                      split: float = MONIC_SPLIT) -> list[dict]:
    """MONIC fates of old clusters and new clusters, from the labels of the customers both hold.

    Parameters
    ----------
    old : ndarray of int
        Old cluster of each customer of the older snapshot.
    new : ndarray of int
        New cluster of the same customers.
    k : int
        Clusters per snapshot (labels 0..k-1).
    match, split : float
        Overlap thresholds (see the module docstring).

    Returns
    -------
    list of dict
        Events ``{"type", "old": [..], "new": [..], "overlap": [..]}``, one per
        old cluster (survived, absorbed, split, disappeared) plus one per
        emerged new cluster.
    """
    table = np.zeros((k, k), dtype=np.int64)
    np.add.at(table, (np.asarray(old, int), np.asarray(new, int)), 1)
    size = table.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        overlap = np.where(size[:, None] > 0, table / np.maximum(size[:, None], 1), 0.0)
    best = overlap.argmax(axis=1)
    # Exactly half in each of two new clusters is a split, not a survival into whichever comes first.
    matched = {x: int(best[x]) for x in range(k)
               if size[x] and overlap[x, best[x]] >= match and (overlap[x] >= match).sum() == 1}
    targets: dict[int, list[int]] = {}
    for x, y in matched.items():
        targets.setdefault(y, []).append(x)
    events, reached = [], set()
    for x in range(k):
        if not size[x]:
            continue
        if x in matched:
            y = matched[x]
            kind = "absorbed" if len(targets[y]) > 1 else "survived"
            events.append({"type": kind, "old": [x], "new": [y], "overlap": [_round(overlap[x, y])]})
            reached.add(y)
            continue
        parts = [int(y) for y in np.flatnonzero(overlap[x] >= split)]
        if len(parts) >= 2 and overlap[x, parts].sum() >= match:
            events.append({"type": "split", "old": [x], "new": parts,
                           "overlap": [_round(overlap[x, y]) for y in parts]})
            reached.update(parts)
        else:
            events.append({"type": "disappeared", "old": [x], "new": [], "overlap": [_round(overlap[x].max())]})
    for y in range(k):
        if y not in reached:
            events.append({"type": "emerged", "old": [], "new": [y], "overlap": []})
    return events


def cohort_mix(frame: pd.DataFrame, labels, k: int, window: str = "quarter") -> list[dict]:
    """The reference model's segment mix per enrolment cohort (customers enrolled in each period).

    Parameters
    ----------
    frame : pandas.DataFrame
        Customers with ``Dt_Customer``.
    labels : array-like of int
        The reference model's segment of each customer.
    k : int
    window : {"quarter", "month"}

    Returns
    -------
    list of dict
        ``{"period", "n_customers", "shares": {segment: share}}`` in time order.
    """
    periods = _periods(frame["Dt_Customer"], window)
    labels = np.asarray(labels, int)
    out = []
    for period in sorted(periods.dropna().unique()):
        mask = (periods == period).to_numpy()
        counts = np.bincount(labels[mask], minlength=k)
        out.append({"period": str(period), "n_customers": int(mask.sum()),
                    "shares": {str(i): _round(c / max(mask.sum(), 1)) for i, c in enumerate(counts)}})
    return out


def temporal_stability(frame: pd.DataFrame, model: SegmentationModel, *, window: str = "quarter",
                       n_init: int | None = None, min_per_segment: int = MIN_PER_SEGMENT, max_rows: int = MAX_ROWS,
                       progress: Progress | None = None) -> TemporalResult:
    """Fit the model's pipeline on cumulative enrolment snapshots and compare with the model.

    Parameters
    ----------
    frame : pandas.DataFrame
        Customers with ``Dt_Customer`` and the model's features (usually its training data).
    model : SegmentationModel
        The reference model; its features, k, seed and starts are reused.
    window : {"quarter", "month"}, default "quarter"
        Snapshot ends: the last day of each quarter or month.
    n_init : int, optional
        k-means starts per snapshot (default: the model's).
    min_per_segment : int, default 10
        Snapshots with fewer than ``min_per_segment * k`` customers are skipped.
    max_rows : int, default 10000
        Larger snapshots are fitted on a seeded sample of this size, then scored whole.
    progress : callable, optional
        ``progress(done, total, message)`` after each snapshot.

    Returns
    -------
    TemporalResult
    """
    if "Dt_Customer" not in frame:
        raise ValueError("the data has no Dt_Customer column (enrolment date)")
    periods = _periods(frame["Dt_Customer"], window)
    k = model.k
    ref_labels = model.predict(frame)
    ordered = sorted(periods.dropna().unique())
    period_arr = periods.to_numpy()
    snapshots, skipped, transitions, flows = [], [], [], []
    prev = None  # (mask, matched labels over the whole frame, period)
    for i, period in enumerate(ordered):
        mask = np.asarray(period_arr <= period) & periods.notna().to_numpy()
        n = int(mask.sum())
        if n < min_per_segment * k:
            skipped.append({"period": str(period), "n_customers": n,
                            "reason": f"fewer than {min_per_segment * k} customers ({min_per_segment} per segment) "
                                      f"to fit {k} segments"})
            if progress:
                progress(i + 1, len(ordered), f"snapshot {period} skipped")
            continue
        members = frame[mask]
        # Large snapshots are fitted on a seeded sample and then scored whole (as the model would be).
        fit_on = members.sample(max_rows, random_state=model.seed) if n > max_rows else members
        snap = SegmentationModel(k=k, features=model.features, seed=model.seed,
                                 n_init=n_init or model.n_init, max_iter=model.max_iter).fit(fit_on)
        snap_labels = snap.predict(members)
        # The snapshot's centroids in the reference model's scaled units, then matched to its segments.
        centres = (snap.centroids_ * snap.scale_ + snap.mean_ - model.mean_) / model.scale_
        to_ref = match_centroids(model.centroids_, centres)
        matched_centres = np.empty_like(centres)
        matched_centres[to_ref] = centres
        labels = np.full(len(frame), -1)
        labels[mask] = to_ref[snap_labels]
        counts = np.bincount(labels[mask], minlength=k)
        snapshots.append(Snapshot(
            period=str(period), end=period.end_time.date().isoformat(), n_customers=n,
            ari=adjusted_rand(ref_labels[mask], labels[mask]), shares=(counts / n).tolist(),
            drift=np.sqrt(((matched_centres - model.centroids_) ** 2).sum(axis=1)).tolist(),
            centroids=matched_centres,
        ))
        if prev is not None:
            p_mask, p_labels, p_period = prev
            old, new = p_labels[p_mask], labels[p_mask]
            transitions.append({"from": str(p_period), "to": str(period),
                                "events": monic_transitions(old, new, k)})
            table = np.zeros((k, k), dtype=np.int64)
            np.add.at(table, (old, new), 1)
            flows += [{"from": str(p_period), "to": str(period), "source": x, "target": y, "n": int(table[x, y])}
                      for x in range(k) for y in range(k) if table[x, y]]
            entered = np.bincount(labels[mask & ~p_mask], minlength=k)
            flows += [{"from": str(p_period), "to": str(period), "source": -1, "target": y, "n": int(entered[y])}
                      for y in range(k) if entered[y]]
        prev = (mask, labels, period)
        if progress:
            progress(i + 1, len(ordered), f"snapshot {period}")
    return TemporalResult(window=window, k=k, features=list(model.features), snapshots=snapshots, skipped=skipped,
                          transitions=transitions, flows=flows, cohorts=cohort_mix(frame, ref_labels, k, window))
