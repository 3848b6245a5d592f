"""Which algorithm to believe: every algorithm on the same customers, features and k, side by side.

For each algorithm of :data:`core.algorithms.ALGORITHMS`: silhouette, Davies-Bouldin and
Calinski-Harabasz (:mod:`core.fitting.measures`, on the customers a segment claims), BIC and AIC where a
likelihood exists (GMM), bootstrap stability (mean adjusted Rand of refits on resamples against
the fit, :func:`core.fitting.stability.adjusted_rand`) and prediction strength (Tibshirani & Walther,
:func:`core.fitting.measures.pair_strength`) on a seeded sample, sizes, the Unassigned share, and the
pairwise agreement (adjusted Rand) of every two algorithms; then a recommendation in plain words.
Also the per-k sweep of one algorithm (``python -m core sweep --algorithm NAME``).
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from core.fitting.algorithm_fit import categorical_refusal, check_options, encode, jsonable
from core.algorithms import ALGORITHMS, get_algorithm
from core.algorithms.base import UNASSIGNED
from core.fitting.measures import calinski_harabasz, davies_bouldin, fit_kmeans, pair_strength, silhouette_samples
from core.fitting.model import DEFAULT_SEED, standardise
from core.fitting.stability import adjusted_rand

__all__ = ["compare", "sweep_algorithm", "recommendation", "COMPARE_MAX_ROWS", "MEASURE_ROWS"]

# The comparison fits every algorithm several times: beyond this many customers it runs on a seeded
# sample of them (said in the result), as the sweep does.
COMPARE_MAX_ROWS = 20_000
# Stability and prediction strength refit on resamples of a smaller seeded sample.
MEASURE_ROWS = 1_500
# Lighter settings for the comparison's many refits (a version trained with the algorithm uses its defaults).
LIGHT_OPTIONS = {"consensus": {"resamples": 10}}
STABLE = 0.75  # mean adjusted Rand of refits at which a partition counts as stable (core.fitting.criteria's spirit)


class _Fitted:
    """One algorithm's fit on Z: labels (UNASSIGNED allowed), info, and how it places other customers."""

    def __init__(self, name: str, Z, codes, k: int, seed: int, options: dict):
        self.name = name
        spec = get_algorithm(name)
        if spec.name == "kmeans":
            result = fit_kmeans(Z, k, n_init=10, seed=seed)
            self.labels, self.info, self._centers = np.asarray(result.labels), {}, result.centers
            self._module = None
        else:
            self._module = spec.load()
            part = self._module.fit(Z, k=k, seed=seed, categorical=codes if spec.categorical else None,
                                    **check_options(spec.name, self._module.fit, options))
            self.labels, self.info, self._params = np.asarray(part.labels), dict(part.info), part.params

    def place(self, Z, codes) -> np.ndarray:
        if self._module is None:
            return ((Z[:, None, :] - self._centers[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
        return np.asarray(self._module.predict(self._params, Z, codes).labels)


def _rows(n: int, size: int, seed: int) -> np.ndarray:
    return np.arange(n) if n <= size else np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def _sub(codes, rows):
    return None if codes is None else codes[rows]


def _stability(name, Z, codes, k, seed, options, resamples) -> float | None:
    """Mean adjusted Rand between the fit on the measuring sample and refits on bootstrap resamples of it."""
    try:
        base = _Fitted(name, Z, codes, k, seed, options).labels
    except ValueError:  # nothing found on the measuring sample (e.g. all noise): not measurable
        return None
    rng = np.random.default_rng([seed, 7])
    values = []
    for b in range(resamples):
        draw = rng.choice(len(Z), len(Z), replace=True)
        try:
            placed = _Fitted(name, Z[draw], _sub(codes, draw), k, seed + b + 1, options).place(Z, codes)
        except ValueError:  # the refit found no segments: they did not come back
            values.append(0.0)
            continue
        values.append(adjusted_rand(base, placed))
    return float(np.mean(values)) if values else None


def _prediction_strength(name, Z, codes, k, seed, options) -> float | None:
    """Prediction strength of one random half-split, both directions (Unassigned customers not counted)."""
    order = np.random.default_rng([seed, k, 11]).permutation(len(Z))
    halves = [np.sort(order[: len(Z) // 2]), np.sort(order[len(Z) // 2:])]
    try:
        fits = [_Fitted(name, Z[h], _sub(codes, h), k, seed + i, options) for i, h in enumerate(halves)]
    except ValueError:  # a half with no segments (e.g. all noise): not measurable
        return None
    values = []
    for test, train in ((0, 1), (1, 0)):
        rows = halves[test]
        own, placed = fits[test].labels, fits[train].place(Z[rows], _sub(codes, rows))
        keep = (own != UNASSIGNED) & (placed != UNASSIGNED)
        if keep.sum() >= 2:
            values.append(pair_strength(own[keep], placed[keep]))
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _criteria(Z, labels, seed) -> dict:
    """Silhouette, Davies-Bouldin and Calinski-Harabasz on the customers a segment claims."""
    keep = labels != UNASSIGNED
    Zk, lk = Z[keep], np.unique(labels[keep], return_inverse=True)[1]
    if len(np.unique(lk)) < 2:
        return {"silhouette": None, "davies_bouldin": None, "calinski_harabasz": None}
    sil, _ = silhouette_samples(Zk, lk, seed=seed)
    return {"silhouette": float(sil.mean()), "davies_bouldin": float(davies_bouldin(Zk, lk)),
            "calinski_harabasz": float(calinski_harabasz(Zk, lk))}


def compare(frame: pd.DataFrame, features: list[str], *, algorithms=None, k: int = 6, categorical=(),
            seed: int = DEFAULT_SEED, resamples: int = 5, options: dict | None = None,
            max_rows: int = COMPARE_MAX_ROWS, measure_rows: int = MEASURE_ROWS) -> dict:
    """Every algorithm on the same customers, features and k.

    Parameters
    ----------
    frame : pandas.DataFrame
        Prepared customers.
    features : list of str
        Numeric features.
    algorithms : list of str, optional
        Default: every algorithm (:data:`core.algorithms.ALGORITHMS`).
    k : int, default 6
    categorical : sequence of str
        Categorical features: only algorithms that take them are run on them (the others say so).
    seed : int
    resamples : int, default 5
        Bootstrap refits for stability (0: not measured).
    options : dict, optional
        Per algorithm name, its options (e.g. ``{"consensus": {"resamples": 20}}``).
    max_rows, measure_rows : int
        Seeded samples for the fits and for stability / prediction strength.

    Returns
    -------
    dict
        ``algorithms`` (one row each: criteria, sizes, unassigned share, seconds, or ``error``),
        ``agreement`` (names and the adjusted Rand matrix), ``recommendation`` (plain words),
        ``customers``, ``fitted_on``, ``measured_on``, ``k``, ``features``, ``categorical``.
    """
    names = [get_algorithm(a).name for a in (algorithms or list(ALGORITHMS))]
    if len(set(names)) != len(names):
        raise ValueError("an algorithm is listed twice")
    categorical = list(categorical)
    refused = [n for n in names if categorical and not get_algorithm(n).categorical]
    if categorical and len(refused) == len(names):
        raise ValueError(categorical_refusal(", ".join(names), categorical))
    n = len(frame)
    if k < 2 or k >= n:
        raise ValueError(f"k must be between 2 and {n - 1} for {n:,} customers, got {k}")
    rows = _rows(n, max_rows, seed)
    X = frame[features].to_numpy(dtype=np.float64)[rows]
    Z, _, _ = standardise(X)
    codes = encode(frame.iloc[rows], categorical)[0]
    measure = _rows(len(Z), measure_rows, seed + 1)
    table, labels = [], {}
    for name in names:
        spec = get_algorithm(name)
        row = {"algorithm": name, "title": spec.title, "soft": spec.soft}
        if name in refused:  # compared on what it can cluster, and said so
            row["note"] = f"numeric features only ({', '.join(categorical)} not used)"
        opts = dict(LIGHT_OPTIONS.get(name, {}), **(options or {}).get(name, {}))
        if name == "consensus":  # the comparison's k, not a range of its own
            opts.setdefault("k_min", k)
            opts.setdefault("k_max", k)
        started = time.perf_counter()
        try:
            fitted = _Fitted(name, Z, None if name in refused else codes, k, seed, opts)
        except ValueError as exc:  # e.g. HDBSCAN leaving everyone unassigned: said, not charted
            row["error"] = str(exc).split("\n")[0]
            table.append(row)
            continue
        lab = fitted.labels
        labels[name] = lab
        found = sorted(set(lab[lab != UNASSIGNED].tolist()))
        row.update(_criteria(Z, lab, seed))
        row.update(bic=fitted.info.get("bic"), aic=fitted.info.get("aic"), pac=fitted.info.get("pac"),
                   segments=len(found), unassigned_share=float(np.mean(lab == UNASSIGNED)),
                   sizes=[int((lab == s).sum()) for s in found], seconds=round(time.perf_counter() - started, 3))
        if not found:
            row["error"] = f"{name} left every customer unassigned (no dense group at these settings)"
        if resamples and found:
            Zm, cm = Z[measure], None if name in refused else _sub(codes, measure)
            row["stability"] = _stability(name, Zm, cm, k, seed, opts, resamples)
            row["prediction_strength"] = _prediction_strength(name, Zm, cm, k, seed, opts)
        table.append(row)
    done = list(labels)
    matrix = [[1.0 if a == b else adjusted_rand(labels[a], labels[b]) for b in done] for a in done]
    result = {"k": int(k), "features": list(features), "categorical": categorical, "customers": int(n),
              "fitted_on": int(len(rows)), "measured_on": int(len(measure)), "resamples": int(resamples),
              "seed": int(seed), "algorithms": table, "agreement": {"algorithms": done, "ari": matrix}}
    result["recommendation"] = recommendation(result)
    return jsonable(result)


def recommendation(result: dict) -> str:
    """The comparison's advice in plain words (which algorithm, and why; what to distrust).

    Parameters
    ----------
    result : dict
        :func:`compare` output (``algorithms`` and ``agreement``).

    Returns
    -------
    str
    """
    rows = [r for r in result["algorithms"] if "error" not in r and r.get("silhouette") is not None]
    if not rows:
        return "No algorithm found segments on these features: try other features or another k."

    def score(r):
        stable = (r.get("stability") or 0.0) >= STABLE
        return (stable, (r.get("unassigned_share") or 0.0) < 0.25, r["silhouette"])

    best = max(rows, key=score)
    words = [f"{best['title']} is the one to use here: silhouette {best['silhouette']:.2f}"]
    if best.get("stability") is not None:
        words[0] += (f", and its segments come back when refitted on resamples (stability {best['stability']:.2f})"
                     if best["stability"] >= STABLE else
                     f", though no algorithm gave stable segments (best stability {best['stability']:.2f}; "
                     f"{STABLE:.2f} counts as stable) — treat the segments as a rough cut")
    words[0] += "."
    if best.get("unassigned_share"):
        words.append(f"It leaves {best['unassigned_share']:.0%} of customers unassigned.")
    noisy = [r for r in rows if (r.get("unassigned_share") or 0) >= 0.25]
    for r in noisy:
        if r is not best:
            words.append(f"{r['title']} leaves {r['unassigned_share']:.0%} of customers unassigned: the data has "
                         "no clear dense groups for it.")
    ari = result["agreement"]["ari"]
    if len(ari) > 1:
        pairs = [ari[i][j] for i in range(len(ari)) for j in range(i + 1, len(ari))]
        mean = float(np.mean(pairs))
        words.append(f"The algorithms {'largely agree' if mean >= 0.6 else 'disagree'} (mean adjusted Rand "
                     f"{mean:.2f}): {'the segments do not depend much on the method' if mean >= 0.6 else 'the segments depend on the method, so prefer the stable one and check its profiles'}.")
    gmm = next((r for r in rows if r["algorithm"] == "gmm"), None)
    if gmm and gmm is not best:
        words.append("The Gaussian mixture gives each customer membership probabilities, useful where segments "
                     "overlap.")
    return " ".join(words)


def sweep_algorithm(frame: pd.DataFrame, features: list[str], *, algorithm: str, k_min: int = 2, k_max: int = 10,
                    categorical=(), seed: int = DEFAULT_SEED, options: dict | None = None,
                    max_rows: int = COMPARE_MAX_ROWS) -> dict:
    """One algorithm per k: silhouette, Davies-Bouldin, Calinski-Harabasz, BIC/AIC (GMM), PAC (consensus), sizes.

    Parameters
    ----------
    frame : pandas.DataFrame
    features : list of str
    algorithm : str
        Not ``hdbscan``: it finds its own number of segments.
    k_min, k_max : int
    categorical : sequence of str
    seed : int
    options : dict, optional
    max_rows : int

    Returns
    -------
    dict
        ``results`` (one per k), ``recommended_k`` and ``reason``.
    """
    spec = get_algorithm(algorithm)
    if spec.noise:
        raise ValueError(f"{spec.name} finds its own number of segments, so a sweep over k does not apply; "
                         "use `python -m core compare-algorithms` or train it")
    categorical = list(categorical)
    if categorical and not spec.categorical:
        raise ValueError(categorical_refusal(spec.name, categorical))
    rows = _rows(len(frame), max_rows, seed)
    Z, _, _ = standardise(frame[features].to_numpy(dtype=np.float64)[rows])
    codes = encode(frame.iloc[rows], categorical)[0]
    results = []
    for k in range(k_min, k_max + 1):
        fitted = _Fitted(spec.name, Z, codes, k, seed, options or {})
        lab = fitted.labels
        results.append({"k": k, **_criteria(Z, lab, seed), "bic": fitted.info.get("bic"),
                        "aic": fitted.info.get("aic"), "pac": (fitted.info.get("pac")),
                        "sizes": np.bincount(lab[lab >= 0], minlength=k).tolist()})
    if spec.name == "gmm":
        best = min(results, key=lambda r: r["bic"])
        reason = f"lowest BIC ({best['bic']:,.1f}): the best trade-off of fit and number of parameters"
    elif spec.name == "consensus":
        best = min(results, key=lambda r: (r["pac"] if r["pac"] is not None else 1.0))
        reason = f"lowest PAC ({best['pac']:.3f}): the fewest ambiguous pairs across resampled runs"
    else:
        best = max(results, key=lambda r: r["silhouette"] if r["silhouette"] is not None else -1.0)
        reason = f"highest silhouette ({best['silhouette']:.3f})"
    return jsonable({"algorithm": spec.name, "features": list(features), "categorical": categorical,
                     "customers": int(len(frame)), "fitted_on": int(len(rows)), "results": results,
                     "recommended_k": best["k"], "reason": reason})
