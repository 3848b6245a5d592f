"""The criteria registry: CH and DB as scikit-learn computes them, prediction strength, votes, sweep JSON."""
import json

import numpy as np
import pytest
from sklearn import metrics

from core.fitting import criteria
from core.fitting import selection
from core.fitting.model import standardise
from tests.helpers import planted_frame


@pytest.fixture(scope="module")
def planted():
    frame, truth = planted_frame(n_per=100, spread=0.5, seed=4)
    Z, _, _ = standardise(frame.to_numpy())
    return Z, truth


@pytest.fixture(scope="module")
def planted_sweep(planted):
    Z, _ = planted
    return selection.sweep(Z, 2, 6, n_init=3, seed=3)


def test_ch_and_db_equal_sklearn_on_the_sweeps_labels(planted, planted_sweep):
    Z, _ = planted
    for r in planted_sweep.results:
        labels = selection.fit_kmeans(Z, r.k, n_init=3, seed=3).labels  # the sweep's own fit (seeded)
        assert np.bincount(labels, minlength=r.k).tolist() == r.sizes
        assert r.calinski_harabasz == pytest.approx(metrics.calinski_harabasz_score(Z, labels), rel=1e-12)
        assert r.davies_bouldin == pytest.approx(metrics.davies_bouldin_score(Z, labels), rel=1e-12)
    # Label means, not a set of centres: labels that no Lloyd step produced still match scikit-learn.
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, len(Z))
    assert selection.calinski_harabasz(Z, labels) == pytest.approx(metrics.calinski_harabasz_score(Z, labels))
    assert selection.davies_bouldin(Z, labels) == pytest.approx(metrics.davies_bouldin_score(Z, labels))


def test_prediction_strength_high_on_planted_low_on_uniform(planted, planted_sweep):
    ps = {r.k: r.prediction_strength for r in planted_sweep.results}
    assert ps[3] >= 0.95  # the three planted groups are found again in either half
    assert planted_sweep.votes["prediction_strength"] >= 3
    Z = np.random.default_rng(1).uniform(size=(600, 7))  # no structure
    values = [selection.prediction_strength(Z, k, seed=0) for k in (2, 3, 4, 5, 6)]
    assert max(values) < criteria.PS_THRESHOLD
    assert selection.prediction_strength(Z, 1) == 1.0


def test_registry_drives_sweep_votes_and_json(planted_sweep):
    out = planted_sweep.to_dict()
    names = [c["name"] for c in out["criteria"]]
    assert names == [c.name for c in criteria.CRITERIA]
    assert {"prediction_strength", "stability"} <= set(names)
    for row in out["results"]:
        assert {c.name for c in criteria.CRITERIA} <= set(row) and "extra" not in row
    assert json.loads(json.dumps(out))["results"][0]["prediction_strength"] is not None
    # Every measured criterion votes (stability was not measured: no vote, no value).
    assert set(planted_sweep.votes) == {"elbow", "silhouette", "calinski_harabasz", "davies_bouldin",
                                        "prediction_strength"}
    assert planted_sweep.recommended_k == 3 and "prediction strength" in planted_sweep.reason


def test_vote_directions_and_threshold():
    by = criteria.BY_NAME
    values = {2: 0.9, 3: 0.85, 4: 0.5, 5: 0.81}
    assert criteria.vote(by["silhouette"], values) == 2
    assert criteria.vote(by["davies_bouldin"], values) == 4
    assert criteria.vote(by["prediction_strength"], values) == 5  # the largest k at or above 0.8
    assert criteria.vote(by["prediction_strength"], {2: 0.5, 3: 0.4}) is None
    assert criteria.vote(by["silhouette"], {2: None, 3: float("nan")}) is None


def test_a_new_criterion_is_one_registry_entry(monkeypatch, planted):
    Z, _ = planted
    extra = criteria.Criterion("smallest", "Smallest segment", "higher", "higher is better", "smallest",
                               "largest smallest segment", lambda ctx: float(np.bincount(ctx.labels).min()))
    monkeypatch.setattr(criteria, "CRITERIA", criteria.CRITERIA + (extra,))
    monkeypatch.setattr(selection, "CRITERIA", criteria.CRITERIA)
    result = selection.sweep(Z, 2, 4, prediction_strength_repeats=0)
    assert [r.value("smallest") for r in result.results] == [float(min(r.sizes)) for r in result.results]
    assert "smallest" in result.votes and result.to_dict()["results"][0]["smallest"] == float(min(result.results[0].sizes))
