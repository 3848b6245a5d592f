"""What the pages show about a model on its data: the Analysis bundle and how it is built."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core import profiles
from core.model import SegmentationModel
from core.pipeline import Prepared
from core.projection import Projection, pca
from core.selection import silhouette_samples

__all__ = ["Analysis", "build_analysis", "scaled", "profile_tables"]


@dataclass
class Analysis:
    """Everything the pages show about the active model on its data."""

    version: str
    fingerprint: str
    source: str
    k: int
    features: list
    frame: pd.DataFrame
    meta: dict
    sizes: pd.DataFrame
    zscores: pd.DataFrame
    stats: pd.DataFrame
    product_mix: pd.DataFrame
    channel_mix: pd.DataFrame
    campaigns: pd.DataFrame
    economics: pd.DataFrame
    lift: pd.DataFrame
    projection: Projection
    coords: np.ndarray
    centroid_coords: np.ndarray
    silhouette: np.ndarray
    silhouette_rows: np.ndarray
    scaler_mean: np.ndarray
    scaler_scale: np.ndarray
    personas: list
    load_info: dict = field(default_factory=dict)
    cleaning: dict = field(default_factory=dict)

    @property
    def labels(self) -> np.ndarray:
        """Segment of every customer."""
        return self.frame["segment"].to_numpy()


def profile_tables(analysis: Analysis, names: list[str]) -> pd.DataFrame:
    """Sizes, means/medians, z-scores, product and channel mix, campaign rates and economics in one frame.

    Rows are (table, measure); columns are the segments ("i · name"), so the file reads like the page.
    """
    k = analysis.k
    parts = [("size", analysis.sizes)]
    stats = analysis.stats
    for stat in ("mean", "median"):
        cols = [c for c in stats.columns if c[1] == stat]
        parts.append((stat, stats[cols].set_axis([c[0] for c in cols], axis=1)))
    parts += [("z-score", analysis.zscores), ("product mix (share of spend)", analysis.product_mix),
              ("channel mix (share of purchases)", analysis.channel_mix)]
    camp = analysis.campaigns
    if len(camp):
        wide = {f"{c} {m}": camp[camp["campaign"] == c].set_index("segment")[col]
                for c in camp["campaign"].unique()
                for m, col in (("rate", "rate"), ("95% low", "low"), ("95% high", "high"))}
        parts.append(("campaign acceptance", pd.DataFrame(wide)))
    parts.append(("campaign economics (like the last campaign)", analysis.economics))
    rows = []
    for table, frame in parts:
        frame = frame.reindex(range(k))
        for measure in frame.columns:
            rows.append({"table": table, "measure": str(measure),
                         **{f"{i} · {names[i]}": frame.loc[i, measure] for i in range(k)}})
    out = pd.DataFrame(rows)
    value_cols = out.columns[2:]
    out[value_cols] = out[value_cols].astype(float).round(6)
    return out


def scaled(analysis: Analysis) -> np.ndarray:
    """The analysis' customers in the model's scaled feature space."""
    X = analysis.frame[analysis.features].to_numpy(dtype=float)
    return (X - analysis.scaler_mean) / analysis.scaler_scale


def build_analysis(model: SegmentationModel, meta: dict, prepared: Prepared) -> Analysis:
    """Score the data with the model and compute every profile, the PCA and the silhouettes."""
    frame = prepared.frame
    scores = model.score(frame)
    frame = frame.assign(segment=scores["segment"].to_numpy(), confidence=scores["confidence"].to_numpy(),
                         typicality=scores["typicality"].to_numpy())
    labels = frame["segment"].to_numpy()
    k = model.k
    Z = model.transform(frame)
    projection = pca(Z, 3, features=model.features, seed=model.seed)
    sil, rows = silhouette_samples(Z, labels, seed=model.seed)
    return Analysis(
        version=meta["version"], fingerprint=prepared.fingerprint, source=prepared.source, k=k,
        features=list(model.features), frame=frame, meta=meta,
        sizes=profiles.sizes(labels, k), zscores=profiles.zscores(frame, labels).reindex(range(k)).fillna(0.0),
        stats=profiles.summary_stats(frame, labels, profiles.PROFILE_COLUMNS),
        product_mix=profiles.product_mix(frame, labels).reindex(range(k)).fillna(0.0),
        channel_mix=profiles.channel_mix(frame, labels).reindex(range(k)).fillna(0.0),
        campaigns=profiles.campaign_rates(frame, labels), economics=profiles.economics(frame, labels).reindex(range(k)),
        lift=profiles.product_lift(frame, labels).reindex(range(k)).fillna(0.0),
        projection=projection, coords=projection.transform(Z),
        centroid_coords=projection.transform(model.centroids_),
        silhouette=sil, silhouette_rows=rows, scaler_mean=model.mean_.copy(), scaler_scale=model.scale_.copy(),
        personas=profiles.personas(frame, labels, k),
        load_info=prepared.info.to_dict(), cleaning=prepared.report.to_dict(),
    )

