"""Segment identity and the dashboard retrain's checks and comparison (the recipe itself is core.versions.pipeline).

:func:`identity` renumbers a freshly fitted model's segments to follow a reference (:class:`Reference`,
by default the active version): Hungarian matching of centroids in the reference's scaled units when
the features are the same (:func:`core.fitting.matching.match_centroids`), else of shared members. Matched
segments keep the reference's names (:func:`core.fitting.matching.carry_names`), so names and colours follow
the segment, not the label number. :func:`compare_candidate` compares a candidate with the reference
(segment matching, adjusted Rand on common customers, share changes, renamed personas, drift);
:func:`sweep_summary` and :func:`stability_summary` keep a measurement's essentials with a version.
Upload checks (:func:`check_upload`, :func:`preview`) and the retrain's named steps (:data:`STEPS`,
:class:`RetrainCancelled`) live here too; :func:`core.versions.pipeline.make_version` runs them all.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np
import pandas as pd

from core.reading.loading import DataFileError
from core.reading.mapping import user_columns
from core.fitting.matching import carry_names, match_centroids, match_members, numbers_from_match, renumber
from core.fitting.model import DEFAULT_SEED, SegmentationModel
from core.versions.naming import segment_names
from core.fitting.stability import adjusted_rand

__all__ = [
    "STEPS", "STEP_LABELS", "UPLOAD_EXTENSIONS", "DEFAULT_MAX_UPLOAD_MB", "PREVIEW_COLUMNS",
    "RetrainCancelled", "Reference", "parse_upload_limit", "check_upload", "preview",
    "identity", "suggested_names", "adopt_suggested_names", "compare_candidate", "COMMON_KEYS", "stability_summary",
    "sweep_summary",
]

STEPS = ("load", "clean", "features", "fit", "profiles", "sweep", "stability", "compare", "save")
STEP_LABELS = {
    "load": "reading the file", "clean": "cleaning rows", "features": "computing features",
    "fit": "fitting segments", "sweep": "comparing k", "profiles": "profiles and personas",
    "stability": "bootstrap stability", "compare": "comparing with the active model",
    "save": "saving the new version", "done": "done",
}
UPLOAD_EXTENSIONS = (".csv", ".tsv", ".txt")
DEFAULT_MAX_UPLOAD_MB = 50.0
# Columns shown in an upload's preview: the customer's ID and how they buy, none of who they are
# (birth year, income, education, marital status, children stay off the screen).
PREVIEW_COLUMNS = ("ID", "Dt_Customer", "Recency", "Total_Spending", "NumWebPurchases", "NumCatalogPurchases",
                   "NumStorePurchases", "NumWebVisitsMonth", "Response")
# Formats people try to upload instead of a text table, with what to do about it.
_SAVE_AS_HINT = {
    ".xlsx": "in Excel use File > Save As > CSV", ".xls": "in Excel use File > Save As > CSV",
    ".ods": "in LibreOffice use File > Save As > Text CSV", ".numbers": "in Numbers use File > Export To > CSV",
    ".zip": "unzip it first", ".gz": "decompress it first", ".json": "export the table as CSV",
    ".parquet": "export the table as CSV",
}

Progress = Callable[[int, int, str], None]


class RetrainCancelled(Exception):
    """A retrain stopped on request before a step; nothing was saved."""

    def __init__(self, step: str):
        self.step = step
        super().__init__(f"retraining was cancelled before the step {step!r}; nothing was saved")


@dataclass
class Reference:
    """The model a candidate is compared with and takes its segment identity from (the active one).

    Parameters
    ----------
    model : SegmentationModel
    version : str
    names : list of str
        Its segments' current names (user renames included).
    frame : pandas.DataFrame, optional
        Its customers, prepared (cleaned, with features); needed for the comparison.
    generated : list of str, optional
        The persona names its own data gave its segments (to tell which personas changed).
    """

    model: SegmentationModel
    version: str
    names: list
    frame: pd.DataFrame | None = None
    generated: list | None = None


# ---------------------------------------------------------------------------- upload checks
def parse_upload_limit(text: str | None) -> int:
    """Upload limit in bytes from a number of megabytes (``SEGMENTLENS_MAX_UPLOAD_MB``).

    Parameters
    ----------
    text : str or None
        ``"50"``, ``"0.5"``; None or empty gives 50 MB.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        Not a positive number.
    """
    if text is None or not str(text).strip():
        return int(DEFAULT_MAX_UPLOAD_MB * 1024 * 1024)
    try:
        mb = float(str(text).strip())
    except ValueError:
        raise ValueError(f"SEGMENTLENS_MAX_UPLOAD_MB={text!r} is not a number of megabytes such as 50") from None
    if not np.isfinite(mb) or mb <= 0:
        raise ValueError(f"SEGMENTLENS_MAX_UPLOAD_MB={text!r} must be a positive number of megabytes")
    return int(mb * 1024 * 1024)


def _megabytes(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 100 * 1024 else f"{n / 1024:.0f} KB"


def check_upload(name: str | None, size: int, max_bytes: int) -> str:
    """Check an upload's name and size before its content is read.

    The name is only ever a display string: any folder part is dropped and it
    is never used to build a path.

    Parameters
    ----------
    name : str or None
        The file name the browser sent.
    size : int
        Bytes received.
    max_bytes : int

    Returns
    -------
    str
        The display name.

    Raises
    ------
    core.reading.loading.DataFileError
        Wrong type, empty or too large; the message says what to do.
    """
    shown = re.split(r"[\\/]", str(name or "").strip())[-1] or "upload"
    suffix = PurePath(shown).suffix.lower()
    if suffix not in UPLOAD_EXTENSIONS:
        hint = _SAVE_AS_HINT.get(suffix, "save the customer table as CSV or tab-separated text")
        kind = f"a {suffix} file" if suffix else "a file without an extension"
        raise DataFileError(f"{shown} is {kind}; upload the customer table as .csv, .tsv or .txt ({hint})")
    if size <= 0:
        raise DataFileError(f"{shown} is empty: expected a header line and customer rows")
    if size > max_bytes:
        raise DataFileError(f"{shown} is {_megabytes(size)}; the upload limit is {_megabytes(max_bytes)} "
                            "(SEGMENTLENS_MAX_UPLOAD_MB)")
    return shown


def preview(frame: pd.DataFrame, rows: int = 5) -> pd.DataFrame:
    """The first cleaned customers, showing only non-personal columns (:data:`PREVIEW_COLUMNS`).

    Parameters
    ----------
    frame : pandas.DataFrame
        Prepared customers.
    rows : int, default 5

    Returns
    -------
    pandas.DataFrame
        Dates as ``yyyy-mm-dd`` text; a customer table's columns under the user's own names.
    """
    out = frame[[c for c in PREVIEW_COLUMNS if c in frame]].head(rows).copy()
    if "Dt_Customer" in out:
        out["Dt_Customer"] = pd.to_datetime(out["Dt_Customer"]).dt.strftime("%Y-%m-%d")
    # A customer table's columns under the user's names (issue 30), not their canonical hidden copies.
    own = user_columns(frame)
    return out.rename(columns=own).loc[:, lambda f: ~f.columns.duplicated()].reset_index(drop=True)


# ---------------------------------------------------------------------------- identity
def _overlap_match(reference_labels: np.ndarray, candidate_labels: np.ndarray, k_ref: int, k_new: int) -> np.ndarray:
    """Match candidate segments to reference segments by shared customers (core.fitting.matching.match_members)."""
    return match_members(reference_labels, candidate_labels, k_ref, k_new)


def identity(model: SegmentationModel, frame: pd.DataFrame, reference: Reference | None) -> tuple[dict, str]:
    """Renumber a freshly fitted model's segments to follow the reference model's, in place.

    Parameters
    ----------
    model : SegmentationModel
        Fitted on ``frame`` (``labels_`` set).
    frame : pandas.DataFrame
        Its customers.
    reference : Reference or None

    Returns
    -------
    new_of_ref : dict
        Reference segment -> the candidate segment that now carries its identity.
    method : str
        ``"centroids"``, ``"shared customers"`` or ``"none"``.
    """
    if reference is None:
        return {}, "none"
    ref = reference.model
    # An Unassigned group (the last segment) is nobody's match: it stays last, under its own name.
    k_new = model.k - int(bool(getattr(model, "unassigned_", False)))
    k_ref = ref.k - int(bool(getattr(ref, "unassigned_", False)))
    if list(model.features) == list(ref.features):
        centres = (model.centroids_original().to_numpy()[:k_new] - ref.mean_) / ref.scale_
        match, method = match_centroids(ref.centroids_[:k_ref], centres), "centroids"
    else:
        ref_labels, labels = ref.predict(frame), model.labels_
        both = (ref_labels < k_ref) & (labels < k_new)
        match = _overlap_match(ref_labels[both], labels[both], k_ref, k_new)
        method = "shared customers"
    new_number = numbers_from_match(match, k_ref)
    if k_new < model.k:
        new_number = np.append(new_number, model.k - 1)
    renumber(model, new_number)
    return {int(match[j]): int(new_number[j]) for j in range(k_new) if match[j] >= 0}, method


def suggested_names(names: list, generated: list, reference_generated: list | None, new_of_ref: dict) -> list[dict]:
    """Segments whose persona changed with a refit: the name they carry and the name the new data suggests.

    Parameters
    ----------
    names : list of str
        The candidate's names (carried from the reference where matched).
    generated : list of str
        Persona names the new data gives the candidate's segments.
    reference_generated : list of str or None
        Persona names the reference's own data gave its segments (None: compare with ``names``).
    new_of_ref : dict
        Reference segment -> candidate segment, as :func:`identity` returns.

    Returns
    -------
    list of dict
        ``{"segment", "name", "suggested"}`` for each matched segment whose persona changed.
    """
    out = []
    for ref, new in sorted(new_of_ref.items(), key=lambda kv: kv[1]):
        was = reference_generated[ref] if reference_generated and ref < len(reference_generated) else names[new]
        if str(generated[new]) != str(was) and str(generated[new]) != str(names[new]):
            out.append({"segment": int(new), "name": str(names[new]), "suggested": str(generated[new])})
    return out


def adopt_suggested_names(meta: dict, segments=None) -> dict:
    """Metadata changes giving a version's segments whose persona changed the name its data suggests.

    Parameters
    ----------
    meta : dict
        The version's metadata (``segment_names`` and ``suggested_names`` and/or ``comparison``).
    segments : iterable of int, optional
        Only these segments (default: every segment with a suggestion).

    Returns
    -------
    dict
        ``segment_names`` (unique), ``suggested_names`` (now empty) and, when the version has one,
        ``comparison`` with the adopted names; for :meth:`core.versions.registry.Registry.update_meta`.

    Raises
    ------
    ValueError
        No segment has a suggested name that differs from its current one.
    """
    names = [str(n) for n in meta.get("segment_names") or []]
    suggestions = {int(s["segment"]): str(s["suggested"]) for s in meta.get("suggested_names") or []}
    comparison = meta.get("comparison")
    if comparison:
        suggestions.update({int(r["segment"]): str(r["generated_name"]) for r in comparison.get("segments", [])
                            if r.get("persona_changed")})
    only = None if segments is None else {int(s) for s in segments}
    suggestions = {s: n for s, n in suggestions.items()
                   if s < len(names) and names[s] != n and (only is None or s in only)}
    if not suggestions:
        raise ValueError("no segment of this version has a suggested name different from its current one")
    wanted = [suggestions.get(i, n) for i, n in enumerate(names)]
    names = carry_names(wanted, {i: i for i in range(len(wanted))}, wanted)
    changes = {"segment_names": names, "suggested_names": []}
    if comparison:
        rows = [dict(r, name=names[r["segment"]], renamed=r.get("matched") is None or names[r["segment"]] != r.get(
            "matched_name")) for r in comparison.get("segments", [])]
        changes["comparison"] = dict(comparison, segments=rows)
    return changes


# ---------------------------------------------------------------------------- summaries
def sweep_summary(result) -> dict:
    """The parts of a :class:`core.fitting.selection.SweepResult` worth keeping with a model version.

    Parameters
    ----------
    result : SweepResult

    Returns
    -------
    dict
        ``recommended_k``, ``reason``, ``votes``, ``k_min``, ``k_max``, ``silhouette`` per k and
        ``criteria``: every measured criterion of :data:`core.fitting.criteria.CRITERIA` per k.
    """
    from core.fitting.criteria import CRITERIA

    ks = [r.k for r in result.results]
    criteria = {c.name: {str(r.k): round(float(r.value(c.name)), 6) for r in result.results}
                for c in CRITERIA if all(r.value(c.name) is not None for r in result.results)}
    return {"recommended_k": int(result.recommended_k), "reason": result.reason,
            "votes": {c: int(k) for c, k in result.votes.items()}, "k_min": min(ks), "k_max": max(ks),
            "silhouette": {str(r.k): round(float(r.silhouette), 6) for r in result.results}, "criteria": criteria}


def stability_summary(result) -> dict:
    """The parts of a :class:`core.fitting.stability.BootstrapResult` worth keeping with a model version.

    Parameters
    ----------
    result : BootstrapResult

    Returns
    -------
    dict
        ``resamples``, ``mean_jaccard`` (over segments), ``per_segment`` mean Jaccard,
        ``verdicts`` and ``ari_median``.
    """
    means = result.mean_jaccard
    finite = means[np.isfinite(means)]
    return {"resamples": int(result.resamples),
            "mean_jaccard": round(float(finite.mean()), 4) if len(finite) else None,
            "per_segment": [round(float(v), 4) if np.isfinite(v) else None for v in means],
            "verdicts": list(result.verdicts), "scheme": getattr(result, "scheme", "clusterboot"),
            "ari_median": round(float(np.median(result.ari)), 4) if len(result.ari) else None}


def _shares(labels: np.ndarray, k: int) -> np.ndarray:
    counts = np.bincount(np.asarray(labels, int), minlength=k)
    return counts / max(int(counts.sum()), 1)


# Attributes a customer keeps for life: two files' rows with one ID are one customer only when these
# agree too (an ID reused by an unrelated file names somebody else).
COMMON_KEYS = ("Year_Birth", "Dt_Customer")


def _common_ari(reference_frame: pd.DataFrame, reference_labels, candidate_frame: pd.DataFrame,
                candidate_labels) -> tuple[float | None, int, list]:
    """Adjusted Rand index on the customers present in both files, matched by ID and :data:`COMMON_KEYS`.

    Returns (ARI or None below two customers, number matched, the columns matched on).
    """
    if "ID" not in reference_frame or "ID" not in candidate_frame:
        return None, 0, []
    keys = ["ID"] + [c for c in COMMON_KEYS if c in reference_frame and c in candidate_frame]

    def table(frame, labels):
        out = frame[keys].assign(_label=np.asarray(labels)).drop_duplicates("ID")
        return out.dropna(subset=keys)

    both = table(reference_frame, reference_labels).merge(table(candidate_frame, candidate_labels), on=keys,
                                                          suffixes=("_ref", "_new"))
    n = int(len(both))
    if n < 2:
        return None, n, keys
    return round(adjusted_rand(both["_label_ref"].to_numpy(), both["_label_new"].to_numpy()), 6), n, keys


def compare_candidate(model: SegmentationModel, frame: pd.DataFrame, names: list, reference: Reference, *,
                      generated: list | None = None, drift_resamples: int = 10, seed: int = DEFAULT_SEED,
                      progress: Progress | None = None) -> dict:
    """Compare a candidate model (fitted on new data) with the reference (active) model.

    Parameters
    ----------
    model : SegmentationModel
        The candidate, already renumbered by :func:`identity`.
    frame : pandas.DataFrame
        Its customers, prepared.
    names : list of str
        The candidate's segment names (carried over where matched).
    reference : Reference
        With ``frame`` set.
    generated : list of str, optional
        The persona names the new data itself gives the candidate's segments.
    drift_resamples : int, default 10
        Bootstrap refits behind the drift report's structure check (0 skips it).
    seed : int, default 42
    progress : callable, optional
        Passed to the drift report: ``progress(done, total, message)``.

    Returns
    -------
    dict
        JSON-serialisable: ``reference_version``, ``method`` (how segments were matched),
        ``segments`` (one row per candidate segment: its match, names, shares, share change,
        centroid distance and whether it was renamed), ``unmatched_reference``,
        ``ari_common`` with ``n_common`` (adjusted Rand index on the customers present in both
        files: same ID and same :data:`COMMON_KEYS`, listed in ``common_keys``), ``ari_rescored`` (the reference model's labels of the new customers
        against the candidate's), ``metrics`` and ``drift`` (None with ``drift_note`` when
        it could not be computed).
    """
    if reference.frame is None:
        raise ValueError("the comparison needs the active model's customers (Reference.frame)")
    ref = reference.model
    ref_frame = reference.frame
    ref_labels = ref.predict(ref_frame)
    cand_labels = model.predict(frame)
    ref_on_new = ref.predict(frame)
    same_features = list(model.features) == list(ref.features)
    if same_features:
        centres = (model.centroids_original().to_numpy() - ref.mean_) / ref.scale_
        match = match_centroids(ref.centroids_, centres)
        distance = [float(np.linalg.norm(centres[j] - ref.centroids_[match[j]])) if match[j] >= 0 else None
                    for j in range(model.k)]
        method = "centroids"
    else:
        match = _overlap_match(ref_on_new, cand_labels, ref.k, model.k)
        distance = [None] * model.k
        method = "shared customers"
    ref_share = _shares(ref_labels, ref.k)
    cand_share = _shares(cand_labels, model.k)
    generated = list(generated) if generated is not None else list(names)
    ref_names = segment_names({"segment_names": reference.names}, ref.k)
    rows = []
    for j in range(model.k):
        i = int(match[j])
        members = cand_labels == j
        overlap = float((ref_on_new[members] == i).mean()) if i >= 0 and members.any() else None
        rows.append({
            "segment": j, "name": str(names[j]), "generated_name": str(generated[j]),
            "matched": i if i >= 0 else None, "matched_name": ref_names[i] if i >= 0 else None,
            "reference_share": round(float(ref_share[i]), 6) if i >= 0 else None,
            "share": round(float(cand_share[j]), 6),
            "share_change": round(float(cand_share[j] - ref_share[i]), 6) if i >= 0 else None,
            "distance": round(distance[j], 4) if distance[j] is not None else None,
            "overlap": round(overlap, 4) if overlap is not None else None,
            "renamed": i < 0 or str(names[j]) != ref_names[i],
            "persona_changed": i >= 0 and str(generated[j]) != ref_names[i],
        })
    unmatched = [{"segment": i, "name": ref_names[i], "share": round(float(ref_share[i]), 6)}
                 for i in range(ref.k) if i not in set(match.tolist())]
    ari_common, n_common, common_keys = _common_ari(ref_frame, ref_labels, frame, cand_labels)
    out = {
        "reference_version": reference.version, "method": method, "segments": rows,
        "unmatched_reference": unmatched, "ari_common": ari_common, "n_common": n_common,
        "common_keys": common_keys,
        "ari_rescored": round(adjusted_rand(ref_on_new, cand_labels), 6),
        "n_reference": int(len(ref_frame)), "n_candidate": int(len(frame)),
        "k": {"reference": int(ref.k), "candidate": int(model.k)},
        "features": {"reference": list(ref.features), "candidate": list(model.features)},
        "drift": None, "drift_note": None,
    }
    try:
        from core.insight.drift import compare_new_data

        report = compare_new_data(ref, ref_frame, frame, baseline_resamples=drift_resamples, n_init=3, seed=seed,
                                  progress=progress).to_dict()
        keep = ("recommendation", "reason", "features", "share_psi", "ari_refit", "ari_baseline", "thresholds")
        out["drift"] = {key: report[key] for key in keep}
    except ValueError as exc:  # e.g. too few new customers to refit: the rest of the comparison still holds
        out["drift_note"] = str(exc)
    return out
