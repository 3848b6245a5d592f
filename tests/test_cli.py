"""`python -m core ...` as a user runs it: real processes, exit codes, JSON, messages."""
import csv
import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SAMPLE


def run(*args, env_models=None, check=None):
    env = None
    if env_models is not None:
        import os
        env = dict(os.environ, SEGMENTLENS_MODELS=str(env_models))
        env.pop("SEGMENTLENS_DATA", None)
    proc = subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=120)
    if check is not None:
        assert proc.returncode == check, proc.stderr
    return proc


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return tmp_path_factory.mktemp("cli-models")


def test_help_on_every_command():
    for cmd in ([], ["train"], ["sweep"], ["score"], ["models"], ["models", "list"], ["models", "activate"],
                ["models", "rollback"], ["synth"]):
        proc = run(*cmd, "--help", check=0)
        assert "usage: python -m core" in proc.stdout


def test_train_json_contract(models):
    proc = run("train", "--data", str(SAMPLE), "--json", env_models=models, check=0)
    out = json.loads(proc.stdout)
    assert {"model_version", "k", "n_customers", "silhouette", "features", "cleaning"} <= set(out)
    assert out["k"] == 6 and out["model_version"] == "v0001"
    assert out["features"] == ["Age", "Income", "Total_Spending", "NumWebPurchases", "NumStorePurchases",
                               "NumWebVisitsMonth", "Recency"]
    cleaning = out["cleaning"]
    assert cleaning["rows_read"] == 2240
    assert cleaning["rows_used"] == out["n_customers"] == cleaning["rows_read"] - sum(cleaning["dropped"].values())
    assert cleaning["dropped"]["missing_income"] > 0
    assert "load" in proc.stderr and "fit" in proc.stderr  # progress on stderr, not stdout


def test_train_options_no_activate_and_models_commands(models):
    proc = run("train", "--data", str(SAMPLE), "--k", "4", "--features", "Income,Total_Spending,Age",
               "--seed", "3", "--no-activate", "--json", "--quiet", env_models=models, check=0)
    out = json.loads(proc.stdout)
    assert out["k"] == 4 and out["features"] == ["Income", "Total_Spending", "Age"] and proc.stderr == ""
    listed = json.loads(run("models", "list", "--json", env_models=models, check=0).stdout)
    assert [(v["version"], v["active"]) for v in listed] == [("v0001", True), ("v0002", False)]
    assert "v0002 is now active" in run("models", "activate", "v0002", env_models=models, check=0).stdout
    assert "v0001 is now active" in run("models", "rollback", env_models=models, check=0).stdout
    proc = run("models", "activate", "v0009", env_models=models, check=2)
    assert proc.stderr.strip() == "error: no model version 'v0009' (versions: v0001, v0002)"


def test_score_writes_membership_csv(models, tmp_path):
    out = tmp_path / "scores.csv"
    proc = run("score", "--data", str(SAMPLE), "--out", str(out), env_models=models, check=0)
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["ID", "segment", "segment_name", "confidence", "typicality"]
    assert 2000 < len(rows) < 2240
    assert all(0 <= float(r["confidence"]) <= 1 for r in rows)
    assert {r["segment"] for r in rows} == {str(i) for i in range(6)}
    assert "not scored" in proc.stderr


def test_sweep_json_and_text(models):
    out = json.loads(run("sweep", "--data", str(SAMPLE), "--k-min", "2", "--k-max", "5", "--json", check=0).stdout)
    assert [r["k"] for r in out["results"]] == [2, 3, 4, 5]
    assert out["recommended_k"] in (2, 3, 4, 5) and out["reason"].startswith(f"k={out['recommended_k']}")
    assert {"inertia", "silhouette", "calinski_harabasz", "davies_bouldin", "sizes"} <= set(out["results"][0])
    text = run("sweep", "--data", str(SAMPLE), "--k-max", "4", "--quiet", check=0).stdout
    assert "recommended k=" in text


def test_synth_writes_a_loadable_file(tmp_path):
    out = tmp_path / "s.tsv"
    run("synth", "--n", "300", "--seed", "5", "--out", str(out), check=0)
    from core.loading import load_customers
    loaded = load_customers(out)
    assert len(loaded.frame) == 300 and loaded.info.delimiter == "\t"


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "/nonexistent/file.csv"], "error: no such file: /nonexistent/file.csv"),
    (["train", "--data", str(SAMPLE), "--features", "Age,Shoe_Size"], "error: unknown feature(s) Shoe_Size"),
    (["train", "--data", str(SAMPLE), "--k", "1"], "--k must be at least 2"),
    (["train", "--data", str(SAMPLE), "--k", "abc"], "--k must be a whole number"),
    (["sweep", "--data", str(SAMPLE), "--k-min", "5", "--k-max", "3"], "error: --k-max (3) must be at least --k-min (5)"),
    (["score", "--data", str(SAMPLE), "--out", "/nonexistent/dir/x.csv"], "error: "),
    (["synth", "--out", "/nonexistent/dir/x.tsv"], "error: folder /nonexistent/dir does not exist"),
])
def test_bad_input_exits_2_with_one_line(args, message, models):
    proc = run(*args, env_models=models, check=2)
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.startswith("error")]) <= 1


def test_broken_file_message(tmp_path, models):
    bad = tmp_path / "bad.csv"
    bad.write_text("ID,Income\n1,abc\n")
    proc = run("train", "--data", str(bad), env_models=models, check=2)
    assert "missing required column(s)" in proc.stderr and "Traceback" not in proc.stderr


def test_score_without_model(tmp_path):
    proc = run("score", "--out", str(tmp_path / "x.csv"), env_models=tmp_path / "empty", check=2)
    assert "train one first" in proc.stderr
