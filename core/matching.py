"""Segment identity across refits: Hungarian matching on centroids.

A refit on new data numbers its segments afresh. Matching each new segment to
the old segment with the nearest centroid (one-to-one, minimum total distance)
lets names and colours follow the segment rather than the label number.
"""
from __future__ import annotations

import numpy as np

__all__ = ["match_centroids", "align_to_reference", "carry_names"]


def match_centroids(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Match candidate centroids to reference centroids one-to-one.

    Parameters
    ----------
    reference : ndarray of shape (k_ref, d)
    candidate : ndarray of shape (k_new, d)
        Both in the same units (e.g. the reference model's scaled space).

    Returns
    -------
    ndarray of shape (k_new,)
        ``match[j]`` is the reference segment matched to candidate segment
        ``j``, or -1 when the candidate has more segments than the reference
        and ``j`` is left over.
    """
    from scipy.optimize import linear_sum_assignment  # deferred: scipy import is ~0.3 s

    reference = np.asarray(reference, float)
    candidate = np.asarray(candidate, float)
    cost = np.sqrt(((candidate[:, None, :] - reference[None, :, :]) ** 2).sum(axis=2))
    rows, cols = linear_sum_assignment(cost)
    match = np.full(len(candidate), -1, dtype=int)
    match[rows] = cols
    return match


def align_to_reference(model, reference) -> np.ndarray:
    """Renumber a fitted model's segments so that they follow a reference model's.

    Both models' centroids are compared in the reference model's scaled space.
    Matched segments take the reference's number; unmatched ones (when the new
    model has more segments) take the numbers after the reference's. The model
    is changed in place (centroids, labels, member distances).

    Parameters
    ----------
    model : SegmentationModel
        Fitted on the new data, with the same features as ``reference``.
    reference : SegmentationModel

    Returns
    -------
    ndarray of shape (model.k,)
        ``new_number[old_number]`` for the model's segments.
    """
    if list(model.features) != list(reference.features):
        raise ValueError("models with different features cannot be matched")
    centres = model.centroids_original().to_numpy()
    in_ref_space = (centres - reference.mean_) / reference.scale_
    match = match_centroids(reference.centroids_, in_ref_space)
    new_number = match.copy()
    spare = iter(sorted(set(range(model.k)) - set(match[match >= 0].tolist())))
    for j in np.flatnonzero(match < 0):
        new_number[j] = next(spare)
    order = np.argsort(new_number)
    model.centroids_ = model.centroids_[order]
    model.member_distances_ = [model.member_distances_[i] for i in order]
    if getattr(model, "labels_", None) is not None:
        model.labels_ = new_number[model.labels_]
    model.__dict__.pop("_fast", None)
    return new_number


def carry_names(reference_names: list[str], new_number_of_ref: dict[int, int], generated: list[str]) -> list[str]:
    """Names for a realigned model: the reference's name where a segment was matched, else the generated one.

    Parameters
    ----------
    reference_names : list of str
        Names of the reference model's segments (user renames included).
    new_number_of_ref : dict
        Reference segment -> segment number in the new model (after :func:`align_to_reference`
        this is the identity for matched segments).
    generated : list of str
        Freshly generated persona names of the new model, in its numbering.

    Returns
    -------
    list of str
        Unique names, one per new segment.
    """
    names = list(generated)
    for ref, new in new_number_of_ref.items():
        if 0 <= new < len(names) and ref < len(reference_names):
            names[new] = reference_names[ref]
    seen: set[str] = set()
    for i, name in enumerate(names):
        base, n = name, 2
        while names[i] in seen:
            names[i] = f"{base} ({n})"
            n += 1
        seen.add(names[i])
    return names
