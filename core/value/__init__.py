"""Customer value: BG/NBD purchases, Gamma-Gamma spend and discounted CLV from a transaction log.

``statistics``
    stream a log into per-customer frequency, recency, T and repeat value (and a holdout).
``bgnbd``, ``gammagamma``
    likelihoods, gradients, maximum-likelihood fits with standard errors, and the
    per-customer formulas (probability alive, expected purchases, expected spend).
``clv``
    discounted CLV per customer and segment, bootstrap intervals, the holdout check.
"""
from __future__ import annotations

from core.value.bgnbd import FitError, FitResult
from core.value.clv import ValueResult, compute_value, customer_value, default_horizon, discount_per_unit, values_at
from core.value.statistics import (LOG_NEEDED, UNIT_DAYS, PurchaseDays, ValueData, ValueInputError, collapse,
                         read_purchase_days, value_statistics)

__all__ = ["FitError", "FitResult", "ValueResult", "compute_value", "customer_value", "default_horizon",
           "discount_per_unit", "values_at", "LOG_NEEDED", "UNIT_DAYS", "PurchaseDays", "ValueData", "ValueInputError",
           "collapse", "read_purchase_days", "value_statistics"]
