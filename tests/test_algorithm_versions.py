"""Every algorithm (issue 26) makes a normal version through the one recipe (core.versions.pipeline.make_version).

Each version of gmm, kprototypes, hdbscan and consensus is made on the shipped sample with the k-means
version active: it loads from its model file (plain arrays), places its own training customers as it
fitted them, keeps the active model's segment identity, and records its algorithm in the metadata.
Also: the CLI (train/sweep/compare-algorithms: exit codes, JSON, one-line errors), an old model file
(no algorithm field) loading as k-means, and the API's probabilities over a real HTTP server.
"""
from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from core.algorithms import ALGORITHMS, UnknownAlgorithm, get_algorithm
from core.fitting.model import SegmentationModel
from core.versions.naming import UNASSIGNED_NAME, segment_names
from core.versions.pipeline import train
from core.reading.prepared import prepare
from core.versions.registry import Registry
from core.versions.registry_format import model_from_bytes, model_to_bytes
from tests.conftest import ROOT, SAMPLE, start_server

K = 4
# Lighter than the defaults where an algorithm refits many times; the wiring is what is tested here.
OPTIONS = {"consensus": {"resamples": 10}, "kprototypes": {}, "gmm": {}, "hdbscan": {}}
FEATURES = {"kprototypes": "Income,Total_Spending,Recency,NumWebPurchases,Education,Marital_Status"}


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    """A registry: k-means v0001 active, then one inactive version per other algorithm (identity from v0001)."""
    registry = Registry(tmp_path_factory.mktemp("algos") / "models")
    made = {"kmeans": train(SAMPLE, registry=registry, k=K)}
    for name in ALGORITHMS:
        if name != "kmeans":
            made[name] = train(SAMPLE, registry=registry, k=K, algorithm=name, options=OPTIONS[name],
                               features=FEATURES.get(name), activate=False)
    return registry, made


@pytest.fixture(scope="module")
def customers():
    return prepare(SAMPLE).frame


def test_registry_of_algorithms_and_one_line_error_for_unknown():
    assert list(ALGORITHMS) == ["kmeans", "gmm", "kprototypes", "hdbscan", "consensus"]
    assert get_algorithm(None).name == "kmeans" and get_algorithm(" GMM ").soft
    assert get_algorithm("kprototypes").categorical and get_algorithm("hdbscan").noise
    with pytest.raises(UnknownAlgorithm, match=r"^unknown algorithm 'dbscan'; choose from kmeans, gmm, "):
        get_algorithm("dbscan")


@pytest.mark.parametrize("name", [n for n in ALGORITHMS if n != "kmeans"])
def test_version_loads_predicts_its_rows_and_keeps_identity(versions, customers, name):
    registry, made = versions
    version, fitted, meta = made[name]
    model, stored = registry.load(version)
    assert model.algorithm == name and stored["algorithm"]["name"] == name
    assert stored["algorithm"]["soft"] == get_algorithm(name).soft
    assert model.k == len(stored["segment_names"]) == len(stored["segment_sizes"])
    assert sum(stored["segment_sizes"]) == len(customers)
    predicted = model.predict(customers)
    np.testing.assert_array_equal(fitted.labels_, np.asarray(stored_labels := fitted.labels_))
    assert np.bincount(stored_labels, minlength=model.k).tolist() == stored["segment_sizes"]
    if name == "hdbscan" and model.unassigned_:
        # Customers a segment claimed stay in it; noise may be placed by its nearest core point.
        claimed = stored_labels != model.k - 1
        assert (predicted[claimed] == stored_labels[claimed]).all()
        assert segment_names(stored)[-1] == UNASSIGNED_NAME
        assert stored["algorithm"]["info"]["noise_share"] == pytest.approx(np.mean(~claimed), abs=1e-6)
    elif name == "consensus":
        # Training labels come from the consensus matrix; new customers go to the nearest centre.
        assert np.mean(predicted == stored_labels) >= 0.98
    else:
        np.testing.assert_array_equal(predicted, stored_labels)
    scores = model.score(customers)
    assert scores["segment"].tolist() == predicted.tolist()
    assert scores["confidence"].between(0, 1).all() and scores["typicality"].between(0, 1).all()
    # Identity: matched segments keep the active k-means version's number and name.
    ident = stored["identity"]
    assert ident["reference_version"] == made["kmeans"].version and ident["matched"]
    ref_names = made["kmeans"].meta["segment_names"]
    for ref, new in ident["matched"].items():
        assert stored["segment_names"][new] == ref_names[int(ref)]
    # centroids_ are the partition's centres (profiles and charts read them): each is nearest to its own
    # segment's members' mean (exactly that mean for k-prototypes and the Unassigned group).
    Z = model.transform(customers)
    means = np.array([Z[stored_labels == s].mean(axis=0) for s in range(model.k)])
    gaps = np.sqrt(((model.centroids_[:, None, :] - means[None, :, :]) ** 2).sum(axis=2))
    assert (gaps.argmin(axis=1) == np.arange(model.k)).all()
    if name == "kprototypes":
        np.testing.assert_allclose(model.centroids_, means, atol=1e-8)
    if model.unassigned_:
        np.testing.assert_allclose(model.centroids_[-1], means[-1], atol=1e-8)


def test_gmm_probabilities_and_metadata(versions, customers):
    registry, made = versions
    model, meta = registry.load(made["gmm"].version)
    proba = model.predict_proba(customers)
    assert proba.shape == (len(customers), model.k)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_array_equal(proba.argmax(axis=1), model.predict(customers))
    np.testing.assert_allclose(model.score(customers)["confidence"], proba.max(axis=1), atol=1e-9)
    info = meta["algorithm"]["info"]
    assert info["bic"] > info["aic"] and np.isfinite(info["log_likelihood"])
    kmeans, _ = registry.load(made["kmeans"].version)
    with pytest.raises(ValueError, match="a kmeans model gives no membership probabilities"):
        kmeans.predict_proba(customers)


def test_kprototypes_carries_categories_and_needs_them(versions, customers):
    registry, made = versions
    model, meta = registry.load(made["kprototypes"].version)
    assert model.categorical == ["Education", "Marital_Status"]
    assert meta["algorithm"]["categories"]["Education"] == sorted(customers["Education"].dropna().unique())
    assert meta["algorithm"]["info"]["gamma"] > 0 and meta["algorithm"]["info"]["gamma_rule"]
    # The category moves a customer: the same numbers with another education can land elsewhere.
    assert model.categorical_codes(customers.head(3)).shape == (3, 2)
    with pytest.raises(ValueError, match="also needs the categorical column"):
        model.predict(customers[model.features].to_numpy())


def test_model_file_round_trip_is_plain_arrays(versions):
    registry, made = versions
    for name in ALGORITHMS:
        model = made[name].model
        data = model_to_bytes(model)
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            assert all(npz[n].dtype.kind != "O" for n in npz.files)
        again = model_from_bytes(data)
        assert again.algorithm == name and again.k == model.k
        np.testing.assert_array_equal(again.centroids_, model.centroids_)


def test_old_model_file_without_algorithm_loads_as_kmeans(versions, customers):
    _, made = versions
    arrays = made["kmeans"].model.to_arrays()
    params = json.loads(str(arrays["params"]))
    assert "algorithm" not in params  # what every file written before issue 26 holds
    model = SegmentationModel.from_arrays(arrays)
    assert model.algorithm == "kmeans" and not model.unassigned_
    np.testing.assert_array_equal(model.predict(customers), made["kmeans"].model.predict(customers))
    bad = dict(arrays, algo__x=np.arange(3))
    with pytest.raises(ValueError, match="a k-means model holds no algorithm parameters"):
        SegmentationModel.from_arrays(bad)
    params["algorithm"] = "spectral"
    with pytest.raises(ValueError, match="unknown algorithm 'spectral'"):
        SegmentationModel.from_arrays(dict(arrays, params=np.array(json.dumps(params))))


def test_bad_input_messages(tmp_path):
    registry = Registry(tmp_path / "models")
    with pytest.raises(ValueError, match=r"^Education is a categorical feature: gmm clusters numeric features only; "
                                         r"use --algorithm kprototypes"):
        train(SAMPLE, registry=registry, k=K, algorithm="gmm", features="Income,Education")
    with pytest.raises(ValueError, match=r"^unknown option\(s\) bogus for gmm; it takes covariance"):
        train(SAMPLE, registry=registry, k=K, algorithm="gmm", options={"bogus": 1})
    with pytest.raises(ValueError, match="unknown algorithm 'kmedoids'"):
        train(SAMPLE, registry=registry, k=K, algorithm="kmedoids")
    assert registry.versions() == [] if hasattr(registry, "versions") else True


def cli(*args, check_rc=None):
    proc = subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stderr[-2000:]
    return proc


def test_cli_train_sweep_and_errors(tmp_path):
    models = str(tmp_path / "models")
    out = cli("train", "--data", str(SAMPLE), "--models", models, "--k", "3", "--algorithm", "gmm",
              "--option", "covariance=diag", "--json", "--quiet", check_rc=0)
    payload = json.loads(out.stdout)
    assert payload["algorithm"]["name"] == "gmm" and payload["algorithm"]["options"] == {"covariance": "diag"}
    model, meta = Registry(models).load(payload["model_version"])
    assert model.algorithm == "gmm" and model.options == {"covariance": "diag"}
    out = cli("sweep", "--data", str(SAMPLE), "--k-max", "4", "--algorithm", "gmm", "--json", "--quiet", check_rc=0)
    sweep = json.loads(out.stdout)
    assert [r["k"] for r in sweep["results"]] == [2, 3, 4]
    best = min(sweep["results"], key=lambda r: r["bic"])
    assert sweep["recommended_k"] == best["k"] and all(r["aic"] < r["bic"] for r in sweep["results"])
    text = cli("sweep", "--data", str(SAMPLE), "--k-max", "3", "--algorithm", "gmm", "--quiet", check_rc=0).stdout
    assert "BIC" in text.splitlines()[0] and "AIC" in text.splitlines()[0] and "lowest BIC" in text
    err = cli("train", "--data", str(SAMPLE), "--models", models, "--algorithm", "kmeans",
              "--features", "Income,Marital_Status", "--quiet", check_rc=2).stderr
    assert err.strip().splitlines() == ["error: Marital_Status is a categorical feature: kmeans clusters numeric "
                                        "features only; use --algorithm kprototypes for mixed data"]
    err = cli("sweep", "--data", str(SAMPLE), "--algorithm", "hdbscan", "--quiet", check_rc=2).stderr
    assert "finds its own number of segments" in err and len(err.strip().splitlines()) == 1
    err = cli("train", "--data", str(SAMPLE), "--models", models, "--algorithm", "nope", "--quiet", check_rc=2).stderr
    assert err.strip() == "error: unknown algorithm 'nope'; choose from kmeans, gmm, kprototypes, hdbscan, consensus"
    err = cli("train", "--data", str(SAMPLE), "--models", models, "--option", "novalue", "--quiet", check_rc=2).stderr
    assert "--option expects NAME=VALUE" in err


def test_cli_compare_algorithms_json_and_text():
    out = cli("compare-algorithms", "--data", str(SAMPLE), "--k", "3", "--algorithms", "kmeans,gmm,kprototypes",
              "--features", "Income,Total_Spending,Recency,Education", "--resamples", "2", "--json", "--quiet",
              check_rc=0)
    result = json.loads(out.stdout)
    rows = {r["algorithm"]: r for r in result["algorithms"]}
    assert list(rows) == ["kmeans", "gmm", "kprototypes"]
    assert rows["gmm"]["bic"] is not None and rows["kmeans"]["bic"] is None
    assert "numeric features only" in rows["kmeans"]["note"] and "note" not in rows["kprototypes"]
    for r in rows.values():
        assert sum(r["sizes"]) == result["fitted_on"] and -1 <= r["silhouette"] <= 1
        assert r["davies_bouldin"] > 0 and r["calinski_harabasz"] > 0
        assert -1 <= r["stability"] <= 1 and 0 <= r["prediction_strength"] <= 1
    ari = np.array(result["agreement"]["ari"])
    assert ari.shape == (3, 3) and np.allclose(np.diag(ari), 1) and np.allclose(ari, ari.T)
    assert result["recommendation"].split(" is the one to use here")[0] in {r["title"] for r in rows.values()}
    text = cli("compare-algorithms", "--data", str(SAMPLE), "--k", "3", "--algorithms", "kmeans,gmm",
               "--resamples", "0", "--quiet", check_rc=0).stdout
    assert "agreement (adjusted Rand)" in text and "recommendation:" in text
    err = cli("compare-algorithms", "--data", str(SAMPLE), "--algorithms", "kmeans,gmm", "--features",
              "Income,Education", "--quiet", check_rc=2).stderr
    assert "use --algorithm kprototypes" in err and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def soft_server(tmp_path_factory, warm_models):
    """Gunicorn serving a registry whose active version is a Gaussian mixture."""
    tmp = tmp_path_factory.mktemp("soft")
    shutil.copytree(warm_models, tmp / "models")
    registry = Registry(tmp / "models")
    mixed = train(SAMPLE, registry=registry, k=K, algorithm="kprototypes", features=FEATURES["kprototypes"],
                  activate=False)
    made = train(SAMPLE, registry=registry, k=K, algorithm="gmm")
    from core.access.accounts import AccountStore

    key = AccountStore(tmp / "models").create_key("algo-admin", "admin")
    server = start_server(tmp, gunicorn=True, env={"SEGMENTLENS_RATE_LIMIT": "100000/minute"})
    server.key, server.made, server.mixed, server.registry = key, made, mixed, registry
    yield server
    server.stop()


def test_api_probabilities_sum_to_one(soft_server):
    from tests.test_api import CUSTOMER, call

    status, _, body = call(soft_server, "POST", "/api/v1/predict", {**CUSTOMER, "ID": 3})
    assert status == 200, body
    pred = body["predictions"][0]
    assert len(pred["probabilities"]) == K and abs(sum(pred["probabilities"]) - 1) < 1e-5
    assert pred["segment"] == int(np.argmax(pred["probabilities"]))
    assert pred["confidence"] == pytest.approx(max(pred["probabilities"]), abs=1e-5)
    model = soft_server.made.model
    row = np.array([[CUSTOMER[f] for f in model.features]], dtype=float)
    np.testing.assert_allclose(pred["probabilities"], model.predict_proba(row)[0], atol=1e-5)
    batch = {"customers": [CUSTOMER, {**CUSTOMER, "Income": 20_000, "Total_Spending": 30}]}
    status, _, body = call(soft_server, "POST", "/api/v1/predict", batch)
    assert status == 200 and all(abs(sum(p["probabilities"]) - 1) < 1e-5 for p in body["predictions"])
    status, _, spec = call(soft_server, "GET", "/api/v1/openapi.json")
    assert "probabilities" in spec["components"]["schemas"]["Prediction"]["properties"]


def test_cli_score_exports_probabilities_of_a_soft_model(tmp_path):
    models = str(tmp_path / "models")
    cli("train", "--data", str(SAMPLE), "--models", models, "--k", "3", "--algorithm", "gmm", "--quiet", check_rc=0)
    out = tmp_path / "scores.csv"
    cli("score", "--data", str(SAMPLE), "--models", models, "--out", str(out), check_rc=0)
    import pandas as pd

    scores = pd.read_csv(out)
    probs = scores[["probability_0", "probability_1", "probability_2"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=2e-4)
    assert (probs.argmax(axis=1) == scores["segment"].to_numpy()).all()
    np.testing.assert_allclose(scores["confidence"], probs.max(axis=1), atol=1e-4)


def test_all_noise_and_single_algorithm_are_said_in_one_line_not_charted(customers):
    from core.fitting.compare_algorithms import compare
    from dashboard.figures.algorithms import (can_chart_agreement, comparison_notes, comparison_table,
                                              version_note)

    features = ["Income", "Total_Spending", "Recency"]
    result = compare(customers, features, algorithms=["kmeans", "hdbscan"], k=3, resamples=0,
                     options={"hdbscan": {"min_cluster_size": len(customers) + 1}})
    rows = {r["algorithm"]: r for r in result["algorithms"]}
    assert "error" in rows["hdbscan"] and "\n" not in rows["hdbscan"]["error"]
    assert result["agreement"]["algorithms"] == ["kmeans"] and not can_chart_agreement(result)
    assert comparison_notes(result) == [f"HDBSCAN: {rows['hdbscan']['error']}"]
    table = comparison_table(result)
    assert table["Algorithm"].tolist() == ["k-means"] and table["Sizes"].iloc[0].count("/") == 2
    assert result["recommendation"].startswith("k-means is the one to use here")
    note = version_note({"name": "hdbscan", "title": "HDBSCAN", "unassigned": True,
                         "info": {"noise_share": 0.4, "fitted_on": 100_000, "assigned": 900_000}}, 1_000_000)
    assert "40% of customers Unassigned" in note and "seeded sample of 100,000 of 1,000,000" in note


def test_api_places_a_mixed_customer_with_its_categories(soft_server):
    from tests.test_api import CUSTOMER, call

    mixed = soft_server.mixed
    soft_server.registry.activate(mixed.version)
    try:
        customer = {f: CUSTOMER[f] for f in ("Income", "Total_Spending", "Recency", "NumWebPurchases")}
        status, _, body = call(soft_server, "POST", "/api/v1/predict",
                               {**customer, "Education": "PhD", "Marital_Status": "Single"})
        assert status == 200, body
        pred = body["predictions"][0]
        assert "probabilities" not in pred  # k-prototypes is not a soft model
        import pandas as pd

        row = pd.DataFrame([{**customer, "Education": "PhD", "Marital_Status": "Single"}])
        assert pred["segment"] == int(mixed.model.predict(row)[0])
        status, _, body = call(soft_server, "POST", "/api/v1/predict", {**customer, "Education": 5})
        assert status == 422 and body["message"] == "Education must be a category (text), got int"
        # The API's document names the categorical fields, as text, with the categories seen in training.
        status, _, spec = call(soft_server, "GET", "/api/v1/openapi.json")
        fields = spec["components"]["schemas"]["Customer"]["properties"]
        assert fields["Education"]["type"] == fields["Marital_Status"]["type"] == "string"
        assert "PhD" in fields["Education"]["description"] and "Single" in fields["Marital_Status"]["description"]
    finally:
        soft_server.registry.activate(soft_server.made.version)


def test_consensus_without_k_cuts_at_the_lowest_pac(tmp_path):
    """`train --algorithm consensus` with no --k: k is the one PAC prefers, and the version says so."""
    registry = Registry(tmp_path / "m")
    made = train(SAMPLE, registry=registry, k=None, algorithm="consensus", options={"resamples": 10})
    meta = registry.metadata(made.version)
    pac = {int(k): v for k, v in meta["algorithm"]["info"]["pac_by_k"].items()}
    assert meta["k"] == min(pac, key=pac.get) == meta["algorithm"]["info"]["chosen_k"]
    assert len(meta["segment_names"]) == meta["k"]
    with pytest.raises(ValueError, match="k must be"):  # every other algorithm still needs a k
        train(SAMPLE, registry=registry, k=None, algorithm="gmm")
