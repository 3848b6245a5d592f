"""Segment identity across refits: Hungarian matching on centroids.

A refit on new data numbers its segments afresh. Matching each new segment to
the old segment with the nearest centroid (one-to-one, minimum total Euclidean
distance) lets names and colours follow the segment rather than the label
number. This is the one matching function of the project: the dashboard's
retrain, ``python -m core train``, enrolment-time snapshots
(:mod:`core.fitting.stability`) and the k-transition tree all use it.
"""
from __future__ import annotations

import numpy as np

__all__ = ["match_centroids", "match_members", "numbers_from_match", "renumber", "align_to_reference", "carry_names"]


def match_centroids(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Match candidate centroids to reference centroids one-to-one.

    Parameters
    ----------
    reference : ndarray of shape (k_ref, d)
    candidate : ndarray of shape (k_new, d)
        Both in the same units (e.g. the reference model's scaled space).

    Raises
    ------
    ValueError
        The two sets have a different number of features.

    Returns
    -------
    ndarray of shape (k_new,)
        ``match[j]`` is the reference segment matched to candidate segment
        ``j``, or -1 when the candidate has more segments than the reference
        and ``j`` is left over.
    """
    from scipy.optimize import linear_sum_assignment  # deferred: scipy import is ~0.3 s

    reference = np.atleast_2d(np.asarray(reference, float))
    candidate = np.atleast_2d(np.asarray(candidate, float))
    if candidate.shape[1] != reference.shape[1]:
        raise ValueError(f"cannot match centroids with {candidate.shape[1]} features to centroids with "
                         f"{reference.shape[1]}")
    cost = np.sqrt(((candidate[:, None, :] - reference[None, :, :]) ** 2).sum(axis=2))
    rows, cols = linear_sum_assignment(cost)
    match = np.full(len(candidate), -1, dtype=int)
    match[rows] = cols
    return match


def match_members(reference_labels, candidate_labels, k_ref: int, k_new: int) -> np.ndarray:
    """Match candidate segments to reference segments by the customers they share (Hungarian, most shared).

    Used when two models have different features, so their centroids cannot be compared.

    Parameters
    ----------
    reference_labels, candidate_labels : array-like of int, shape (n,)
        Both models' segment of the same customers.
    k_ref, k_new : int

    Returns
    -------
    ndarray of shape (k_new,)
        As :func:`match_centroids`: reference segment of each candidate segment, -1 when left over.
    """
    from scipy.optimize import linear_sum_assignment  # deferred: scipy import is ~0.3 s

    table = np.zeros((k_new, k_ref))
    np.add.at(table, (np.asarray(candidate_labels, int), np.asarray(reference_labels, int)), 1.0)
    rows, cols = linear_sum_assignment(-table)
    match = np.full(k_new, -1, dtype=int)
    match[rows] = cols
    return match


def numbers_from_match(match: np.ndarray, k_ref: int) -> np.ndarray:
    """Segment numbers for a candidate model from its match to a reference (-1 = unmatched).

    With at least as many segments as the reference, matched segments take the
    reference's number and the rest the numbers after it. With fewer, every
    segment is matched and keeps the reference's order, numbered 0..k-1 (the
    reference's numbers would not fit).

    Parameters
    ----------
    match : ndarray of shape (k,)
        Reference segment of each candidate segment, as :func:`match_centroids` returns.
    k_ref : int
        Segments in the reference.

    Returns
    -------
    ndarray of shape (k,)
        A permutation of 0..k-1: the new number of each candidate segment.
    """
    k = len(match)
    if k >= k_ref:
        numbers = np.asarray(match).copy()
        spare = iter(sorted(set(range(k)) - set(numbers[numbers >= 0].tolist())))
        for j in np.flatnonzero(numbers < 0):
            numbers[j] = next(spare)
        return numbers
    ranks = np.empty(k, dtype=int)
    ranks[np.argsort(match, kind="stable")] = np.arange(k)
    return ranks


def renumber(model, new_number: np.ndarray) -> None:
    """Give segment ``j`` of a fitted model the number ``new_number[j]`` (a permutation), in place.

    Parameters
    ----------
    model : SegmentationModel
    new_number : ndarray of shape (model.k,)
    """
    new_number = np.asarray(new_number)
    order = np.argsort(new_number)
    model.centroids_ = model.centroids_[order]
    model.member_distances_ = [model.member_distances_[i] for i in order]
    if getattr(model, "labels_", None) is not None:
        model.labels_ = new_number[model.labels_]
    model.__dict__.pop("_fast", None)  # the fast scoring path caches the centroids


def align_to_reference(model, reference) -> np.ndarray:
    """Renumber a fitted model's segments so that they follow a reference model's.

    Both models' centroids are compared in the reference model's scaled space;
    numbering follows :func:`numbers_from_match`. The model is changed in place
    (centroids, labels, member distances).

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
    new_number = numbers_from_match(match_centroids(reference.centroids_, in_ref_space), reference.k)
    renumber(model, new_number)
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
