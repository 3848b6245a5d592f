"""Column names, accepted header spellings, types and bounds of every field.

The canonical form of a customer file is the public "Customer Personality
Analysis" file: 29 tab-separated columns in the order of ``CANONICAL_COLUMNS``.
Everything else in ``core`` refers to columns through the names defined here.
"""
from __future__ import annotations

import re

import numpy as np

__all__ = [
    "CANONICAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "OPTIONAL_COLUMNS",
    "INTEGER_COLUMNS",
    "SPEND_COLUMNS",
    "PURCHASE_COLUMNS",
    "CAMPAIGN_COLUMNS",
    "CATEGORY_COLUMNS",
    "MODEL_FEATURES",
    "DEFAULT_FEATURES",
    "ENGINEERED_FEATURES",
    "BOUNDS",
    "FEATURE_LABELS",
    "ALIASES",
    "normalise_header",
    "canonical_name",
    "LOG_SUFFIX",
    "LOG_NOTE",
    "log_scale_note",
    "unit_field",
    "is_logged",
    "to_units",
    "from_units",
    "unit_label",
]

CANONICAL_COLUMNS = [
    "ID", "Year_Birth", "Education", "Marital_Status", "Income", "Kidhome", "Teenhome",
    "Dt_Customer", "Recency", "MntWines", "MntFruits", "MntMeatProducts", "MntFishProducts",
    "MntSweetProducts", "MntGoldProds", "NumDealsPurchases", "NumWebPurchases",
    "NumCatalogPurchases", "NumStorePurchases", "NumWebVisitsMonth", "AcceptedCmp3",
    "AcceptedCmp4", "AcceptedCmp5", "AcceptedCmp1", "AcceptedCmp2", "Complain",
    "Z_CostContact", "Z_Revenue", "Response",
]

SPEND_COLUMNS = [
    "MntWines", "MntFruits", "MntMeatProducts", "MntFishProducts", "MntSweetProducts", "MntGoldProds",
]
PURCHASE_COLUMNS = [
    "NumDealsPurchases", "NumWebPurchases", "NumCatalogPurchases", "NumStorePurchases",
]
CAMPAIGN_COLUMNS = [
    "AcceptedCmp1", "AcceptedCmp2", "AcceptedCmp3", "AcceptedCmp4", "AcceptedCmp5", "Response",
]
CATEGORY_COLUMNS = ["Education", "Marital_Status"]

# Columns a file may lack: campaign flags, complaint flag and the campaign cost constants.
OPTIONAL_COLUMNS = CAMPAIGN_COLUMNS + ["Complain", "Z_CostContact", "Z_Revenue"]
REQUIRED_COLUMNS = [c for c in CANONICAL_COLUMNS if c not in OPTIONAL_COLUMNS]

# Integer-valued numeric columns (Income is a float: it may carry cents).
INTEGER_COLUMNS = [
    c for c in CANONICAL_COLUMNS
    if c not in ("Education", "Marital_Status", "Dt_Customer", "Income")
]

ENGINEERED_FEATURES = ["Age", "Total_Children", "Total_Spending", "Customer_since"]

# The original project's seven clustering features, in its order.
DEFAULT_FEATURES = [
    "Age", "Income", "Total_Spending", "NumWebPurchases", "NumStorePurchases",
    "NumWebVisitsMonth", "Recency",
]

# Every column a user may choose as a clustering feature (numeric, one value per customer).
MODEL_FEATURES = DEFAULT_FEATURES + [
    "Total_Children", "Customer_since", "Kidhome", "Teenhome", "NumDealsPurchases",
    "NumCatalogPurchases", "Total_Purchases", "Campaigns_Accepted",
] + SPEND_COLUMNS

# Plausible range of each numeric field: (low, high), inclusive. None means open.
BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "ID": (0, None),
    "Year_Birth": (1900, 2015),
    "Income": (0, None),
    "Kidhome": (0, 10),
    "Teenhome": (0, 10),
    "Recency": (0, 3650),
    **{c: (0, None) for c in SPEND_COLUMNS},
    **{c: (0, None) for c in PURCHASE_COLUMNS},
    "NumWebVisitsMonth": (0, 1000),
    **{c: (0, 1) for c in CAMPAIGN_COLUMNS},
    "Complain": (0, 1),
    "Z_CostContact": (0, None),
    "Z_Revenue": (0, None),
    # Engineered features, used for the predictor's form and API validation.
    "Age": (16, 110),
    "Total_Children": (0, 20),
    "Total_Spending": (0, None),
    "Customer_since": (0, None),
}

# The one source of readable column names (charts, tables, filters, forms, API descriptions): people
# read "Web purchases", not "NumWebPurchases". Every column a page or export can show has an entry.
FEATURE_LABELS = {
    "ID": "Customer ID",
    "Year_Birth": "Year of birth",
    "Education": "Education",
    "Marital_Status": "Marital status",
    "Dt_Customer": "Enrolment date",
    "Age": "Age (years)",
    "Income": "Yearly household income",
    "Total_Spending": "Total spend, 2 years",
    "NumWebPurchases": "Web purchases",
    "NumStorePurchases": "Store purchases",
    "NumCatalogPurchases": "Catalogue purchases",
    "NumDealsPurchases": "Purchases with a discount",
    "NumWebVisitsMonth": "Web visits / month",
    "Recency": "Days since last purchase",
    "Total_Children": "Children at home",
    "Customer_since": "Days as a customer",
    "Kidhome": "Small children at home",
    "Teenhome": "Teenagers at home",
    "Total_Purchases": "Total purchases",
    "Campaigns_Accepted": "Campaigns accepted",
    "MntWines": "Spend on wine",
    "MntFruits": "Spend on fruit",
    "MntMeatProducts": "Spend on meat",
    "MntFishProducts": "Spend on fish",
    "MntSweetProducts": "Spend on sweets",
    "MntGoldProds": "Spend on gold",
    "AcceptedCmp1": "Accepted 1st campaign",
    "AcceptedCmp2": "Accepted 2nd campaign",
    "AcceptedCmp3": "Accepted 3rd campaign",
    "AcceptedCmp4": "Accepted 4th campaign",
    "AcceptedCmp5": "Accepted 5th campaign",
    "Response": "Accepted last campaign",
    "Complain": "Complained (last 2 years)",
    "Z_CostContact": "Cost per contact",
    "Z_Revenue": "Revenue per responder",
    "segment": "Segment",
    "segment_name": "Segment name",
    "confidence": "Confidence",
    # Customers derived from a transaction log (core.reading.transactions) and their RFM scores.
    "Frequency": "Orders",
    "Monetary": "Total spend",
    "Tenure": "Days since first purchase",
    "Avg_order_value": "Average order value",
    "Interpurchase_days": "Days between orders",
    "Returns_or_free": "Returns or free items",
    "Quantity": "Items bought",
    "First_purchase": "First purchase",
    "Last_purchase": "Last purchase",
    "R_score": "Recency score (5 = most recent)",
    "F_score": "Frequency score (5 = most orders)",
    "M_score": "Monetary score (5 = highest spend)",
    "RFM_score": "RFM score",
    "RFM_group": "RFM group",
    # A feature clustered on a log scale reads as its column (issue 30): the page says the scale once.
    "Frequency_log": "Orders",
    "Monetary_log": "Total spend",
    "Avg_order_value_log": "Average order value",
    "Income_log": "Yearly household income",
    "Total_Spending_log": "Total spend, 2 years",
}


# A feature clustered on a log scale is the column's name plus this suffix (``Monetary_log``); people
# read and type the column itself, in the data's own units (orders, money, days).
LOG_SUFFIX = "_log"
LOG_NOTE = "clustered on a log scale"


def is_logged(feature: str) -> bool:
    """Whether a model feature is a column clustered on its (signed) log: ``Monetary_log``.

    Parameters
    ----------
    feature : str

    Returns
    -------
    bool
    """
    return str(feature).endswith(LOG_SUFFIX) and len(str(feature)) > len(LOG_SUFFIX)


def unit_field(feature: str) -> str:
    """The field a person reads and types for a model feature: the column itself for a logged feature.

    Parameters
    ----------
    feature : str
        ``"Monetary_log"`` gives ``"Monetary"``; any other name is returned as is.

    Returns
    -------
    str
    """
    return str(feature)[:-len(LOG_SUFFIX)] if is_logged(feature) else str(feature)


def to_units(feature: str, values):
    """Model values of a feature in the data's own units (the inverse of the signed log for a logged one).

    Parameters
    ----------
    feature : str
    values : float or array-like

    Returns
    -------
    float or numpy.ndarray
        Same shape as ``values``; unchanged for a feature that is not logged.
    """
    if not is_logged(feature):
        return values
    v = np.asarray(values, dtype=float)
    out = np.sign(v) * np.expm1(np.abs(v))
    return float(out) if out.ndim == 0 else out


def from_units(feature: str, values):
    """Values typed in the data's own units as the model's feature (the signed log for a logged one).

    Parameters
    ----------
    feature : str
    values : float or array-like

    Returns
    -------
    float or numpy.ndarray
    """
    if not is_logged(feature):
        return values
    v = np.asarray(values, dtype=float)
    out = np.sign(v) * np.log1p(np.abs(v))
    return float(out) if out.ndim == 0 else out


def unit_label(feature: str) -> str:
    """Readable name of a feature in the data's own units ("Total spend" for ``Monetary_log``).

    Parameters
    ----------
    feature : str

    Returns
    -------
    str
    """
    name = unit_field(feature)
    return FEATURE_LABELS.get(name, name.replace("_", " "))


def log_scale_note(features) -> str:
    """The one sentence a page says about its features clustered on a log scale ("" when none is).

    Parameters
    ----------
    features : iterable of str
        Model features.

    Returns
    -------
    str
        ``"Orders and Total spend are clustered on a log scale."`` or ``""``.
    """
    logged = list(dict.fromkeys(unit_label(f) for f in features if is_logged(f)))
    if not logged:
        return ""
    return f"{' and '.join(logged)} {'is' if len(logged) == 1 else 'are'} {LOG_NOTE}."


def normalise_header(name: str) -> str:
    """Return the comparison key of a header: lower case, letters and digits only.

    Parameters
    ----------
    name : str
        A header as written in a file (may carry spaces, a BOM, underscores).

    Returns
    -------
    str
        ``"Year_Birth "`` and ``"YearBirth"`` both give ``"yearbirth"``.
    """
    return re.sub(r"[^0-9a-z]", "", str(name).replace("\ufeff", "").lower())


# Extra spellings seen in real copies, beyond the ones normalise_header already folds
# (case, underscores, spaces). Keys are normalised.
_EXTRA_SPELLINGS = {
    "mntgoldproducts": "MntGoldProds",
    "mntgold": "MntGoldProds",
    "mntwine": "MntWines",
    "mntmeat": "MntMeatProducts",
    "mntfish": "MntFishProducts",
    "mntsweets": "MntSweetProducts",
    "mntsweet": "MntSweetProducts",
    "mntfruit": "MntFruits",
    "customerid": "ID",
    "birthyear": "Year_Birth",
    "yearofbirth": "Year_Birth",
    "maritalstatus": "Marital_Status",
    "dtcustomer": "Dt_Customer",
    "datecustomer": "Dt_Customer",
    "numwebvisitspermonth": "NumWebVisitsMonth",
    "zcostcontact": "Z_CostContact",
    "zrevenue": "Z_Revenue",
}

ALIASES: dict[str, str] = {normalise_header(c): c for c in CANONICAL_COLUMNS}
ALIASES.update(_EXTRA_SPELLINGS)


def canonical_name(header: str) -> str | None:
    """Map a header as written in a file to its canonical column name.

    Parameters
    ----------
    header : str
        The header text.

    Returns
    -------
    str or None
        The canonical name, or None when the header is not a known column.
    """
    return ALIASES.get(normalise_header(header))
