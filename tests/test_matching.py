"""Segment identity across refits (Hungarian matching)."""
import numpy as np
import pytest

from core.fitting.matching import align_to_reference, carry_names, match_centroids
from core.fitting.model import SegmentationModel
from tests.helpers import planted_frame


def test_match_recovers_a_permutation():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(5, 3))
    perm = np.array([3, 0, 4, 1, 2])
    cand = ref[perm] + rng.normal(scale=0.01, size=(5, 3))
    assert match_centroids(ref, cand).tolist() == perm.tolist()


def test_more_candidates_than_reference_leaves_extras_unmatched():
    ref = np.array([[0.0, 0.0], [10.0, 10.0]])
    cand = np.array([[10.1, 10.0], [5.0, 5.0], [0.1, 0.0]])
    assert match_centroids(ref, cand).tolist() == [1, -1, 0]


def test_align_refit_on_resampled_data_follows_reference():
    frame, truth = planted_frame(n_per=100, seed=1)
    ref = SegmentationModel(k=3, seed=1).fit(frame)
    # Reverse the first feature so the canonical order would number the segments the other way round.
    other = frame.sample(frac=0.8, random_state=3)
    refit = SegmentationModel(k=3, seed=9).fit(other)
    refit.centroids_ = refit.centroids_[::-1].copy()
    refit.member_distances_ = refit.member_distances_[::-1]
    refit.labels_ = 2 - refit.labels_
    align_to_reference(refit, ref)
    assert np.array_equal(refit.predict(frame), ref.predict(frame))
    assert np.array_equal(refit.labels_, ref.predict(other))


def test_carry_names_keeps_user_names_and_stays_unique():
    names = carry_names(["Loyal", "Bargain"], {0: 0, 1: 1}, ["A", "B", "Loyal"])
    assert names == ["Loyal", "Bargain", "Loyal (2)"]


def test_align_with_fewer_segments_keeps_labels_in_range():
    frame, _ = planted_frame(n_per=100, seed=2)
    ref = SegmentationModel(k=4, seed=1).fit(frame)
    fewer = SegmentationModel(k=2, seed=1).fit(frame)
    numbers = align_to_reference(fewer, ref)
    assert sorted(numbers.tolist()) == [0, 1]
    assert set(fewer.labels_.tolist()) == {0, 1}
    assert set(fewer.predict(frame).tolist()) == {0, 1}
    assert (fewer.predict(frame) == fewer.labels_).all()


def test_suggested_names_and_adopting_them():
    from core.versions.training import adopt_suggested_names, suggested_names

    names = ["VIPs", "Budget browsers", "Lapsing buyers"]
    generated = ["Big spenders", "Budget browsers", "Web shoppers"]
    # Segment 0 was renamed by a person and its persona did not change; segment 2's persona changed.
    out = suggested_names(names, generated, ["Big spenders", "Budget browsers", "Lapsing buyers"],
                          {0: 0, 1: 1, 2: 2})
    assert out == [{"segment": 2, "name": "Lapsing buyers", "suggested": "Web shoppers"}]
    meta = {"segment_names": names, "suggested_names": out,
            "comparison": {"segments": [{"segment": i, "name": n, "generated_name": g, "matched": i,
                                         "matched_name": n, "persona_changed": g != n, "renamed": False}
                                        for i, (n, g) in enumerate(zip(names, generated))]}}
    only_two = adopt_suggested_names(meta, [2])
    assert only_two["segment_names"] == ["VIPs", "Budget browsers", "Web shoppers"]
    assert only_two["comparison"]["segments"][2]["name"] == "Web shoppers"
    assert only_two["comparison"]["segments"][2]["renamed"] and only_two["suggested_names"] == []
    everything = adopt_suggested_names(meta)
    assert everything["segment_names"] == ["Big spenders", "Budget browsers", "Web shoppers"]
    with pytest.raises(ValueError, match="no segment"):
        adopt_suggested_names(dict(meta, **only_two), [2])
