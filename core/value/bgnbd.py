"""BG/NBD purchase model (Fader, Hardie & Lee 2005, "Counting your customers the easy way").

A customer buys at Poisson rate lambda ~ Gamma(r, alpha) while alive and drops out after any
purchase with probability p ~ Beta(a, b). The likelihood of (x, t_x, T) is (eq. 6)

    L = B(a, b+x)/B(a, b) * Gamma(r+x) alpha^r / Gamma(r)
        * [ (alpha+T)^-(r+x) + 1{x>0} a/(b+x-1) (alpha+t_x)^-(r+x) ].

It is maximised over log-parameters with L-BFGS-B using the analytic gradient, on the distinct
(x, t_x, T) combinations weighted by how many customers share them; standard errors come
from the inverse of the numerical Hessian (central differences of the analytic gradient).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

__all__ = ["PARAMS", "FitResult", "FitError", "log_likelihood", "gradient", "fit", "p_alive",
           "expected_purchases", "unconditional_purchases", "tail_factor", "numerical_hessian", "fit_by_lbfgs"]

PARAMS = ("r", "alpha", "a", "b")


class FitError(ValueError):
    """The maximum-likelihood fit did not converge (one line for people)."""


@dataclass
class FitResult:
    """A maximum-likelihood fit.

    Parameters
    ----------
    names : tuple of str
    params : numpy.ndarray
    se : numpy.ndarray
        Standard errors (NaN when the Hessian is not invertible).
    cov_log : numpy.ndarray
        Asymptotic covariance of the log-parameters (delta method from the covariance of the
        parameters); the bootstrap draws from N(log params, cov_log).
    log_likelihood : float
    n : float
        Customers (sum of weights).
    combinations : int
        Distinct rows the likelihood was evaluated on.
    iterations : int
    """

    names: tuple
    params: np.ndarray
    se: np.ndarray
    cov_log: np.ndarray
    log_likelihood: float
    n: float
    combinations: int
    iterations: int

    def as_dict(self) -> dict:
        """Parameters by name (floats)."""
        return {k: float(v) for k, v in zip(self.names, self.params)}

    def se_dict(self) -> dict:
        """Standard errors by name (None when not available)."""
        return {k: (float(v) if np.isfinite(v) else None) for k, v in zip(self.names, self.se)}


def _terms(params, x, tx, T):
    r, alpha, a, b = params
    x = np.asarray(x, dtype="float64")
    lu = np.log(alpha + np.asarray(T, dtype="float64"))
    lv = np.log(alpha + np.asarray(tx, dtype="float64"))
    rx = r + x
    a3 = -rx * lu
    pos = x > 0
    # log of the second bracket term, relative to the first; -inf where x = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(pos, np.log(a) - np.log(np.where(pos, b + x - 1, 1.0)) - rx * lv, -np.inf)
    return x, lu, lv, rx, a3, a4, pos


def log_likelihood(params, x, tx, T, weights=None, *, per_customer: bool = False):
    """BG/NBD log-likelihood.

    Parameters
    ----------
    params : sequence of float
        (r, alpha, a, b).
    x, tx, T : array-like
        Frequency, recency and age in the time unit.
    weights : array-like, optional
        Customers per row (default 1).
    per_customer : bool, default False
        Return one value per row instead of the weighted sum.

    Returns
    -------
    float or numpy.ndarray
    """
    r, alpha, a, b = params
    x, lu, lv, rx, a3, a4, pos = _terms(params, x, tx, T)
    ll = (gammaln(rx) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b)
          + np.logaddexp(a3, a4))
    if per_customer:
        return ll
    return float(np.sum(ll if weights is None else ll * weights))


def gradient(params, x, tx, T, weights=None) -> np.ndarray:
    """Gradient of the weighted log-likelihood with respect to (r, alpha, a, b).

    Parameters
    ----------
    params : sequence of float
    x, tx, T, weights : array-like

    Returns
    -------
    numpy.ndarray
        Shape (4,).
    """
    r, alpha, a, b = params
    x, lu, lv, rx, a3, a4, pos = _terms(params, x, tx, T)
    p = np.where(pos, expit(a4 - a3), 0.0)  # share of the likelihood from "dropped out after t_x"
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype="float64")
    q = 1.0 - p
    g_r = digamma(rx) - digamma(r) + np.log(alpha) - q * lu - p * lv
    g_alpha = r / alpha - q * rx / np.exp(lu) - p * rx / np.exp(lv)
    dab = digamma(a + b) - digamma(a + b + x)
    g_a = dab + p / a
    with np.errstate(divide="ignore", invalid="ignore"):
        g_b = dab + digamma(b + x) - digamma(b) - np.where(pos, p / np.where(pos, b + x - 1, 1.0), 0.0)
    return np.array([np.dot(w, g_r), np.dot(w, g_alpha), np.dot(w, g_a), np.dot(w, g_b)])


def numerical_hessian(grad, params: np.ndarray, rel: float = 1e-5) -> np.ndarray:
    """Hessian by central differences of an analytic gradient, symmetrised.

    Parameters
    ----------
    grad : callable
        params -> gradient.
    params : numpy.ndarray
    rel : float
        Step relative to each parameter.

    Returns
    -------
    numpy.ndarray
    """
    k = len(params)
    h = np.empty((k, k))
    for j in range(k):
        step = rel * max(abs(params[j]), 1e-8)
        up, down = params.copy(), params.copy()
        up[j] += step
        down[j] -= step
        h[:, j] = (grad(up) - grad(down)) / (2 * step)
    return (h + h.T) / 2


def fit_by_lbfgs(loglik, grad, start: np.ndarray, n: float, names: tuple, combinations: int,
                 what: str) -> FitResult:
    """Maximise a log-likelihood over log-parameters with L-BFGS-B; SEs from the numerical Hessian.

    Parameters
    ----------
    loglik, grad : callable
        params -> weighted log-likelihood / its gradient (natural parameters).
    start : numpy.ndarray
        Starting parameters.
    n : float
        Customers (scales the objective so tolerances do not depend on the data size).
    names : tuple of str
    combinations : int
    what : str
        Model name for the message when the fit fails.

    Returns
    -------
    FitResult

    Raises
    ------
    FitError
    """
    def objective(theta):
        params = np.exp(theta)
        value = loglik(params)
        if not np.isfinite(value):
            return 1e300, np.zeros_like(theta)
        return -value / n, -grad(params) * params / n

    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        res = minimize(objective, np.log(start), jac=True, method="L-BFGS-B", bounds=[(-20.0, 20.0)] * len(start),
                       options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10, "maxcor": 20})
        params = np.exp(res.x)
        gnorm = float(np.max(np.abs(grad(params) * params / n)))
        if not np.all(np.isfinite(res.x)) or np.any(np.abs(res.x) >= 19.99) or gnorm > 1e-4:
            raise FitError(f"the {what} fit did not converge ({res.message if not res.success else 'at a bound'}; "
                           f"largest gradient {gnorm:.2g}): the log may be too small or too regular for the model")
        hess = numerical_hessian(grad, params)
    try:
        cov = np.linalg.inv(-hess)
        se = np.sqrt(np.where(np.diag(cov) > 0, np.diag(cov), np.nan))
    except np.linalg.LinAlgError:
        cov = np.full_like(hess, np.nan)
        se = np.full(len(params), np.nan)
    cov_log = cov / np.outer(params, params)
    return FitResult(names, params, se, cov_log, float(loglik(params)), float(n), combinations, int(res.nit))


class _Prepared:
    """The distinct values of x, t_x and T of a data set, so each evaluation computes the special
    functions once per distinct value, and the log-likelihood with its gradient in one pass."""

    def __init__(self, x, tx, T, w):
        self.ux, self.ix = np.unique(x, return_inverse=True)
        self.uT, self.iT = np.unique(T, return_inverse=True)
        self.utx, self.itx = np.unique(tx, return_inverse=True)
        self.x, self.w = x, w
        self.pos = x > 0
        self._last = None

    def both(self, params):
        key = tuple(float(v) for v in params)
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        r, alpha, a, b = key
        ux, x, w, pos = self.ux, self.x, self.w, self.pos
        lu = np.log(alpha + self.uT)[self.iT]
        lv = np.log(alpha + self.utx)[self.itx]
        rx = r + x
        a3 = -rx * lu
        with np.errstate(divide="ignore", invalid="ignore"):
            bx1 = np.log(np.where(ux > 0, b + ux - 1, 1.0))[self.ix]
            a4 = np.where(pos, np.log(a) - bx1 - rx * lv, -np.inf)
        per_x = gammaln(r + ux) - gammaln(r) + r * np.log(alpha) + betaln(a, b + ux) - betaln(a, b)
        ll = float(np.dot(w, per_x[self.ix] + np.logaddexp(a3, a4)))
        p = np.where(pos, expit(a4 - a3), 0.0)
        q = 1.0 - p
        wp = w * p
        dab = digamma(a + b) - digamma(a + b + ux)
        g_r = (np.dot(w, (digamma(r + ux) - digamma(r) + np.log(alpha))[self.ix]) - np.dot(w * q, lu)
               - np.dot(wp, lv))
        g_alpha = r / alpha * w.sum() - np.dot(w * q, rx / np.exp(lu)) - np.dot(wp, rx / np.exp(lv))
        wx = np.bincount(self.ix, weights=w, minlength=len(ux))
        g_a = np.dot(wx, dab) + wp.sum() / a
        with np.errstate(divide="ignore", invalid="ignore"):
            inv_b = np.where(ux > 0, 1.0 / np.where(ux > 0, b + ux - 1, 1.0), 0.0)[self.ix]
        g_b = np.dot(wx, dab + digamma(b + ux) - digamma(b)) - np.dot(wp, inv_b)
        out = (ll, np.array([g_r, g_alpha, g_a, g_b]))
        self._last = (key, out)
        return out


def fit(x, tx, T, weights=None, start=None) -> FitResult:
    """Fit BG/NBD by maximum likelihood.

    Parameters
    ----------
    x, tx, T : array-like
        Distinct combinations (or one row per customer).
    weights : array-like, optional
        Customers per row.
    start : sequence of float, optional
        Starting (r, alpha, a, b); default (1, mean T, 1, 1).

    Returns
    -------
    FitResult

    Raises
    ------
    FitError
    """
    x, tx, T = (np.asarray(v, dtype="float64") for v in (x, tx, T))
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype="float64")
    n = float(w.sum())
    if start is None:
        start = np.array([1.0, max(float(np.dot(w, T) / n), 1e-3), 1.0, 1.0])
    prep = _Prepared(x, tx, T, w)
    return fit_by_lbfgs(lambda p: prep.both(p)[0], lambda p: prep.both(p)[1],
                        np.asarray(start, dtype="float64"), n, PARAMS, len(x), "purchase (BG/NBD)")


def p_alive(params, x, tx, T) -> np.ndarray:
    """Probability that a customer is alive at T (eq. 13); 1 for customers without a repeat purchase.

    Parameters
    ----------
    params : sequence of float
    x, tx, T : array-like

    Returns
    -------
    numpy.ndarray
    """
    r, alpha, a, b = params
    x, lu, lv, rx, a3, a4, pos = _terms(params, x, tx, T)
    return np.where(pos, expit(a3 - a4), 1.0)


def tail_factor(params, t, x, T) -> np.ndarray:
    """((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t)), the part of eq. 10 that needs
    only (x, T): expected purchases are (a+b+x-1)/(a-1) (1 - this) P(alive).

    Parameters
    ----------
    params : sequence of float
    t : float
    x, T : array-like

    Returns
    -------
    numpy.ndarray
    """
    r, alpha, a, b = params
    x = np.asarray(x, dtype="float64")
    T = np.asarray(T, dtype="float64")
    z = t / (alpha + T + t)
    return np.exp((r + x) * np.log((alpha + T) / (alpha + T + t))) * hyp2f1(r + x, b + x, a + b + x - 1, z)


def expected_purchases(params, t, x, tx, T) -> np.ndarray:
    """Expected purchases in the next ``t`` time units given (x, t_x, T) (eq. 10).

    Parameters
    ----------
    params : sequence of float
    t : float or array-like
    x, tx, T : array-like

    Returns
    -------
    numpy.ndarray
    """
    r, alpha, a, b = params
    x = np.asarray(x, dtype="float64")
    num = (a + b + x - 1) / (a - 1) * (1 - tail_factor(params, t, x, T))
    return num * p_alive(params, x, tx, T)


def unconditional_purchases(params, t) -> np.ndarray:
    """Expected repeat purchases of a new customer in (0, t] (eq. 9).

    Parameters
    ----------
    params : sequence of float
    t : float or array-like

    Returns
    -------
    numpy.ndarray
    """
    r, alpha, a, b = params
    t = np.asarray(t, dtype="float64")
    z = t / (alpha + t)
    return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, z))
