"""Small data builders shared by the unit tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.reading import schema


def planted_frame(n_per: int = 150, centres=None, spread: float = 0.3, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Customers with well-separated planted groups on the seven default features, plus the truth."""
    rng = np.random.default_rng(seed)
    if centres is None:
        centres = np.array([[-3, -3, -3, 0, 0, 0, 0], [3, 3, 3, 0, 0, 0, 0], [0, 0, 0, 3, -3, 3, 0]], float)
    rows, truth = [], []
    for g, c in enumerate(centres):
        rows.append(c + spread * rng.standard_normal((n_per, len(c))))
        truth += [g] * n_per
    X = np.vstack(rows)
    # Put the groups on realistic scales: z-like values -> feature units.
    scale = np.array([10, 20000, 400, 2, 2, 2, 20], float)
    loc = np.array([55, 52000, 600, 4, 6, 5, 50], float)
    frame = pd.DataFrame(X * scale + loc, columns=schema.DEFAULT_FEATURES)
    return frame, np.array(truth)


def raw_frame(n: int = 60, seed: int = 1) -> pd.DataFrame:
    """A small frame in the loader's output form (canonical columns, parsed types)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "ID": np.arange(1000, 1000 + n),
        "Year_Birth": rng.integers(1950, 1995, n).astype(float),
        "Education": rng.choice(["Graduation", "PhD", "Master", "Basic", "2n Cycle"], n).astype(object),
        "Marital_Status": rng.choice(["Single", "Married", "Together"], n).astype(object),
        "Income": rng.normal(50000, 15000, n).round(),
        "Kidhome": rng.integers(0, 3, n).astype(float),
        "Teenhome": rng.integers(0, 3, n).astype(float),
        "Dt_Customer": pd.to_datetime("2012-08-01") + pd.to_timedelta(rng.integers(0, 600, n), unit="D"),
        "Recency": rng.integers(0, 100, n).astype(float),
    })
    for c in schema.SPEND_COLUMNS:
        df[c] = rng.integers(0, 500, n).astype(float)
    for c in schema.PURCHASE_COLUMNS + ["NumWebVisitsMonth"]:
        df[c] = rng.integers(0, 12, n).astype(float)
    for c in schema.CAMPAIGN_COLUMNS + ["Complain"]:
        df[c] = (rng.random(n) < 0.15).astype(float)
    df["Z_CostContact"] = 3.0
    df["Z_Revenue"] = 11.0
    return df[[c for c in schema.CANONICAL_COLUMNS]]


def transaction_log(folder: Path, *, customer_column: str = "customer", quantity: bool = False) -> Path:
    """A transaction log ``folder/orders.txt``: orders of 300 customers (2-9 each) over 18 months.

    Whitespace-separated with a header, yyyymmdd dates, amounts with two decimals. ``customer_column`` names
    the first column; ``quantity`` adds a quantity column (1-4) before the amount. Seeded: the same file on
    every call with the same arguments.
    """
    rng = np.random.default_rng(18)
    rows = []
    for customer in range(1, 301):
        first = pd.Timestamp("2023-01-01") + pd.Timedelta(days=int(rng.integers(0, 200)))
        for _ in range(int(rng.integers(2, 10))):
            day = first + pd.Timedelta(days=int(rng.integers(0, 340)))
            count = f" {int(rng.integers(1, 5))}" if quantity else ""
            rows.append(f"{customer:05d} {day:%Y%m%d}{count} {rng.gamma(2.0, 25.0):.2f}")
    header = f"{customer_column} date{' quantity' if quantity else ''} amount"
    path = folder / "orders.txt"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path
