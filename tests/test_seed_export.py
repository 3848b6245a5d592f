"""Seed-compatible export: `python -m core models export --sklearn DIR` writes the seed's joblib pickles."""
import json
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from tests.conftest import ROOT, SAMPLE


def run(*args, check=True):
    """Run `python -m core ...` in a fresh interpreter from the project root."""
    proc = subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A model trained by the CLI on the sample, exported to the seed's files and scored by the CLI."""
    tmp = tmp_path_factory.mktemp("seed")
    models = tmp / "models"
    run("train", "--data", str(SAMPLE), "--models", str(models), "--quiet")
    export = run("models", "export", "--models", str(models), "--sklearn", str(tmp / "seed"))
    run("score", "--data", str(SAMPLE), "--models", str(models), "--out", str(tmp / "scores.csv"), "--quiet")
    return tmp, export


def test_export_writes_the_seed_files_and_warns_about_pickle(exported):
    tmp, export = exported
    assert sorted(p.name for p in (tmp / "seed").iterdir()) == ["features.json", "kmeans_model.pkl", "scaler.pkl"]
    assert "pickle" in export.stderr and "runs code" in export.stderr and "never loads them" in export.stderr
    info = json.loads((tmp / "seed" / "features.json").read_text())
    assert info["features"] == ["Age", "Income", "Total_Spending", "NumWebPurchases", "NumStorePurchases",
                                "NumWebVisitsMonth", "Recency"]
    assert info["k"] == 6 and info["version"] == "v0001" and len(info["segment_names"]) == 6
    assert "v0001" in export.stdout


def test_pickles_in_a_fresh_process_give_the_labels_of_score(exported):
    tmp, _ = exported
    # A fresh interpreter that knows nothing of the registry: only joblib, scikit-learn and the loader.
    script = textwrap.dedent(f"""
        import json, sys
        import joblib
        from sklearn.cluster import KMeans
        from sklearn.preprocessing import StandardScaler
        from core.versions.pipeline import prepare
        seed = {str(tmp / "seed")!r}
        kmeans, scaler = joblib.load(seed + "/kmeans_model.pkl"), joblib.load(seed + "/scaler.pkl")
        assert type(kmeans) is KMeans and type(scaler) is StandardScaler, (type(kmeans), type(scaler))
        features = json.load(open(seed + "/features.json"))["features"]
        frame = prepare({str(SAMPLE)!r}).frame
        labels = kmeans.predict(scaler.transform(frame[features]))
        json.dump({{"ID": frame["ID"].astype(int).tolist(), "segment": labels.tolist()}}, sys.stdout)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = pd.DataFrame(json.loads(proc.stdout))
    scores = pd.read_csv(tmp / "scores.csv")
    assert len(scores) == len(got) == 2212  # every usable row of the sample
    merged = scores.merge(got, on="ID", suffixes=("_score", "_pickle"))
    assert len(merged) == len(scores)
    assert (merged["segment_score"] == merged["segment_pickle"]).all()
    assert merged["segment_score"].nunique() == 6


def test_export_of_an_unknown_version_or_empty_registry_is_one_line_exit_2(tmp_path, exported):
    tmp, _ = exported
    proc = run("models", "export", "v0099", "--models", str(tmp / "models"), "--sklearn", str(tmp_path / "x"),
               check=False)
    assert proc.returncode == 2 and "v0099" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()
    proc = run("models", "export", "--models", str(tmp_path / "empty"), "--sklearn", str(tmp_path / "y"), check=False)
    assert proc.returncode == 2 and "no model" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_export_needs_a_folder(tmp_path, exported):
    tmp, _ = exported
    proc = run("models", "export", "--models", str(tmp / "models"), check=False)
    assert proc.returncode == 2 and "--sklearn" in proc.stderr
    (tmp_path / "file").write_text("x")
    proc = run("models", "export", "--models", str(tmp / "models"), "--sklearn", str(tmp_path / "file"), check=False)
    assert proc.returncode == 2 and "not a folder" in proc.stderr
