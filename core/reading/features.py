"""Engineered features: pure functions from a cleaned frame to new columns.

``Customer_since`` counts days before the *latest enrolment date in the file*,
not before today, so the same file always gives the same features.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.reading import schema

__all__ = ["DEFAULT_REFERENCE_YEAR", "add_features", "SHARE_COLUMNS", "CHANNEL_COLUMNS"]

DEFAULT_REFERENCE_YEAR = 2026

SHARE_COLUMNS = [f"Share_{c[3:]}" for c in schema.SPEND_COLUMNS]
CHANNEL_COLUMNS = ["Channel_Web", "Channel_Catalog", "Channel_Store"]


def add_features(frame: pd.DataFrame, *, reference_year: int = DEFAULT_REFERENCE_YEAR,
                 reference_date: pd.Timestamp | None = None) -> pd.DataFrame:
    """Return a copy of ``frame`` with every engineered column added.

    Parameters
    ----------
    frame : pandas.DataFrame
        Cleaned customers with canonical column names.
    reference_year : int, default 2026
        Age = reference_year - Year_Birth (the original project used 2026).
    reference_date : pandas.Timestamp, optional
        Date ``Customer_since`` counts back from; defaults to the latest
        ``Dt_Customer`` in ``frame``.

    Returns
    -------
    pandas.DataFrame
        Adds ``Age``, ``Total_Children``, ``Total_Spending``, ``Customer_since``,
        ``Total_Purchases``, ``Campaigns_Accepted``, ``Share_<category>`` (share
        of spend, 0-1) and ``Channel_Web/Catalog/Store`` (share of purchases).
    """
    df = frame.copy()
    df["Age"] = reference_year - df["Year_Birth"]
    df["Total_Children"] = df["Kidhome"] + df["Teenhome"]
    spend = df[schema.SPEND_COLUMNS].sum(axis=1)
    df["Total_Spending"] = spend
    enrolled = pd.to_datetime(df["Dt_Customer"])
    if reference_date is None:
        reference_date = enrolled.max()
    df["Customer_since"] = (reference_date - enrolled).dt.days.astype(float)
    channels = ["NumWebPurchases", "NumCatalogPurchases", "NumStorePurchases"]
    df["Total_Purchases"] = df[schema.PURCHASE_COLUMNS].sum(axis=1)
    accepted = [c for c in schema.CAMPAIGN_COLUMNS if c != "Response" and c in df]
    df["Campaigns_Accepted"] = df[accepted].sum(axis=1) if accepted else 0.0
    # Shares are undefined for a customer who spent or bought nothing; 0 keeps means honest
    # (such customers contribute nothing to any category) without NaN spreading into profiles.
    safe_spend = spend.replace(0, np.nan)
    for column, share in zip(schema.SPEND_COLUMNS, SHARE_COLUMNS):
        df[share] = (df[column] / safe_spend).fillna(0.0)
    bought = df[channels].sum(axis=1).replace(0, np.nan)
    for column, share in zip(channels, CHANNEL_COLUMNS):
        df[share] = (df[column] / bought).fillna(0.0)
    return df
