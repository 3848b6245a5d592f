"""Seed-compatible export: a registered model as the original project's scikit-learn pickles.

The original project (the "seed") saved ``models/kmeans_model.pkl`` (a fitted
``sklearn.cluster.KMeans``) and ``models/scaler.pkl`` (a fitted
``sklearn.preprocessing.StandardScaler``) with joblib. Users of that project
look for those two files; :func:`export_sklearn` writes them from any
registered version, plus ``features.json`` naming the column order the scaler
expects, so that ``kmeans.predict(scaler.transform(X[features]))`` gives the
same segments as ``python -m core score``.

Pickle files run code when they are loaded: SegmentLens writes them for other
programs and never reads them back (its own registry verifies a checksum before
every load).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from core.versions.naming import segment_names

__all__ = ["SEED_FILES", "PICKLE_WARNING", "export_sklearn"]

SEED_FILES = ("kmeans_model.pkl", "scaler.pkl", "features.json")

PICKLE_WARNING = (
    "warning: kmeans_model.pkl and scaler.pkl are pickle files, and loading a pickle runs code: "
    "load them only from a folder you trust. SegmentLens writes them for other programs and its "
    "registry never loads them."
)


def export_sklearn(model, directory: str | os.PathLike, *, meta: dict | None = None) -> list[Path]:
    """Write a fitted model as the seed's scikit-learn files.

    Parameters
    ----------
    model : core.fitting.model.SegmentationModel
        A fitted model (e.g. from ``Registry(...).load(version)``).
    directory : path-like
        Existing or new folder; the three files in it are replaced.
    meta : dict, optional
        The version's registry metadata; its ``version``, ``segment_names``
        and ``data_fingerprint`` are copied into ``features.json``.

    Returns
    -------
    list of pathlib.Path
        ``kmeans_model.pkl`` (fitted ``KMeans``), ``scaler.pkl`` (fitted
        ``StandardScaler``) and ``features.json`` (``features``: the column
        order, plus ``k``, ``version``, ``segment_names``, library versions and
        how to use the files).
    """
    import joblib  # deferred: scikit-learn and joblib cost about a second to import
    import sklearn

    meta = meta or {}
    pipeline = model.to_sklearn()
    scaler, kmeans = pipeline.named_steps["scaler"], pipeline.named_steps["kmeans"]
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in SEED_FILES]
    joblib.dump(kmeans, paths[0])
    joblib.dump(scaler, paths[1])
    info = {
        "features": list(model.features),
        "k": int(model.k),
        "version": meta.get("version"),
        "segment_names": segment_names(meta, model.k),
        "data_fingerprint": meta.get("data_fingerprint"),
        "scikit_learn": sklearn.__version__,
        "joblib": joblib.__version__,
        "usage": "kmeans.predict(scaler.transform(frame[features])) with the engineered features "
                 "(Age, Total_Spending, ...) of a cleaned customer file",
    }
    paths[2].write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return paths
