"""Gamma-Gamma spend model (Fader, Hardie & Lee 2005b, "RFM and CLV"; Colombo & Jiang 1999).

The value of each repeat purchase of a customer is Gamma(p, nu) with nu ~ Gamma(q, gamma), so
the mean m_x of x repeat purchases has the likelihood

    L(p, q, gamma | m_x, x) = Gamma(px+q) / (Gamma(px) Gamma(q))
                              * gamma^q m_x^(px-1) x^(px) / (gamma + m_x x)^(px+q).

Fitted on customers with x > 0 and a positive mean (the first purchase excluded), by the same
L-BFGS-B on log-parameters as BG/NBD.
"""
from __future__ import annotations

import numpy as np
from scipy.special import digamma, gammaln

from core.value.bgnbd import FitError, FitResult, fit_by_lbfgs

__all__ = ["PARAMS", "log_likelihood", "gradient", "fit", "expected_spend"]

PARAMS = ("p", "q", "gamma")


def log_likelihood(params, x, m, weights=None, *, per_customer: bool = False):
    """Gamma-Gamma log-likelihood.

    Parameters
    ----------
    params : sequence of float
        (p, q, gamma).
    x : array-like
        Repeat purchases (> 0).
    m : array-like
        Mean value of those purchases (> 0).
    weights : array-like, optional
    per_customer : bool, default False

    Returns
    -------
    float or numpy.ndarray
    """
    p, q, g = params
    x = np.asarray(x, dtype="float64")
    m = np.asarray(m, dtype="float64")
    px = p * x
    ll = (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(g) + (px - 1) * np.log(m)
          + px * np.log(x) - (px + q) * np.log(g + m * x))
    if per_customer:
        return ll
    return float(np.sum(ll if weights is None else ll * weights))


def gradient(params, x, m, weights=None) -> np.ndarray:
    """Gradient of the weighted log-likelihood with respect to (p, q, gamma).

    Parameters
    ----------
    params : sequence of float
    x, m, weights : array-like

    Returns
    -------
    numpy.ndarray
    """
    p, q, g = params
    x = np.asarray(x, dtype="float64")
    m = np.asarray(m, dtype="float64")
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype="float64")
    px = p * x
    lgm = np.log(g + m * x)
    dpq = digamma(px + q)
    g_p = x * (dpq - digamma(px) + np.log(m) + np.log(x) - lgm)
    g_q = dpq - digamma(q) + np.log(g) - lgm
    g_g = q / g - (px + q) / (g + m * x)
    return np.array([np.dot(w, g_p), np.dot(w, g_q), np.dot(w, g_g)])


class _Prepared:
    """Terms that do not change between evaluations (logs of m and x), and the special functions of
    p x computed once per distinct x; the log-likelihood and its gradient in one pass."""

    def __init__(self, x, m, w):
        self.ux, self.ix = np.unique(x, return_inverse=True)
        self.x, self.m, self.w = x, m, w
        self.xm = x * m
        self.wx = np.bincount(self.ix, weights=w, minlength=len(self.ux))
        self.wxx = np.bincount(self.ix, weights=w * x, minlength=len(self.ux))
        self.c_p = float(np.dot(w * x, np.log(m) + np.log(x)))  # sum of w x (log m + log x)
        self.c_m = float(np.dot(w, np.log(m)))
        self._last = None

    def both(self, params):
        key = tuple(float(v) for v in params)
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        p, q, g = key
        ux, w = self.ux, self.w
        pux = p * ux
        lgm = np.log(g + self.xm)
        wsum = self.wx.sum()
        per_x = gammaln(pux + q) - gammaln(pux) - gammaln(q)
        px = p * self.x
        ll = (float(np.dot(self.wx, per_x)) + q * np.log(g) * wsum + p * self.c_p - self.c_m
              - float(np.dot(w * (px + q), lgm)))
        dpq = digamma(pux + q)
        wlgm = w * lgm
        g_p = float(np.dot(self.wxx, dpq - digamma(pux))) + self.c_p - float(np.dot(wlgm, self.x))
        g_q = float(np.dot(self.wx, dpq)) - digamma(q) * wsum + np.log(g) * wsum - float(wlgm.sum())
        g_g = q / g * wsum - float(np.dot(w, (px + q) / (g + self.xm)))
        out = (ll, np.array([g_p, g_q, g_g]))
        self._last = (key, out)
        return out


def fit(x, m, weights=None, start=None) -> FitResult:
    """Fit Gamma-Gamma by maximum likelihood.

    Parameters
    ----------
    x, m : array-like
        Repeat purchases and their mean value, customers with x > 0 and m > 0 only.
    weights : array-like, optional
    start : sequence of float, optional
        Default (1, 1, mean m).

    Returns
    -------
    FitResult

    Raises
    ------
    FitError
        Nobody with a positive repeat value, or no convergence.
    """
    x = np.asarray(x, dtype="float64")
    m = np.asarray(m, dtype="float64")
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype="float64")
    if not len(x):
        raise FitError("the spend (Gamma-Gamma) model needs customers with repeat purchases of positive value")
    n = float(w.sum())
    if start is None:
        start = np.array([1.0, 1.0, max(float(np.dot(w, m) / n), 1e-3)])
    prep = _Prepared(x, m, w)
    return fit_by_lbfgs(lambda p: prep.both(p)[0], lambda p: prep.both(p)[1],
                        np.asarray(start, dtype="float64"), n, PARAMS, len(x), "spend (Gamma-Gamma)")


def expected_spend(params, x, m) -> np.ndarray:
    """Expected value of a customer's future purchase, E(M | x, m_x) = p (gamma + m_x x) / (p x + q - 1).

    Parameters
    ----------
    params : sequence of float
    x, m : array-like
        For x = 0 (m unused) the population mean p gamma / (q - 1).

    Returns
    -------
    numpy.ndarray
        NaN when q <= 1 (the mean does not exist); callers refuse such a fit.
    """
    p, q, g = params
    x = np.asarray(x, dtype="float64")
    z = np.where(x > 0, np.nan_to_num(np.asarray(m, dtype="float64")) * x, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = p * (g + z) / (p * x + q - 1)
    return np.where(q > 1, out, np.nan)
