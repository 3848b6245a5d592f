"""SegmentLens core: the customer-segmentation engine (pandas, numpy; no Dash).

The names below are the public API that notebooks and scripts use; each is
re-exported from its module on first use, so ``import core`` (and
``python -m core --help``) stays as fast as before: nothing heavy is imported
until a name is touched. Every function carries its own numpydoc docstring
(``help(core.prepare)``).

Data
----
resolve_data_path
    The customer file to use: explicit path, ``SEGMENTLENS_DATA``,
    data/marketing_campaign.csv, else the synthetic sample.
prepare
    Load, clean and engineer features in one call -> ``Prepared`` (frame,
    load info, cleaning report, fingerprint, source).
load_customers
    Read a customer file as users have it -> ``LoadResult`` (frame, info).
clean
    Apply every cleaning rule -> (cleaned frame, ``CleaningReport``).
add_features
    Age, Total_Children, Total_Spending, Customer_since, shares of spend and
    of purchases.
RULES
    Cleaning rule name -> (action, description), in the order they run.
explore
    Load and clean a file keeping the raw rows: which rule dropped or changed
    which row (``rule_rows``), the rules' cut-offs, for an EDA.
missing_values, outlier_summary, correlations, enrolments
    Empty cells per column, Tukey's fences per column, Pearson correlations,
    customers enrolled per month.
DEFAULT_FEATURES, MODEL_FEATURES, FEATURE_LABELS
    The seven features of the original project, every feature a model may
    use, and their labels for people.

Models
------
SegmentationModel
    Standard scaling + k-means (fit, predict, score, ``to_sklearn``).
fit_model
    Fit a ``SegmentationModel`` on a ``Prepared`` file.
standardise
    Scale columns as scikit-learn's StandardScaler does.
train
    Prepare, fit, measure and register a new model version.
Registry
    Model versions on disk: load, save, activate, roll back.
export_sklearn
    Write a model as the original project's ``kmeans_model.pkl`` and
    ``scaler.pkl`` (joblib) plus ``features.json``.

Choosing k and judging segments
-------------------------------
sweep
    Inertia, silhouette, Calinski-Harabasz, Davies-Bouldin (and bootstrap
    stability) per k, with the recommended k and its reason.
silhouette_samples
    Per-customer silhouette, bounded memory.
bootstrap_stability
    Hennig's bootstrap Jaccard per segment and ARI per refit.
stability_per_k
    Mean adjusted Rand index of bootstrap refits for each k.

Describing segments
-------------------
profiles
    The module: sizes, summary_stats, zscores, product_mix, channel_mix,
    campaign_rates, economics, product_lift, compare_segments.
personas
    A name, description and traits for every segment.
pca
    Principal components of the scaled features, with loadings.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Public name -> module it lives in (imported on first access: see __getattr__).
_EXPORTS = {
    "resolve_data_path": "versions.pipeline", "prepare": "versions.pipeline", "Prepared": "versions.pipeline", "fit_model": "versions.pipeline",
    "train": "versions.pipeline", "parse_features": "versions.pipeline", "SAMPLE_PATH": "versions.pipeline", "PROJECT_ROOT": "versions.pipeline",
    "load_customers": "reading.loading", "DataFileError": "reading.loading",
    "clean": "reading.cleaning", "CleaningReport": "reading.cleaning", "RULES": "reading.cleaning",
    "add_features": "reading.features",
    "DEFAULT_FEATURES": "reading.schema", "MODEL_FEATURES": "reading.schema", "FEATURE_LABELS": "reading.schema",
    "SegmentationModel": "fitting.model", "standardise": "fitting.model",
    "Registry": "versions.registry", "RegistryError": "versions.registry",
    "export_sklearn": "versions.seed_export",
    "explore": "insight.eda", "rule_rows": "insight.eda", "outlier_summary": "insight.eda", "missing_values": "insight.eda",
    "correlations": "insight.eda", "enrolments": "insight.eda",
    "sweep": "fitting.selection", "silhouette_samples": "fitting.selection", "SweepResult": "fitting.selection",
    "bootstrap_stability": "fitting.stability", "stability_per_k": "fitting.stability",
    "personas": "insight.profiles",
    "pca": "fitting.projection",
}
_MODULES = {"profiles": "insight.profiles"}

__all__ = sorted([*_EXPORTS, *_MODULES])


def __getattr__(name: str):
    """Import a public name from its module on first access (PEP 562).

    Parameters
    ----------
    name : str
        A name of ``__all__``.

    Returns
    -------
    object
        The function, class or constant.

    Raises
    ------
    AttributeError
        ``name`` is not part of the public API.
    """
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{_MODULES[name]}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    """Public names and the module's own attributes, for tab completion."""
    return sorted({*globals(), *__all__})
